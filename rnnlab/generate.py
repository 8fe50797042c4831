"""Generation from trained runs: autocompletion with a language model, translation with a ``Seq2Seq``, and the
translation scores (exact match, corpus BLEU) with their trivial baselines.

    run = load(workdir)                                   # config.json + a checkpoint (carry-aware)
    complete(run, 'To be, or', length=200, temperature=0.8, top_k=20)   # prompt + continuation
    translate(run, ['twenty-one'], beam_size=4)           # ['vingt et un']
    translation_metrics(model, params, task, beam_size=4) # {'exact_match_greedy', 'bleu_greedy', ...}
    translation_baselines(task)                           # copy-the-source / most-frequent-target scores

Shape legend: B batch, S source length, L generated length, V vocabulary, K beams.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnnlab import config as config_lib
from rnnlab import decoding, textmetrics, train
from rnnlab.apps import LoadedRun
from rnnlab.training import checkpointing, losses

BOS, EOS = "<bos>", "<eos>"


def load(workdir: str, *, step: int | None = None, seed_index: int = 0) -> LoadedRun:
    """Seed ``seed_index``'s model from ``workdir`` (latest checkpoint, or ``step``); runs trained with
    ``train.tbptt`` (whose checkpoints also hold the carry) load too."""
    config_path = os.path.join(workdir, train.CONFIG_FILE)
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"{config_path} not found: is {workdir} a run directory made by `rnnlab train`?"
        )
    with open(config_path) as f:
        config = config_lib.resolve(json.load(f))
    config.parallel = "none"
    config_lib.validate(config)
    if not 0 <= seed_index < config.num_seeds:
        raise ValueError(f"seed_index={seed_index} but the run has {config.num_seeds} seed(s)")
    from rnnlab.tasks import get_task  # pylint: disable=import-outside-toplevel

    task = get_task(config.task.name, **config.task.params.to_dict())
    model = train.build_model(config.model, task.info)
    engine = train.make_engine(
        model,
        losses.get_loss(task.info),
        config.optim,
        config.train.steps,
        "none",
        task.info,
        tbptt=config.train.tbptt,
    )
    seeds = [config.seed + k for k in range(config.num_seeds)]
    state = jax.eval_shape(engine.init, train.seed_keys(seeds))
    if config.train.tbptt:
        state = state.replace(
            carry=jax.eval_shape(
                lambda: train.zero_carry(model, task.info, config.train.batch_size, len(seeds))
            )
        )
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=engine.dp.replicated), state
    )
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        state, _, step = ckpt.restore(abstract, step)
    finally:
        ckpt.close()
    params = jax.tree.map(lambda x: x[seed_index], state.params)
    return LoadedRun(config, task, model, params, int(step), seeds[seed_index])


# ------------------------------------------------------------------------------------------------ LM
def complete(
    run: LoadedRun, prompt: str, *, length: int = 200, temperature: float = 1.0, top_k: int = 0, seed: int = 0
) -> str:
    """Continues ``prompt`` with ``length`` tokens from a language-model run: the model reads the prompt
    (``decoding.lm_prefill``), then samples (``temperature`` 0 = greedy, ``top_k`` 0 = every token).

    Returns:
      The continuation only (characters joined for char vocabularies, words with spaces otherwise).
    """
    if run.task.info.kind != "lm":
        raise ValueError(
            f"complete needs a language-model run; {run.task.info.name!r} is {run.task.info.kind!r}"
        )
    vocab = run.task.vocab
    ids = vocab.encode(prompt)
    if len(ids) == 0:
        raise ValueError("the prompt is empty (no tokens)")
    carry, last = decoding.lm_prefill(run.model, run.params, ids[None])
    step_fn = decoding.lm_step_fn(run.model, run.params)
    tokens = decoding.sample(
        step_fn, carry, last, length, jax.random.key(seed), temperature, top_k, pad=vocab.pad_id
    )
    return vocab.decode(np.asarray(tokens[0]))


# ------------------------------------------------------------------------------------------------ seq2seq
def _target_vocab(task):
    return task.vocabs[task.target_key]


def _text(vocab, ids, eos: int) -> str:
    """Ids up to (not including) the first ``eos``, pads dropped, as space-separated words."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == eos:
            break
        out.append(i)
    return vocab.decode(out)


def max_target_length(task) -> int:
    """The longest target (words + eos) of the train split: generation stops there at the latest (+ 5)."""
    return max(len(task.decode(r)["targets"]) for r in task.records("train")) + 5


