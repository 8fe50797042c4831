"""Autoregressive generation: greedy, beam search and sampling over any one-step model.

Shape legend: B batch, K beams, L generated length (``max_len``), V vocabulary, N = B or B*K.

Every decoder is generic over a step function ``step_fn(carry, tokens: [N]) -> (carry, log_probs: [N, V])``
whose carry leaves have a leading batch axis ``N``. The loops are ``jax.lax.while_loop`` inside ``jax.jit``
(they stop early once every sequence has ended) — generation is the one other place in rnnlab that loops over
time, because each step's input is the previous step's output.

Pass the step function as a ``jax.tree_util.Partial`` (as :func:`lm_step_fn` and :func:`seq2seq_step_fn`
do): its bound arguments (the parameters) are traced, so new parameters of the same shapes reuse the
compiled decoder. A plain Python callable works too; it is a static argument (compiled once per callable, and
any arrays it closes over become constants).

Conventions: ``bos`` is the token fed at the first step (an int or ``[B]``); the output holds the L generated
tokens (``bos`` excluded, ``eos`` included); after a sequence's ``eos`` every position is ``pad``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

Array = jax.Array
StepFn = Callable[..., tuple]
#: the score of impossible hypotheses; finite so that sums and differences never give NaN
NEG_INF = -1.0e7


def _split(step_fn):
    """``(static callable, traced bound arguments)`` for a ``Partial`` or a plain callable."""
    if isinstance(step_fn, jax.tree_util.Partial):
        return step_fn.func, (step_fn.args, step_fn.keywords)
    return step_fn, ((), {})


def _bos(carry, bos) -> Array:
    leaves = jax.tree.leaves(carry)
    bos = jnp.asarray(bos, jnp.int32)
    if bos.ndim == 1:
        return bos
    if not leaves:
        raise ValueError("the carry has no arrays to read the batch size from; pass bos as an int array [B]")
    return jnp.full((leaves[0].shape[0],), bos, jnp.int32)


def _check_len(max_len):
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")


def _generate(fn, bound, carry, bos, max_len, eos, pad, choose):
    """The shared greedy/sampling loop; ``choose(i, log_probs [B, V]) -> tokens [B]``."""
    args, kwargs = bound
    b = bos.shape[0]

    def cond(state):
        i, _, _, done, _ = state
        return (i < max_len) & ~jnp.all(done)

    def body(state):
        i, carry, tokens, done, out = state
        carry, log_probs = fn(*args, carry, tokens, **kwargs)
        nxt = jnp.where(done, pad, choose(i, log_probs).astype(jnp.int32))
        out = jax.lax.dynamic_update_slice(out, nxt[:, None], (0, i))
        if eos is not None:
            done = done | (nxt == eos)
        return i + 1, carry, nxt, done, out

    state = (jnp.int32(0), carry, bos, jnp.zeros((b,), bool), jnp.full((b, max_len), pad, jnp.int32))
    return jax.lax.while_loop(cond, body, state)[-1]


@functools.partial(jax.jit, static_argnames=("fn", "max_len", "eos", "pad"))
def _greedy(fn, bound, carry, bos, *, max_len, eos, pad):
    return _generate(fn, bound, carry, bos, max_len, eos, pad, lambda i, lp: jnp.argmax(lp, axis=-1))


def greedy(step_fn: StepFn, carry, bos, max_len: int, eos: int | None, *, pad: int = 0) -> Array:
    """Greedy decoding: the most probable token at every step.

    Args:
      step_fn: ``(carry, tokens [B]) -> (carry, log_probs [B, V])``.
      carry: the initial carry, leaves ``[B, ...]``.
      bos: first input token, int or ``[B]``.
      max_len: L, the number of tokens generated at most.
      eos: end token (a sequence stops after emitting it), or None.
      pad: the token written after ``eos``.

    Returns:
      ``tokens: [B, L]`` int32.
    """
    _check_len(max_len)
    fn, bound = _split(step_fn)
    return _greedy(fn, bound, carry, _bos(carry, bos), max_len=max_len, eos=eos, pad=pad)


@functools.partial(jax.jit, static_argnames=("fn", "max_len", "eos", "pad", "argmax", "top_k"))
def _sample(fn, bound, carry, bos, rng, temperature, *, max_len, eos, pad, argmax, top_k):
    def choose(i, log_probs):
        if argmax:
            return jnp.argmax(log_probs, axis=-1)
        logits = log_probs.astype(jnp.float32) / temperature
        if top_k:
            kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        return jax.random.categorical(jax.random.fold_in(rng, i), logits, axis=-1)

    return _generate(fn, bound, carry, bos, max_len, eos, pad, choose)


def sample(
    step_fn: StepFn,
    carry,
    bos,
    max_len: int,
    rng: Array,
    temperature: float = 1.0,
    top_k: int = 0,
    *,
    eos: int | None = None,
    pad: int = 0,
) -> Array:
    """Ancestral sampling from ``softmax(log_probs / temperature)``, optionally restricted to the top k.

    ``temperature = 0`` is greedy decoding (and a tiny temperature gives the same tokens barring exact ties).
    Step ``i`` draws with ``fold_in(rng, i)``. Arguments as in :func:`greedy`; ``top_k = 0`` keeps every
    token.

    Returns:
      ``tokens: [B, L]`` int32.
    """
    _check_len(max_len)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    fn, bound = _split(step_fn)
    # The temperature is traced (a sweep over it compiles once); only temperature 0 is a separate program.
    return _sample(
        fn,
        bound,
        carry,
        _bos(carry, bos),
        rng,
        jnp.float32(temperature),
        max_len=max_len,
        eos=eos,
        pad=pad,
        argmax=temperature == 0,
        top_k=int(top_k),
    )


def _gather_beams(x: Array, idx: Array) -> Array:
    """``x: [B, K', ...]``, ``idx: [B, K]`` -> ``[B, K, ...]``."""
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


@functools.partial(jax.jit, static_argnames=("fn", "max_len", "eos", "beam_size", "length_penalty", "pad"))
def _beam_search(fn, bound, carry, bos, *, max_len, eos, beam_size, length_penalty, pad):
    args, kwargs = bound
    b, k = bos.shape[0], beam_size
    # Beams live in the batch axis of the carry: row n = batch * K + beam.
    carry = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), carry)

    def norm(length):
        # GNMT length normalisation (Wu et al. 2016): ((5 + |Y|) / 6) ** alpha.
        return ((5.0 + length) / 6.0) ** length_penalty

    def cond(state):
        i, alive_lp, fin_score = state[0], state[1], state[4]
        # No alive hypothesis can still enter the top K finished ones: log-probs only fall as sequences grow
        # and the normaliser is at most norm(max_len).
        best_alive = alive_lp[:, 0] / norm(max_len)
        return (i < max_len) & ~jnp.all(fin_score[:, -1] >= best_alive)

    def body(state):
        i, alive_lp, alive_seq, last, fin_score, fin_seq, carry = state
        carry, log_probs = fn(*args, carry, last.reshape(b * k), **kwargs)
        v = log_probs.shape[-1]
        cand = alive_lp[..., None] + log_probs.reshape(b, k, v).astype(jnp.float32)
        # 2K candidates: at most K of them end with eos, so at least K can stay alive.
        top_lp, top_idx = jax.lax.top_k(cand.reshape(b, k * v), 2 * k)
        src, tok = top_idx // v, (top_idx % v).astype(jnp.int32)
        seqs = _gather_beams(alive_seq, src).at[:, :, i].set(tok)
        is_eos = jnp.zeros_like(tok, bool) if eos is None else tok == eos
        ends = is_eos | (i == max_len - 1)  # at L tokens every hypothesis is finished

        new_score = jnp.where(ends, top_lp / norm(i + 1.0), NEG_INF)
        fin_score, pick = jax.lax.top_k(jnp.concatenate([fin_score, new_score], 1), k)
        fin_seq = _gather_beams(jnp.concatenate([fin_seq, seqs], 1), pick)

        alive_lp, pick = jax.lax.top_k(jnp.where(is_eos, NEG_INF, top_lp), k)
        alive_seq, last = _gather_beams(seqs, pick), _gather_beams(tok, pick)
        rows = (jnp.arange(b)[:, None] * k + _gather_beams(src, pick)).reshape(b * k)
        carry = jax.tree.map(lambda x: x[rows], carry)
        return i + 1, alive_lp, alive_seq, last, fin_score, fin_seq, carry

    seqs = jnp.full((b, k, max_len), pad, jnp.int32)
    alive_lp = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (b, 1))  # expand beam 0 only
    state = (
        jnp.int32(0),
        alive_lp,
        seqs,
        jnp.repeat(bos[:, None], k, axis=1),
        jnp.full((b, k), NEG_INF, jnp.float32),
        seqs,
        carry,
    )
    state = jax.lax.while_loop(cond, body, state)
    return state[5], state[4]


