"""Scaling studies: training-step time and XLA memory against T, H, B, layers, K seeds and devices, per
time-loop backend (xla scan, fused custom VJP, cuDNN, associative for linear cells, chunked remat).

    rnnlab experiment experiments/scaling.py:quick --workdir results/scaling_quick    # <= 10 min, 2 CPU cores
    rnnlab experiment experiments/scaling.py:memory --workdir results/scaling_memory  # T = 16,384 LSTM
    rnnlab experiment experiments/scaling.py --workdir results/scaling                # the full sweep

Each point compiles ONE real training step (adding problem, Adam, global-norm clipping; rnnlab.scaling.step),
reads XLA's memory plan, skips points over ``budget_mb``, and times the rest in interleaved rounds beside a
1024^3 matmul (the matmul-FLOP floor). Device counts run in separate worker processes (fake CPU devices here).
The report (report.md + PNGs): log-log plots, fitted exponents (time ~ T^a H^b B^c per backend, with R²),
the crossovers (associative vs sequential; where plain BPTT stops fitting the budget and chunked remat fits).

Expected on a 2-core CPU: time linear in T and B for every backend (a ~ 1, c <= 1), the fused kernel fastest,
sequential faster than associative at every T, chunked remat at T = 16,384, B = 16, H = 128 within 256 MiB of
XLA temp memory at <= 1.4x the plain scan's time (which needs GBs).
"""

from ml_collections import ConfigDict

from rnnlab.scaling import expand

REPORT = "scaling"
ARGS = ("quick", "memory")  # FILE.py:ARG (rnnlab.experiment); none: the full sweep
GATED = ("xla", "fused", "cudnn", "remat")  # 'cudnn' is recorded as n/a off GPUs
LINEAR = ("xla", "associative")


def get_config(arg: str | None = None) -> ConfigDict:
    c = ConfigDict()
    c.rounds = 5  # interleaved timing rounds per group
    c.min_seconds = 0.3  # timed per point and round
    c.budget_mb = 4096  # points whose XLA memory plan is larger are recorded, not run (0: no budget)
    c.timeout_s = 0  # per worker process (0: none)
    if arg == "quick":
        c.rounds, c.min_seconds, c.budget_mb = 3, 0.1, 256
    elif arg == "memory":
        c.rounds = 3
    elif arg is not None:
        raise ValueError(f"unknown variant {arg!r}; valid: quick, memory, or none (the full sweep)")
    return c


def _memory(lengths, timed_length: int):
    """LSTM H=128 B=16: plain scan vs chunked remat, memory plans over ``lengths``, timed at one T."""
    base = {"cell": "lstm", "hidden": 128, "batch": 16}
    plans = [t for t in lengths if t != timed_length]
    return expand("memory_plan", base, {"length": plans}, ("xla", "remat"), timed=False) + expand(
        "memory", base, {"length": [timed_length]}, ("xla", "remat")
    )


def _devices(base, counts, seeds: int):
    """Data parallelism (fused LSTM): the batch split over n devices (sharded, pmap) against one device, and
    K seeds split over the devices (parallel='seeds') against the same K seeds replicated (batch split)."""
    one = {"devices": [1], "parallel": ["none"]}
    return [
        *expand("devices", base, one, ("fused",)),
        *expand(
            "devices",
            base,
            {"devices": counts, "parallel": ["sharded", "pmap"]},
            ("fused",),
            together=("parallel",),
        ),
        *expand("seed_devices", {**base, "seeds": seeds}, one, ("fused",)),
        *expand(
            "seed_devices",
            {**base, "seeds": seeds},
            {"devices": counts, "parallel": ["seeds", "sharded"]},
            ("fused",),
            together=("parallel",),
        ),
    ]


def _quick():
    small = {"cell": "lstm", "hidden": 64, "batch": 8}
    mid = {**small, "length": 200}
    return [
        *expand("T", small, {"length": [100, 400, 1600]}, ("xla", "fused")),
        *expand("T", small, {"length": [1600]}, ("remat",)),
        *expand("T_linear", {**small, "cell": "mingru"}, {"length": [100, 1600]}, LINEAR),
        *expand("H", mid, {"hidden": [32, 128]}, ("xla", "fused")),
        *expand("B", mid, {"batch": [4, 32]}, ("xla", "fused")),
        *expand("layers", mid, {"layers": [1, 2]}, ("fused",)),
        *expand("seeds", mid, {"seeds": [1, 4]}, ("fused",)),
        *_devices({**mid, "batch": 32}, [4], seeds=4),
        *expand(
            "memory_plan",
            {"cell": "lstm", "hidden": 128, "batch": 16},
            {"length": [1024, 16384]},
            ("xla", "remat"),
            timed=False,
        ),
    ]


def _full():
    base = {"cell": "lstm", "hidden": 128, "batch": 16}
    dp = {**base, "length": 1000, "batch": 64}
    return [
        *expand("T", base, {"length": [100, 300, 1000, 3000, 10000]}, GATED),
        *expand("T_linear", {**base, "cell": "mingru"}, {"length": [100, 1000, 10000]}, LINEAR),
        *expand("T_linear", {**base, "cell": "lru"}, {"length": [100, 1000, 10000]}, LINEAR),
        *expand("H", {**base, "length": 1000}, {"hidden": [64, 256, 512, 1024]}, GATED),
        *expand("B", {**base, "length": 1000}, {"batch": [4, 64, 256]}, GATED),
        *expand("layers", {**base, "length": 1000}, {"layers": [1, 2, 4]}, ("fused",)),
        *expand("seeds", {**base, "length": 1000}, {"seeds": [1, 2, 4, 8]}, ("fused",)),
        *_devices(dp, [2, 4, 8], seeds=8),
        *_memory([1024, 4096, 16384, 65536], 16384),
    ]


def get_sweep(arg: str | None = None):
    if arg == "quick":
        return _quick()
    if arg == "memory":
        return _memory([1024, 4096, 16384, 32768, 65536], 16384)
    return _full()
