"""The compiled CPU kernels (backend 'native') equal the XLA time loop, and rnnlab works without them.

float64 against the XLA scan to rounding (forward, gradients w.r.t. parameters, inputs, carry and probes;
masking, reverse, gate slope, H not a multiple of the 16-unit groups); float32 within float32 rounding; the
team size does not change a bit; K vmapped seeds equal K separate calls; without a compiler (or with
RNNLAB_NATIVE=0) the time loop picks the JAX kernels. Tests that need the kernels skip where they cannot be
built.

Shape legend: B batch, T time, D input features, H hidden size, K seeds.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab
from rnnlab.fused import native
from rnnlab.scan import Backend, dispatch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, T, D, H = 7, 6, 3, 20  # B: one full 6-row tile and a tail; H: one full 16-unit group and a partial one


@pytest.fixture
def built():
    if not native.available():
        pytest.skip("the native kernels could not be built here (no C++ compiler?)")


def _data(dtype, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.normal(k[0], (B, T, D), dtype)
    h0 = 0.5 * jax.random.normal(k[1], (B, H), dtype)
    c0 = 0.5 * jax.random.normal(k[2], (B, H), dtype)
    w_y = jax.random.normal(k[3], (B, T, H), dtype)
    return x, h0, c0, w_y


def _perturbed(params):
    """Non-zero biases and b_hn, so every gradient term is exercised."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(3), len(leaves))
    return jax.tree.unflatten(
        tree, [p + 0.3 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)]
    )


def _loss_and_grads(name, backend, dtype, lengths=None, reverse=False, probes=False, **options):
    x, h0, c0, w_y = _data(dtype)
    cell = rnnlab.get_cell(name, hidden_size=H, param_dtype=dtype, **options)
    layer = rnnlab.RNN(cell, reverse=reverse, backend=backend)
    carry = (c0, h0) if name == "lstm" else h0
    params = _perturbed(layer.init(jax.random.PRNGKey(1), x))
    assert layer.plan(probes=probes, dtype=dtype).backend == backend
    pr = rnnlab.zero_probes(carry, T) if probes else None

    def loss(params, x, carry, pr):
        final, y = layer.apply(params, x, lengths, carry, pr)
        value = jnp.sum(w_y * jnp.sin(y)) + sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(final))
        return value, (final, y)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))(params, x, carry, pr)


LOOPS = {
    "full": {},
    "lengths-reverse": {"lengths": (6, 3, 0, 1, 6, 5, 2), "reverse": True},
    "lengths-probes": {"lengths": (6, 4, 1, 0, 2, 6, 3), "probes": True},
    "slope": {"gate_slope": 2.5},
}


@pytest.mark.parametrize("loop", LOOPS, ids=list(LOOPS))
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_native_equals_xla_in_float64(built, name, loop):
    opts = dict(LOOPS[loop])
    if "lengths" in opts:
        opts["lengths"] = jnp.array(opts["lengths"])
    with jax.enable_x64(True):
        got = _loss_and_grads(name, "native", jnp.float64, **opts)
        want = _loss_and_grads(name, "xla", jnp.float64, **opts)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12), got, want)
    if "lengths" in opts:  # padded outputs are exactly 0
        y = np.asarray(got[0][1][1])
        for b, n in enumerate(np.asarray(opts["lengths"])):
            assert not y[b, n:].any()
    if opts.get("probes"):
        assert all(np.abs(p).max() > 0 for p in jax.tree.leaves(got[1][3]))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_native_equals_xla_in_float32(built, name):
    lengths = jnp.array(LOOPS["lengths-reverse"]["lengths"])
    got = _loss_and_grads(name, "native", jnp.float32, lengths=lengths, reverse=True)
    want = _loss_and_grads(name, "xla", jnp.float32, lengths=lengths, reverse=True)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=2e-4, atol=2e-5), got, want)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_native_gradients_match_finite_differences(built, name):
    """Reverse-mode gradients of the raw kernels (mask and probes on) against central differences, float64."""
    from jax.test_util import check_grads

    t, b, d, h = 4, 3, 2, 5
    with jax.enable_x64(True):
        ks = jax.random.split(jax.random.PRNGKey(0), 8)
        g = 4 if name == "lstm" else 3
        w_ih, bias = 0.5 * jax.random.normal(ks[0], (d, g * h)), 0.3 * jax.random.normal(ks[1], (g * h,))
        w_hh, b_hn = 0.5 * jax.random.normal(ks[2], (h, g * h)), 0.3 * jax.random.normal(ks[3], (h,))
        xs, h0 = jax.random.normal(ks[4], (t, b, d)), 0.5 * jax.random.normal(ks[5], (b, h))
        p = 0.1 * jax.random.normal(ks[6], (t, b, h))
        mask = jnp.arange(t)[:, None] < jnp.array([4, 2, 1])[None, :]
        if name == "lstm":
            f = lambda w_ih, bias, w_hh, xs, h0, p: native.lstm_sequence(
                w_ih, bias, w_hh, xs, h0, -h0, mask, (p, -p), gate_slope=1.5
            )
            args = (w_ih, bias, w_hh, xs, h0, p)
        else:
            f = lambda w_ih, bias, w_hh, b_hn, xs, h0, p: native.gru_sequence(
                w_ih, bias, w_hh, b_hn, xs, h0, mask, p, gate_slope=1.5
            )
            args = (w_ih, bias, w_hh, b_hn, xs, h0, p)
        check_grads(f, args, order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-6)


