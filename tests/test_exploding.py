"""experiments/exploding.py: the grid (one run per seed, every setting x clipping), every step's gradient norm
in metrics.jsonl, and the claim itself: unclipped SGD blows up, clipped SGD does not."""

import json
import math
import os

import pytest

from rnnlab import experiment
from rnnlab.training import config as config_lib
from rnnlab.training import train_and_evaluate
from rnnlab.training.loop import NonFiniteError

SPEC = os.path.join("experiments", "exploding.py")


def _train_records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if "train/grad_norm" in r]


def test_grid_is_every_setting_and_clipping_with_one_run_per_seed():
    runs = experiment.grid(SPEC)
    experiment.validate_all(runs)
    assert len(runs) == 2 * 3 * 3 + 3  # 2 settings x 3 clippings x 3 seeds + the unclipped radius-1 control
    for name, cfg in runs:
        assert cfg.num_seeds == 1 and cfg.train.nonfinite == "stop" and cfg.train.log_every == 1
        assert f"seed={cfg.seed}" in name and f"clip={cfg.optim.clip}" in name
        assert cfg.model.cell == "rnn" and cfg.optim.name == "sgd"
    seeds = {(n.rsplit(",", 1)[0], c.seed) for n, c in runs}
    assert len(seeds) == len(runs)


def test_every_step_logs_the_gradient_norm_before_clipping(tmp_path):
    """With clip_value tiny, the logged grad_norm is the raw norm: it exceeds clip_value while the update
    norm is lr * clip_value (global-norm clipping)."""
    name, cfg = experiment.grid(SPEC + ":quick")[1]
    assert "clip=global_norm" in name
    cfg = config_lib.apply_overrides(
        cfg,
        {"train.steps": 3, "task.params.length": 8, "model.hidden_size": 8, "optim.clip_value": 1e-3},
    )
    train_and_evaluate(cfg, str(tmp_path))
    records = _train_records(str(tmp_path))
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert r["train/grad_norm"] > 1e-3
        assert r["train/update_norm"] == pytest.approx(cfg.optim.learning_rate * 1e-3, rel=1e-3)
        assert r["train/clip_fired"] == 1.0


@pytest.mark.slow
def test_unclipped_sgd_goes_non_finite_and_clipped_sgd_finishes(tmp_path):
    """The measured claim at a reduced budget (seed 0, 100 of 300 steps): lr 0.1, radius 1.5. (Measured
    non-finite at step 24 on one device; on the 4 fake test devices the loss grows ~10x per step and passes
    float32 range a little later.)"""
    points = dict(experiment.grid(SPEC + ":quick"))
    short = {"train.steps": 100}
    none = config_lib.apply_overrides(points["lr0.1_r1.5,clip=none,seed=0"], short)
    with pytest.raises(NonFiniteError, match="non-finite"):
        train_and_evaluate(none, str(tmp_path / "none"))
    norms = [r["train/grad_norm"] for r in _train_records(str(tmp_path / "none"))]
    assert max(norms) > 1e6 * norms[0]  # the gradient norm exploded before the guard stopped the run

    clipped = config_lib.apply_overrides(points["lr0.1_r1.5,clip=global_norm,seed=0"], short)
    result = train_and_evaluate(clipped, str(tmp_path / "clipped"))
    records = _train_records(str(tmp_path / "clipped"))
    assert result["step"] == 100 and len(records) == 100
    assert all(math.isfinite(r["train/loss"]) and r["train/loss"] < 10 for r in records)
