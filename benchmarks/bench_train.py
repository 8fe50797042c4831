"""Training-engine benchmarks (CPU): K seeds in one vmapped program vs K separate runs, and the sharded
step on 1 vs 2 devices. Each function returns a dict of numbers; ``python benchmarks/bench_train.py`` prints
them as JSON.

Steps/s exclude compilation (warm-up steps first). The model is the adding-problem LSTM
(``experiments/adding.py``) unless arguments say otherwise.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _setup(
    seeds, mode="none", length=100, hidden=64, batch_size=64, cell="lstm", backend="auto", seed_loop="vmap"
):
    import jax  # pylint: disable=import-outside-toplevel

    from rnnlab.tasks import get_task  # pylint: disable=import-outside-toplevel
    from rnnlab.training import builders, losses, sharding  # pylint: disable=import-outside-toplevel
    from rnnlab.training.adapters import Adapter  # pylint: disable=import-outside-toplevel
    from rnnlab.training.config import default_config  # pylint: disable=import-outside-toplevel
    from rnnlab.training.loop import stack_seeds  # pylint: disable=import-outside-toplevel
    from rnnlab.training.state import init_state  # pylint: disable=import-outside-toplevel
    from rnnlab.training.steps import make_train_step  # pylint: disable=import-outside-toplevel

    config = default_config()
    config.model.cell, config.model.hidden_size = cell, hidden
    config.model.rnn.backend = backend
    task = get_task("adding", length=length)
    model = builders.build_model(config.model, task.info)
    train_step = make_train_step(
        Adapter(model).forward, losses.get_loss(task.info), config.optim, 1000, seed_loop
    )
    dp = sharding.DataParallel(mode)
    step = dp.compile_train(train_step)
    state = dp.put_state(init_state(model, train_step.tx, task.info, list(seeds)))
    its = [task.iterator("train", batch_size, s) for s in seeds]
    batch = dp.put_batch(stack_seeds([next(it) for it in its]))
    state, _ = step(state, batch)  # compile
    jax.block_until_ready(state)
    return step, state, batch


def _time_steps(step, state, batch, steps):
    import jax  # pylint: disable=import-outside-toplevel

    t0 = time.perf_counter()
    for _ in range(steps):
        state, _ = step(state, batch)
    jax.block_until_ready(state)
    return time.perf_counter() - t0, state  # the input state was donated: callers continue from this one


def bench_seeds(k: int = 8, steps: int = 20, seed_loop: str = "vmap", rounds: int = 5, **model) -> dict:
    """Seed-steps/s of K seeds in one program (``seed_loop`` 'vmap' or 'map', rnnlab.training.steps) vs K
    separate single-seed runs (one after another), in ``rounds`` interleaved rounds (each: ``steps`` steps of
    the K-seed program, then ``steps`` steps of the one-seed program K times); medians over the rounds.

    Returns:
      ``{'k', 'backend', 'seed_loop', 'one_program_seed_steps_per_s', 'separate_seed_steps_per_s',
      'speedup', 'speedup_min', 'speedup_max'}`` (speedup: median separate time / median one-program time;
      min/max: of the per-round ratios).
    """
    step, state, batch = _setup(list(range(k)), seed_loop=seed_loop, **model)
    step1, state1, batch1 = _setup([0], **model)  # the same program serves every seed
    _, state = _time_steps(step, state, batch, 3)  # warm-up: malloc finds its blocks (rnnlab/hostmem.py)
    _, state1 = _time_steps(step1, state1, batch1, 3)
    t_one, t_sep = [], []
    for _ in range(rounds):
        t, state = _time_steps(step, state, batch, steps)
        t_one.append(t)
        total = 0.0
        for _ in range(k):
            t, state1 = _time_steps(step1, state1, batch1, steps)
            total += t
        t_sep.append(total)
    one, sep = statistics.median(t_one), statistics.median(t_sep)
    ratios = [s / o for s, o in zip(t_sep, t_one, strict=True)]
    return {
        "k": k,
        "backend": model.get("backend", "auto"),
        "seed_loop": seed_loop,
        "one_program_seed_steps_per_s": round(k * steps / one, 1),
        "separate_seed_steps_per_s": round(k * steps / sep, 1),
        "speedup": round(sep / one, 3),
        "speedup_min": round(min(ratios), 3),
        "speedup_max": round(max(ratios), 3),
    }


def _sharded_worker(steps: int, batch_size: int) -> dict[str, float]:
    import jax  # pylint: disable=import-outside-toplevel

    step, state, batch = _setup([0], mode="sharded", batch_size=batch_size)
    return {"devices": jax.device_count(), "steps_per_s": steps / _time_steps(step, state, batch, steps)[0]}


def bench_sharded_devices(device_counts=(1, 2), steps: int = 20, batch_size: int = 64) -> dict[str, float]:
    """Steps/s of the sharded train step with 1 and 2 (fake) CPU devices, each in a fresh process.

    Returns:
      ``{'steps_per_s_<n>dev': ..., 'speedup_<n>dev': ... (relative to the first count)}``.
    """
    out = {}
    for n in device_counts:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
        proc = subprocess.run(
            [sys.executable, __file__, "--sharded-worker", str(steps), str(batch_size)],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        out[f"steps_per_s_{n}dev"] = json.loads(proc.stdout.strip().splitlines()[-1])["steps_per_s"]
    first = out[f"steps_per_s_{device_counts[0]}dev"]
    for n in device_counts[1:]:
        out[f"speedup_{n}dev"] = out[f"steps_per_s_{n}dev"] / first
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sharded-worker":
        print(json.dumps(_sharded_worker(int(sys.argv[2]), int(sys.argv[3]))))
        return
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 20
    out = {}
    for seed_loop in ("vmap", "map"):  # the default backend (on CPU: the compiled kernels where they build)
        out[f"seeds_{seed_loop}"] = bench_seeds(steps=steps, seed_loop=seed_loop)
    for seed_loop in ("vmap", "map"):  # the JAX kernels
        out[f"seeds_{seed_loop}_fused"] = bench_seeds(steps=steps, seed_loop=seed_loop, backend="fused")
    out["sharded"] = bench_sharded_devices(steps=steps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
