"""Applications of trained runs: ``runs`` (ONE ``load_run``, ``evaluate_run``), ``predict`` (text classifiers,
taggers, application scores) and ``generate`` (autocompletion, translation)."""

from rnnlab.apps.runs import LoadedRun, evaluate_run, load_run

__all__ = ["LoadedRun", "evaluate_run", "load_run"]
