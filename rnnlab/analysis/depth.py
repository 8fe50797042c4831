"""100 steps ~ 100 layers: ||dL/dh|| per layer of deep feed-forward nets next to ||dL/dh_t|| per RNN step.

Shape legend: B batch, T time (= L), L layers, D input features, H width (hidden size), K seeds.

An RNN unrolled over T steps is a T-layer feed-forward net whose layers share one matrix (and get a fresh
input at every layer). This module measures, at initialisation, how the gradient of a loss on the last state
shrinks with the distance to that loss in both, for plain tanh units and for gated ones:

* ``deep tanh (untied)``: h_l = tanh(h_{l-1} W_l + b_l), l = 1..L, each W_l drawn with the tanh RNN's
  recurrent initialiser (``rnnlab.cells.vanilla.recurrent_initializer``); W_1 IS the RNN's matrix.
* ``deep tanh (tied)``: the same with W_l = W for every l: exactly the tanh RNN run on zero inputs.
* ``tanh RNN``: ``rnnlab.get_cell('rnn')`` through ``rnnlab.RNN`` on inputs x_t ~ N(0, 1), T = L steps.
* ``highway``: h_l = t * tanh(h_{l-1} W_l + b_l) + (1 - t) * h_{l-1}, t = sigmoid(h_{l-1} W^T_l - g)
  (Srivastava, Greff & Schmidhuber 2015; carry-gate bias -g, g = ``gate_bias``), W_l as in the untied net.
* ``LSTM`` (forget bias g, so f ~ sigmoid(g) like the highway carry 1 - t) and ``GRU``, on the same inputs.

The deep nets start from h_0 = tanh(x_1 W_ih + b), the tanh RNN's first state. The loss is
L = sum_b <h_L[b], v> with a random unit vector v, so ||dL/dh_L|| = 1 per example for every net; a layer's
(step's) value is ||dL/dh_l|| averaged over the B examples, then the geometric mean over K seeds. Both
loops add a zero probe to the state after every layer / step (``rnnlab.RNN(..., probes=...)`` for the
RNNs) and read all L gradients from one backward pass. The decay rate per layer (step) is the geometric
mean of the ratios ||dL/dh_{l-1}|| / ||dL/dh_l||, i.e. (||dL/dh_1|| / ||dL/dh_L||)^(1/(L-1)) (over the
distances where the norm is >= 1e-30: float32 underflows below); < 1: the gradient vanishes, > 1: it
explodes. The least-squares factor of ``rnnlab.analysis.gradients`` is shown next
to it.

``run_study(config, out_dir, title=...)`` is the ``REPORT = 'depth_vs_time'`` experiment
(``experiments/depth_vs_time.py``): it writes ``depth_vs_time.png`` and ``depth_vs_time.json`` and returns
the report sections.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnlab.analysis.gradients import fit_decay_rate
from rnnlab.analysis.report import Section
from rnnlab.analysis.report_tables import results_table
from rnnlab.cells import get_cell
from rnnlab.cells.vanilla import recurrent_initializer
from rnnlab.scan import RNN, zero_probes

Array = jax.Array
NETS = ("deep tanh (untied)", "deep tanh (tied)", "tanh RNN", "highway", "LSTM", "GRU")


def default_config() -> ml_collections.ConfigDict:
    """The settings ``run_study`` reads (``experiments/depth_vs_time.py`` starts from these)."""
    c = ml_collections.ConfigDict()
    c.width = 64  # H, of every net
    c.depth = 100  # L layers = T steps
    c.seeds = 3  # K independent initialisations (and inputs)
    c.batch_size = 32  # B examples averaged per layer / step
    c.input_size = 8  # D of the RNN inputs x_t
    c.recurrent_init = "orthogonal"  # rnnlab.cells.vanilla.RECURRENT_INITS, for W_l, W_hh and the gate blocks
    c.radius = 1.0  # spectral radius of those matrices (the figure)
    c.gate_bias = 2.0  # highway carry-gate bias -g and LSTM forget bias g: carry ~ sigmoid(2) = 0.88
    c.radii = (0.5, 1.0, 2.0)  # the decay-rate table is repeated at these radii
    return c


# ------------------------------------------------------------------- feed-forward nets, [L, ...] params
def tanh_layer(p: Mapping[str, Array], h: Array) -> Array:
    """``h: [B, H]`` -> tanh(h W + b); ``p``: ``w [H, H]``, ``b [H]``."""
    return jnp.tanh(h @ p["w"] + p["b"])


def highway_layer(p: Mapping[str, Array], h: Array) -> Array:
    """``h: [B, H]`` -> t * tanh(h W + b) + (1 - t) * h, t = sigmoid(h W_t + b_t) (Srivastava et al. 2015)."""
    t = jax.nn.sigmoid(h @ p["w_t"] + p["b_t"])
    return t * jnp.tanh(h @ p["w"] + p["b"]) + (1.0 - t) * h


LAYERS: dict[str, Callable[[Mapping[str, Array], Array], Array]] = {
    "tanh": tanh_layer,
    "highway": highway_layer,
}


def deep_forward(kind: str, params: Mapping[str, Array], h0: Array, probes: Array | None = None) -> Array:
    """``h_L: [B, H]`` of the net ``kind`` ('tanh' | 'highway') with ``params`` leaves ``[L, ...]`` on
    ``h0: [B, H]``; ``probes: [L, B, H]`` (zeros) are added to each layer's output, so their gradient is
    dL/dh_l."""
    layer = LAYERS[kind]
    if probes is None:
        probes = jnp.zeros((jax.tree.leaves(params)[0].shape[0], *h0.shape), h0.dtype)

    def body(h, inp):
        p, probe = inp
        return layer(p, h) + probe, None

    return jax.lax.scan(body, h0, (dict(params), probes))[0]


def deep_grad_norms(kind: str, params: Mapping[str, Array], h0: Array, readout: Array) -> Array:
    """``[L]``: ||dL/dh_l|| (mean over the batch) for l = 1..L, L = sum_b <h_L[b], readout> (``[H]``)."""
    n = jax.tree.leaves(params)[0].shape[0]
    loss = lambda probes: jnp.sum(deep_forward(kind, params, h0, probes) @ readout)
    g = jax.grad(loss)(jnp.zeros((n, *h0.shape), h0.dtype))  # [L, B, H]
    return jnp.linalg.norm(g, axis=-1).mean(-1)


# ---------------------------------------------------------------------------- RNNs through rnnlab.RNN
def rnn_grad_norms(cell, params, x: Array, readout: Array, initial_carry=None) -> Array:
    """``[T]``: ||dL/dh_t|| (the cell's ``hidden`` part, mean over the batch) for t = 1..T, with
    L = sum_b <h_T[b], readout>; ``params``: the cell's, ``x: [B, T, D]``, ``initial_carry`` default zeros."""
    rnn = RNN(cell)
    b, t = x.shape[:2]
    carry0 = cell.init_carry(None, (b,)) if initial_carry is None else initial_carry
    hidden = lambda carry: cell.apply({"params": params}, carry, method="hidden")

    def loss(probes):
        final, _ = rnn.apply({"params": {"cell": params}}, x, initial_carry=carry0, probes=probes)
        return jnp.sum(hidden(final) @ readout)

    g = jax.grad(loss)(zero_probes(carry0, t))
    return jnp.linalg.norm(hidden(g), axis=-1).mean(0)


def init_cell(name: str, key: Array, x: Array, **options):
    """``(cell, params)``: ``rnnlab.get_cell(name, ...)`` initialised through ``rnnlab.RNN`` on
    ``x: [B, T, D]`` (its first step: the parameters do not depend on T)."""
    cell = get_cell(name, **options)
    return cell, RNN(cell).init(key, x[:, :1])["params"]["cell"]


# ---------------------------------------------------------------------------- one initialisation
def _settings(config) -> tuple:
    """The settings of a measurement that fix the shapes (seed and radius only change values)."""
    return tuple(
        config[k] for k in ("width", "depth", "batch_size", "input_size", "recurrent_init", "gate_bias")
    )


def _scaled(params, radius: Array):
    """Every initialiser of ``RECURRENT_INITS`` is linear in the radius: init(radius) = radius * init(1)."""
    return {**params, "recurrent_kernel": radius * params["recurrent_kernel"]}


def _init(settings: tuple, key: Array, radius: Array):
    """``(x [B, T, D], readout [H], h0 [B, H], {net: params})`` of one initialisation (eager: under one jit
    with the three cells' ``init`` XLA:CPU hung, every thread waiting, at H = 64, L = 100)."""
    h, n, b, d, recurrent_init, gate_bias = settings
    k_x, k_v, k_rnn, k_deep, k_gate, k_lstm, k_gru = jax.random.split(key, 7)
    x = jax.random.normal(k_x, (b, n, d))
    readout = jax.random.normal(k_v, (h,))
    readout = readout / jnp.linalg.norm(readout)
    common = {"hidden_size": h, "recurrent_init": recurrent_init}  # radius 1, then scaled

    tanh_params = _scaled(init_cell("rnn", k_rnn, x, **common)[1], radius)
    w = tanh_params["recurrent_kernel"]
    h0 = jnp.tanh(x[:, 0] @ tanh_params["input"]["kernel"] + tanh_params["input"]["bias"])
    init = recurrent_initializer(recurrent_init, 1.0)
    draw = lambda key: radius * jax.vmap(lambda k: init(k, (h, h)))(jax.random.split(key, n))  # [L, H, H]
    untied = {"w": draw(k_deep).at[0].set(w), "b": jnp.zeros((n, h))}
    params = {
        "deep tanh (untied)": untied,
        "deep tanh (tied)": {"w": jnp.broadcast_to(w, (n, h, h)), "b": jnp.zeros((n, h))},
        "tanh RNN": tanh_params,
        "highway": {**untied, "w_t": draw(k_gate), "b_t": jnp.full((n, h), -gate_bias)},
        "LSTM": _scaled(init_cell("lstm", k_lstm, x, forget_bias=gate_bias, **common)[1], radius),
        "GRU": _scaled(init_cell("gru", k_gru, x, **common)[1], radius),
    }
    return x, readout, h0, params


# Each net is compiled on its own (and once per shape: seeds and radii only change values).
_deep_norms = jax.jit(deep_grad_norms, static_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _rnn_norms(name: str, options: tuple, params, x: Array, readout: Array) -> Array:
    return rnn_grad_norms(get_cell(name, **dict(options)), params, x, readout)


def measure(config, seed: int, radius: float | None = None) -> dict[str, np.ndarray]:
    """``{net: [L] ||dL/dh|| in layer / time order}`` for every net of :data:`NETS`, one initialisation
    (``seed``) at spectral radius ``radius`` (default ``config.radius``); one compilation per shape."""
    radius = config.radius if radius is None else radius
    x, readout, h0, params = _init(_settings(config), jax.random.PRNGKey(seed), jnp.float32(radius))
    common = (("hidden_size", config.width), ("recurrent_init", config.recurrent_init))
    out = {
        "deep tanh (untied)": _deep_norms("tanh", params["deep tanh (untied)"], h0, readout),
        "deep tanh (tied)": _deep_norms("tanh", params["deep tanh (tied)"], h0, readout),
        "tanh RNN": _rnn_norms("rnn", common, params["tanh RNN"], x, readout),
        "highway": _deep_norms("highway", params["highway"], h0, readout),
        "LSTM": _rnn_norms("lstm", (*common, ("forget_bias", config.gate_bias)), params["LSTM"], x, readout),
        "GRU": _rnn_norms("gru", common, params["GRU"], x, readout),
    }
    return {net: np.asarray(out[net], np.float64) for net in NETS}


FLOOR = 1e-30  # float32 underflows (subnormals below ~1e-38): rates use the distances where ||dL/dh|| >= this


def geometric_rate(norms) -> float:
    """The geometric mean of ||g_{l-1}|| / ||g_l|| along ``norms: [L]`` (layer / time order, the last entry
    at distance 0), over the distances where the norm is >= :data:`FLOOR`: (norms[j] / norms[-1])^(1/(L-1-j))
    with j the farthest such index. NaN when fewer than 2 entries qualify."""
    norms = np.asarray(norms, np.float64)
    ok = np.flatnonzero(np.isfinite(norms) & (norms >= FLOOR))
    if norms.size < 2 or ok.size < 2 or ok[-1] != norms.size - 1:
        return math.nan
    j = int(ok[0])
    return float((norms[j] / norms[-1]) ** (1.0 / (norms.size - 1 - j)))


def rate_rows(curves: Mapping[str, np.ndarray], seed: int, **extra) -> list[dict]:
    """One table row per net: geometric and least-squares rates, the far-end norm."""
    return [
        {
            **extra,
            "network": net,
            "unit": "step" if net.endswith(("RNN", "LSTM", "GRU")) else "layer",
            "seed": seed,
            "rate per layer/step (geometric mean)": geometric_rate(c),
            "rate (least-squares fit)": float(fit_decay_rate(jnp.asarray(c), jnp.asarray(c >= FLOOR))),
            "||dL/dh|| at distance L-1": float(c[0]),
        }
        for net, c in curves.items()
    ]


def seed_mean_curve(per_seed: list[np.ndarray]) -> np.ndarray:
    """The geometric mean over seeds of ``[L]`` curves (0 where any seed underflowed to 0)."""
    stacked = np.stack(per_seed)
    with np.errstate(divide="ignore"):
        return np.exp(np.log(stacked).mean(0))


def plot_curves(curves: Mapping[str, np.ndarray], path: str, *, title: str) -> str:
    """log ||dL/dh|| against the distance to the loss (layers or steps), one line per net; returns
    ``path``."""
    fig = Figure(figsize=(7.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (net, c) in enumerate(curves.items()):
        distance = np.arange(len(c) - 1, -1, -1)
        ok = np.isfinite(c) & (c > 0)
        style = "--" if net.startswith(("deep", "highway")) else "-"
        ax.plot(distance[ok], c[ok], style, color=f"C{i}", label=f"{net} (x{geometric_rate(c):.3g}/unit)")
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss (layers for dashed nets, time steps for solid RNNs)")
    ax.set_ylabel("||dL/dh||")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def run_study(config: ml_collections.ConfigDict, out_dir: str, *, title: str, log=print) -> list[Section]:
    """Measures every net of :data:`NETS` over ``config.seeds`` initialisations; writes
    ``out_dir/depth_vs_time.png`` (log ||dL/dh|| vs distance at ``config.radius``) and
    ``depth_vs_time.json`` (curves and rows); returns the report sections (figure + rate tables)."""
    os.makedirs(out_dir, exist_ok=True)
    radii = list(dict.fromkeys([config.radius, *config.radii]))
    rows, curves = [], {net: [] for net in NETS}
    for radius in radii:
        for seed in range(config.seeds):
            log(f"[{title}] radius {radius:g}, seed {seed}")
            measured = measure(config, seed, radius)
            rows += rate_rows(measured, seed, radius=float(radius))
            if radius == config.radius:
                for net, c in measured.items():
                    curves[net].append(c)
    mean_curves = {net: seed_mean_curve(cs) for net, cs in curves.items()}
    what = (
        f"H = {config.width}, L = T = {config.depth}, {config.recurrent_init} init with spectral radius "
        f"{config.radius:g}, gate bias {config.gate_bias:g}, {config.seeds} seeds"
    )
    png = plot_curves(mean_curves, os.path.join(out_dir, "depth_vs_time.png"), title=what)
    with open(os.path.join(out_dir, "depth_vs_time.json"), "w") as f:
        json.dump(
            {
                "config": config.to_dict(),
                "curves": {k: v.tolist() for k, v in mean_curves.items()},
                "rows": rows,
            },
            f,
            indent=1,
        )
    main = [{k: v for k, v in r.items() if k != "radius"} for r in rows if r["radius"] == config.radius]
    by_radius = [{k: v for k, v in r.items() if not k.startswith(("rate (", "||"))} for r in rows]
    body = (
        f"Gradient of a loss on the last state, ||dL/dh||, through {config.depth} feed-forward layers and "
        f"through {config.depth} time steps of RNNs at initialisation ({what}; mean ± std over seeds). "
        "Rate: the geometric mean of ||dL/dh_(l-1)|| / ||dL/dh_l|| over the distances where ||dL/dh|| >= "
        "1e-30 (float32 underflows below; < 1: vanishing). The tied deep tanh net "
        "is the tanh RNN without inputs; the untied one draws a fresh matrix per layer from the same "
        "initialiser (its first layer IS the RNN's matrix); the highway net uses the same matrices plus a "
        "carry gate, the LSTM the same initialiser per gate block "
        "(`rnnlab.analysis.depth`).\n\n"
        + results_table(main, group_by=["network", "unit"], digits=3)
        + "\n\nThe geometric-mean rate at each spectral radius:\n\n"
        + results_table(by_radius, group_by=["radius", "network", "unit"], digits=3)
    )
    return [Section(title, body, [(png, "log ||dL/dh|| vs distance: layers and time steps")])]
