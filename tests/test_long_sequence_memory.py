"""The README's long-sequence memory claim, from XLA's compiled memory plan (deterministic, nothing runs):
an LSTM training step at T = 16,384, B = 16, H = 128 fits in 256 MiB of XLA temp memory with chunked remat,
while the plain scan's plan needs gigabytes (its activations grow with T)."""

import pytest

from rnnlab.scaling.points import Point
from rnnlab.scaling.step import build

MIB = 2**20


@pytest.mark.slow  # ~60 s of compiling; README cites the measured scaling:memory report
def test_chunked_remat_fits_256_mib_where_the_plain_scan_needs_gigabytes():
    cache = {}
    long = {"cell": "lstm", "length": 16384, "batch": 16, "hidden": 128}
    remat = build(Point(backend="remat", **long), cache).memory
    plain = build(Point(backend="xla", **long), cache).memory
    assert remat["temp"] <= 256 * MIB, remat
    assert plain["temp"] >= 1024 * MIB, plain


def test_the_last_output_from_the_carry_equals_the_output_sequence_read_at_each_end():
    """head='last' of a gated cell reads the final (masked) carry: y[b, len_b - 1], 0 for length 0."""
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np

    import rnnlab
    from rnnlab.layers import final_outputs

    lengths = jnp.array([7, 3, 0, 1])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 7, 3)), jnp.float32)
    for name in ("rnn", "lstm", "gru"):
        stack = rnnlab.StackedRNN(functools.partial(rnnlab.get_cell, name, 5), num_layers=2)
        params = stack.init(jax.random.key(0), x, lengths)
        _, y, last = stack.apply(params, x, lengths, return_last=True)
        np.testing.assert_allclose(last, final_outputs(y, lengths), atol=1e-6)
        assert float(jnp.abs(last[2]).max()) == 0.0
