"""The command line: the only module that parses flags.

    rnnlab train --config experiments/adding.py[:ARG] --workdir DIR [--config.model.cell=gru ...]
    rnnlab eval  --workdir DIR [--step N | --best] [--split test|validation|train]
    rnnlab sweep --config experiments/adding.py --workdir DIR [--seeds 0,1,2] [--config.x.y=v ...]
    rnnlab experiment FILE[:ARG] [FILE[:ARG] ...] --workdir DIR [--seeds 0,1,2] [--jobs N]
        (rnnlab.experiment)
    rnnlab report RUN_DIR [RUN_DIR ...] [--out DIR]                (rnnlab.analysis.report)
    rnnlab data list
    rnnlab data prepare NAME [--data-dir DIR]
    rnnlab predict --workdir DIR [INPUT ...] | --evaluate [--split test]   (rnnlab.apps.predict: texts,
        images, frames or clips by the run's task; caption and transcribe are predict, for readability)
    rnnlab caption --workdir DIR IMAGE.png|.npy ... [--beam K] | --grid OUT.png | --evaluate
    rnnlab transcribe --workdir DIR FRAMES.npy|IMAGE.png ... [--beam K] | --evaluate
    rnnlab complete --workdir DIR "To be, or" [--length N --temperature T --top-k K]  (rnnlab.apps.generate)
    rnnlab translate --workdir DIR "twenty-one" [--beam K] | --evaluate
    ([--step N | --best] picks the checkpoint of eval, predict, caption, transcribe, complete, translate)

``--config.a.b=v`` (or ``--config.a.b v``) overrides a field of the config, as ``ml_collections``'
``config_flags`` does; values are parsed as Python literals guided by the field's type
(``--config.model.cell=gru``, ``--config.optim.boundaries='(100, 200)'``, ``--config.train.progress=false``,
``--config.model.rnn.remat_chunk=128``).

A subcommand is ``COMMANDS[name] = (add_arguments(parser), run(args, overrides) -> exit code)``; to add one,
write the two functions and register them (those that use a trained run directory are in
``rnnlab.cli_apps``). Each command imports what it runs when it runs (so that, e.g., ``rnnlab data list`` does
not load the training stack).

Exit codes: 0 success; 2 a bad input (flags, config, experiment argument, task parameter, cell option, paths,
data that cannot be prepared): one line ``error: ...`` naming the value and the fix, no traceback, nothing
written (``USER_ERRORS``); 3 a run that cannot go on (a non-finite loss, an unreadable checkpoint). Any other
exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from rnnlab import cli_apps

OVERRIDE_PREFIX = "--config."
# What bad user input raises (a value, a path; also rnnlab.tasks.DataError): the message says it all.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
USER_ERRORS = (ValueError, *PATH_ERRORS)


# --------------------------------------------------------------------------------------------------------
# Overrides


def parse_overrides(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Splits ``--config.a.b=v`` / ``--config.a.b v`` out of ``argv``: (overrides, the other arguments)."""
    overrides, rest = {}, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(OVERRIDE_PREFIX):
            key, eq, value = arg[len(OVERRIDE_PREFIX) :].partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{arg} needs a value ({arg}=VALUE)")
                value = argv[i + 1]
                i += 1
            overrides[key] = value
        else:
            rest.append(arg)
        i += 1
    return overrides, rest


# --------------------------------------------------------------------------------------------------------
# train


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", required=True, help="experiment file with get_config(), optionally FILE.py:ARG"
    )
    p.add_argument("--workdir", required=True, help="run directory (resumed if it holds checkpoints)")


def _run_train(args, overrides) -> int:
    from rnnlab import experiment
    from rnnlab.training import train_and_evaluate

    config = experiment.load_config(args.config, overrides)
    result = train_and_evaluate(config, args.workdir)
    print(json.dumps({k: v for k, v in result.items() if k != "per_seed"}, indent=1, sort_keys=True))
    return 0


# --------------------------------------------------------------------------------------------------------
# sweep


def _add_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        required=True,
        help="experiment file with get_config() and get_sweep() (a list of dicts of dotted overrides, "
        "each optionally with a 'name'); FILE.py:ARG passes ARG to both",
    )
    p.add_argument("--workdir", required=True, help="parent directory; each run gets a sub-directory")
    p.add_argument(
        "--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: the config's seed)"
    )


