"""The whole-sequence kernels equal the XLA time loop: the fused LSTM/GRU custom VJPs (float64) and cuDNN's
LSTM (on a GPU; its wiring on any platform with jax.experimental.rnn.lstm_ref standing in for cuDNN); the
backend switch falls back cleanly.

Shape legend: B batch, T time, D input features, H hidden size.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import cpu_auto_backend
from jax.experimental import rnn as jax_rnn

import rnnlab
import rnnlab.scan.rnn
from rnnlab import fused
from rnnlab.scan import Backend

B, T, D, H = 3, 6, 2, 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (lengths, reverse, hoist)
LOOPS = {
    "full": (None, False, True),
    "lengths": ((6, 3, 0), False, True),
    "lengths-reverse": ((6, 3, 0), True, True),
    "reverse-nohoist": (None, True, False),
    "lengths-nohoist": ((2, 6, 5), False, False),
}
# Every loop variant for the standard cells; the gate options (which only change the step) on two of them.
# Not slow: full, lengths-reverse, reverse-nohoist and lengths-nohoist meet every pair of (lengths, reverse,
# hoist) values; 'lengths' (lengths, forward, hoisted) repeats pairs those cover, and the gate options on the
# full loop repeat the step that their lengths-reverse case checks under a harder loop: both are `make
# test-slow` only.
SLOW_LOOPS = ("lengths",)
CASES = [
    pytest.param(
        name,
        {},
        *loop,
        id=f"{name}-{loop_id}",
        marks=[pytest.mark.slow] if loop_id in SLOW_LOOPS else [],
    )
    for name in ("lstm", "gru")
    for loop_id, loop in LOOPS.items()
]
CASES += [
    pytest.param(
        name,
        options,
        *LOOPS[loop_id],
        id=f"{name}-{option_id}-{loop_id}",
        marks=[pytest.mark.slow] if loop_id == "full" else [],
    )
    for name, option_id, options in [
        ("lstm", "slope2.5-chrono", {"gate_slope": 2.5, "chrono_tmax": 8.0}),
        ("gru", "slope0.5", {"gate_slope": 0.5}),
    ]
    for loop_id in ("full", "lengths-reverse")
]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _cell(name, **options):
    return rnnlab.get_cell(name, hidden_size=H, param_dtype=jnp.float64, **options)


def _perturbed(params, seed=3):
    """Non-trivial parameters (biases and b_hn are zero at init), so every gradient term is exercised."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(
        tree, [p + 0.3 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)]
    )


def _inputs(seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.normal(k[0], (B, T, D), jnp.float64)
    h0 = 0.5 * jax.random.normal(k[1], (B, H), jnp.float64)
    c0 = 0.5 * jax.random.normal(k[2], (B, H), jnp.float64)
    w_y = jax.random.normal(k[3], (B, T, H), jnp.float64)
    return x, h0, c0, w_y


def _loss_and_grads(name, options, backend, lengths, reverse, hoist=True, with_probes=False):
    """A weighted loss of outputs and final carry, and its gradient w.r.t. params, x, carry (and probes)."""
    x, h0, c0, w_y = _inputs()
    layer = rnnlab.RNN(_cell(name, **options), reverse=reverse, backend=backend, hoist=hoist)
    carry = (c0, h0) if name == "lstm" else h0
    params = _perturbed(layer.init(jax.random.PRNGKey(1), x))
    probes = rnnlab.zero_probes(carry, T) if with_probes else None
    assert layer.plan(probes=with_probes).backend == ("xla" if backend == "xla" else "fused")

    def loss(params, x, carry, probes, lengths):
        final, y = layer.apply(params, x, lengths, carry, probes)
        return jnp.sum(w_y * jnp.sin(y)) + sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(final)), (
            final,
            y,
        )

    (value, (final, y)), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))(
        params, x, carry, probes, lengths
    )
    return value, final, y, grads


def _assert_trees_close(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12), a, b)


@pytest.mark.parametrize("name, options, lengths, reverse, hoist", CASES)
def test_fused_equals_xla(name, options, lengths, reverse, hoist):
    lengths = None if lengths is None else jnp.array(lengths)
    fused = _loss_and_grads(name, options, "fused", lengths, reverse, hoist)
    ref = _loss_and_grads(name, options, "xla", lengths, reverse, hoist)
    _assert_trees_close(fused, ref)
    if lengths is not None:  # padded outputs are exactly 0 on the fused path too
        y, lens = fused[2], np.asarray(lengths)
        for b in range(B):
            assert float(jnp.max(jnp.abs(y[b, lens[b] :]), initial=0.0)) == 0.0


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_fused_probe_gradients_equal_xla(name):
    lengths = jnp.array([6, 4, 1])
    fused = _loss_and_grads(name, {}, "fused", lengths, False, with_probes=True)
    ref = _loss_and_grads(name, {}, "xla", lengths, False, with_probes=True)
    _assert_trees_close(fused, ref)
    dprobes = jax.tree.leaves(fused[3][3])
    assert all(float(jnp.max(jnp.abs(p))) > 0 for p in dprobes)


