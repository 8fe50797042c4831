"""The configuration schema: every key an experiment may set, its default, and its validation.

``default_config()`` is a locked, type-safe ``ml_collections.ConfigDict`` (as in flax/examples and
big_vision): assigning a key that does not exist, or a value of another type, fails at once. An experiment
file defines ``get_config()`` (or ``get_config(arg: str)``) returning ``default_config()`` with a few fields
changed; values tied to others are ``FieldReference`` s, e.g. the LSTM's chrono ``T_max`` follows the task's
length::

    c = default_config()
    c.task.params.length = 200
    c.model.cell_options = {"chrono_tmax": c.task.params.get_ref("length").identity()}

(``.identity()``: a derived reference, so overriding ``chrono_tmax`` does not change the length). The CLI
applies ``--config.a.b=v`` overrides (``apply_overrides``) and ``validate`` raises ONE ``ValueError`` listing
every problem; the rules beyond keys and types live in ``rnnlab.training.validation``, which reads every
choice from its owner (cells, heads, attentions, backends, optimizers, parallel modes, tasks). Nothing here
imports ``tensorflow_datasets``.

Free-form sub-dicts (their contents belong to another module, so any key may be added): ``model.cell_options``
(keyword arguments of the cell, checked against ``rnnlab.cells.cell_options``) and ``task.params`` (keyword
arguments of ``rnnlab.tasks.get_task``).
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Mapping
from typing import Any

from ml_collections import ConfigDict

from rnnlab.training.validation import (
    FREE_FORM,
    HOIST,
    at_path,
    key_problems,
    type_ok,
    type_problem,
    unknown_key,
    value_problems,
)

# Keys that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("train.progress", "train.steps", "train.watchdog_s")


def default_config() -> ConfigDict:
    """The full schema with defaults (locked; free-form sub-dicts stay open); comments document the keys."""
    c = ConfigDict()
    c.seed = 0  # root seed; seed k of a multi-seed run uses seed + k (init and data)
    c.num_seeds = 1  # K models trained at once (vmap over a leading seed axis)
    c.parallel = "sharded"  # rnnlab.training.sharding.MODES: sharded (jit + NamedSharding) | pmap | none
    c.seed_loop = "auto"  # K seeds in one step: vmap | map (lax.map, one after another) | auto (per platform)

    c.model = ConfigDict()
    c.model.cell = "lstm"  # a name in rnnlab.cells.CELLS
    c.model.hidden_size = 128  # H
    c.model.num_layers = 1
    c.model.cell_options = ConfigDict()  # extra keyword arguments of the cell
    c.model.bidirectional = False
    c.model.residual = False
    c.model.block = (
        "plain"  # rnnlab.blocks.BLOCKS: plain | lru (Orvieto et al. 2023) | mingru (Feng et al. 2024)
    )
    c.model.norm = "layer"  # the blocks' pre-norm, rnnlab.blocks.NORMS: layer | batch (current batch's stats)
    c.model.head = "auto"  # 'auto' (last for classification/regression, all otherwise) or models.HEADS
    c.model.embed_dim = 0  # embedding size for token inputs; 0 = the model's default
    c.model.dropout = 0.0
    c.model.attention = "general"  # seq2seq tasks (Luong attention): rnnlab.seq2seq.ATTENTIONS
    c.model.encoder = "conv"  # image / frame encoder (captioning, video): rnnlab.encoders.ENCODERS
    c.model.encoder_features = (16, 32)  # conv: channels of each stage; mlp: hidden layer sizes
    c.model.encoder_dim = 0  # conv: per-position Dense size (0 = none); mlp: output size (0 = 64)
    c.model.frame_features = 64  # video: per-frame Dense size; 0 = the flattened encoder features
    c.model.crf = False  # tagging: a linear-chain CRF output layer (Viterbi decoding)
    c.model.char_encoder = "cnn"  # tagging tasks with chars=True: rnnlab.taggers.CHAR_ENCODERS
    c.model.char_dim = 25  # character embedding size
    c.model.char_features = 50  # features per token from its characters
    c.model.case_dim = 8  # tagging tasks with case=True: case-class embedding size
    c.model.rnn = ConfigDict()  # the time loop of every layer (rnnlab.RNN)
    c.model.rnn.backend = "auto"  # rnnlab.scan.BACKENDS: auto | xla | fused | native | cudnn
    c.model.rnn.mode = "auto"  # rnnlab.scan.MODES: auto | sequential | associative (linear cells)
    c.model.rnn.hoist = "auto"  # input projection before the loop: auto | true | false
    c.model.rnn.unroll = 1  # lax.scan unroll (keep 1 on CPU)
    c.model.rnn.remat = False  # recompute each step's activations in the backward pass
    c.model.rnn.remat_chunk = 0  # > 0: checkpoint chunks of this many steps (memory for long T)

    c.task = ConfigDict()
    c.task.name = "adding"  # a name in rnnlab.tasks.list_tasks()
    c.task.params = ConfigDict()  # keyword arguments of get_task, e.g. length=100

    c.optim = ConfigDict()
    c.optim.name = "adam"  # rnnlab.training.optim.OPTIMIZERS
    c.optim.learning_rate = 1e-3  # peak learning rate
    c.optim.schedule = "constant"  # optim.SCHEDULES (all with linear warmup)
    c.optim.warmup_steps = 0
    c.optim.decay_steps = 0  # warmup_cosine: length of warmup + decay; 0 = train.steps
    c.optim.min_lr_ratio = 0.0  # warmup_cosine: final lr = ratio * peak
    c.optim.boundaries = ()  # step: steps at which lr is multiplied by decay_factor
    c.optim.decay_factor = 0.1  # step
    c.optim.momentum = 0.9  # momentum
    c.optim.nesterov = False
    c.optim.b1 = 0.9  # adam/adamw
    c.optim.b2 = 0.999  # adam/adamw
    c.optim.eps = 1e-8  # adam/adamw/rmsprop
    c.optim.rmsprop_decay = 0.9
    c.optim.clip = "global_norm"  # optim.CLIPS (Pascanu et al. 2013)
    c.optim.clip_value = 1.0  # max global norm, or max |g| per entry
    c.optim.weight_decay = 0.0  # non-recurrent matrices (ndim >= 2); decoupled for adamw, L2 otherwise
    c.optim.recurrent_lr_scale = 1.0  # lr of 'recurrent_kernel' params and the LRU's nu, theta, gamma, B
    c.optim.recurrent_weight_decay = 0.0

    c.train = ConfigDict()
    c.train.steps = 1000
    c.train.batch_size = 32  # per seed, global over devices
    c.train.eval_every = 0  # evaluate on the validation split every n steps; 0 = only at the end
    c.train.eval_batches = 0  # batches per evaluation (validation, and test at the end); 0 = the whole split
    c.train.eval_batch_size = 0  # 0 = train.batch_size
    c.train.log_every = 50
    c.train.checkpoint_every = 0  # 0 = only at the end
    c.train.keep_checkpoints = 2  # the last k are kept (plus the best one if best_metric is set)
    c.train.best_metric = ""  # e.g. 'eval/loss' (validation); the best checkpoint is tested; '' = the last
    c.train.best_mode = "min"  # checkpointing.BEST_MODES
    c.train.early_stop_patience = 0  # stop after n evaluations without a new best_metric; 0 = never
    c.train.nonfinite = "stop"  # stop: raise on NaN/Inf loss or gradient; skip: drop that update, count it
    c.train.progress = True  # tqdm progress bar
    c.train.watchdog_s = 900.0  # stop a run with no progress for this long (x3 while compiling); 0 = off
    c.train.tbptt = False  # lm tasks: truncated BPTT over contiguous streams, carry kept across batches
    c.train.beam_size = 4  # seq2seq: beam of the end-of-run BLEU / exact-match decoding; 0 = greedy only

    c.diagnostics = ConfigDict()
    c.diagnostics.every = 0  # record diagnostics (rnnlab.analysis.diagnostics) every n steps; 0 = off
    c.diagnostics.jacobian = True  # include the Jacobian products (O(T S^3) per record)
    c.lock()
    for path in FREE_FORM:
        at_path(c, path).unlock()
    return c


def _items(node) -> list[tuple[str, Any]]:
    """``(key, value)`` pairs, FieldReferences kept as such (so ties survive a merge)."""
    if isinstance(node, ConfigDict):
        return list(node.items(preserve_field_references=True))
    return list(node.items())


def _raise(problems: list[str]) -> None:
    if problems:
        raise ValueError("invalid config:\n  - " + "\n  - ".join(problems))


# --------------------------------------------------------------------------------------------------------
# Types


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


def _assign(node: ConfigDict, key: str, value: Any, path: str, free: bool, problems: list[str]) -> None:
    """``node[key] = value`` after checking the key and the type; a problem is recorded instead of raised."""
    if key not in node and not free:
        problems.append(unknown_key(path, node))
        return
    default = node[key] if key in node else None
    if isinstance(value, str) and not isinstance(default, str):
        value = parse_value(value, default)
    if default is not None and not type_ok(value, default):
        problems.append(type_problem(path, value, default))
        return
    if isinstance(default, tuple) and isinstance(value, list):
        value = tuple(value)  # JSON turned tuples into lists
    if isinstance(value, Mapping) and not isinstance(value, ConfigDict):
        value = ConfigDict(dict(value))  # a free-form dict: replaced, not merged, and open
    node[key] = value


# --------------------------------------------------------------------------------------------------------
# Building configs: merge, overrides


def _merge(base: ConfigDict, new, prefix: str, problems: list[str]) -> None:
    for key, value in _items(new):
        path = f"{prefix}{key}"
        if key in base and isinstance(base[key], ConfigDict) and path not in FREE_FORM:
            if isinstance(value, (Mapping, ConfigDict)):
                _merge(base[key], value, path + ".", problems)
            else:
                problems.append(type_problem(path, value, base[key]))
        else:
            _assign(base, key, value, path, False, problems)


def resolve(config: Mapping | ConfigDict | None = None) -> ConfigDict:
    """``default_config()`` with ``config`` merged in: a ConfigDict from an experiment file, a config.json of
    an earlier run (keys added to the schema since then take their defaults), or a partial dict.

    Free-form sub-dicts are replaced, not merged. FieldReferences inside ``config`` keep their ties (the merge
    moves the references themselves, from a deep copy, so the caller's config is never shared).

    Raises:
      ValueError: unknown keys or values of the wrong type (all of them, and the config's other problems).
    """
    base = default_config()
    if config is None:
        return base
    problems: list[str] = []
    _merge(base, copy.deepcopy(config), "", problems)
    if problems:
        _raise(problems + value_problems(base, default_config()))
    return base


def apply_overrides(config: ConfigDict, overrides: Mapping[str, Any]) -> ConfigDict:
    """A copy of ``config`` with dotted keys set, e.g. ``{'model.cell': 'gru', 'train.steps': '500'}``.

    String values are parsed as on the command line (``parse_value``, guided by the type of the value they
    replace). Setting a field tied to others by a FieldReference changes them too (ml_collections semantics).

    Raises:
      ValueError: one error listing every override that names an unknown key or has the wrong type, and every
        problem ``validate`` finds in the rest.
    """
    config = copy.deepcopy(config)
    problems: list[str] = []
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node, path, ok = config, "", True
        for part in parents:
            path += part
            if part not in node:  # node is a ConfigDict: the loop descends only into those
                problems.append(unknown_key(path, node))
                ok = False
                break
            if not isinstance(node[part], ConfigDict):
                problems.append(f"{path}={node[part]!r} has no keys: set it directly ({path}=VALUE)")
                ok = False
                break
            node, path = node[part], path + "."
        if ok:
            _assign(node, leaf, value, dotted, ".".join(parents) in FREE_FORM, problems)
    if problems:
        _raise(problems + value_problems(config, default_config()))
    return config


def to_json_dict(config: ConfigDict) -> dict:
    """The config as written to ``config.json`` (references resolved, tuples as lists)."""
    return json.loads(config.to_json())


def config_diff(saved: Mapping, config: ConfigDict) -> list[str]:
    """``'path: old -> new'`` for every key where ``config`` differs from a run's saved ``config.json``
    (keys added to the schema since that run count with their defaults; ``RESUMABLE_CHANGES`` are ignored)."""

    def diff(a: Mapping, b: Mapping, prefix: str) -> list[str]:
        out = []
        for key in sorted(set(a) | set(b)):
            path = prefix + key
            va, vb = a.get(key), b.get(key)
            if isinstance(va, Mapping) and isinstance(vb, Mapping):
                out += diff(va, vb, path + ".")
            elif va != vb and path not in RESUMABLE_CHANGES:
                out.append(f"{path}: {va!r} -> {vb!r}")
        return out

    return diff(to_json_dict(resolve(saved)), to_json_dict(config), "")


# --------------------------------------------------------------------------------------------------------
# Validation


def validate(config: ConfigDict, *, num_devices: int | None = None) -> None:
    """Raises one ``ValueError`` listing every problem of ``config`` (from ``default_config``/``resolve``).

    Args:
      config: the config.
      num_devices: if given, the number of data-parallel devices; the batch sizes must divide by it.
    """
    if not isinstance(config, ConfigDict):
        raise TypeError(f"validate needs a ConfigDict (use resolve(config)), got {type(config).__name__}")
    schema = default_config()
    _raise(key_problems(config, schema) + value_problems(config, schema, num_devices))


def rnn_options(model_config: ConfigDict) -> tuple[tuple[str, Any], ...]:
    """``config.model.rnn`` as the ``rnn_options`` of ``SequenceModel`` / ``Seq2Seq`` (keyword arguments of
    every ``rnnlab.RNN``), sorted items so that the model stays hashable."""
    rnn = model_config.rnn.to_dict()
    rnn["hoist"] = HOIST[rnn["hoist"]]
    return tuple(sorted(rnn.items()))


__all__ = [
    "FREE_FORM",
    "apply_overrides",
    "config_diff",
    "default_config",
    "parse_value",
    "resolve",
    "rnn_options",
    "to_json_dict",
    "validate",
]