def _seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` -> ``[0, 1, 2]``."""
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, e.g. 0,1,2; got {text!r}") from None


def _shown(result) -> str:
    """The validation and test metrics of a run's result, for one line of a log."""
    return ", ".join(f"{k}={v:.4g}" for k, v in result.items() if k.startswith(("eval/", "test/")))


def _run_sweep(args, overrides) -> int:
    from rnnlab import experiment
    from rnnlab.training import train_and_evaluate
    from rnnlab.training.loop import FINAL_FILE

    seeds = _seeds(args.seeds)
    if seeds is None:  # the config's own seed
        seeds = [experiment.load_config(args.config, overrides).seed]
    runs = experiment.grid(args.config, overrides, seeds)
    experiment.validate_all(runs)  # the whole grid before running any of it
    failed = []
    for i, (name, cfg) in enumerate(runs):
        workdir = os.path.join(args.workdir, name)
        if os.path.exists(os.path.join(workdir, FINAL_FILE)):
            print(f"[{i + 1}/{len(runs)}] {name}: finished, skipped")
            continue
        print(f"[{i + 1}/{len(runs)}] {name}")
        try:
            result = train_and_evaluate(cfg, workdir)
            print("  " + _shown(result))
        except Exception as e:  # noqa: BLE001  (one failed run must not stop the sweep)
            failed.append(name)
            print(f"  FAILED: {type(e).__name__}: {e}", file=sys.stderr)
    if failed:
        print(
            f"{len(failed)} run(s) failed: {', '.join(failed)}; re-run the same command to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


# --------------------------------------------------------------------------------------------------------
# experiment


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (config.json + metrics.jsonl)"
    )
    p.add_argument(
        "--out", default=None, help="where report.md and its plots go (default: the first RUN_DIR)"
    )


def _run_report(args, overrides) -> int:
    from rnnlab.analysis import report

    missing = [d for d in args.run_dirs if not os.path.isdir(d)]
    if missing:
        raise FileNotFoundError(f"not a run directory: {', '.join(missing)}")
    from rnnlab.apps import figures

    for run_dir in args.run_dirs:  # captions / attention maps of trained captioners and translators
        figures.write_figures(run_dir)
    print(report.main(args.run_dirs, args.out or args.run_dirs[0]))
    return 0


def _add_experiment(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="*", metavar="FILE[:ARG]", help="experiment files")
    p.add_argument("--config", action="append", default=[], help="experiment file (repeatable)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train up to N points of a grid at once, each in its own process (output lines prefixed with "
        "the point's name; results are those of --jobs 1)",
    )


def _run_experiment(args, overrides) -> int:
    from rnnlab import experiment

    specs = list(args.specs) + list(args.config)
    if not specs:
        raise ValueError("experiment needs at least one experiment file (FILE[:ARG] or --config FILE[:ARG])")
    seeds = _seeds(args.seeds)
    print(experiment.run_experiments(specs, args.workdir, overrides=overrides, seeds=seeds, jobs=args.jobs))
    return 0


# --------------------------------------------------------------------------------------------------------
# data


def _add_data(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True)
    listing = sub.add_parser("list", help="datasets that can be prepared: source, prepared?, size on disk")
    listing.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None)
    prep = sub.add_parser("prepare", help="download/convert a dataset")
    prep.add_argument("name")
    prep.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None)


def _run_data(args, overrides) -> int:
    from rnnlab import tasks

    if args.data_command == "list":
        print(tasks.format_table(tasks.list_datasets(args.data_dir)))
        return 0
    out = tasks.prepare(args.name, args.data_dir)
    if out is not None:
        print(out)
    return 0


# --------------------------------------------------------------------------------------------------------

TAKE_OVERRIDES = ("train", "sweep", "experiment")  # the others read a run's config.json, or none
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "train": (_add_train, _run_train),
    "eval": (cli_apps.add_eval, cli_apps.run_eval),
    "sweep": (_add_sweep, _run_sweep),
    "experiment": (_add_experiment, _run_experiment),
    "report": (_add_report, _run_report),
    "data": (_add_data, _run_data),
    "predict": (cli_apps.add_predict, cli_apps.run_predict),
    "complete": (cli_apps.add_complete, cli_apps.run_complete),
    "translate": (cli_apps.add_translate, cli_apps.run_translate),
    "caption": (cli_apps.add_predict, cli_apps.run_predict),
    "transcribe": (cli_apps.add_predict, cli_apps.run_predict),
}
HELP = {
    "train": "train (and evaluate) one config; resumes from --workdir",
    "eval": "evaluate a checkpoint of a run",
    "sweep": "run the grid of the config file's get_sweep() x seeds",
    "experiment": "run the grids of experiment files, then write report.md",
    "report": "write report.md with plots and tables from run directories",
    "data": "list or prepare datasets",
    "predict": "predict with a trained run (text classifier / tagger), or --evaluate its application score",
    "complete": "continue a prompt with a language-model run (sampling or greedy)",
    "translate": "translate texts with a seq2seq run (greedy or beam), or --evaluate exact match / BLEU",
    "caption": "predict for a captioning run: caption images (PNG or .npy), --grid, --evaluate",
    "transcribe": "predict for a CTC run: transcribe frames (.npy [T, D]) or images, --evaluate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=HELP.get(name)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnnlab`` console script and ``python -m rnnlab``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        overrides, rest = parse_overrides(argv)
        args = build_parser().parse_args(rest)  # bad flags: argparse prints the usage and exits with 2
        if overrides and args.command not in TAKE_OVERRIDES:
            raise ValueError(
                f"{args.command} takes no --config.* overrides (only {', '.join(TAKE_OVERRIDES)} do)"
            )
        return COMMANDS[args.command][1](args, overrides)
    except Exception as e:  # clear one-line messages for the errors a user can act on
        from rnnlab.tasks import DataError
        from rnnlab.training import NonFiniteError
        from rnnlab.training.checkpointing import CheckpointError

        if isinstance(e, (CheckpointError, NonFiniteError)):
            code = 3  # the run cannot go on
        elif isinstance(e, (*USER_ERRORS, DataError)):
            code = 2
        else:
            raise
        print(f"error: {e}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