def test_auto_is_the_default_and_picks_a_whole_sequence_kernel_for_lstm_and_gru():
    assert rnnlab.RNN(_cell("lstm")).backend == "auto"
    for platform in ("cpu", "gpu", "tpu"):
        want = cpu_auto_backend() if platform == "cpu" else Backend.FUSED
        for name in ("lstm", "gru"):
            assert rnnlab.RNN(_cell(name)).plan(platform=platform).backend is want
        assert rnnlab.RNN(_cell("rnn")).plan(platform=platform).backend is Backend.XLA


@pytest.mark.parametrize(
    "cell, kwargs",
    [
        (("lstm", {"peephole": True}), {}),
        (("lstm", {"cifg": True}), {}),
        (("lstm", {}), {"remat": True}),
        (("gru", {}), {"remat": True, "remat_chunk": 2}),
    ],
)
def test_fused_falls_back_to_xla_where_unsupported(cell, kwargs):
    x, *_ = _inputs()
    layer = rnnlab.RNN(_cell(cell[0], **cell[1]), backend="fused", **kwargs)
    ref = rnnlab.RNN(_cell(cell[0], **cell[1]), backend="xla", **kwargs)
    params = _perturbed(layer.init(jax.random.PRNGKey(1), x))
    assert layer.plan().backend is Backend.XLA
    _assert_trees_close(layer.apply(params, x), ref.apply(params, x))


def test_gate_statistics_fall_back_to_xla():
    x, *_ = _inputs()
    layer = rnnlab.RNN(_cell("lstm"), backend="fused")
    params = layer.init(jax.random.PRNGKey(1), x)
    (_, y), state = layer.apply(params, x, mutable=["intermediates"])
    gates = state["intermediates"]["gates"][0]
    assert gates["f"].shape == (B, T, H)
    _assert_trees_close(y, layer.apply(params, x)[1])


def test_backend_errors_name_the_valid_choices():
    x = jnp.ones((B, T, D))
    with pytest.raises(ValueError, match="unknown backend 'cuda'; valid: auto, xla, fused, native, cudnn"):
        rnnlab.RNN(_cell("lstm"), backend="cuda").init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="backend='fused' supports LSTMCell, GRUCell, not MinGRUCell"):
        rnnlab.RNN(_cell("mingru"), backend="fused").init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="backend='native' supports LSTMCell, GRUCell, not MinGRUCell"):
        rnnlab.RNN(_cell("mingru"), backend="native").init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="backend='cudnn' supports LSTMCell, not GRUCell.*'xla' or 'auto'"):
        rnnlab.RNN(_cell("gru"), backend="cudnn").init(jax.random.PRNGKey(0), x)


def test_fused_kernels_handle_empty_sequences():
    h0 = jnp.ones((B, H))
    _, h, ys = fused.lstm_sequence(jnp.zeros((H, 4 * H)), jnp.zeros((0, B, 4 * H)), h0, h0)
    assert ys.shape == (0, B, H) and (h == h0).all()
    h, ys = fused.gru_sequence(jnp.zeros((H, 3 * H)), jnp.zeros(H), jnp.zeros((0, B, 3 * H)), h0)
    assert ys.shape == (0, B, H) and (h == h0).all()


# ------------------------------------------------------------------------------------------------------
# cuDNN's LSTM (jax.experimental.rnn.lstm): only on a GPU, in float32, for the standard LSTM without probes.


