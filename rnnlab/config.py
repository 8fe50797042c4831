"""The configuration schema: every key an experiment may set, its default, and its validation.

An experiment file defines ``get_config()`` (or ``get_config(arg: str)``) returning an
``ml_collections.ConfigDict``, usually ``default_config()`` with a few fields changed. The CLI merges it onto
``default_config()`` (``resolve``), applies ``--config.a.b=v`` overrides (``apply_overrides``) and calls
``validate``, which raises ONE ``ValueError`` listing every problem. Nothing reads a key that is not here;
a key nobody reads is a bug, so unknown keys are errors.

Free-form sub-dicts (their contents belong to another module): ``model.cell_options`` (keyword arguments
of the cell) and ``task.params`` (keyword arguments of ``rnnlab.tasks.get_task``).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Mapping
from typing import Any

import ml_collections

CELLS_FALLBACK = ("rnn", "irnn", "lstm", "gru", "lru", "mingru")
PARALLEL = ("sharded", "pmap", "none")
HEADS = ("auto", "last", "mean", "all")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "warmup_cosine", "step")
CLIPS = ("none", "global_norm", "value")
NONFINITE = ("stop", "skip")
BEST_MODES = ("min", "max")
ATTENTIONS = ("general", "dot", "none")  # rnnlab.seq2seq.ATTENTIONS

# Sub-dicts whose keys are not checked here (they are keyword arguments of another module).
FREE_FORM = ("model.cell_options", "task.params")


def default_config() -> ml_collections.ConfigDict:
    """The full schema with defaults. Comments document each key."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # root seed; seed k of a multi-seed run uses seed + k (init and data)
    c.num_seeds = 1  # K models trained at once (vmap over a leading seed axis)
    c.parallel = "sharded"  # 'sharded' (jit + NamedSharding), 'pmap', or 'none' (one device)

    c.model = ml_collections.ConfigDict()
    c.model.cell = "lstm"  # a name in rnnlab.cells.CELLS
    c.model.hidden_size = 128  # H
    c.model.num_layers = 1
    c.model.cell_options = ml_collections.ConfigDict()  # extra keyword arguments of the cell
    c.model.bidirectional = False
    c.model.residual = False
    c.model.head = "auto"  # 'auto' (last for classification/regression, all otherwise), last|mean|all
    c.model.embed_dim = 0  # embedding size for token inputs; 0 = the model's default
    c.model.dropout = 0.0
    c.model.attention = "general"  # seq2seq tasks (Seq2Seq, Luong attention): general | dot | none

    c.task = ml_collections.ConfigDict()
    c.task.name = "adding"  # a name known to rnnlab.tasks.get_task
    c.task.params = ml_collections.ConfigDict()  # keyword arguments of get_task, e.g. length=100

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adam"  # sgd | momentum | rmsprop | adam | adamw
    c.optim.learning_rate = 1e-3  # peak learning rate
    c.optim.schedule = "constant"  # constant | warmup_cosine | step (all with linear warmup)
    c.optim.warmup_steps = 0
    c.optim.decay_steps = 0  # warmup_cosine: length of warmup + decay; 0 = train.steps
    c.optim.min_lr_ratio = 0.0  # warmup_cosine: final lr = ratio * peak
    c.optim.boundaries = ()  # step: steps at which lr is multiplied by decay_factor
    c.optim.decay_factor = 0.1  # step
    c.optim.momentum = 0.9  # momentum (and sgd if > 0 is wanted: use 'momentum')
    c.optim.nesterov = False
    c.optim.b1 = 0.9  # adam/adamw
    c.optim.b2 = 0.999  # adam/adamw
    c.optim.eps = 1e-8  # adam/adamw/rmsprop
    c.optim.rmsprop_decay = 0.9
    c.optim.clip = "global_norm"  # none | global_norm | value (Pascanu et al. 2013)
    c.optim.clip_value = 1.0  # max global norm, or max |g| per entry
    c.optim.weight_decay = 0.0  # non-recurrent matrices (ndim >= 2); decoupled for adamw, L2 otherwise
    c.optim.recurrent_lr_scale = 1.0  # lr of params named 'recurrent_kernel' = scale * lr
    c.optim.recurrent_weight_decay = 0.0

    c.train = ml_collections.ConfigDict()
    c.train.steps = 1000
    c.train.batch_size = 32  # per seed, global over devices
    c.train.eval_every = 0  # 0 = evaluate only at the end
    c.train.eval_batches = 0  # 0 = the whole test split
    c.train.eval_batch_size = 0  # 0 = train.batch_size
    c.train.log_every = 50
    c.train.checkpoint_every = 0  # 0 = only at the end
    c.train.keep_checkpoints = 2  # the last k are kept (plus the best one if best_metric is set)
    c.train.best_metric = ""  # e.g. 'eval/loss'; '' = do not track a best checkpoint
    c.train.best_mode = "min"  # min | max
    c.train.nonfinite = "stop"  # stop: raise on NaN/Inf loss or gradient; skip: drop that update, count it
    c.train.progress = True  # tqdm progress bar
    c.train.tbptt = False  # lm tasks: truncated BPTT over contiguous streams, carry kept across batches
    c.train.beam_size = 4  # seq2seq: beam of the end-of-run BLEU / exact-match decoding; 0 = greedy only

    c.diagnostics = ml_collections.ConfigDict()
    c.diagnostics.every = 0  # record diagnostics (rnnlab.diagnostics) every n steps; 0 = off
    c.diagnostics.jacobian = True  # include the Jacobian products (O(T S^3) per record)
    return c


# --------------------------------------------------------------------------------------------------------
# Merging and overrides