def beam_search(
    step_fn: StepFn,
    carry,
    bos,
    max_len: int,
    eos: int | None,
    beam_size: int,
    length_penalty: float = 0.0,
    *,
    pad: int = 0,
) -> tuple[Array, Array]:
    """Beam search for the K best sequences under ``score = log p(Y) / ((5 + |Y|) / 6) ** length_penalty``.

    The usual formulation (as in Wu et al. 2016 and Flax's WMT example): every step extends the K alive
    hypotheses, keeps the 2K best extensions, moves those ending in ``eos`` (and, at step L, all of them)
    into a pool of K finished hypotheses, and keeps the K best others alive. Finished hypotheses stop growing
    (``pad`` after ``eos``). The loop stops early once no alive hypothesis can beat the K-th finished one.
    |Y| counts the generated tokens, ``eos`` included. ``length_penalty = 0`` ranks by log-probability.

    With ``eos`` set, one beam need not equal greedy decoding: an early ``eos`` that greedy passed over is
    kept as a finished hypothesis and wins if everything greedy continues with scores lower.

    Args:
      step_fn: ``(carry, tokens [B*K]) -> (carry, log_probs [B*K, V])``; the carry is tiled to ``B*K`` rows
        (row ``b*K + k``), so a step function written for batch B works unchanged.
      carry: leaves ``[B, ...]``.
      bos, max_len, eos, pad: as in :func:`greedy`.
      beam_size: K (needs V >= 2).
      length_penalty: alpha >= 0.

    Returns:
      ``(tokens [B, K, L], scores [B, K])``, best first. Slots that no sequence can fill (K larger than the
      number of distinct sequences) score about ``NEG_INF``.
    """
    _check_len(max_len)
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    if length_penalty < 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    fn, bound = _split(step_fn)
    return _beam_search(
        fn,
        bound,
        carry,
        _bos(carry, bos),
        max_len=max_len,
        eos=eos,
        beam_size=beam_size,
        length_penalty=float(length_penalty),
        pad=pad,
    )


