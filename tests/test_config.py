"""Config schema: a locked, type-safe ConfigDict; defaults validate, overrides parse, values tied by
FieldReferences follow each other, old config.json files still load, and every kind of mistake is reported at
once."""

import json
import os
import subprocess
import sys

import pytest

from rnnlab import experiment, scan
from rnnlab.training import config as config_lib
from rnnlab.training import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_and_experiment_configs_validate():
    config_lib.validate(config_lib.default_config())
    cfg = experiment.load_config(
        "experiments/adding.py:50", {"model.cell": "gru", "model.cell_options": "{}"}
    )
    config_lib.validate(cfg)
    assert cfg.task.params.length == 50 and cfg.model.cell == "gru"
    with pytest.raises(ValueError, match="chrono_tmax unknown to cell 'rnn'"):  # a gated cells' option
        config_lib.validate(experiment.load_config("experiments/adding.py:50", {"model.cell": "rnn"}))


def test_schema_is_locked_and_type_safe_but_free_form_dicts_are_open():
    c = config_lib.default_config()
    with pytest.raises(AttributeError):
        c.model.hiden_size = 64
    with pytest.raises(TypeError):
        c.train.steps = "many"
    c.task.params.anything = 1  # keyword arguments of get_task
    c.model.cell_options.forget_bias = 1.0
    c.model.cell_options = {"chrono_tmax": 8}  # replaced, and still open
    c.model.cell_options.gate_slope = 2.0
    assert c.model.cell_options.to_dict() == {"chrono_tmax": 8, "gate_slope": 2.0}


def test_overrides_are_parsed_by_the_type_they_replace():
    cfg = config_lib.apply_overrides(
        config_lib.default_config(),
        {
            "model.cell": "lstm",
            "model.hidden_size": "64",
            "optim.learning_rate": "3e-4",
            "train.progress": "false",
            "optim.boundaries": "(10, 20)",
            "task.params.length": "7",
            "model.cell_options.forget_bias": "1.0",
            "model.rnn.remat_chunk": "128",
            "model.rnn.hoist": "false",
        },
    )
    config_lib.validate(cfg)
    assert cfg.model.hidden_size == 64 and cfg.optim.learning_rate == 3e-4 and cfg.train.progress is False
    assert cfg.optim.boundaries == (10, 20) and cfg.task.params.length == 7
    assert cfg.model.cell_options.forget_bias == 1.0
    assert dict(config_lib.rnn_options(cfg.model))["remat_chunk"] == 128
    assert dict(config_lib.rnn_options(cfg.model))["hoist"] is False


def test_resolve_fills_defaults_and_replaces_free_form_dicts():
    cfg = config_lib.resolve({"model": {"hidden_size": 3}, "task": {"params": {"length": 5}}})
    assert cfg.model.hidden_size == 3 and cfg.model.cell == "lstm" and cfg.train.steps == 1000
    assert cfg.task.params.to_dict() == {"length": 5}
    assert config_lib.resolve({"optim": {"boundaries": [1, 2]}}).optim.boundaries == (1, 2)  # from JSON


def test_a_config_json_from_before_model_rnn_loads_and_resumes():
    """Runs saved before a key existed load with its default, and their resumption is not refused."""
    saved = config_lib.to_json_dict(config_lib.default_config())
    del saved["model"]["rnn"]
    cfg = config_lib.resolve(json.loads(json.dumps(saved)))
    assert cfg.model.rnn.backend == "auto" and cfg.model.rnn.remat_chunk == 0
    assert config_lib.config_diff(saved, config_lib.default_config()) == []
    assert config_lib.config_diff(saved, config_lib.apply_overrides(cfg, {"model.rnn.unroll": 2})) == [
        "model.rnn.unroll: 1 -> 2"
    ]


