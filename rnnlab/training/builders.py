"""From a config to the objects a run needs: the task, the model, and the adapter of the loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rnnlab.captioning import ImageCaptioner
from rnnlab.encoders import ConvEncoder, MLPEncoder, VideoClassifier
from rnnlab.models import SequenceModel
from rnnlab.seq2seq import Seq2Seq as Seq2SeqModel
from rnnlab.taggers import Tagger
from rnnlab.tasks import get_task
from rnnlab.training import config as config_lib
from rnnlab.training.adapters import Adapter
from rnnlab.training.captioning import Captioner
from rnnlab.training.seq2seq import EncoderDecoder
from rnnlab.training.tbptt import TBPTT
from rnnlab.training.transcription import Transcriber


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
        "block": model_config["block"],
        "norm": model_config["norm"],
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


def make_encoder(model_config: Mapping):
    """The image encoder ``config.model.encoder`` names (``rnnlab.encoders``), for captioning and video."""
    features = tuple(model_config["encoder_features"])
    dim = model_config["encoder_dim"]
    if model_config["encoder"] == "mlp":
        return MLPEncoder(features, dim or 64)
    return ConvEncoder(features, dim or None)


def _recurrent(model_config: Mapping) -> dict[str, Any]:
    return {
        "cell": model_config["cell"],
        "hidden_size": model_config["hidden_size"],
        "cell_options": _cell_options(model_config),
        "dropout": model_config["dropout"],
        "rnn_options": config_lib.rnn_options(model_config),
    }


def captioner_kwargs(model_config: Mapping, info) -> dict[str, Any]:
    """``config.model`` + a captioning ``TaskInfo`` -> keyword arguments of
    ``rnnlab.captioning.ImageCaptioner`` (``attention`` over the encoder's feature positions; 'none': the
    decoder starts from the image and never looks back)."""
    return {
        "vocab_size": info.num_outputs,
        "encoder": make_encoder(model_config),
        "embed_dim": model_config["embed_dim"] or None,
        "attention": model_config["attention"],
        **_recurrent(model_config),
    }


def video_kwargs(model_config: Mapping, info) -> dict[str, Any]:
    """``config.model`` + a clip-classification ``TaskInfo`` -> keyword arguments of
    ``rnnlab.encoders.VideoClassifier`` (``head`` 'auto' = 'last')."""
    head = model_config["head"]
    return {
        "encoder": make_encoder(model_config),
        "num_classes": info.num_outputs,
        "frame_features": model_config["frame_features"] or None,
        "num_layers": model_config["num_layers"],
        "bidirectional": model_config["bidirectional"],
        "head": "last" if head == "auto" else head,
        **_recurrent(model_config),
    }


def tagger_kwargs(model_config: Mapping, info) -> dict[str, Any]:
    """``config.model`` + a tagging ``TaskInfo`` -> keyword arguments of ``rnnlab.taggers.Tagger`` (the
    task's ``extra_inputs`` decide which token features it reads)."""
    extra = dict(info.extra_inputs)
    return {
        "vocab_size": info.vocab_size,
        "num_tags": info.num_outputs,
        "num_layers": model_config["num_layers"],
        "embed_dim": model_config["embed_dim"] or None,
        "bidirectional": model_config["bidirectional"],
        "num_chars": extra.get("chars", 0),
        "char_encoder": model_config["char_encoder"],
        "char_dim": model_config["char_dim"],
        "char_features": model_config["char_features"],
        "num_case": extra.get("case", 0),
        "case_dim": model_config["case_dim"],
        "crf": model_config["crf"],
        **_recurrent(model_config),
    }


def is_video(info) -> bool:
    """Whether a task classifies clips ``[B, T, H, W]``."""
    return info.kind == "classification" and info.input_shape is not None and len(info.input_shape) == 3


def build_model(model_config: Mapping, info):
    """The model ``config.model`` describes for the task ``info``: a ``Seq2Seq`` (encoder-decoder) for kind
    'seq2seq', an ``ImageCaptioner`` for 'captioning', a ``VideoClassifier`` for clips, a ``Tagger`` for
    taggers with token features or a CRF, else a ``SequenceModel`` (also for 'ctc': per-frame logits)."""
    if model_config["crf"] and info.kind != "tagging":
        raise ValueError(
            f"invalid config:\n  - model.crf needs a tagging task; {info.name!r} is {info.kind!r}"
        )
    if info.kind == "seq2seq":
        return Seq2SeqModel(**seq2seq_kwargs(model_config, info))
    if info.kind == "captioning":
        return ImageCaptioner(**captioner_kwargs(model_config, info))
    if is_video(info):
        return VideoClassifier(**video_kwargs(model_config, info))
    if info.kind == "tagging" and (info.extra_inputs or model_config["crf"]):
        return Tagger(**tagger_kwargs(model_config, info))
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
    ``EncoderDecoder`` (seq2seq), ``Captioner`` (captioning), ``Transcriber`` (ctc), else the plain
    ``Adapter`` (passing a task's per-token ``extra_inputs`` to a ``Tagger``)."""
    if config.train.tbptt:
        if info.kind != "lm":
            raise ValueError(
                f"invalid config:\n  - train.tbptt needs a language-model task (kind lm); "
                f"{info.name!r} is {info.kind!r}"
            )
        return TBPTT(model, info)
    if info.kind == "seq2seq":
        return EncoderDecoder(model, config.train.beam_size)
    if info.kind == "captioning":
        return Captioner(model, config.train.beam_size)
    if info.kind == "ctc":
        return Transcriber(model, config.train.beam_size)
    if isinstance(model, Tagger):
        return Adapter(model, features=tuple(info.extra_inputs))
    return Adapter(model)
