"""Scaling studies: fitted power laws recover known exponents, crossovers are found where they are, a group
of real training steps is compiled, checked against a memory budget and timed, a sweep runs its device counts
in worker processes and resumes, and the report has its plots, exponents and crossovers."""

import json
import os
import subprocess
import sys

import pytest
from helpers import cpu_auto_backend

from rnnlab import experiment
from rnnlab.scaling import Point, expand, fits, report, run_sweep
from rnnlab.scaling.measure import measure_group
from rnnlab.scaling.points import why_not
from rnnlab.scaling.runner import RECORDS, worker_env

TINY = {"cell": "lstm", "hidden": 4, "batch": 2}


def _record(backend="xla", length=100, hidden=64, batch=8, step_s=None, **extra):
    fields = {**Point(backend=backend, length=length, hidden=hidden, batch=batch).__dict__, **extra}
    return {**fields, "status": "ok", "note": "", "step_s": step_s, **extra}


def test_power_law_recovers_the_exponents_and_r2():
    records = [
        _record(length=t, hidden=h, batch=b, step_s=2e-6 * t * h**2 * b**0.5)
        for t in (100, 1000)
        for h in (32, 64, 128)
        for b in (4, 16)
    ]
    fit = fits.fit_power_law(records)
    assert fit.exponents == pytest.approx({"length": 1.0, "hidden": 2.0, "batch": 0.5})
    assert fit.coefficient == pytest.approx(2e-6) and fit.r2 == pytest.approx(1.0) and fit.n == 12
    # An axis that does not vary is not fitted; too few points give no fit.
    assert set(fits.fit_power_law([r for r in records if r["batch"] == 4]).exponents) == {"length", "hidden"}
    assert fits.fit_power_law(records[:1]) is None


def test_speed_crossover_is_where_the_fast_backend_wins_from_then_on():
    seq = [_record("xla", t, step_s=1e-3 * t) for t in (100, 1000, 10000, 100000)]
    assoc = [
        _record("associative", t, step_s=1e-3 * t * q)
        for t, q in zip((100, 1000, 10000, 100000), (2, 0.9, 1.1, 0.5), strict=True)
    ]
    ratios, at = fits.speed_crossover(seq + assoc, "associative", "xla")
    assert [q for _, q in ratios] == pytest.approx([2, 0.9, 1.1, 0.5]) and at == 100000
    assert fits.speed_crossover(seq + assoc[:1], "associative", "xla")[1] is None


def test_memory_crossover_measured_and_extrapolated():
    mib = 2**20
    plain = [_record("xla", t, temp_bytes=t * mib, argument_bytes=0, output_bytes=0) for t in (64, 256, 1024)]
    lean = [
        _record("remat", t, temp_bytes=8 * t**0.5 * mib, argument_bytes=0, output_bytes=0)
        for t in (64, 256, 1024)
    ]
    m = fits.memory_crossover(plain + lean, budget_bytes=200 * mib)
    assert m.measured == 256  # plain 256 MiB > 200 >= remat 128 MiB
    assert m.plain_limit == pytest.approx(200) and m.lean_limit == pytest.approx(625)
    assert m.plain_fit.exponents["length"] == pytest.approx(1.0) and m.lean_fit.exponents[
        "length"
    ] == pytest.approx(0.5)


def test_data_parallel_efficiency_is_speedup_over_devices():
    one = _record("fused", devices=1, parallel="none", tokens_per_s=100.0)
    four = _record("fused", devices=4, parallel="sharded", tokens_per_s=300.0)
    out = {e["devices"]: e for e in fits.efficiency([one, four])}
    assert out[4]["speedup"] == pytest.approx(3.0) and out[4]["efficiency"] == pytest.approx(0.75)