def decode_batch(
    model,
    params,
    task,
    inputs: np.ndarray,
    lengths: np.ndarray,
    *,
    beam_size: int = 0,
    max_len: int | None = None,
) -> list[str]:
    """Translations of one batch (``inputs [B, S]``, ``lengths [B]``): greedy (``beam_size`` 0) or the best
    hypothesis of a beam search."""
    tv = _target_vocab(task)
    bos, eos = tv.id(BOS), tv.id(EOS)
    max_len = max_len or max_target_length(task)
    carry = decoding.seq2seq_init_carry(model, params, jnp.asarray(inputs), jnp.asarray(lengths))
    step_fn = decoding.seq2seq_step_fn(model, params)
    if beam_size:
        tokens = np.asarray(decoding.beam_search(step_fn, carry, bos, max_len, eos, beam_size)[0][:, 0])
    else:
        tokens = np.asarray(decoding.greedy(step_fn, carry, bos, max_len, eos))
    return [_text(tv, t, eos) for t in tokens]


def _pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([x, np.repeat(x[:1], size - len(x), 0)]) if len(x) < size else x


def translation_metrics(
    model, params, task, *, batch_size: int = 256, beam_size: int = 4, split: str = "test"
) -> dict[str, float]:
    """Exact match and corpus BLEU-4 (``rnnlab.textmetrics``) of greedy and (``beam_size`` > 0) beam-search
    translations of every example of ``split``, against the target ids decoded back to words (so words
    unknown to the train vocabulary read ``<unk>`` on both sides).

    Returns:
      ``{'exact_match_greedy', 'bleu_greedy'[, 'exact_match_beam', 'bleu_beam']}``, fractions in [0, 1].
    """
    tv = _target_vocab(task)
    eos = tv.id(EOS)
    max_len = max_target_length(task)
    refs, hyps = [], collections.defaultdict(list)
    beams = {"greedy": 0, **({"beam": beam_size} if beam_size else {})}
    for batch in task.iterator(split, batch_size, 0, num_epochs=1, shuffle=False):
        n = len(batch["lengths"])
        refs += [_text(tv, t, eos) for t in batch["targets"]]
        inputs, lengths = _pad_rows(batch["inputs"], batch_size), _pad_rows(batch["lengths"], batch_size)
        for name, k in beams.items():
            hyps[name] += decode_batch(model, params, task, inputs, lengths, beam_size=k, max_len=max_len)[:n]
    out = {}
    for name in beams:
        out[f"exact_match_{name}"] = textmetrics.exact_match(refs, hyps[name])
        out[f"bleu_{name}"] = textmetrics.corpus_bleu(hyps[name], refs).bleu
    return out


def translation_baselines(task, split: str = "test") -> dict[str, float]:
    """Trivial translators on ``split``: ``copy`` (output the source words) and ``most_frequent`` (always the
    most frequent train target): exact match and corpus BLEU-4 of each."""
    tv = _target_vocab(task)
    eos = tv.id(EOS)
    refs = [_text(tv, task.decode(r)["targets"], eos) for r in task.records(split)]
    sv = task.vocabs[task.source_key]
    copy = [sv.decode(task.decode(r)["inputs"]) for r in task.records(split)]
    train_targets = collections.Counter(
        _text(tv, task.decode(r)["targets"], eos) for r in task.records("train")
    )
    frequent = [train_targets.most_common(1)[0][0]] * len(refs)
    out = {}
    for name, hyps in (("copy", copy), ("most_frequent", frequent)):
        out[f"{name}/exact_match"] = textmetrics.exact_match(refs, hyps)
        out[f"{name}/bleu"] = textmetrics.corpus_bleu(hyps, refs).bleu
    return out


def translate(run: LoadedRun, texts: Sequence[str], *, beam_size: int = 0) -> list[str]:
    """Translations of ``texts`` by a seq2seq run (greedy, or the best of ``beam_size`` beams)."""
    if run.task.info.kind != "seq2seq":
        raise ValueError(f"translate needs a seq2seq run; {run.task.info.name!r} is {run.task.info.kind!r}")
    sv = run.task.vocabs[run.task.source_key]
    ids = [sv.encode(t) for t in texts]
    if any(len(x) == 0 for x in ids):
        raise ValueError("a text to translate has no tokens")
    s = max(len(x) for x in ids)
    inputs = np.stack([np.pad(x, (0, s - len(x))) for x in ids]).astype(np.int32)
    lengths = np.array([len(x) for x in ids], np.int32)
    return decode_batch(run.model, run.params, run.task, inputs, lengths, beam_size=beam_size)


__all__ = [
    "complete",
    "decode_batch",
    "load",
    "max_target_length",
    "translate",
    "translation_baselines",
    "translation_metrics",
]