def _to_plain(x: Any) -> Any:
    if isinstance(x, ml_collections.ConfigDict):
        return x.to_dict()
    return copy.deepcopy(dict(x)) if isinstance(x, Mapping) else x


def _merge(base: dict, new: Mapping, prefix: str = "") -> None:
    for key, value in new.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            if path in FREE_FORM:
                base[key] = {}
            _merge(base[key], value, path + ".")
        else:
            if isinstance(base.get(key), tuple) and isinstance(value, list):
                value = tuple(value)  # JSON turned tuples into lists
            base[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value


def resolve(config: Mapping | ml_collections.ConfigDict | None) -> ml_collections.ConfigDict:
    """Returns ``default_config()`` updated with ``config`` (unknown keys are kept, for ``validate``).

    Free-form sub-dicts (``model.cell_options``, ``task.params``) are replaced, not merged.
    """
    merged = default_config().to_dict()
    if config is not None:
        _merge(merged, _to_plain(config))
    return ml_collections.ConfigDict(merged, type_safe=False)


def parse_value(text: str, default: Any = None) -> Any:
    """Parses a command-line value, guided by the type of the default it replaces."""
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        return text
    if isinstance(default, str):
        try:  # a quoted string ('' for empty) is unquoted; anything else is taken verbatim
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        return value if isinstance(value, str) else text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """Returns a copy of ``config`` with dotted keys set, e.g. ``{'model.cell': 'gru'}``.

    String values are parsed (``parse_value``) as on the command line. Missing parent dicts are created so that
    ``validate`` can report the unknown key together with every other problem.
    """
    plain = _to_plain(config)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = plain
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        if isinstance(value, str):
            value = parse_value(value, node.get(leaf))
        if isinstance(node.get(leaf), tuple) and isinstance(value, list):
            value = tuple(value)
        node[leaf] = value
    return ml_collections.ConfigDict(plain, type_safe=False)


# --------------------------------------------------------------------------------------------------------
# Validation


def _type_ok(value: Any, default: Any) -> bool:
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
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _check_keys(cfg: dict, schema: dict, prefix: str, problems: list[str]) -> None:
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if key not in schema:
            valid = ", ".join(sorted(schema))
            problems.append(f"unknown key {path!r} (valid keys here: {valid})")
            continue
        default = schema[key]
        if not _type_ok(value, default):
            problems.append(
                f"{path} must be of type {type(default).__name__}, got {value!r} ({type(value).__name__})"
            )
        elif isinstance(default, dict) and path not in FREE_FORM:
            _check_keys(value, default, path + ".", problems)


def _known_cells() -> tuple[str, ...]:
    try:
        from rnnlab import cells  # pylint: disable=import-outside-toplevel

        return tuple(sorted(cells.CELLS))
    except (ImportError, AttributeError):
        return CELLS_FALLBACK


def _known_tasks() -> tuple[str, ...] | None:
    try:
        from rnnlab import tasks  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    for attr in ("list_tasks", "names"):
        fn = getattr(tasks, attr, None)
        if callable(fn):
            return tuple(sorted(fn()))
    registry = getattr(tasks, "TASKS", None)
    return tuple(sorted(registry)) if registry is not None else None


def validate(config: Mapping | ml_collections.ConfigDict, *, num_devices: int | None = None) -> None:
    """Raises one ``ValueError`` listing every problem of ``config`` (a resolved config).

    Args:
      config: the config, usually from ``resolve``.
      num_devices: if given, the number of data-parallel devices; the batch size must divide by it.
    """
    cfg = _to_plain(config)
    schema = default_config().to_dict()
    problems: list[str] = []
    _check_keys(cfg, schema, "", problems)

    def get(path):
        node = cfg
        for p in path.split("."):
            if not isinstance(node, dict) or p not in node:
                return schema_get(path)
            node = node[p]
        return node if _type_ok(node, schema_get(path)) else schema_get(path)

    def schema_get(path):
        node = schema
        for p in path.split("."):
            node = node[p]
        return node

    def choice(path, valid):
        value = get(path)
        if value not in valid:
            problems.append(f"{path}={value!r} is not one of: {', '.join(valid)}")

    def at_least(path, low):
        value = get(path)
        if value < low:
            problems.append(f"{path}={value!r} must be >= {low}")

    choice("parallel", PARALLEL)
    choice("model.cell", _known_cells())
    choice("model.head", HEADS)
    choice("optim.name", OPTIMIZERS)
    choice("optim.schedule", SCHEDULES)
    choice("optim.clip", CLIPS)
    choice("train.nonfinite", NONFINITE)
    choice("train.best_mode", BEST_MODES)
    choice("model.attention", ATTENTIONS)
    if get("train.tbptt") and get("parallel") == "pmap":
        problems.append(
            "train.tbptt needs parallel='sharded' or 'none' (pmap keeps one state copy per device)"
        )
    tasks = _known_tasks()
    if tasks is not None:
        choice("task.name", tasks)
    for path, low in [
        ("num_seeds", 1),
        ("model.hidden_size", 1),
        ("model.num_layers", 1),
        ("model.embed_dim", 0),
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
        ("diagnostics.every", 0),
        ("train.beam_size", 0),
    ]:
        at_least(path, low)
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
    boundaries = get("optim.boundaries")
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
        problems.append(f"train.best_metric={best!r} must name a logged metric, e.g. 'eval/loss'")
    if num_devices is not None and get("parallel") != "none":
        for path in ("train.batch_size", "train.eval_batch_size"):
            if get(path) % num_devices:
                problems.append(
                    f"{path}={get(path)} is not divisible by the {num_devices} data-parallel devices: "
                    f"use a multiple of {num_devices}, or parallel=none"
                )
    if problems:
        raise ValueError("invalid config:\n  - " + "\n  - ".join(problems))