def test_chrono_tmax_follows_the_length_through_overrides_and_sweeps():
    """experiments/adding.py ties the LSTM's chrono T_max to the task's length with a FieldReference."""
    base = experiment.load_config("experiments/adding.py:50")
    assert base.model.cell_options.chrono_tmax == 50
    moved = config_lib.apply_overrides(base, {"task.params.length": "70"})
    assert moved.model.cell_options.chrono_tmax == 70 and base.model.cell_options.chrono_tmax == 50
    pinned = config_lib.apply_overrides(base, {"model.cell_options.chrono_tmax": 9})  # the tie is one-way
    assert pinned.model.cell_options.chrono_tmax == 9 and pinned.task.params.length == 50
    runs = dict(experiment.grid("experiments/adding.py:cpu"))
    assert runs["lstm_chrono_T100"].model.cell_options.to_dict() == {"chrono_tmax": 100}
    assert runs["lstm_chrono_T200"].model.cell_options.to_dict() == {"chrono_tmax": 200}
    assert runs["gru_T100"].model.cell_options.to_dict() == {}
    assert json.loads(runs["lstm_chrono_T100"].to_json())["model"]["cell_options"] == {"chrono_tmax": 100}


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
    "train.best_metric": ("loss", "train.best_metric='loss' must name a validation or train metric"),
    "train.early_stop_patience": ("-1", "train.early_stop_patience=-1 must be >= 0"),
    "num_seeds": ("0", "num_seeds=0 must be >= 1"),
    "model.bidirectional": ("maybe", "model.bidirectional must be of type bool"),
    "optim.boundaries": ("(20, 10)", "must be increasing"),
    "task.name": ("addition", "task.name='addition' is not one of: adding, "),
    "model.rnn.backend": ("cuda", f"model.rnn.backend='cuda' is not one of: {', '.join(scan.BACKENDS)}"),
    "model.rnn.remat_chunk": ("-1", "model.rnn.remat_chunk=-1 must be >= 0"),
    "model.rnn.hoist": ("maybe", "model.rnn.hoist='maybe' is not one of: auto, true, false"),
}


def test_every_problem_is_listed_in_one_error():
    overrides = {k: v for k, (v, _) in BAD.items()}
    with pytest.raises(ValueError) as err:
        config_lib.apply_overrides(config_lib.default_config(), overrides)
    message = str(err.value)
    for key, (_, expected) in BAD.items():
        assert expected in message, (key, message)


@pytest.mark.parametrize("key", sorted(BAD))
def test_each_bad_value_alone_is_rejected(key):
    value, expected = BAD[key]
    with pytest.raises(ValueError, match="invalid config") as err:
        config_lib.validate(config_lib.apply_overrides(config_lib.default_config(), {key: value}))
    assert expected in str(err.value)
    assert str(err.value).count("\n  - ") == 1


def test_cell_options_are_checked_against_the_cell():
    config = config_lib.apply_overrides(config_lib.default_config(), {"model.cell_options.forget_bais": "1"})
    with pytest.raises(
        ValueError, match="model.cell_options forget_bais unknown to cell 'lstm'.*forget_bias"
    ):
        config_lib.validate(config)


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


def test_bad_values_and_task_params_leave_workdir_untouched(tmp_path):
    config = config_lib.default_config()
    config.model.dropout = 1.5
    with pytest.raises(ValueError, match="model.dropout=1.5 must be in"):
        train_and_evaluate(config, str(tmp_path / "run"))
    config = config_lib.default_config()
    config.task.params = {"lenght": 5}
    with pytest.raises(ValueError, match="task.params.*'lenght'"):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_existing_workdir_with_other_config_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(config_lib.default_config().to_json())
    config = config_lib.default_config()
    config.model.hidden_size = 3
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=r"different config \(model.hidden_size: 128 -> 3\)"):
        train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == before


def test_validating_a_config_does_not_import_tensorflow_datasets():
    """Checking a config (the CLI does it before anything runs) imports nothing beyond what ``rnnlab.tasks``
    itself imports; and once ``rnnlab.tasks`` is free of it, TFDS is not imported at all."""
    code = (
        "import sys\n"
        "import rnnlab.tasks\n"
        "tasks_import_tfds = 'tensorflow_datasets' in sys.modules\n"
        "from rnnlab.training import config\n"
        "config.validate(config.resolve(config.default_config().to_dict()))\n"
        "print(tasks_import_tfds, 'tensorflow_datasets' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    tasks_import_tfds, after = out.stdout.split()
    if tasks_import_tfds == "True":
        pytest.skip("rnnlab.tasks itself imports tensorflow_datasets (the tasks restructure removes it)")
    assert after == "False"
