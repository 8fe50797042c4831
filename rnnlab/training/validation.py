"""The rules a config must follow beyond its schema's keys and types: every choice read from the module that
owns it (cells, heads, attentions, backends, optimizers, parallel modes, tasks), ranges, and consistency.
``rnnlab.training.config.validate`` reports them, all at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml_collections import ConfigDict, FieldReference

from rnnlab import blocks, cells, encoders, models, scan, seq2seq, taggers, tasks
from rnnlab.training import checkpointing, optim, sharding, steps

FREE_FORM = ("model.cell_options", "task.params")
NONFINITE = ("stop", "skip")  # what the loop does on a NaN/Inf loss or gradient
HOIST = {"auto": "auto", "true": True, "false": False}  # model.rnn.hoist -> rnnlab.RNN(hoist=...)


def at_path(config: ConfigDict, dotted: str) -> Any:
    """``config['a']['b']`` for ``'a.b'``."""
    for part in dotted.split("."):
        config = config[part]
    return config


def type_ok(value: Any, default: Any) -> bool:
    """Whether ``value`` may replace ``default`` (ints for floats, lists for tuples, no bools for ints)."""
    if isinstance(value, FieldReference):
        value = value.get()
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, tuple):
        return isinstance(value, (tuple, list))
    if isinstance(default, ConfigDict):
        return isinstance(value, (Mapping, ConfigDict))
    return True


def type_problem(path: str, value: Any, default: Any) -> str:
    kind = "dict" if isinstance(default, ConfigDict) else type(default).__name__
    return f"{path} must be of type {kind}, got {value!r} ({type(value).__name__})"


def unknown_key(path: str, node: ConfigDict) -> str:
    return f"unknown key {path!r} (valid keys here: {', '.join(sorted(node.keys()))})"


def key_problems(node: ConfigDict, schema: ConfigDict, prefix: str = "") -> list[str]:
    """Unknown keys and wrong types in a config that was built without the locked schema."""
    problems: list[str] = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if key not in schema:
            problems.append(unknown_key(path, schema))
        elif not type_ok(value, schema[key]):
            problems.append(type_problem(path, value, schema[key]))
        elif isinstance(value, ConfigDict) and path not in FREE_FORM:
            problems += key_problems(value, schema[key], path + ".")
    return problems


def value_problems(config: ConfigDict, schema: ConfigDict, num_devices: int | None = None) -> list[str]:
    """Every value of ``config`` outside its allowed choices or range (``schema``: the defaults)."""
    problems: list[str] = []

    def get(path):
        try:
            value = at_path(config, path)
        except (KeyError, AttributeError):
            return at_path(schema, path)
        default = at_path(schema, path)
        return value if type_ok(value, default) else default

    def choice(path, valid):
        valid = tuple(valid)
        if get(path) not in valid:
            problems.append(f"{path}={get(path)!r} is not one of: {', '.join(map(str, valid))}")

    choice("parallel", sharding.MODES)
    choice("seed_loop", ("auto", *steps.SEED_LOOPS))
    choice("model.cell", sorted(cells.CELLS))
    choice("model.head", ("auto", *models.HEADS))
    choice("model.block", blocks.BLOCKS)
    choice("model.norm", blocks.NORMS)
    choice("model.attention", seq2seq.ATTENTIONS)
    choice("model.encoder", encoders.ENCODERS)
    choice("model.char_encoder", taggers.CHAR_ENCODERS)
    choice("model.rnn.backend", scan.BACKENDS)
    choice("model.rnn.mode", scan.MODES)
    choice("model.rnn.hoist", HOIST)
    choice("optim.name", optim.OPTIMIZERS)
    choice("optim.schedule", optim.SCHEDULES)
    choice("optim.clip", optim.CLIPS)
    choice("train.nonfinite", NONFINITE)
    choice("train.best_mode", checkpointing.BEST_MODES)
    choice("task.name", sorted(tasks.list_tasks()))
    if get("model.cell") in cells.CELLS:
        given = set(get("model.cell_options").keys())
        unknown = sorted(given - set(cells.cell_options(get("model.cell"))))
        if unknown:
            problems.append(
                f"model.cell_options {', '.join(unknown)} unknown to cell {get('model.cell')!r} "
                f"(valid: {', '.join(cells.cell_options(get('model.cell')))})"
            )
    if get("model.block") != "plain" and (get("model.bidirectional") or get("model.residual")):
        problems.append(
            f"model.block={get('model.block')!r} is unidirectional and always residual: set "
            "model.bidirectional=False and model.residual=False"
        )
    if get("seed_loop") == "map" and get("parallel") == "seeds":
        problems.append(
            "seed_loop='map' runs the seeds in turn; parallel='seeds' needs seed_loop='vmap' or 'auto'"
        )
    if get("train.tbptt") and get("parallel") == "pmap":
        problems.append(
            "train.tbptt needs parallel='sharded' or 'none' (pmap keeps one state copy per device)"
        )
    for path, low in [
        ("num_seeds", 1),
        ("model.hidden_size", 1),
        ("model.num_layers", 1),
        ("model.embed_dim", 0),
        ("model.rnn.unroll", 1),
        ("model.rnn.remat_chunk", 0),
        ("optim.warmup_steps", 0),
        ("optim.decay_steps", 0),
        ("train.steps", 1),
        ("train.batch_size", 1),
        ("train.eval_every", 0),
        ("train.eval_batches", 0),
        ("train.eval_batch_size", 0),
        ("train.log_every", 1),
        ("train.checkpoint_every", 0),
        ("train.keep_checkpoints", 1),
        ("train.watchdog_s", 0),
        ("diagnostics.every", 0),
        ("train.beam_size", 0),
        ("model.encoder_dim", 0),
        ("model.frame_features", 0),
        ("model.char_dim", 1),
        ("model.char_features", 1),
        ("model.case_dim", 1),
        ("train.early_stop_patience", 0),
    ]:
        if get(path) < low:
            problems.append(f"{path}={get(path)!r} must be >= {low}")
    for path in ("optim.learning_rate", "optim.clip_value"):
        if not get(path) > 0:
            problems.append(f"{path}={get(path)!r} must be > 0")
    for path in (
        "optim.weight_decay",
        "optim.recurrent_weight_decay",
        "optim.recurrent_lr_scale",
        "optim.min_lr_ratio",
        "optim.momentum",
    ):
        if get(path) < 0:
            problems.append(f"{path}={get(path)!r} must be >= 0")
    for path in ("model.dropout", "optim.b1", "optim.b2", "optim.rmsprop_decay"):
        if not 0 <= get(path) < 1:
            problems.append(f"{path}={get(path)!r} must be in [0, 1)")
    stages = tuple(get("model.encoder_features"))
    if any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in stages):
        problems.append(f"model.encoder_features={stages!r} must be positive integers")
    if get("model.char_encoder") == "lstm" and get("model.char_features") % 2:
        problems.append(
            f"model.char_features={get('model.char_features')} must be even for char_encoder='lstm' "
            "(half per direction)"
        )
    boundaries = tuple(get("optim.boundaries"))
    if any(not isinstance(b, int) or isinstance(b, bool) or b <= 0 for b in boundaries):
        problems.append(f"optim.boundaries={boundaries!r} must be positive integers")
    elif list(boundaries) != sorted(boundaries):
        problems.append(f"optim.boundaries={boundaries!r} must be increasing")
    if get("optim.schedule") == "step" and not boundaries:
        problems.append("optim.schedule='step' needs optim.boundaries, e.g. (1000, 2000)")
    if get("train.steps") >= 1 and get("optim.warmup_steps") > get("train.steps"):
        problems.append(
            f"optim.warmup_steps={get('optim.warmup_steps')} exceeds train.steps={get('train.steps')}"
        )
    best = get("train.best_metric")
    if best and not best.startswith(("eval/", "train/")):
        problems.append(
            f"train.best_metric={best!r} must name a validation or train metric, e.g. 'eval/loss' (the test "
            "split is never used to select a model)"
        )
    if get("train.early_stop_patience") > 0:
        if not best.startswith("eval/"):
            problems.append(
                "train.early_stop_patience needs train.best_metric set to a validation metric, e.g. "
                "'eval/loss'"
            )
        if get("train.eval_every") < 1:
            problems.append("train.early_stop_patience needs train.eval_every > 0 (how often to evaluate)")
    if num_devices is not None and get("parallel") != "none":
        for path in ("train.batch_size", "train.eval_batch_size"):
            if get(path) % num_devices:
                problems.append(
                    f"{path}={get(path)} is not divisible by the {num_devices} data-parallel devices: "
                    f"use a multiple of {num_devices}, or parallel=none"
                )
    return problems
