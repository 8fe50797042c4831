"""One command for a machine with an accelerator (<= 10 minutes): the LSTM training step per time-loop backend
(xla scan vs fused custom VJP vs cuDNN), rnnlab's training step on the accelerator vs on the CPU, the quick
benchmark (``benchmarks/run.py --quick``) and the quick scaling sweep (``experiments/scaling.py:quick``),
written as one Markdown file.

    python benchmarks/device_check.py --workdir results/device_check          # -> device_check.md there
    python benchmarks/device_check.py --workdir /tmp/dc --smoke                # tiny shapes (the test)

Without an accelerator it runs everything on the CPU (cuDNN rows are then 'n/a', the CPU comparison is left
out). Every step is the real training step of ``rnnlab.scaling.step`` (adding problem, Adam); timings are
medians of interleaved rounds; "% floor" is the matmul-FLOP floor at the 1024^3 matmul rate of the same run.
"""

from __future__ import annotations

import argparse
import os
import platform as host
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402  (after the path set-up)

from rnnlab import experiment  # noqa: E402
from rnnlab.analysis.report import write_report  # noqa: E402
from rnnlab.scaling import expand, report, run_study, run_sweep  # noqa: E402
from rnnlab.scan import default_platform  # noqa: E402

# (B, T, H) of the backend table: a short and a long sequence, a small and a large hidden size.
SHAPES = ((16, 1000, 128), (64, 1000, 256), (16, 4096, 128))
SMOKE_SHAPES = ((2, 8, 8),)
BACKENDS = ("xla", "fused", "cudnn")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="records, plots and device_check.md go here")
    p.add_argument(
        "--smoke", action="store_true", help="tiny shapes, one round, no sweep (a test of the script)"
    )
    p.add_argument("--skip-bench", action="store_true", help="leave out benchmarks/run.py --quick")
    return p.parse_args(argv)


def backend_points(shapes, study: str):
    """The LSTM at each (B, T, H) with every backend; one interleaved group per shape."""
    return [
        p
        for b, t, h in shapes
        for p in expand(study, {"cell": "lstm"}, {"batch": [b], "length": [t], "hidden": [h]}, BACKENDS)
    ]


def bench(smoke: bool) -> str:
    """``benchmarks/run.py --quick`` (its Markdown), in a fresh process."""
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick", "--no-torch"]
    if smoke:
        cmd += ["--shapes", "2,8,2,8", "--rounds", "1", "--cells", "lstm", "--skip-sections"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode:
        return f"_benchmarks/run.py failed (exit {proc.returncode}): {proc.stderr[-500:]}_"
    return re.sub(r"^#{1,2} ", "### ", proc.stdout, flags=re.M)  # its headings under this section


def versus(accel: list[dict], cpu: list[dict], name: str) -> str:
    """Step time on the accelerator vs the CPU, point by point."""
    rows = [f"| B | T | H | backend | {name} ms | CPU ms | speed-up |", "|---:|---:|---:|---|---:|---:|---:|"]
    for a, c in zip(accel, cpu, strict=True):
        if a.get("step_s") and c.get("step_s"):
            rows.append(
                f"| {a['batch']} | {a['length']} | {a['hidden']} | {a['backend']} | {1e3 * a['step_s']:.3g} "
                f"| {1e3 * c['step_s']:.3g} | ×{c['step_s'] / a['step_s']:.1f} |"
            )
    return "\n".join(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    accel = default_platform()
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    rounds = 1 if args.smoke else 3
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    kw = {"rounds": rounds, "min_seconds": 0.05 if args.smoke else 0.2, "log": log}
    points = backend_points(shapes, "backends")
    on_accel = run_sweep(points, os.path.join(args.workdir, accel), platform=accel, **kw)
    sections = [("LSTM training step per backend", report.table(on_accel))]
    if accel != "cpu":
        fused = [p for p in points if p.backend in ("xla", "fused")]
        on_cpu = run_sweep(fused, os.path.join(args.workdir, "cpu"), platform="cpu", **kw)
        accel_fused = [r for r in on_accel if r["backend"] in ("xla", "fused")]
        sections.append((f"rnnlab's training step: {accel} vs CPU", versus(accel_fused, on_cpu, accel)))
    if not args.smoke:
        spec = os.path.join(ROOT, "experiments", "scaling.py:quick")
        path, arg = experiment.split_spec(spec)
        module = experiment.load_module(path)
        sweep_dir = os.path.join(args.workdir, "scaling_quick")
        sections += run_study(
            module.get_config(arg), module.get_sweep(arg), sweep_dir, title="quick sweep", log=log
        )
    if not args.skip_bench:
        sections.append(("benchmarks/run.py --quick", bench(args.smoke)))
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    intro = (
        f"{accel}: {jax.device_count()} × {devices}; host {host.processor() or host.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}. "
        f"Wall time {(time.perf_counter() - start) / 60:.1f} min."
    )
    path = write_report(args.workdir, *sections, title="rnnlab device check", intro=intro, published=False)
    os.replace(path, os.path.join(args.workdir, "device_check.md"))
    print(os.path.join(args.workdir, "device_check.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