# --- step functions for rnnlab models ---------------------------------------------------------------------


def _variables(params):
    return params if isinstance(params, Mapping) and "params" in params else {"params": params}


# Process-wide on purpose: the decoders' compilation cache is keyed on the bound step function's identity.
@functools.lru_cache(maxsize=64)
def _bind_model(fn, model):
    return functools.partial(fn, model)


def _bound(fn, model):
    """``fn`` with ``model`` bound: the same object for equal (hashable) models, so that the decoders'
    compilation cache, keyed on it, is reused across calls; a fresh one for unhashable models."""
    try:
        return _bind_model(fn, model)
    except TypeError:  # e.g. cell_options given as a dict
        return functools.partial(fn, model)


def _run(fn, model, *args):
    """``fn(model, *args)`` under ``jax.jit`` (the model static) when the model is hashable."""
    try:
        hash(model)
    except TypeError:
        return fn(model, *args)
    return _jitted(fn)(model, *args)


@functools.cache  # one jitted wrapper per (module-level) function, so its compilation cache is reused
def _jitted(fn):
    return jax.jit(fn, static_argnums=0)


def _lm_step(model, variables, carry, tokens):
    logits, carries = model.apply(variables, tokens[:, None], initial_carries=carry, return_carries=True)
    return carries, jax.nn.log_softmax(logits[:, 0].astype(jnp.float32), axis=-1)


