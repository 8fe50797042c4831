"""`make bench`: training-step throughput of rnnlab vs Flax vs PyTorch, then the other benchmark sections.

    python benchmarks/run.py                        # 4 shapes x (LSTM, GRU), 5 interleaved rounds
    python benchmarks/run.py --quick                # one tiny shape, 2 rounds (smoke test)
    python benchmarks/run.py --shapes 32,256,32,128 --rounds 3

Prints Markdown (paste it into the README). Sections from ``bench_train.py`` (K seeds via vmap, sharded step)
and ``bench_loader.py`` (input pipeline) are run when those modules import, and skipped with a note otherwise.
Timings are medians of interleaved rounds; on a shared machine expect +-15% between runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _shape(text: str) -> tuple[int, int, int, int]:
    try:
        b, t, d, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is B,T,D,H (four integers), got {text!r}") from None
    return b, t, d, h


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one small shape, 2 rounds (smoke test)")
    p.add_argument("--shapes", type=_shape, nargs="+", help="B,T,D,H shapes (default: the 4 README shapes)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per (cell, shape); medians are reported")
    p.add_argument("--cells", nargs="+", choices=("lstm", "gru"), default=("lstm", "gru"))
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    p.add_argument(
        "--skip-sections", action="store_true", help="only the RNN table (no train/loader sections)"
    )
    return p.parse_args(argv)


def _import_section(title: str, module_name: str):
    """Print the section title; import ``benchmarks/<module_name>.py`` or print why it is skipped."""
    print(f"\n## {title}\n")
    try:
        return importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure only skips the section
        print(f"_skipped: benchmarks/{module_name}.py not importable ({type(e).__name__}: {e})_")
        return None


def _call(fn, *args, **kwargs):
    """``fn(...)``, or None after printing a note: a broken section must not hide the others."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        print(f"_{getattr(fn, '__name__', fn)} failed: {type(e).__name__}: {e}_")
        return None


def _dict_table(results: dict[str, dict]) -> str:
    lines = ["| benchmark | metric | value |", "|---|---|---:|"]
    for name, metrics in results.items():
        for key, value in metrics.items():
            lines.append(
                f"| {name} | {key} | {value:.3g} |"
                if isinstance(value, float)
                else f"| {name} | {key} | {value} |"
            )
    return "\n".join(lines)


def train_section(quick: bool):
    """K seeds in one program (vmap or lax.map) vs separate runs, sharded step on 1 vs 2 devices
    (``bench_train.py``).

    Runs in a fresh process: in the process that has run PyTorch's benchmarks, the jitted train step was seen
    to hang in ``block_until_ready`` (two threading runtimes in one process)."""
    print("\n## Training engine: K seeds in one program, sharded step\n")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_train.py")
    steps = 3 if quick else 20
    try:
        proc = subprocess.run(
            [sys.executable, script, "--steps", str(steps)],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as e:
        print(f"_skipped: benchmarks/bench_train.py failed ({type(e).__name__}: {str(e)[:300]})_")
        return
    names = {
        "seeds_vmap": "K=8 seeds: vmap vs separate runs (default backend)",
        "seeds_map": "K=8 seeds: lax.map vs separate runs (default backend; default seed_loop on CPU)",
        "seeds_vmap_fused": "K=8 seeds: vmap vs separate runs (backend='fused')",
        "seeds_map_fused": "K=8 seeds: lax.map vs separate runs (backend='fused')",
        "sharded": "sharded step: 1 vs 2 devices",
    }
    print(_dict_table({names.get(k, k): v for k, v in results.items() if v}))


def loader_section(quick: bool, rows: list[dict]):
    """Input-pipeline batches/s beside the LSTM training step at the same B, T (``bench_loader.py``)."""
    module = _import_section("Input pipeline", "bench_loader")
    if module is None:
        return
    if not quick and hasattr(module, "main"):
        _call(module.main)
    fn = getattr(module, "loader_batches_per_second", None)
    if fn is None:
        return
    b, t = 64, 1000
    lbs = _call(fn, b, t)
    if lbs is None:
        return
    train = [r for r in rows if r["cell"] == "lstm" and r["shape"][:2] == (b, t)]
    best = min(train, key=lambda r: r["seconds"], default=None)
    beside = (
        f" vs LSTM training {1 / best['seconds']:.2f} steps/s ({best['impl']}, same B, T)" if best else ""
    )
    print(f"\nAdding-task loader, B={b}, T={t}: {lbs:.1f} batches/s{beside}.")


def main(argv=None) -> int:
    args = parse_args(argv)
    import bench_rnn
    import jax

    shapes = args.shapes or (bench_rnn.QUICK_SHAPES if args.quick else bench_rnn.SHAPES)
    rounds = args.rounds or (2 if args.quick else 5)
    use_torch = bench_rnn.torch_available() and not args.no_torch
    if args.no_torch:
        torch_note = ", PyTorch left out (--no-torch)"
    elif use_torch:
        import torch

        torch_note = f", torch {torch.__version__} ({os.cpu_count()} threads)"
    else:
        torch_note = ", torch not installed: PyTorch rows skipped (`pip install -e '.[bench]'`)"
    print("# rnnlab benchmarks\n")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__} "
        f"({jax.default_backend()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '') or 'default'}){torch_note}."
    )
    print(
        f"Training step = forward + gradients w.r.t. all parameters and the input; medians of {rounds} "
        "interleaved rounds.\n"
    )

    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    rows, rate = bench_rnn.measure(shapes, rounds, tuple(args.cells), log=log, use_torch=use_torch)
    print(f"Matmul rate (1024^3 f32, JAX, same rounds): {rate / 1e9:.1f} GFLOP/s.\n")
    print(bench_rnn.markdown_table(rows, rate))
    sys.stdout.flush()

    if args.skip_sections:
        return 0
    train_section(args.quick)
    loader_section(args.quick, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
