"""Model selection on the validation split: evaluations during training, the best checkpoint and early
stopping read 'validation' only; 'test' is read once, at the end, on the selected checkpoint."""

import json

import numpy as np
import pytest
from test_train import TinyRNN, tiny_config

from rnnlab.apps.runs import evaluate_run
from rnnlab.tasks import get_task
from rnnlab.training import checkpointing, train_and_evaluate
from rnnlab.training.metrics import read_jsonl


class SplitLog:
    """Wraps a task: records every split an iterator is made for, and (``worsen``) shifts the validation
    targets further at each validation pass, so that every evaluation after the first is worse."""

    def __init__(self, task, worsen=False):
        self.task, self.info, self.splits, self.worsen = task, task.info, task.splits, worsen
        self.opened: list[str] = []

    def iterator(self, split, batch_size, seed, **kw):
        self.opened.append(split)
        inner = self.task.iterator(split, batch_size, seed, **kw)
        if split != "validation" or not self.worsen:
            return inner
        shift = 10.0 * self.opened.count("validation")
        return ({**b, "targets": b["targets"] + shift} for b in inner)


def test_training_evaluates_validation_and_tests_the_best_checkpoint_once(tmp_path):
    config = tiny_config(steps=4, log_every=2, eval_every=1, best_metric="eval/loss")
    task = SplitLog(get_task("adding", length=6))
    result = train_and_evaluate(config, str(tmp_path), model=TinyRNN(), task=task)
    assert task.opened.count("test") == 1 and task.opened[-1] == "test"
    assert task.opened.count("validation") >= 4
    records = read_jsonl(str(tmp_path / "metrics.jsonl"))
    evals = {r["step"]: r["eval/loss"] for r in records if "eval/loss" in r}
    assert sorted(evals) == [1, 2, 3, 4]
    tests = [r for r in records if "test/loss" in r]
    assert [r["step"] for r in tests] == [4] and "eval/loss" not in tests[0]
    best = min(evals, key=evals.get)
    assert result["selected_step"] == best and result["early_stopped"] is False
    assert result["eval/loss"] == pytest.approx(evals[best], rel=1e-6)  # the selected checkpoint's
    assert result["test/loss"] == pytest.approx(tests[0]["test/loss"], rel=1e-6)
    # `rnnlab eval` tests the same checkpoint by default
    again = evaluate_run(str(tmp_path), model=TinyRNN(), task=get_task("adding", length=6))
    assert again["step"] == best and again["test/loss"] == pytest.approx(result["test/loss"], rel=1e-5)


def test_without_best_metric_the_last_checkpoint_is_tested(tmp_path):
    result = train_and_evaluate(tiny_config(steps=3, log_every=3), str(tmp_path), model=TinyRNN())
    assert result["selected_step"] == 3 and result["step"] == 3
    assert np.isfinite(result["test/mse"]) and result["test/mse"] != result["eval/mse"]


def test_early_stopping_after_patience_evaluations_without_a_new_best(tmp_path):
    config = tiny_config(
        steps=20,
        log_every=5,
        eval_every=1,
        best_metric="eval/loss",
        early_stop_patience=2,
        keep_checkpoints=1,
    )
    task = SplitLog(get_task("adding", length=6), worsen=True)
    result = train_and_evaluate(config, str(tmp_path), model=TinyRNN(), task=task)
    assert result["step"] == 3 and result["early_stopped"] is True and result["selected_step"] == 1
    ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"), best_metric="eval/loss")
    assert ckpt.all_steps() == [1, 3] and ckpt.best_step() == 1
    ckpt.close()
    records = read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert max(r["step"] for r in records) == 3
    assert [r["step"] for r in records if "train/loss" in r] == [3]  # the stop step is logged
    final = json.loads((tmp_path / "final_metrics.json").read_text())
    assert final == result
    # a finished (early-stopped) run is not trained again
    assert train_and_evaluate(config, str(tmp_path), model=TinyRNN(), task=SplitLog(task.task)) == result
