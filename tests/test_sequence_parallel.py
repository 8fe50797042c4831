"""Sequence parallelism: a linear recurrence with time sharded over 4 fake CPU devices equals the
single-device associative scan and the sequential loop (masked batches, real and complex coefficients, T not
divisible by the device count), and so do its gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    LENGTHS,
    B,
    D,
    H,
    T,
    assert_trees_close,
    fast_jit,
    init_params,
    make_cell,
    rand,
    rand_carry,
    weighted_sum,
    x64,  # noqa: F401  (x64 is an autouse fixture)
)

import rnnlab
from rnnlab.scan import associative_linear_scan, sequence_mask
from rnnlab.scan.parallel import sequence_parallel_linear_scan, time_mesh

LINEAR = ["lru", "mingru"]  # complex and real coefficients


def _coefficients(name, seed=0):
    """``(cell, params, x [B,T,D], xp, a, b [T,B,N], h0 [B,N])`` of a linear cell on random inputs."""
    cell = make_cell(name, H)
    x = rand((B, T, D), seed)
    rnn = rnnlab.RNN(cell, mode="sequential")
    params = init_params(rnn, x, seed=seed)["cell"]
    xp = cell.apply({"params": params}, jnp.swapaxes(x, 0, 1), method=type(cell).project_inputs)
    a, b = cell.apply({"params": params}, xp, method=type(cell).linear_coeffs)
    return cell, params, x, xp, a, b, rand_carry(cell, B, seed + 1)


def _sequential(a, b, h0, mask):
    """The reference: a Python loop over time of h = a h + b, frozen on padded steps."""
    h, out = h0, []
    for t in range(a.shape[0]):
        new = a[t] * h + b[t]
        h = jnp.where(mask[t][:, None], new, h)
        out.append(h)
    return jnp.stack(out)


@pytest.mark.parametrize("name", LINEAR)
def test_equals_the_associative_scan_the_sequential_loop_and_the_rnn(name):
    cell, params, x, xp, a, b, h0 = _coefficients(name)
    lengths = jnp.asarray(LENGTHS)
    mask = sequence_mask(lengths, T).T  # [T, B]
    mesh = time_mesh(4)  # T = 5 over 4 devices: the last chunk is padded
    h = fast_jit(lambda a, b, h0: sequence_parallel_linear_scan(a, b, h0, mask, mesh=mesh))(a, b, h0)
    assert_trees_close(h, associative_linear_scan(a, b, h0, mask))
    assert_trees_close(h, _sequential(a, b, h0, mask))
    # Read out through the cell, it is what RNN's sequential loop outputs on the valid steps.
    y = jnp.swapaxes(cell.apply({"params": params}, h, xp, method=type(cell).readout), 0, 1)
    _, y_rnn = rnnlab.RNN(cell, mode="sequential").apply({"params": {"cell": params}}, x, lengths, h0)
    valid = np.asarray(sequence_mask(lengths, T))
    np.testing.assert_allclose(np.asarray(y)[valid], np.asarray(y_rnn)[valid], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LINEAR)
def test_gradients_equal_the_single_device_scan(name):
    *_, a, b, h0 = _coefficients(name, seed=3)
    mask = sequence_mask(jnp.asarray(LENGTHS), T).T
    probes = jnp.zeros_like(b)
    mesh = time_mesh(4)

    def loss(scan):
        return lambda a, b, h0, p: weighted_sum(scan(a, b, h0, mask, p), seed=5)

    parallel = lambda a, b, h0, m, p: sequence_parallel_linear_scan(a, b, h0, m, p, mesh=mesh)
    got = fast_jit(jax.grad(loss(parallel), argnums=(0, 1, 2, 3)))(a, b, h0, probes)
    want = jax.grad(loss(associative_linear_scan), argnums=(0, 1, 2, 3))(a, b, h0, probes)
    assert_trees_close(got, want)


@pytest.mark.parametrize(
    "inner, mesh_shape", [("sequential", (4,)), ("associative", (2, 2)), ("sequential", (2, 2))]
)
def test_inner_scan_and_a_data_x_time_mesh_change_nothing(inner, mesh_shape):
    *_, a, b, h0 = _coefficients("lru", seed=7)
    a, b = jnp.concatenate([a, a]), jnp.concatenate([b, -b])  # T = 10, and B = 3 over 2 devices is padded
    a, b, h0 = a[:, :2], b[:, :2], h0[:2]  # B = 2 divides the data axis
    names = ("time",) if len(mesh_shape) == 1 else ("data", "time")
    mesh = jax.make_mesh(mesh_shape, names, axis_types=(jax.sharding.AxisType.Auto,) * len(mesh_shape))
    batch_axis = None if len(mesh_shape) == 1 else "data"
    run = lambda a, b, h0: sequence_parallel_linear_scan(
        a, b, h0, mesh=mesh, batch_axis=batch_axis, inner=inner
    )
    assert_trees_close(fast_jit(run)(a, b, h0), associative_linear_scan(a, b, h0))


def test_bad_options_name_the_valid_ones():
    a = b = jnp.ones((4, 1, 1))
    with pytest.raises(ValueError, match="unknown inner scan 'tree'; valid: associative, sequential"):
        sequence_parallel_linear_scan(a, b, b[0], mesh=time_mesh(4), inner="tree")
    with pytest.raises(ValueError, match="no time axis 'seq'"):
        sequence_parallel_linear_scan(a, b, b[0], mesh=time_mesh(4), axis="seq")
