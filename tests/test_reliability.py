"""Reliability: no program rnnlab builds may hang (docs/known-issues/batched-lapack-deadlock.md).

The stress tests run in a subprocess with XLA's default optimisation level (as users run it) under a timeout,
so a deadlock fails the test instead of hanging the suite.
"""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STRESS = textwrap.dedent("""
    import faulthandler
    faulthandler.dump_traceback_later(100, exit=True)  # a hang prints every thread's stack and fails
    import jax, numpy as np
    from rnnlab.analysis import diagnostics
    from rnnlab.models import SequenceModel
    from rnnlab.tasks import get_task
    from rnnlab.training import losses, optim
    from rnnlab.training.config import default_config
    from rnnlab.training.state import example_args, make_init, seed_keys

    K, CALLS = 8, 20
    task = get_task("adding", length=12, num_eval=16)
    tx = optim.make_optimizer(default_config().optim, 10)
    for cell in ("lstm", "gru"):
        model = SequenceModel(cell=cell, hidden_size=64, num_outputs=1, num_layers=2)
        init = make_init(model, tx, example_args(task.info))
        for i in range(CALLS):
            state = init(seed_keys(range(i, i + K)))
            jax.block_until_ready(state)
    batch = next(task.iterator("train", 8, 0))
    recorder = diagnostics.make_recorder(model, diagnostics.model_loss_fn(model, losses.get_loss(task.info)))
    for i in range(CALLS):
        for k in range(K):
            out = recorder(jax.tree.map(lambda x: x[k], state.params), batch)
    assert np.isfinite(out["sigma_max"]) and len(out["jac_sigma_max_t"]) == 12
    print("ok")
""")


def test_vmapped_init_and_diagnostics_at_k8_never_hang():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # XLA's default optimisation level
    out = subprocess.run(
        [sys.executable, "-c", STRESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=150
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