def test_points_say_why_they_do_not_apply():
    assert "needs a linear cell" in why_not(Point(cell="lstm", backend="associative"), "cpu")
    cpu_auto = cpu_auto_backend().value  # what 'auto' (cuDNN's fallback) runs on CPU
    assert (
        why_not(Point(cell="lstm", backend="cudnn"), "cpu")
        == f"backend 'cudnn' resolves to '{cpu_auto}' on cpu"
    )
    assert "one device" in why_not(Point(devices=2), "cpu")
    assert "does not split" in why_not(Point(backend="native", batch=8, devices=4, parallel="sharded"), "cpu")
    assert "does not split" in why_not(Point(batch=6, devices=4, parallel="sharded"), "cpu")
    assert why_not(Point(cell="mingru", backend="associative"), "cpu") is None
    # Labels are not identity; the remat chunk never exceeds T.
    assert Point(group="a", study="b").key == Point().key
    assert Point(backend="remat", length=50).rnn_options == {
        "backend": "xla",
        "mode": "sequential",
        "remat_chunk": 50,
    }
    with pytest.raises(
        ValueError, match="unknown backend 'pallas'; valid: xla, fused, native, cudnn, associative, remat"
    ):
        Point(backend="pallas")


def test_a_group_is_compiled_budgeted_and_timed():
    points = [
        Point(**TINY, length=4, backend="fused"),
        Point(**TINY, length=4, backend="remat", timed=False),
        Point(**TINY, length=2048, backend="xla"),
        Point(**TINY, length=4, backend="associative"),
    ]
    ok, memory_only, over, na = measure_group(points, rounds=2, budget_bytes=2**19, min_seconds=0.01)
    assert ok["status"] == "ok" and ok["step_s"] > 0 and len(ok["step_s_rounds"]) == 2
    assert ok["tokens_per_s"] == pytest.approx(2 * 4 / ok["step_s"])
    assert ok["flops"] == 6 * (2 * 16 + 4 * 16) * 2 * 4  # 6 x LSTM weights (D=2, H=4) x B T
    assert 0 < ok["floor_pct"] < 100 and ok["matmul_gflops"] > 0 and ok["params"] > 0
    assert (
        memory_only["status"] == "memory_only"
        and memory_only["temp_bytes"] > 0
        and "step_s" not in memory_only
    )
    assert over["status"] == "over_budget" and fits.total_bytes(over) > 2**19 and "step_s" not in over
    assert na["status"] == "n/a" and "linear cell" in na["note"]


def test_a_sweep_runs_device_counts_in_workers_and_resumes(tmp_path):
    points = [Point(**TINY, length=4, backend="fused", devices=2, parallel="sharded", group="g", study="s")]
    points += [Point(**TINY, length=4, backend="fused", devices=2, parallel="pmap", group="g", study="s")]
    kwargs = {"platform": "cpu", "rounds": 1, "min_seconds": 0.01, "log": lambda msg: None}
    records = run_sweep(points, str(tmp_path), **kwargs)
    assert [r["status"] for r in records] == ["ok", "ok"] and all(r["step_s"] > 0 for r in records)
    lines = (tmp_path / RECORDS).read_text().splitlines()
    assert [json.loads(line)["devices"] for line in lines] == [2, 2]
    # Resumed: nothing is measured again (no worker runs), and the labels come from the points asked for.
    again = run_sweep([points[0].__class__(**{**points[0].__dict__, "study": "t"})], str(tmp_path), **kwargs)
    assert again[0]["step_s"] == records[0]["step_s"] and again[0]["study"] == "t"
    assert (tmp_path / RECORDS).read_text().splitlines() == lines