@pytest.mark.parametrize(
    "platform, options, dtype, probes, want",
    [
        ("gpu", {}, jnp.float32, False, Backend.CUDNN),
        ("cpu", {}, jnp.float32, False, None),  # no GPU: what backend='auto' picks
        ("tpu", {}, jnp.float32, False, Backend.FUSED),
        ("gpu", {}, jnp.float64, False, Backend.FUSED),  # cuDNN is float32-only
        ("gpu", {}, jnp.float32, True, Backend.FUSED),  # no probes through cuDNN
        ("gpu", {"gate_slope": 2.0}, jnp.float32, False, Backend.FUSED),
        ("gpu", {"peephole": True}, jnp.float32, False, Backend.XLA),  # neither kernel covers peepholes
    ],
)
def test_cudnn_resolves_only_where_it_applies(platform, options, dtype, probes, want):
    layer = rnnlab.RNN(rnnlab.get_cell("lstm", H, **options), backend="cudnn")
    want = cpu_auto_backend() if want is None else want
    assert layer.plan(platform=platform, dtype=dtype, probes=probes).backend is want
    for knobs in ({"remat": True}, {"remat_chunk": 4}):
        layer = rnnlab.RNN(rnnlab.get_cell("lstm", H), backend="cudnn", **knobs)
        assert layer.plan(platform="gpu").backend is Backend.XLA
    layer = rnnlab.RNN(rnnlab.get_cell("lstm", H), backend="cudnn")
    assert layer.plan(platform="gpu", collect=True).backend is Backend.XLA  # gate statistics: per step


def _lstm_ref_as_cudnn(x, h0, c0, weights, seq_lengths, input_size, hidden_size, num_layers, dropout, bidi):
    """``jax.experimental.rnn.lstm``'s arguments (cuDNN's packed weights), computed by its JAX reference."""
    w = jax_rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidi)
    return jax_rnn.lstm_ref(x, h0, c0, *w, seq_lengths, input_size, hidden_size, num_layers, dropout, bidi)


def _f32_loss_and_grads(backend, lengths, reverse):
    """As :func:`_loss_and_grads`, for a float32 LSTM (cuDNN's only dtype), without probes."""
    x, h0, c0, w_y = (a.astype(jnp.float32) for a in _inputs())
    layer = rnnlab.RNN(rnnlab.get_cell("lstm", hidden_size=H), reverse=reverse, backend=backend)
    params = _perturbed(layer.init(jax.random.PRNGKey(1), x))
    assert layer.plan(dtype=jnp.float32).backend == backend

    def loss(params, x, carry, lengths):
        final, y = layer.apply(params, x, lengths, carry)
        cos = sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(final))
        return jnp.sum(w_y * jnp.sin(y)) + cos, (final, y)

    lengths = None if lengths is None else jnp.array(lengths, jnp.int32)
    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
    return grad(params, x, (c0, h0), lengths)


def _assert_f32_close(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=2e-5, atol=2e-6), a, b)


@pytest.mark.parametrize("lengths, reverse", [(None, False), ((6, 3, 0), True)], ids=["full", "lengths-rev"])
def test_cudnn_wiring_equals_xla_with_lstm_ref_standing_in_for_cudnn(monkeypatch, lengths, reverse):
    """The cuDNN path's weight packing, carry order, lengths (0 included) and reversal, on any platform."""
    monkeypatch.setattr(jax_rnn, "lstm", _lstm_ref_as_cudnn)
    monkeypatch.setattr(rnnlab.scan.rnn, "default_platform", lambda: "gpu")
    got = _f32_loss_and_grads("cudnn", lengths, reverse)
    _assert_f32_close(got, _f32_loss_and_grads("xla", lengths, reverse))
    if lengths is not None:
        (_, (final, y)), _ = got
        assert float(jnp.max(jnp.abs(y[2]))) == 0.0  # the empty sequence: zero outputs, initial carry
        np.testing.assert_array_equal(final[1][2], _inputs()[1][2].astype(jnp.float32))


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN needs a GPU")
@pytest.mark.parametrize("lengths, reverse", [(None, False), ((6, 3, 0), True)], ids=["full", "lengths-rev"])
def test_cudnn_equals_xla_on_a_gpu(lengths, reverse):
    with jax.default_matmul_precision("highest"):  # no TF32, in cuDNN or in XLA's matmuls
        _assert_f32_close(
            _f32_loss_and_grads("cudnn", lengths, reverse), _f32_loss_and_grads("xla", lengths, reverse)
        )


def test_bench_table_flops_and_ratios():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_rnn

    assert bench_rnn.step_flops("lstm", 32, 256, 32, 128) == 3 * 2 * 32 * 256 * 160 * 512
    rows = [
        {"cell": "gru", "shape": (2, 10, 1, 4), "impl": name, "reference": ref, "seconds": s, "spread": 0.0}
        for name, ref, s in [("a", None, 1.0), ("torch", "torch", 2.0), ("flax", "flax", 0.5)]
    ]
    rows[0]["temp_mib"] = 1.25
    table = bench_rnn.markdown_table(rows, 1e9).splitlines()
    assert table[0].startswith("| cell |") and table[0].endswith("| XLA temp MiB |") and len(table) == 5
    assert "| ×2.00 | ×0.50 |" in table[2] and table[2].endswith("| 1.2 |") and table[3].endswith("| — |")


