"""Config schema: defaults validate, overrides parse, and every kind of mistake is reported at once."""

import os

import pytest

from rnnlab import config as config_lib
from rnnlab import train
from rnnlab.cli import load_config


def test_default_and_experiment_configs_validate():
    config_lib.validate(config_lib.default_config())
    cfg = load_config("experiments/adding.py:50", {"model.cell": "gru"})
    config_lib.validate(cfg)
    assert cfg.task.params.length == 50 and cfg.model.cell == "gru"


def test_overrides_are_parsed_by_the_type_they_replace():
    cfg = config_lib.apply_overrides(
        config_lib.default_config(),
        {
            "model.cell": "gru",
            "model.hidden_size": "64",
            "optim.learning_rate": "3e-4",
            "train.progress": "false",
            "optim.boundaries": "(10, 20)",
            "task.params.length": "7",
            "model.cell_options.forget_bias": "1.0",
        },
    )
    config_lib.validate(cfg)
    assert cfg.model.hidden_size == 64 and cfg.optim.learning_rate == 3e-4 and cfg.train.progress is False
    assert cfg.optim.boundaries == (10, 20) and cfg.task.params.length == 7
    assert cfg.model.cell_options.forget_bias == 1.0


def test_resolve_fills_defaults_and_replaces_free_form_dicts():
    cfg = config_lib.resolve({"model": {"hidden_size": 3}, "task": {"params": {"length": 5}}})
    assert cfg.model.hidden_size == 3 and cfg.model.cell == "lstm" and cfg.train.steps == 1000
    assert cfg.task.params.to_dict() == {"length": 5}
    assert config_lib.resolve({"optim": {"boundaries": [1, 2]}}).optim.boundaries == (1, 2)  # from JSON


BAD = {
    "model.hiden_size": ("64", "unknown key 'model.hiden_size'"),
    "trian.steps": ("5", "unknown key 'trian'"),
    "model.cell": ("lstn", "model.cell='lstn' is not one of: gru, irnn, lru, lstm"),
    "optim.name": ("adagrad", "optim.name='adagrad' is not one of: sgd, momentum, rmsprop, adam, adamw"),
    "optim.schedule": ("linear", "optim.schedule"),
    "optim.clip": ("norm", "optim.clip='norm' is not one of: none, global_norm, value"),
    "parallel": ("dp", "parallel='dp' is not one of: sharded, pmap, none"),
    "train.steps": ("0", "train.steps=0 must be >= 1"),
    "train.batch_size": ("many", "train.batch_size must be of type int, got 'many'"),
    "optim.learning_rate": ("-0.1", "optim.learning_rate=-0.1 must be > 0"),
    "model.dropout": ("1.5", "model.dropout=1.5 must be in [0, 1)"),
    "train.nonfinite": ("ignore", "train.nonfinite='ignore' is not one of: stop, skip"),
    "train.best_metric": ("loss", "train.best_metric='loss' must name a logged metric"),
    "num_seeds": ("0", "num_seeds=0 must be >= 1"),
    "model.bidirectional": ("maybe", "model.bidirectional must be of type bool"),
    "optim.boundaries": ("(20, 10)", "must be increasing"),
    "task.name": ("addition", "task.name='addition' is not one of: adding, "),
}


def test_every_problem_is_listed_in_one_error(tmp_path):
    workdir = tmp_path / "run"
    overrides = {k: v for k, (v, _) in BAD.items()}
    config = config_lib.apply_overrides(config_lib.default_config(), overrides)
    with pytest.raises(ValueError) as err:
        train.train_and_evaluate(config, str(workdir))
    message = str(err.value)
    for key, (_, expected) in BAD.items():
        assert expected in message, (key, message)
    assert not workdir.exists()


@pytest.mark.parametrize("key", sorted(BAD))
def test_each_bad_value_alone_is_rejected_before_writing(key, tmp_path):
    value, expected = BAD[key]
    config = config_lib.apply_overrides(config_lib.default_config(), {key: value})
    with pytest.raises(ValueError, match="invalid config") as err:
        config_lib.validate(config)
    assert expected in str(err.value)
    assert str(err.value).count("\n  - ") == 1


def test_batch_size_must_split_over_devices():
    config = config_lib.default_config()
    config.train.batch_size = 6
    with pytest.raises(
        ValueError,
        match="train.batch_size=6 is not divisible by the 4 data-parallel devices: use a multiple of 4",
    ):
        config_lib.validate(config, num_devices=4)
    config.parallel = "none"
    config.train.eval_batch_size = 0
    config_lib.validate(config, num_devices=4)


def test_bad_task_params_leave_workdir_untouched(tmp_path):
    config = config_lib.default_config()
    config.task.params = {"lenght": 5}
    with pytest.raises(ValueError, match="task.params.*'lenght'"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_existing_workdir_with_other_config_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(config_lib.default_config().to_json())
    config = config_lib.default_config()
    config.model.hidden_size = 3
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=r"different config \(model.hidden_size: 128 -> 3\)"):
        train.train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == before