def lm_step_fn(model, params) -> jax.tree_util.Partial:
    """One step of a token language model: a :class:`~rnnlab.models.SequenceModel` with ``vocab_size`` set,
    ``head='all'``, ``num_outputs = V`` and unidirectional layers.

    The carry is the model's list of per-layer carries (see :func:`lm_init_carry`, :func:`lm_prefill`).
    ``params`` is the ``'params'`` collection (or the whole variables dict).
    """
    if model.head != "all" or model.vocab_size is None or model.bidirectional:
        raise ValueError(
            "lm_step_fn needs a SequenceModel with vocab_size set, head='all' and "
            f"bidirectional=False; got head={model.head!r}, vocab_size={model.vocab_size}, "
            f"bidirectional={model.bidirectional}"
        )
    return jax.tree_util.Partial(_bound(_lm_step, model), _variables(params))


def lm_init_carry(model, batch_size: int) -> list:
    """The zero carry of every layer for ``batch_size`` sequences (the start of generation from scratch)."""
    return [model.make_cell(parent=None).init_carry(None, (batch_size,)) for _ in range(model.num_layers)]


def _lm_prefill(model, variables, prompt, lengths):
    _, carries = model.apply(variables, prompt, lengths - 1, return_carries=True)
    return carries, jnp.take_along_axis(prompt, (lengths - 1)[:, None], axis=1)[:, 0]


def lm_prefill(model, params, prompt: Array, lengths: Array | None = None) -> tuple[list, Array]:
    """Read a prompt for autocompletion: ``(carry, last_tokens [B])``, to pass to a decoder as
    ``(carry, bos)``.

    The carry is the state after all but the last valid prompt token; that token is returned as the first
    input, so the first generated token is the model's prediction after the whole prompt.

    Args:
      prompt: ``[B, P]`` int token ids; lengths: ``[B]`` valid lengths (>= 1), P when None.
    """
    prompt = jnp.asarray(prompt, jnp.int32)
    b, p = prompt.shape
    lengths = jnp.full((b,), p, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)
    return _run(_lm_prefill, model, _variables(params), prompt, lengths)


def _seq2seq_step(model, variables, carry, tokens):
    memory, dec = carry
    dec, logits = model.apply(variables, memory, dec, tokens, method="decode_step")
    return (memory, dec), jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)


def seq2seq_step_fn(model, params) -> jax.tree_util.Partial:
    """One decoder step of a :class:`~rnnlab.seq2seq.Seq2Seq`; the carry is ``(memory, decoder_carry)``
    from :func:`seq2seq_init_carry`. (In beam search the memory is reordered with the beams like the rest of
    the carry: simple, and cheap at the sizes rnnlab trains.)"""
    return jax.tree_util.Partial(_bound(_seq2seq_step, model), _variables(params))


def _seq2seq_init(model, variables, inputs, lengths):
    memory = model.apply(variables, inputs, lengths, method="encode")
    return memory, model.apply(variables, memory, method="init_decoder_carry")


def seq2seq_init_carry(model, params, inputs: Array, lengths: Array):
    """Encode ``inputs: [B, S]`` (``lengths: [B]``) into the ``(memory, decoder_carry)`` carry."""
    lengths = jnp.asarray(lengths, jnp.int32)
    return _run(_seq2seq_init, model, _variables(params), jnp.asarray(inputs), lengths)


__all__ = [
    "NEG_INF",
    "beam_search",
    "greedy",
    "lm_init_carry",
    "lm_prefill",
    "lm_step_fn",
    "sample",
    "seq2seq_init_carry",
    "seq2seq_step_fn",
]
