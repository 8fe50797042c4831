"""Tiny shared fixtures for the cell, scan and model tests: float64 cells, perturbed parameters, references.

Shape legend: B batch, T time, D input features, H hidden size.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab

# (test id, registry name, options): every registered cell plus the LSTM options that change its step.
CELL_CASES = [
    ("rnn", "rnn", {}),
    ("irnn", "irnn", {}),
    ("lstm", "lstm", {}),
    ("lstm-peephole", "lstm", {"peephole": True}),
    ("lstm-cifg", "lstm", {"cifg": True}),
    ("lstm-chrono", "lstm", {"chrono_tmax": 10.0}),
    ("lstm-slope3", "lstm", {"gate_slope": 3.0}),
    ("gru", "gru", {}),
    ("lru", "lru", {}),
    ("mingru", "mingru", {}),
]
LINEAR_CASES = [c for c in CELL_CASES if c[1] in ("lru", "mingru")]

# Runtime: compiling dominates these tiny tests. NumPy does the bookkeeping (random data and parameters), each
# model call is one jitted program compiled with few optimisations, and tests share the shapes below so that
# eagerly dispatched ops (the Python reference loops) hit JAX's per-op compilation cache.
B, T, D, H = 3, 5, 2, 3
LENGTHS = (T, 2, 0)  # full, partial and empty sequences


def cases(items=CELL_CASES):
    """``pytest.param(name, options)`` for parametrize('name, options', ...)."""
    return [pytest.param(name, opts, id=case_id) for case_id, name, opts in items]


@pytest.fixture(autouse=True)
def x64():
    """float64 for every test in a module that imports this fixture (the flag is restored afterwards)."""
    with jax.enable_x64(True):
        yield


def cpu_auto_backend():
    """What ``backend='auto'`` runs the LSTM and GRU with on CPU: the compiled kernels where they build (here
    and in CI: a C++ compiler is present), else the fused JAX kernel."""
    from rnnlab.fused import native
    from rnnlab.scan import Backend

    return Backend.NATIVE if native.available() else Backend.FUSED


def make_cell(name, hidden=H, **options):
    return rnnlab.get_cell(name, hidden, param_dtype=jnp.float64, **options)


def rand(shape, seed, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape))


def init_params(module, *args, seed=0, noise=True, **kwargs):
    """Parameters for ``module.init(key, *args, **kwargs)``.

    ``noise=True`` (the default): random N(0, 0.5^2) values of the right shapes, found with ``jax.eval_shape``
    (nothing compiles; QR-based orthogonal initialisers are slow to compile). Zero-initialised parameters
    (biases, peepholes) then take part too. ``noise=False``: the module's own initialisers (eagerly: the
    per-op compilations are shared between tests, a jitted init would compile each configuration anew).
    """
    init = lambda key, *a: module.init(key, *a, **kwargs)
    if not noise:
        return init(jax.random.key(seed), *args)["params"]
    shapes = jax.eval_shape(init, jax.random.key(seed), *args)["params"]
    leaves, treedef = jax.tree.flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(treedef, [jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype) for s in leaves])


# XLA's optimisation passes dominate compile time and buy nothing at these sizes.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def fast_jit(fun, **kwargs):
    return jax.jit(fun, compiler_options=FAST_COMPILE, **kwargs)


def call(module, params, *args, **kwargs):
    """``module.apply({'params': params}, *args, **kwargs)``: inside functions that are traced anyway."""
    return module.apply({"params": params}, *args, **kwargs)


def apply(module, params, *args, **kwargs):
    """:func:`call`, jitted at the top level; arguments are arrays (or None), so ``lengths`` are traced and
    the eager-only checks on their values do not run (the error tests use :func:`call`)."""
    return fast_jit(lambda p, a, k: call(module, p, *a, **k))(params, args, kwargs)


def rand_carry(cell, batch, seed):
    """A random non-zero carry for ``batch`` sequences (complex for the LRU)."""
    leaves, treedef = jax.tree.flatten(cell.init_carry(None, (batch,)))
    out = []
    for i, c in enumerate(leaves):
        rng = np.random.default_rng(seed + i)
        r = 0.5 * rng.normal(size=c.shape)
        if jnp.iscomplexobj(c):
            r = r + 0.5j * rng.normal(size=c.shape)
        out.append(jnp.asarray(r, c.dtype))
    return jax.tree.unflatten(treedef, out)


def loop_cell(cell, cell_params, x, carry=None, perturbations=None):
    """The reference time loop: Python ``for`` over ``cell.apply(params, carry, x_t)``; ``x: [B, T, D]``.

    ``perturbations[t]`` (carry-shaped) is added to the carry after step t. Returns ``(carry, y: [B,T,H])``.
    """
    if carry is None:
        carry = cell.init_carry(None, (x.shape[0],))
    ys = []
    for t in range(x.shape[1]):
        carry, y = cell.apply({"params": cell_params}, carry, x[:, t])
        if perturbations is not None:
            carry = jax.tree.map(jnp.add, carry, perturbations[t])
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


def weighted_sum(tree, seed):
    """A scalar that depends on every entry of every leaf (real and imaginary parts) with fixed weights."""
    total = 0.0
    for i, leaf in enumerate(jax.tree.leaves(tree)):
        w = rand(leaf.shape, seed + i)
        total = total + jnp.sum(jnp.real(leaf) * w)
        if jnp.iscomplexobj(leaf):
            total = total + jnp.sum(jnp.imag(leaf) * rand(leaf.shape, seed + 77 + i))
    return total


def assert_trees_close(actual, expected, rtol=1e-10, atol=1e-12):
    a_leaves, a_def = jax.tree.flatten(actual)
    e_leaves, e_def = jax.tree.flatten(expected)
    assert a_def == e_def, f"tree structures differ: {a_def} vs {e_def}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def take(tree, b):
    """Sequence ``b`` of a batch-first pytree, keeping a batch axis of 1."""
    return jax.tree.map(lambda a: a[b : b + 1], tree)


def dot(tree, weights):
    """sum(Re(leaf * w)) over leaves: a scalar loss that weighs every entry (real and imaginary parts)."""
    pairs = zip(jax.tree.leaves(tree), jax.tree.leaves(weights), strict=True)
    return sum(jnp.sum(jnp.real(a * w)) for a, w in pairs)


def assert_masked_equals_alone(module, params, x, lengths, initial_carry, **kwargs):
    """``module(x, lengths, initial_carry) -> (carry, y)`` on the padded batch equals each sequence run alone
    on its valid part: outputs on valid steps, exactly 0 on padded ones, final carry = carry after the last
    valid step, exactly the initial carry for length 0."""
    lengths = tuple(int(n) for n in lengths)

    def batch_and_each_alone(params, x, lengths_arr, initial_carry):
        """The padded batch and every non-empty sequence alone: one program, one compilation (they are
        traced separately, so each alone-run is its own [1, n] loop, as with separate calls)."""
        batch = call(module, params, x, lengths_arr, initial_carry, **kwargs)
        alone = {
            b: call(module, params, x[b : b + 1, :n], None, take(initial_carry, b), **kwargs)
            for b, n in enumerate(lengths)
            if n > 0
        }
        return batch, alone

    (carry, y), alone = fast_jit(batch_and_each_alone)(params, x, jnp.asarray(lengths), initial_carry)
    for b, n in enumerate(lengths):
        assert np.all(np.asarray(y[b, n:]) == 0.0), f"padded outputs of sequence {b} are not exactly 0"
        if n == 0:
            pairs = zip(jax.tree.leaves(take(carry, b)), jax.tree.leaves(take(initial_carry, b)), strict=True)
            for got, want in pairs:
                np.testing.assert_array_equal(got, want)
            continue
        carry_b, y_b = alone[b]
        assert_trees_close(y[b : b + 1, :n], y_b)
        assert_trees_close(take(carry, b), carry_b)