def test_bench_reports_the_compiled_steps_temp_memory():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_rnn

    x = jnp.ones((4, 64, 16))
    step = bench_rnn._jax_step(lambda p, x: jnp.sum(jnp.tanh(x @ p) ** 2), jnp.ones((16, 16)), x)
    assert step.temp_mib is not None and step.temp_mib > 0  # at least the tanh activations for the backward
    step()


def test_loop_kernel_counter_finds_the_loops_and_their_gemms():
    """benchmarks/loop_kernels.py on a scan whose body is one GEMM and a tanh: one forward loop of T steps
    with one GEMM, one backward loop with its GEMMs; loops of another trip count are not counted."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import loop_kernels

    def loss(w, xs):
        def body(h, x):
            h = jnp.tanh(h @ w + x)
            return h, h

        _, hs = jax.lax.scan(body, jnp.zeros((4, 8)), xs)
        return jnp.sum(hs)

    w, xs = jnp.eye(8), jnp.ones((7, 4, 8))
    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(w, xs).compile().as_text()
    loops = loop_kernels.loop_bodies(hlo, 7)
    assert len(loops) == 2, loops
    assert loops[0]["gemms"] == 1 and 1 <= loops[1]["gemms"] <= 2, loops
    assert all(loop["kernels"] > loop["gemms"] for loop in loops), loops  # the tanh (and its derivative)
    assert loop_kernels.loop_bodies(hlo, 8) == []


def test_xla_option_sets_of_the_flag_bench_reach_the_compiler():
    """benchmarks/xla_flags.py passes each option set to one jit: with none, XLA:CPU runs the dot through
    YNNPACK (a ``ynn_fusion``); the "eigen dot" set turns that off in that program only."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import xla_flags

    a, b = jnp.ones((16, 32)), jnp.ones((32, 64))
    hlo = {
        name: jax.jit(lambda a, b: jnp.tanh(a @ b), compiler_options=xla_flags.OPTIONS[name])
        .lower(a, b)
        .compile()
        .as_text()
        for name in ("none", "eigen dot")
    }
    assert "ynn_fusion" in hlo["none"] and "ynn_fusion" not in hlo["eigen dot"]


def test_bench_times_pytorch_in_a_process_with_mallocs_defaults():
    """The bench's PyTorch reference row runs in benchmarks/torch_worker.py (which never imports rnnlab), in
    a process that keeps glibc's malloc defaults (rnnlab.hostmem changes them in the bench's own process)."""
    pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_rnn

    step = bench_rnn._torch_own_process("gru", 2, 3, 1, 4)
    step()
    proc = bench_rnn._TorchProcess.proc
    with open(f"/proc/{proc.pid}/environ", "rb") as f:
        assert b"RNNLAB_KEEP_FREED_MEMORY=0" in f.read().split(b"\0")
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


@pytest.mark.slow
def test_bench_quick_runs():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| LSTM | 8, 64, 8, 32 | rnnlab (fused) |" in out.stdout
    assert "| GRU | 8, 64, 8, 32 | rnnlab (xla) |" in out.stdout


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN runs on a GPU only")
def test_cudnn_equals_the_scan_on_a_gpu():
    """Where a GPU is present: the cuDNN LSTM's outputs and gradients equal the XLA scan's (float32)."""
    cell = rnnlab.get_cell("lstm", 32)
    x = jax.random.normal(jax.random.key(1), (4, 20, 8))
    lengths = jnp.array([20, 13, 1, 7])
    params = rnnlab.RNN(cell, backend="xla").init(jax.random.key(0), x, lengths)

    def loss(p, backend):
        _, y = rnnlab.RNN(cell, backend=backend).apply(p, x, lengths)
        return jnp.sum(y**2), y

    (lx, yx), gx = jax.value_and_grad(loss, has_aux=True)(params, "xla")
    (lc, yc), gc = jax.value_and_grad(loss, has_aux=True)(params, "cudnn")
    np.testing.assert_allclose(yc, yx, rtol=2e-3, atol=2e-4)
    for a, b in zip(jax.tree.leaves(gc), jax.tree.leaves(gx), strict=True):
        np.testing.assert_allclose(a, b, rtol=5e-3, atol=5e-4)
