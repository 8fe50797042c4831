"""Vanishing-gradient diagnostics: why plain RNNs fail on long sequences and how gating fixes it.

Shape legend: B batch, T time, D input features, H hidden size, L layers, G gate blocks, S the flattened real
state size (H for most cells, 2H for the LSTM's (c, h), 2N for the LRU's complex state as (re, im) pairs).

Five measurements, each a pure (jittable) function:

* :func:`grad_norms_per_step` — ||dL/dh_t|| for every t in ONE backward pass, via the time loop's zero probes
  (``RNN(..., probes=...)``): the gradient w.r.t. a zero added to the carry after step t is dL/d(carry_t).
* :func:`state_jacobian_products` / :func:`jacobian_products` — ||dh_T/dh_t|| and its largest singular value
  for t = T..1 on one sequence, from per-step Jacobians (``jax.jacfwd`` of the pure step function) multiplied
  cumulatively backwards with ``lax.scan``. :func:`fit_decay_rate` turns either curve into a per-step factor.
* :func:`gate_statistics` — mean and saturated fraction of every sigmoid gate per step (from the gates the
  cells sow into ``'intermediates'``), and the LSTM forget gate's time constant 1 / (1 - f).
* :func:`recurrent_spectrum` — spectral radius and largest singular value of W_hh (per gate block) against
  the bound of Pascanu, Mikolov & Bengio (2013): with |act'| <= gamma, sigma_max(W_hh) < 1 / gamma is
  sufficient for the gradients of a simple RNN to vanish (gamma = 1 for tanh/ReLU, 1/4 for the sigmoid).
* :func:`clipping_stats` — how often and by how much global-norm clipping fired.

:func:`make_recorder` / :func:`record` bundle them into one flat dict of floats and lists for the metrics
files; :func:`extra_metric` adapts a recorder to ``train_and_evaluate(..., extra_metrics=[...])``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from rnnlab.cells.base import RecurrentCell
from rnnlab.cells.gated import GRUCell, LSTMCell
from rnnlab.cells.linear import LRUCell
from rnnlab.cells.vanilla import SimpleRNNCell
from rnnlab.scan import RNN, flip_sequences, sequence_mask, zero_probes

Array = jax.Array
#: ``loss_fn(params, probes, batch) -> scalar``: the training loss with ``probes`` passed to the model.
LossFn = Callable[[Any, Any, Mapping[str, Array]], Array]

SATURATION_LOW, SATURATION_HIGH = 0.05, 0.95


# ----------------------------------------------------------------------------------------------------------
# Model plumbing: which cell, which probes, which layer


def model_cell(model) -> RecurrentCell:
    """A detached copy of the cell that ``model`` (a ``SequenceModel`` or an ``RNN``) runs."""
    if isinstance(model, RNN):
        return model.cell.clone(parent=None)
    return model.make_cell(parent=None)


def model_probes(model, batch_size: int, length: int):
    """Zero probes for ``model`` (``SequenceModel``: a list per layer; ``RNN``: one carry-shaped pytree)."""
    if isinstance(model, RNN):
        return zero_probes(model_cell(model).init_carry(None, (batch_size,)), length)
    return model.zero_probes(batch_size, length)


def _forward_layers(model, tree) -> list:
    """The forward-direction probe (or probe-gradient) tree of every layer."""
    if isinstance(model, RNN):
        return [tree]
    return [t[0] if getattr(model, "bidirectional", False) else t for t in tree]


def _rnn_path(model, layer: int) -> tuple[str, ...]:
    """Parameter path of the forward ``RNN`` of ``layer`` (relative to the model's params)."""
    if isinstance(model, RNN):
        return ()
    num = getattr(model, "num_layers", 1)
    if not -num <= layer < num:
        raise ValueError(f"layer must be in [-{num}, {num}) for a {num}-layer model, got {layer}")
    path = ("rnn", f"layer{layer % num}")
    return path + ("forward",) if getattr(model, "bidirectional", False) else path


def layer_cell(model, params, layer: int = 0) -> tuple[RecurrentCell, Any]:
    """``(cell, cell_params)`` of ``layer`` (its forward direction if bidirectional)."""
    node = params
    for key in _rnn_path(model, layer) + ("cell",):
        node = node[key]
    return model_cell(model), node


def layer_inputs(model, params, inputs: Array, lengths: Array | None = None, layer: int = 0) -> Array:
    """The inputs ``[B, T, D_l]`` that ``layer``'s RNN reads (embeddings / the layer below's outputs)."""
    if isinstance(model, RNN):
        return jnp.asarray(inputs)
    want = _rnn_path(model, layer)
    captured = []

    def interceptor(next_fun, args, kwargs, context):
        if (
            isinstance(context.module, RNN)
            and context.method_name == "__call__"
            and tuple(context.module.path) == want
            and not captured
        ):
            captured.append(args[0] if args else kwargs["x"])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        model.apply({"params": params}, inputs, lengths)
    return captured[0]


def model_loss_fn(model, loss) -> LossFn:
    """A :data:`LossFn` for ``model`` and a loss given as an object with ``stats(outputs, batch)`` returning
    ``{'loss': (num, den)}`` (``rnnlab.losses.Loss``) or as a callable ``loss(outputs, batch) -> scalar``.
    The batch needs ``inputs`` and optionally ``lengths``.
    """

    def loss_fn(params, probes, batch):
        out = model.apply({"params": params}, batch["inputs"], batch.get("lengths"), probes=probes)
        if hasattr(loss, "stats"):
            num, den = loss.stats(out, batch)["loss"]
            return num / jnp.maximum(den, 1e-30)
        return loss(out, batch)

    return loss_fn


# ----------------------------------------------------------------------------------------------------------
# Gradient norm per time step (probes)


def _masked_time_mean(values: Array, lengths: Array | None, align: str) -> Array:
    """``values: [B, T]`` -> ``[T]`` mean over valid sequences; NaN where no sequence is valid.

    ``align='end'`` first shifts each sequence so its last valid step sits at index T - 1 (then index t is
    distance T - 1 - t from the end of *every* sequence, which is what a many-to-one loss cares about).
    """
    if align not in ("start", "end"):
        raise ValueError(f"align must be 'start' or 'end', got {align!r}")
    if lengths is None:
        return values.mean(0)
    mask = sequence_mask(lengths, values.shape[1]).astype(values.dtype)
    if align == "end":
        values = jnp.flip(flip_sequences(values, lengths), 1)
        mask = jnp.flip(flip_sequences(mask, lengths), 1)
    count = mask.sum(0)
    return jnp.where(count > 0, (values * mask).sum(0) / jnp.maximum(count, 1), jnp.nan)


def grad_norms_per_layer(
    loss_fn: LossFn, model, params, batch: Mapping[str, Array], *, align: str = "start"
) -> Array:
    """||dL/dh_t|| for every layer and step, in one backward pass.

    Args:
      loss_fn: ``loss_fn(params, probes, batch) -> scalar`` that runs ``model`` with ``probes=probes``
        (see :func:`model_loss_fn`).
      model: a ``SequenceModel`` (or an ``RNN``) providing the probe structure and the cell's ``hidden``.
      params: the model parameters.
      batch: ``inputs: [B, T, D]`` (or ``[B, T]`` ids), optional ``lengths: [B]``, whatever ``loss_fn`` reads.
      align: ``'start'`` (index t is step t) or ``'end'`` (each sequence right-aligned; see above).

    Returns:
      ``[L, T]``: the Euclidean norm of dL/dh_t (the ``hidden`` part of the carry: h for the LSTM; complex
      states as real pairs), averaged over the valid sequences at each step; NaN where none is valid.
      Bidirectional layers report their forward direction.

    What is measured: the time loop adds the probe to the carry *after* the step emitted y_t, so this is
    the gradient reaching h_t through the recurrence (from every later step, and from the final state the
    ``last`` head reads) — not the direct term dL_t/dy_t of a per-step readout (heads ``mean``/``all``).
    For a many-to-one loss (head ``last``) it is exactly dL/dh_t; in every case it is the quantity whose
    decay with distance is the vanishing-gradient problem.
    """
    b, t = jnp.shape(batch["inputs"])[:2]
    grads = jax.grad(loss_fn, argnums=1)(params, model_probes(model, b, t), batch)
    cell = model_cell(model)
    lengths = batch.get("lengths")
    rows = []
    for g in _forward_layers(model, grads):
        h = cell.hidden(g)  # [B, T, H]
        norm = jnp.sqrt(jnp.sum(jnp.abs(h) ** 2, axis=-1))  # [B, T]
        rows.append(_masked_time_mean(norm, lengths, align))
    return jnp.stack(rows)


def grad_norms_per_step(
    loss_fn: LossFn, model, params, batch: Mapping[str, Array], *, layer: int = 0, align: str = "start"
) -> Array:
    """``[T]``: ||dL/dh_t|| of ``layer`` for every step t (see :func:`grad_norms_per_layer`).

    Jit it with the static arguments bound: ``jax.jit(functools.partial(grad_norms_per_step, loss_fn, model))``.
    """
    return grad_norms_per_layer(loss_fn, model, params, batch, align=align)[layer]


# ----------------------------------------------------------------------------------------------------------
# Decay-rate fit


def fit_log_decay_rate(norms: Array, mask: Array | None = None) -> Array:
    """Least-squares slope of log ``norms[t]`` against the distance T - 1 - t (a scalar; NaN if < 2 points).

    ``norms: [T]`` in time order (the last entry is distance 0), e.g. :func:`grad_norms_per_step` or the
    ``norm`` of :func:`state_jacobian_products`. Entries that are not finite or not > 0, or where ``mask``
    (``[T]`` bool) is False, are ignored. Negative slope = vanishing, positive = exploding.
    """
    norms = jnp.asarray(norms)
    norms = norms.astype(jnp.promote_types(norms.dtype, jnp.float32))
    distance = jnp.arange(norms.shape[-1] - 1, -1, -1, dtype=norms.dtype)
    ok = jnp.isfinite(norms) & (norms > 0)
    if mask is not None:
        ok = ok & jnp.asarray(mask, bool)
    w = ok.astype(norms.dtype)
    n = w.sum()
    y = jnp.log(jnp.where(ok, norms, 1.0))
    d_mean = (w * distance).sum() / jnp.maximum(n, 1)
    y_mean = (w * y).sum() / jnp.maximum(n, 1)
    sxx = (w * (distance - d_mean) ** 2).sum()
    sxy = (w * (distance - d_mean) * (y - y_mean)).sum()
    return jnp.where((n >= 2) & (sxx > 0), sxy / jnp.where(sxx > 0, sxx, 1.0), jnp.nan)


def fit_decay_rate(norms: Array, mask: Array | None = None) -> Array:
    """The fitted multiplicative factor per step, exp(:func:`fit_log_decay_rate`): ``norms[t] ~ C rate^(T-1-t)``.

    A rate < 1 means the gradient shrinks by that factor for every step it travels back; 1 means no decay.
    Returns a scalar array (``float(...)`` it outside jit).
    """
    return jnp.exp(fit_log_decay_rate(norms, mask))


# ----------------------------------------------------------------------------------------------------------
# Jacobian products


def _real_view(carry):
    """``(to_vec, from_vec)`` between a carry and a real vector ``[S]`` (complex leaves as (re, im))."""
    leaves, treedef = jax.tree.flatten(carry)
    specs = [(leaf.shape, leaf.dtype) for leaf in leaves]

    def to_vec(c):
        parts = []
        for leaf in jax.tree.leaves(c):
            if jnp.iscomplexobj(leaf):
                parts += [jnp.real(leaf).ravel(), jnp.imag(leaf).ravel()]
            else:
                parts.append(leaf.ravel())
        return jnp.concatenate(parts)

    def from_vec(v):
        out, i = [], 0
        for shape, dtype in specs:
            n = int(np.prod(shape))
            if jnp.issubdtype(dtype, jnp.complexfloating):
                out.append(jax.lax.complex(v[i : i + n], v[i + n : i + 2 * n]).reshape(shape).astype(dtype))
                i += 2 * n
            else:
                out.append(v[i : i + n].reshape(shape).astype(dtype))
                i += n
        return jax.tree.unflatten(treedef, out)

    return to_vec, from_vec


def state_jacobian_products(
    step_fn: Callable,
    carry0,
    xs,
    mask: Array | None = None,
    *,
    hidden: Callable = lambda c: c,
    return_products: bool = False,
) -> dict[str, Array]:
    """||dh_T/dh_t|| and sigma_max(dh_T/dh_t) along one trajectory of a pure step function.

    The per-step Jacobians J_t = ds_t/ds_{t-1} of the full state s (``jax.jacfwd``) are multiplied backwards,
    P_t = ds_T/ds_t = J_T ... J_{t+1}, with a reverse ``lax.scan`` (each J_t is built inside the scan, so only
    one [S, S] matrix lives at a time). The reported block is the ``hidden`` part: rows and columns of h in
    P_t — the same quantity the probes measure (a perturbation of h_t, everything downstream included, e.g.
    the LSTM's cell-state path).

    Args:
      step_fn: ``step_fn(carry, x_t) -> carry`` (pure).
      carry0: the initial carry (any pytree; complex leaves are treated as (re, im) pairs).
      xs: per-step inputs, leaves ``[T, ...]``.
      mask: ``[T]`` bool, False on padded steps (the carry is frozen there, as in the time loop).
      hidden: ``hidden(carry) -> h`` (e.g. ``cell.hidden``).
      return_products: also return ``products: [T, S_h, S_h]`` (the hidden block of P_t).

    Returns:
      ``norm: [T]`` (Frobenius) and ``sigma_max: [T]``, index t holding dh_T/dh_{t+1} in 0-based step order
      (so the last entry is the identity and index t aligns with probe index t), NaN on padded steps; and
      ``decay_rate``, ``log_decay_rate`` fitted to ``norm`` by :func:`fit_decay_rate`.
    """
    to_vec, from_vec = _real_view(carry0)
    s0 = to_vec(carry0)
    t = jax.tree.leaves(xs)[0].shape[0]
    mask = jnp.ones((t,), bool) if mask is None else jnp.asarray(mask, bool)

    def f(s, x_t, m_t):
        return jnp.where(m_t, to_vec(step_fn(from_vec(s), x_t)), s)

    def forward(s, inp):
        return f(s, *inp), s  # collect s_{t-1}

    _, prev = jax.lax.scan(forward, s0, (xs, mask))
    select = jax.jacfwd(lambda v: to_vec(hidden(from_vec(v))))(s0)  # [S_h, S]: picks h out of s
    jac = jax.jacfwd(f)

    def backward(p, inp):
        s, x_t, m_t = inp
        block = select @ p @ select.T  # dh_T/dh_t for this t
        return p @ jac(s, x_t, m_t), block

    _, blocks = jax.lax.scan(backward, jnp.eye(s0.shape[0], dtype=s0.dtype), (prev, xs, mask), reverse=True)
    norm = jnp.where(mask, jnp.sqrt(jnp.sum(blocks**2, axis=(1, 2))), jnp.nan)
    sigma = jnp.where(mask, largest_singular_values(blocks), jnp.nan)
    log_rate = fit_log_decay_rate(norm, mask)
    out = {"norm": norm, "sigma_max": sigma, "log_decay_rate": log_rate, "decay_rate": jnp.exp(log_rate)}
    if return_products:
        out["products"] = blocks
    return out


def cell_jacobian_products(
    cell: RecurrentCell, cell_params, x: Array, length: Array | int | None = None, **kwargs
) -> dict[str, Array]:
    """:func:`state_jacobian_products` of ``cell`` on one sequence ``x: [T, D]`` from a zero carry.

    ``length`` (scalar, may be traced): steps at or after it are padding (frozen carry, NaN in the output).
    """
    cls = type(cell)
    variables = {"params": cell_params}
    xp = cell.apply(variables, x[:, None], method=cls.project_inputs)  # leaves [T, 1, ...]
    carry0 = cell.init_carry(None, (1,))
    step = lambda c, xp_t: cell.apply(variables, c, xp_t, method=cls.step)[0]
    mask = None if length is None else jnp.arange(x.shape[0]) < length
    return state_jacobian_products(step, carry0, xp, mask, hidden=cell.hidden, **kwargs)


def jacobian_products(
    model, params, inputs: Array, lengths: Array | None = None, *, index: int = 0, layer: int = 0, **kwargs
) -> dict[str, Array]:
    """:func:`cell_jacobian_products` for sequence ``index`` of a batch, at ``layer`` of ``model``.

    Args: ``inputs: [B, T, D]`` (or ``[B, T]`` ids), ``lengths: [B]``. Returns ``norm, sigma_max: [T]``,
    ``decay_rate``, ``log_decay_rate`` (see :func:`state_jacobian_products`).
    """
    x = layer_inputs(model, params, inputs, lengths, layer)[index]
    cell, cell_params = layer_cell(model, params, layer)
    return cell_jacobian_products(cell, cell_params, x, None if lengths is None else lengths[index], **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Gate statistics


def _gate_nodes(tree, prefix=()):
    """Yield ``(path, node)`` for every intermediates node holding ``'gates'``."""
    if isinstance(tree, Mapping):
        if "gates" in tree:
            yield prefix, tree
        for k, v in tree.items():
            if k not in ("gates", "mask"):
                yield from _gate_nodes(v, prefix + (k,))


def _one_gate(g: Array, m: Array, low: float, high: float) -> dict[str, Array]:
    """``g: [B, T, H]``, ``m: [B, T]`` float mask -> per-step and overall mean / saturated fraction."""
    h = g.shape[-1]
    sat = ((g < low) | (g > high)).astype(g.dtype)
    count_t = m.sum(0) * h

    def per_t(v):
        return jnp.where(count_t > 0, (v * m[..., None]).sum((0, 2)) / jnp.maximum(count_t, 1), jnp.nan)

    total = jnp.maximum(count_t.sum(), 1)
    return {
        "mean_t": per_t(g),
        "saturated_t": per_t(sat),
        "mean": (g * m[..., None]).sum() / total,
        "saturated": (sat * m[..., None]).sum() / total,
    }


def forget_time_constant(f: Array, mask: Array | None = None) -> dict[str, Array]:
    """The LSTM forget gate's time constant per unit, tau_h = 1 / (1 - mean_{b,t} f), over units.

    With c_t = f c_{t-1} + ..., a constant f forgets as f^k = exp(-k / tau) for k >> 1 (tau ~ 1 / (1 - f));
    chrono initialisation (Tallec & Ollivier 2018) sets exactly this quantity. ``f: [B, T, H]``,
    ``mask: [B, T]``. Returns ``mean`` and ``median`` of tau over the H units.
    """
    m = jnp.ones(f.shape[:2], f.dtype) if mask is None else jnp.asarray(mask, f.dtype)
    f_bar = (f * m[..., None]).sum((0, 1)) / jnp.maximum(m.sum(), 1)  # [H]
    tau = 1.0 / jnp.maximum(1.0 - f_bar, 1e-6)
    return {"mean": tau.mean(), "median": jnp.median(tau)}


def gate_statistics_from_intermediates(
    intermediates, *, low: float = SATURATION_LOW, high: float = SATURATION_HIGH
) -> dict[str, dict]:
    """Gate statistics from the ``'intermediates'`` collection of ``model.apply(..., mutable=['intermediates'])``.

    Returns ``{layer_path: {gate: stats}}`` with ``layer_path`` like ``'rnn/layer0'`` (``'.../forward'`` for
    bidirectional layers) and ``stats`` = ``mean_t, saturated_t: [T]`` (over valid (b, h); NaN where no
    sequence is valid) and scalars ``mean``, ``saturated`` (over all valid entries). A gate is saturated when
    it is < ``low`` or > ``high``. LSTM layers also get ``'time_constant': {'mean', 'median'}``
    (:func:`forget_time_constant`); cells without gates (rnn, irnn, lru) contribute nothing.
    """
    out = {}
    for path, node in _gate_nodes(intermediates):
        gates = node["gates"][0]
        if not gates:
            continue
        first = next(iter(gates.values()))
        mask = node["mask"][0] if "mask" in node else jnp.ones(first.shape[:2], bool)
        m = mask.astype(first.dtype)
        stats = {name: _one_gate(g, m, low, high) for name, g in sorted(gates.items())}
        if "f" in gates and "o" in gates:  # LSTM (the forget gate of a GRU is z, of minGRU 1 - z)
            stats["time_constant"] = forget_time_constant(gates["f"], mask)
        out["/".join(path)] = stats
    return out


def gate_statistics(model, params, inputs: Array, lengths: Array | None = None, **kwargs) -> dict[str, dict]:
    """Run ``model`` on ``inputs: [B, T, D]`` (``lengths: [B]``) collecting its gates; see
    :func:`gate_statistics_from_intermediates` for the result."""
    _, state = model.apply({"params": params}, inputs, lengths, mutable=["intermediates"])
    return gate_statistics_from_intermediates(state.get("intermediates", {}), **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Spectrum of the recurrent weights vs Pascanu et al. (2013)


def largest_singular_values(matrices: Array) -> Array:
    """``[N, M, M] -> [N]``: sigma_max of each matrix, one unbatched SVD at a time (``lax.map``).

    A batched LAPACK call on the CPU backend can deadlock XLA's thread pool when another one runs at the same
    time (docs/known-issues/batched-lapack-deadlock.md), so no linear algebra here is ever batched.
    """
    return jax.lax.map(lambda m: jnp.linalg.svd(m, compute_uv=False)[0], matrices)


def _host_spectral_radius(w):
    return np.asarray(np.max(np.abs(np.linalg.eigvals(np.asarray(w, np.float64)))), np.asarray(w).dtype)


def matrix_spectrum(w: Array) -> dict[str, Array]:
    """``w: [H, H]`` -> ``sigma_max`` (largest singular value) and ``spectral_radius`` (max |eigenvalue|).

    The eigenvalues are computed on the host (``jax.pure_callback``) so this also runs under jit on
    accelerators without a non-symmetric eigensolver.
    """
    w = jnp.asarray(w)
    sigma = jnp.linalg.svd(w, compute_uv=False)[0]
    radius = jax.pure_callback(
        _host_spectral_radius, jax.ShapeDtypeStruct((), w.dtype), w, vmap_method="sequential"
    )
    return {"sigma_max": sigma, "spectral_radius": radius}


def _blocks(cell: RecurrentCell) -> list[tuple[str, float]]:
    """``(block name, gamma = sup |activation'|)`` for each [H, H] block of the recurrent kernel."""
    if isinstance(cell, SimpleRNNCell):
        return [("h", 1.0)]  # tanh' <= 1 and relu' <= 1
    sig = getattr(cell, "gate_slope", 1.0) / 4.0  # (sigma(beta z))' <= beta / 4
    if isinstance(cell, LSTMCell):
        names = ("f", "g", "o") if cell.cifg else ("i", "f", "g", "o")
        return [(n, 1.0 if n == "g" else sig) for n in names]
    if isinstance(cell, GRUCell):
        return [("r", sig), ("z", sig), ("n", 1.0)]
    return []


def recurrent_spectrum(cell: RecurrentCell, cell_params) -> dict[str, Any]:
    """Spectral radius and sigma_max of the recurrent weights against Pascanu et al.'s (2013) bound.

    For h_t = act(W_hh h_{t-1} + ...) with |act'| <= gamma, ||dh_t/dh_{t-1}|| <= gamma sigma_max(W_hh), so
    sigma_max < 1/gamma (``pascanu_bound``) *guarantees* vanishing gradients. The bound is reported per
    [H, H] gate block (gamma = 1 for tanh/ReLU blocks, beta/4 for sigmoid gates of slope beta: bound 4/beta).

    Returns a dict: ``blocks: {name: {sigma_max, spectral_radius, gamma, pascanu_bound}}``; top-level
    ``sigma_max``, ``spectral_radius`` (the max over blocks), ``pascanu_bound`` and ``vanishing_guaranteed``
    (sigma_max < bound), and ``pascanu_applies``: True only for the simple RNN (rnn/irnn) and the LRU (a
    linear diagonal recurrence, gamma = 1, W = diag(lambda)). For gated cells the theorem does not apply
    (the additive cell/update path is not of the form act(W h)): ``vanishing_guaranteed`` is False and the
    block numbers are descriptive only. minGRU has no recurrent weights: NaNs.
    """
    variables = {"params": cell_params}
    if isinstance(cell, LRUCell):
        mod = jnp.abs(cell.apply(variables, method=LRUCell.diagonal_recurrence)).max()
        return {
            "blocks": {
                "lambda": {"sigma_max": mod, "spectral_radius": mod, "gamma": 1.0, "pascanu_bound": 1.0}
            },
            "sigma_max": mod,
            "spectral_radius": mod,
            "pascanu_bound": 1.0,
            "vanishing_guaranteed": mod < 1.0,
            "pascanu_applies": True,
        }
    blocks = _blocks(cell)
    if not blocks:
        nan = jnp.array(jnp.nan, jnp.float32)
        return {
            "blocks": {},
            "sigma_max": nan,
            "spectral_radius": nan,
            "pascanu_bound": nan,
            "vanishing_guaranteed": jnp.array(False),
            "pascanu_applies": False,
        }
    w = cell.apply(variables, method=type(cell).recurrent_matrix)  # [H, G*H]
    h = w.shape[0]
    out = {}
    for k, (name, gamma) in enumerate(blocks):
        out[name] = {
            **matrix_spectrum(w[:, k * h : (k + 1) * h]),
            "gamma": gamma,
            "pascanu_bound": 1.0 / gamma,
        }
    sigma = jnp.max(jnp.stack([b["sigma_max"] for b in out.values()]))
    radius = jnp.max(jnp.stack([b["spectral_radius"] for b in out.values()]))
    applies = isinstance(cell, SimpleRNNCell)
    bound = out["h"]["pascanu_bound"] if applies else 1.0
    return {
        "blocks": out,
        "sigma_max": sigma,
        "spectral_radius": radius,
        "pascanu_bound": bound,
        "vanishing_guaranteed": (sigma < bound) & applies,
        "pascanu_applies": applies,
    }


# ----------------------------------------------------------------------------------------------------------
# Clipping


def clipping_stats(grad_norms: Array, threshold: float | None) -> dict[str, Array]:
    """How often and by how much global-norm clipping (Pascanu et al. 2013) fired.

    Args:
      grad_norms: ``[N]`` pre-clip global gradient norms (non-finite entries are ignored).
      threshold: the clip threshold (None or <= 0: no clipping).

    Returns: ``clip_fraction`` (share of steps with norm > threshold), ``clip_mean_ratio`` and
    ``clip_max_ratio`` (norm / threshold over the steps where it fired; NaN if it never fired).
    """
    g = jnp.asarray(grad_norms, jnp.float32)
    ok = jnp.isfinite(g)
    if threshold is None or threshold <= 0:
        fired = jnp.zeros_like(ok)
        ratio = jnp.zeros_like(g)
    else:
        fired = ok & (g > threshold)
        ratio = g / threshold
    n_fired = fired.sum()
    return {
        "clip_fraction": n_fired / jnp.maximum(ok.sum(), 1),
        "clip_mean_ratio": jnp.where(
            n_fired > 0, jnp.where(fired, ratio, 0).sum() / jnp.maximum(n_fired, 1), jnp.nan
        ),
        "clip_max_ratio": jnp.where(n_fired > 0, jnp.where(fired, ratio, -jnp.inf).max(), jnp.nan),
    }


# ----------------------------------------------------------------------------------------------------------
# Everything at once, for the metrics files


def _record_arrays(model, loss_fn, params, batch, *, layer, jacobian, index, low, high):
    lengths = batch.get("lengths")
    out = {}
    norms = grad_norms_per_layer(loss_fn, model, params, batch, align="end")  # [L, T]
    out["grad_norm_t"] = norms[layer]
    out["log_decay_rate"] = fit_log_decay_rate(norms[layer])
    out["decay_rate"] = jnp.exp(out["log_decay_rate"])
    if norms.shape[0] > 1:
        for l in range(norms.shape[0]):
            out[f"grad_norm_t_layer{l}"] = norms[l]
            out[f"decay_rate_layer{l}"] = fit_decay_rate(norms[l])
    if jacobian:
        jac = jacobian_products(model, params, batch["inputs"], lengths, index=index, layer=layer)
        out.update(
            {
                "jac_norm_t": jac["norm"],
                "jac_sigma_max_t": jac["sigma_max"],
                "jac_decay_rate": jac["decay_rate"],
                "jac_log_decay_rate": jac["log_decay_rate"],
            }
        )
    if not isinstance(model, RNN):
        gates = gate_statistics(model, params, batch["inputs"], lengths, low=low, high=high)
        path = "/".join(_rnn_path(model, layer))
        for name, st in gates.get(path, {}).items():
            if name == "time_constant":
                out["forget_time_constant_mean"] = st["mean"]
                out["forget_time_constant_median"] = st["median"]
            else:
                out[f"gate_{name}_mean"] = st["mean"]
                out[f"gate_{name}_saturated"] = st["saturated"]
    spec = recurrent_spectrum(*layer_cell(model, params, layer))
    for key in ("sigma_max", "spectral_radius", "pascanu_bound", "vanishing_guaranteed"):
        out[key] = jnp.asarray(spec[key], jnp.float32)
    for name, blk in spec["blocks"].items():
        out[f"sigma_max_{name}"] = blk["sigma_max"]
        out[f"spectral_radius_{name}"] = blk["spectral_radius"]
    return out


def _to_python(values: Mapping[str, Array]) -> dict[str, float | list[float]]:
    out = {}
    for k, v in values.items():
        a = np.asarray(v, np.float64)
        out[k] = float(a) if a.ndim == 0 else a.tolist()
    return out


def make_recorder(
    model,
    loss_fn: LossFn,
    *,
    layer: int = 0,
    jacobian: bool = True,
    index: int = 0,
    low: float = SATURATION_LOW,
    high: float = SATURATION_HIGH,
    jit: bool = True,
) -> Callable:
    """A function ``recorder(params, batch, *, grad_norm_history=None, clip=None) -> dict`` (compiled once).

    The flat dict holds Python floats and lists (ready for ``metrics.jsonl``):

    * ``grad_norm_t`` ``[T]`` — ||dL/dh_t|| of ``layer``, each sequence right-aligned (index t is distance
      T - 1 - t from its last valid step); ``decay_rate``, ``log_decay_rate`` fitted to it; for deeper
      models also ``grad_norm_t_layer{l}``, ``decay_rate_layer{l}``.
    * ``jac_norm_t``, ``jac_sigma_max_t`` ``[T]``, ``jac_decay_rate``, ``jac_log_decay_rate`` — the Jacobian
      products on sequence ``index`` (``jacobian=False`` skips them: O(T S^3)).
    * ``gate_<g>_mean``, ``gate_<g>_saturated`` per gate; ``forget_time_constant_mean/median`` (LSTM).
    * ``sigma_max``, ``spectral_radius``, ``pascanu_bound``, ``vanishing_guaranteed`` (0/1) and per block
      ``sigma_max_<b>``, ``spectral_radius_<b>``.
    * with ``grad_norm_history`` (``[N]`` pre-clip norms) and ``clip``: ``clip_fraction``,
      ``clip_mean_ratio``, ``clip_max_ratio``.
    """
    core = functools.partial(
        _record_arrays, model, loss_fn, layer=layer, jacobian=jacobian, index=index, low=low, high=high
    )
    core = jax.jit(core) if jit else core

    def recorder(params, batch, *, grad_norm_history=None, clip=None):
        batch = {k: v for k, v in batch.items() if hasattr(v, "shape")}
        out = _to_python(core(params, batch))
        if grad_norm_history is not None:
            out.update(_to_python(clipping_stats(grad_norm_history, clip)))
        return out

    return recorder


def record(model, params, batch: Mapping[str, Array], loss_fn: LossFn, **kwargs) -> dict[str, Any]:
    """One-off :func:`make_recorder` call (compiles each time; build a recorder once for training loops).

    ``kwargs``: the options of :func:`make_recorder` and the recorder (``grad_norm_history``, ``clip``).
    """
    call_kw = {k: kwargs.pop(k) for k in ("grad_norm_history", "clip") if k in kwargs}
    return make_recorder(model, loss_fn, **kwargs)(params, batch, **call_kw)


def extra_metric(model, loss_fn: LossFn, **kwargs) -> Callable:
    """``fn(state, batch) -> dict`` for ``train_and_evaluate(..., extra_metrics=[fn])`` (uses ``state.params``)."""
    recorder = make_recorder(model, loss_fn, **kwargs)
    return lambda state, batch: recorder(state.params, batch)