def test_worker_env_fixes_the_device_count():
    env = worker_env(8, "cpu", {"XLA_FLAGS": "--a=1 --xla_force_host_platform_device_count=4"})
    assert (
        env["XLA_FLAGS"] == "--a=1 --xla_force_host_platform_device_count=8" and env["JAX_PLATFORMS"] == "cpu"
    )
    assert worker_env(2, "gpu", {})["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_report_has_plots_exponents_and_crossovers(tmp_path):
    mib = 2**20
    mem = {"argument_bytes": 0, "output_bytes": 0}
    records = [
        *(
            _record("fused", t, step_s=1e-5 * t, temp_bytes=t * mib, study="T", **mem)
            for t in (100, 1000, 10000)
        ),
        *(
            _record("remat", t, step_s=1.2e-5 * t, temp_bytes=t**0.5 * mib, study="T", **mem)
            for t in (100, 1000)
        ),
        *(_record("xla", t, step_s=None, temp_bytes=t * mib, study="T", **mem) for t in (100, 1000)),
        *(
            _record("fused", 100, hidden=h, step_s=1e-3 * (h / 64) ** 2, study="H", temp_bytes=mib, **mem)
            for h in (64, 128)
        ),
        _record("fused", 100, hidden=256, study="H", temp_bytes=600 * mib, **mem),
    ]
    records[-1].update(status="over_budget", note="needs 600 MiB")
    secs = report.sections(records, str(tmp_path), budget_bytes=500 * mib, title="s")
    by_heading = {s.heading: s for s in secs}
    assert set(by_heading) == {"s: T", "s: H", "s: fitted exponents", "s: crossovers"}
    assert os.path.exists(tmp_path / "T.png") and by_heading["s: T"].figures[0][0] == str(tmp_path / "T.png")
    assert "| lstm | fused | 1.00 | 2.00 | — | 1.000 | 5 |" in by_heading["s: fitted exponents"].body
    assert "from T = 1000 on" in by_heading["s: crossovers"].body
    assert "over_budget: needs 600 MiB" in by_heading["s: H"].body


def test_expand_groups_points_that_differ_only_in_backend_and_together_axes():
    points = expand(
        "d",
        TINY,
        {"devices": [2, 4], "parallel": ["sharded", "pmap"]},
        ("xla", "fused"),
        together=("parallel",),
    )
    assert len(points) == 8 and len({p.group for p in points}) == 2 and {p.study for p in points} == {"d"}


@pytest.mark.slow  # ~40 s: a worker process and the quick benchmark in another
def test_device_check_runs_on_cpu(tmp_path):
    script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "device_check.py")
    subprocess.run(
        [sys.executable, script, "--workdir", str(tmp_path), "--smoke"], check=True, capture_output=True
    )
    text = (tmp_path / "device_check.md").read_text()
    assert (
        "| lstm | fused | 8 | 8 | 2 |" in text and "n/a: backend 'cudnn' resolves to 'fused' on cpu" in text
    )
    assert "### rnnlab benchmarks" in text and "rnnlab (fused)" in text


STUDY = """
from rnnlab.scaling import Point

REPORT = "scaling"


def get_config(arg=None):
    return {"rounds": 1, "budget_mb": 0, "min_seconds": 0.01, "timeout_s": 0}


def get_sweep(arg=None):
    tiny = {"cell": "lstm", "hidden": 4, "batch": 2, "length": 4, "group": "g", "study": "T"}
    return [Point(**tiny, backend=b) for b in ("xla", "fused")]
"""


def test_rnnlab_experiment_runs_a_scaling_study(tmp_path):
    path = tmp_path / "study.py"
    path.write_text(STUDY)
    report_path = experiment.run_experiments([str(path)], str(tmp_path / "out"), log=lambda msg: None)
    text = open(report_path).read()
    assert (
        "## study: T" in text and "| lstm | fused | 4 | 4 | 2 |" in text and "Published results" not in text
    )
    assert os.path.exists(tmp_path / "out" / "study" / "records.jsonl")
    with pytest.raises(ValueError, match="scaling studies take no --config.\\* overrides or --seeds"):
        experiment.run_experiments([str(path)], str(tmp_path / "o2"), seeds=[0, 1])


@pytest.mark.parametrize("arg", ["quick", "memory", None])
def test_the_scaling_experiment_file_describes_valid_studies(arg):
    module = experiment.load_module(os.path.join("experiments", "scaling.py"))
    config, points = module.get_config(arg), module.get_sweep(arg)
    assert config["rounds"] >= 3 and all(isinstance(p, Point) for p in points)
    studies = {p.study for p in points}
    if arg != "memory":
        assert {
            "T",
            "T_linear",
            "H",
            "B",
            "layers",
            "seeds",
            "devices",
            "seed_devices",
            "memory_plan",
        } <= studies
    # The README's memory point: LSTM T = 16,384, B = 16, H = 128, plain vs chunked remat (quick: plans only).
    memory = [p for p in points if (p.cell, p.length, p.batch, p.hidden) == ("lstm", 16384, 16, 128)]
    assert {p.backend for p in memory} == {"xla", "remat"}
    assert all(why_not(p, "cpu") is None or p.backend == "cudnn" for p in points if p.devices == 1)


def test_an_unknown_variant_names_the_valid_ones():
    module = experiment.load_module(os.path.join("experiments", "scaling.py"))
    with pytest.raises(ValueError, match="unknown variant 'huge'; valid: quick, memory"):
        module.get_config("huge")
