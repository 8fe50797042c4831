"""From a config to the objects a run needs: the task, the model, and the adapter of the loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rnnlab.models import SequenceModel
from rnnlab.seq2seq import Seq2Seq as Seq2SeqModel
from rnnlab.tasks import get_task
from rnnlab.training import config as config_lib
from rnnlab.training.adapters import Adapter
from rnnlab.training.seq2seq import EncoderDecoder
from rnnlab.training.tbptt import TBPTT


def load_task(config):
    """``rnnlab.tasks.get_task(config.task.name, **config.task.params)``; bad params are a config error."""
    try:
        return get_task(config.task.name, **config.task.params.to_dict())
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid config:\n  - task.params: {e}") from e


def _cell_options(model_config) -> tuple[tuple[str, Any], ...]:
    options = model_config["cell_options"]
    return tuple(sorted((options.to_dict() if hasattr(options, "to_dict") else dict(options)).items()))


def model_kwargs(model_config: Mapping, info) -> dict[str, Any]:
    """``config.model`` + a ``TaskInfo`` -> keyword arguments of ``rnnlab.models.SequenceModel``."""
    head = model_config["head"]
    if head == "auto":
        head = "last" if info.kind in ("classification", "regression") else "all"
    return {
        "cell": model_config["cell"],
        "hidden_size": model_config["hidden_size"],
        "num_layers": model_config["num_layers"],
        "cell_options": _cell_options(model_config),
        "vocab_size": info.vocab_size,
        "embed_dim": model_config["embed_dim"] or None,
        "bidirectional": model_config["bidirectional"],
        "residual": model_config["residual"],
        "head": head,
        "num_outputs": info.num_outputs,
        "dropout": model_config["dropout"],
        "rnn_options": config_lib.rnn_options(model_config),
    }


def seq2seq_kwargs(model_config: Mapping, info) -> dict[str, Any]:
    """``config.model`` + a seq2seq ``TaskInfo`` -> keyword arguments of ``rnnlab.seq2seq.Seq2Seq``
    (``num_layers`` = encoder layers, ``bidirectional`` = the encoder)."""
    return {
        "input_vocab": info.vocab_size,
        "output_vocab": info.num_outputs,
        "cell": model_config["cell"],
        "hidden_size": model_config["hidden_size"],
        "cell_options": _cell_options(model_config),
        "embed_dim": model_config["embed_dim"] or None,
        "encoder_layers": model_config["num_layers"],
        "bidirectional": model_config["bidirectional"],
        "attention": model_config["attention"],
        "dropout": model_config["dropout"],
        "rnn_options": config_lib.rnn_options(model_config),
    }


def build_model(model_config: Mapping, info):
    """The model ``config.model`` describes for the task ``info``: a ``Seq2Seq`` (encoder-decoder) for tasks
    of kind 'seq2seq', else a ``SequenceModel``."""
    if info.kind == "seq2seq":
        return Seq2SeqModel(**seq2seq_kwargs(model_config, info))
    return SequenceModel(**model_kwargs(model_config, info))


def load_model(config, info):
    """``build_model(config.model, info)``; a bad option (a cell option of the wrong type or out of range) is
    a config error. The cell is built here, so its options are checked before anything runs."""
    try:
        return build_model(config.model, info)
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid config:\n  - model: {e}") from e


def make_adapter(config, info, model) -> Adapter:
    """The loop's adapter for this config and task: ``TBPTT`` (``train.tbptt``, language models only),
    ``EncoderDecoder`` (seq2seq tasks), else the plain ``Adapter``."""
    if config.train.tbptt:
        if info.kind != "lm":
            raise ValueError(
                f"invalid config:\n  - train.tbptt needs a language-model task (kind lm); "
                f"{info.name!r} is {info.kind!r}"
            )
        return TBPTT(model, info)
    if info.kind == "seq2seq":
        return EncoderDecoder(model, config.train.beam_size)
    return Adapter(model)