def _lstm_grads(max_threads, x, params):
    """Gradients of a weighted LSTM output sum through ``native.lstm_sequence`` (time-major x)."""
    w_ih, b, w_hh = params
    h0 = jnp.zeros((x.shape[1], w_hh.shape[0]), x.dtype)

    def loss(params, x):
        c, h, ys = native.lstm_sequence(*params, x, h0, h0, max_threads=max_threads)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(c * h)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)


def _lstm_params(key, d, h, k=None):
    lead = () if k is None else (k,)
    ks = jax.random.split(key, 3)
    return (
        0.3 * jax.random.normal(ks[0], (*lead, d, 4 * h)),
        0.1 * jax.random.normal(ks[1], (*lead, 4 * h)),
        0.2 * jax.random.normal(ks[2], (*lead, h, 4 * h)),
    )


def test_same_bits_across_calls_and_thread_counts(built):
    """Large enough for a team (>= 2^17 multiply-adds per step): 1 thread, 2 threads and the whole pool give
    the same bits, and so does every repeated call (each output element has one owner and a fixed order)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 16, 8))
    params = _lstm_params(jax.random.PRNGKey(1), 8, 64)
    one = _lstm_grads(1, x, params)
    for threads in (1, 2, 0, 2, 0):
        jax.tree.map(np.testing.assert_array_equal, one, _lstm_grads(threads, x, params))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_vmapped_seeds_equal_separate_calls(built, name):
    """K = 3 seeds through vmap (whole seeds per thread in one call) equal one call per seed."""
    k, h = 3, 16
    x = jax.random.normal(jax.random.PRNGKey(0), (k, 4, 5, 2))
    if name == "lstm":
        params = _lstm_params(jax.random.PRNGKey(1), 2, h, k)
        grads = lambda p, x: _lstm_grads(0, x, p)
    else:
        ks = jax.random.split(jax.random.PRNGKey(1), 4)
        shapes = [(2, 3 * h), (3 * h,), (h, 3 * h), (h,)]
        params = tuple(0.3 * jax.random.normal(kk, (k, *shape)) for kk, shape in zip(ks, shapes, strict=True))

        def grads(p, x):
            def loss(p, x):
                h_t, ys = native.gru_sequence(*p, x, jnp.zeros((x.shape[1], h)))
                return jnp.sum(jnp.sin(ys)) + jnp.sum(h_t**2)

            return jax.value_and_grad(loss, argnums=(0, 1))(p, x)

    together = jax.jit(jax.vmap(grads))(params, x)
    for s in range(k):
        alone = jax.jit(grads)(jax.tree.map(lambda a, s=s: a[s], params), x[s])
        for u, v in zip(jax.tree.leaves(together), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(u[s], v, rtol=1e-6, atol=1e-6)


def test_native_is_the_cpu_default_and_falls_back_where_it_does_not_apply(built):
    """'auto' runs the compiled kernels on CPU where they build (faster than 'fused' on every bench shape);
    'auto' and 'native' run them in float32/64, else 'fused', and the XLA scan for peepholes; a program that
    XLA partitions over devices traces with them off (its partitioner would not split the custom call)."""
    for name in ("lstm", "gru"):
        cell = rnnlab.get_cell(name, hidden_size=H)
        assert rnnlab.RNN(cell).plan(platform="cpu").backend is Backend.NATIVE
        with dispatch.partitioned_over_devices():
            assert rnnlab.RNN(cell).plan(platform="cpu").backend is Backend.FUSED
            assert rnnlab.RNN(cell, backend="native").plan(platform="cpu").backend is Backend.FUSED
        assert rnnlab.RNN(cell).plan(platform="cpu", dtype=jnp.float64).backend is Backend.NATIVE
        native_rnn = rnnlab.RNN(cell, backend="native")
        assert native_rnn.plan(platform="cpu").backend is Backend.NATIVE
        assert native_rnn.plan(platform="cpu", dtype=jnp.float64).backend is Backend.NATIVE
        assert native_rnn.plan(platform="gpu").backend is Backend.FUSED
        assert native_rnn.plan(platform="cpu", dtype=jnp.bfloat16).backend is Backend.FUSED
    peephole = rnnlab.get_cell("lstm", hidden_size=H, peephole=True)
    assert rnnlab.RNN(peephole, backend="native").plan(platform="cpu").backend is Backend.XLA


def _in_subprocess(code: str, *args: str, env: dict | None = None, timeout: float = 120):
    """``python -c code *args`` from the repository root; the timeout keeps a hang from hanging the suite."""
    env = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


PLAN_CODE = """
import logging, os, sys; logging.basicConfig(level=logging.INFO)
import jax, jax.numpy as jnp, rnnlab
from rnnlab.fused import build
for i, (key, value) in enumerate(zip(sys.argv[1::2], sys.argv[2::2])):  # a way the kernels are missing
    os.environ.pop('RNNLAB_NATIVE', None); os.environ.pop('CXX', None)
    os.environ[key] = value
    build.load.cache_clear()  # a fresh process, as far as the kernels are concerned
    print(f'=== case {i}', file=sys.stderr, flush=True)
    layer = rnnlab.RNN(rnnlab.get_cell('lstm', hidden_size=8))
    x = jnp.ones((2, 3, 4))
    params = layer.init(jax.random.PRNGKey(0), x)
    jax.grad(lambda p: jnp.sum(layer.apply(p, x)[1]))(params)  # runs on whatever the plan picked
    print(layer.plan(platform='cpu').backend, rnnlab.RNN(layer.cell, backend='native').plan().backend)
"""

CASES = {  # how the kernels can be missing -> what the log says
    "switched-off": (("RNNLAB_NATIVE", "0"), "RNNLAB_NATIVE=0"),
    "compiler-fails": (("CXX", "/bin/false"), "CPU kernels unavailable"),
    "no-compiler": (("CXX", "/nonexistent/g++"), "no C++ compiler"),
}


def test_without_the_kernels_the_loop_uses_the_jax_ones(tmp_path):
    """For each way the kernels can be missing (switched off, the compiler fails, no compiler): no error, the
    JAX kernels run (for 'auto' and for backend='native'), the reason is logged, and nothing is built. The
    three cases run in one process, the kernels' load cache cleared between them."""
    args = [part for (key, value), _ in CASES.values() for part in (key, value)]
    proc = _in_subprocess(PLAN_CODE, *args, env={"RNNLAB_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["fused", "fused"] * len(CASES)
    logs = proc.stderr.split("=== case ")[1:]
    assert len(logs) == len(CASES)
    for log, (name, (_, logged)) in zip(logs, CASES.items(), strict=True):
        assert logged in log, (name, log[-1500:])
    assert not list(tmp_path.glob("*.so"))


# K = 8 vmapped seeds (whole seeds per team member) and one problem large enough for a team split over the
# hidden units, in ONE jitted program whose two native calls are independent (XLA may run them at the same
# time on its intra-op pool), forward + backward, 40 calls. faulthandler prints every thread's stack and
# exits if a call hangs (the XLA:CPU deadlock of docs/known-issues was a hang, not a wrong number).
STRESS_CODE = """
import faulthandler, sys
faulthandler.dump_traceback_later(float(sys.argv[1]), exit=True)
import jax, jax.numpy as jnp, numpy as np
from rnnlab.fused import native
assert native.available()
K, T, B, D, H = 8, 12, 5, 6, 32
ks = jax.random.split(jax.random.PRNGKey(0), 8)
seeds = (0.3 * jax.random.normal(ks[0], (K, D, 4 * H)), 0.1 * jax.random.normal(ks[1], (K, 4 * H)),
         0.2 * jax.random.normal(ks[2], (K, H, 4 * H)))
xs = jax.random.normal(ks[3], (K, T, B, D))
big = (0.2 * jax.random.normal(ks[4], (16, 3 * 64)), jnp.zeros(3 * 64),
       0.1 * jax.random.normal(ks[5], (64, 3 * 64)), jnp.zeros(64))
xb = jax.random.normal(ks[6], (T, 24, 16))

def lstm_loss(p, x):
    c, h, ys = native.lstm_sequence(*p, x, jnp.zeros((B, H)), jnp.zeros((B, H)))
    return jnp.sum(jnp.sin(ys)) + jnp.sum(c * h)

def gru_loss(p, x):
    h, ys = native.gru_sequence(*p, x, jnp.zeros((x.shape[1], 64)))
    return jnp.sum(jnp.sin(ys)) + jnp.sum(h)

def both(seeds, xs, big, xb):
    a = jax.vmap(jax.value_and_grad(lstm_loss, argnums=(0, 1)))(seeds, xs)
    b = jax.value_and_grad(gru_loss, argnums=(0, 1))(big, xb)
    return a, b

step = jax.jit(both)
first = jax.tree.map(np.asarray, step(seeds, xs, big, xb))
assert all(np.isfinite(a).all() for a in jax.tree.leaves(first))
for i in range(int(sys.argv[2])):
    again = step(seeds, xs, big, xb)
    jax.tree.map(np.testing.assert_array_equal, first, again)  # bit-identical on every call
print("ok")
"""


def test_stress_vmapped_seeds_and_concurrent_calls_neither_hang_nor_drift(built):
    proc = _in_subprocess(STRESS_CODE, "240", "40", timeout=300, env={"XLA_FLAGS": ""})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


def test_a_step_partitioned_over_devices_splits_its_batch_instead_of_gathering_it(built):
    """``DataParallel`` traces its sharded steps with the custom-call kernels off: XLA's partitioner would
    all-gather the batch and run the kernel on all of it on every device (checked here: with the kernel on,
    the compiled program all-gathers the batch for the custom call; through ``_traced`` there is none)."""
    from jax.sharding import NamedSharding, PartitionSpec

    from rnnlab.training.sharding import DataParallel

    parallel = DataParallel("sharded")
    layer = rnnlab.RNN(rnnlab.get_cell("lstm", hidden_size=H))
    x = jnp.ones((2 * parallel.size, 5, 3))
    params = layer.init(jax.random.PRNGKey(0), x)
    x = jax.device_put(x, NamedSharding(parallel.mesh, PartitionSpec("data")))
    loss = lambda p, x: jnp.sum(layer.apply(p, x)[1] ** 2)
    plain = jax.jit(jax.grad(loss)).lower(params, x).compile().as_text()
    split = jax.jit(parallel._traced(jax.grad(loss))).lower(params, x).compile().as_text()
    assert parallel.size > 1 and "custom-call(" in plain and "all-gather" in plain
    assert "custom-call(" not in split  # the fused kernel's loop, on each device's slice of the batch
    assert jnp.allclose(
        jax.jit(parallel._traced(jax.grad(loss)))(params, x)["params"]["cell"]["recurrent_kernel"],
        jax.grad(loss)(params, x)["params"]["cell"]["recurrent_kernel"],
        atol=1e-5,
    )


def test_the_thread_bound_comes_from_the_call_else_the_environment(monkeypatch):
    monkeypatch.delenv(native.THREADS_ENV, raising=False)
    assert native._threads(0) == 0 and native._threads(3) == 3  # 0: the pool's size
    monkeypatch.setenv(native.THREADS_ENV, "1")
    assert native._threads(0) == 1 and native._threads(3) == 3
    monkeypatch.setenv(native.THREADS_ENV, "two")
    with pytest.warns(UserWarning, match="is not a number of threads"):
        assert native._threads(0) == 0
