"""rnnlab.analysis.report: a report from fake run directories (no training, no JAX)."""

import json
import os
import pathlib
import re

import numpy as np
import pytest

from rnnlab.analysis import report, report_plots, report_runs, report_tables


def _fake_run(root, name, cell, seeds=(0, 1), final=(0.5, 0.7), rate=0.8, with_gates=True):
    run = os.path.join(root, name)
    os.makedirs(run)
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({"model": {"cell": cell}, "task": {"name": "adding", "params": {"length": 20}}}, f)
    lines = []
    for seed, last in zip(seeds, final, strict=True):
        for step in (0, 10, 20):
            loss = 1.0 if step < 20 else last
            lines.append({"step": step, "seed": seed, "train/loss": loss * 1.1, "train/mse": loss})
            lines.append({"step": step, "seed": seed, "split": "eval", "loss": loss, "mse": loss})
            diag = {
                "step": step,
                "seed": seed,
                "grad_norm_t": (rate ** np.arange(7, -1, -1.0)).tolist(),
                "decay_rate": rate,
                "jac_norm_t": [0.1, "nan", 1.0],
            }
            if with_gates:
                diag["gate_f_saturated"] = 0.1 * step / 20
            lines.append(diag)
    with open(os.path.join(run, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in lines)
        f.write('{"step": 30, "truncated li')  # a killed run's half-written last line
    return run


def test_report_from_fake_runs_references_existing_pngs_and_a_mean_std_table(tmp_path):
    runs = [_fake_run(tmp_path, "lstm_run", "lstm"), _fake_run(tmp_path, "rnn_run", "rnn", with_gates=False)]
    out = tmp_path / "out"
    path = report.main(runs, str(out))
    text = pathlib.Path(path).read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {
        "loss_curves.png",
        "grad_norm_vs_distance.png",
        "jacobian_norm_vs_distance.png",
        "gate_saturation.png",
    } <= set(images)
    for img in images:
        assert (out / img).is_file() and (out / img).read_bytes()[:4] == b"\x89PNG"
    # the eval mse of the two seeds is 0.5 and 0.7: mean 0.6, sample std 0.14
    row = next(line for line in text.splitlines() if line.startswith("| lstm_run"))
    assert "0.6 ± 0.14" in row and "| 2 |" in row
    assert "## Published results" in text
    for cite in ("Arjovsky", "Pascanu", "Tallec", "Le, Jaitly", "Hochreiter"):
        assert cite in text


def test_results_table_groups_by_non_float_columns():
    rows = [{"cell": "lstm", "T": 100, "seed": s, "mse": v} for s, v in enumerate([1.0, 2.0, 3.0])]
    rows += [
        {"cell": "rnn", "T": 100, "seed": 0, "mse": 5.0},
        {"cell": "rnn", "T": 100, "seed": 1, "mse": float("nan")},
    ]
    table = report_tables.results_table(rows).splitlines()
    assert table[0] == "| cell | T | n | mse |"
    assert table[2] == "| lstm | 100 | 3 | 2 ± 1 |"
    assert table[3] == "| rnn | 100 | 2 | 5 (1 non-finite) |"


def test_main_effects_of_a_factorial_grid_average_each_point_over_seeds_first():
    # 2 x 2 grid; point (a=1, b=x) has two seeds (1.0, 3.0 -> 2.0); a NaN seed is left out
    values = {("1", "x"): [1.0, 3.0], ("1", "y"): [4.0], ("2", "x"): [6.0, float("nan")], ("2", "y"): [8.0]}
    rows = [
        {"run": f"a={a},b={b}", "seed": s, "test mse": v}
        for (a, b), vs in values.items()
        for s, v in enumerate(vs)
    ]
    table = report_tables.marginals_table(rows, "test mse").splitlines()
    assert table[2] == "| a | 1 | 2 | 3 ± 1.4 | a=1,b=x (2) |"  # points 2.0 and 4.0
    assert table[3] == "| a | 2 | 2 | 7 ± 1.4 | a=2,b=x (6) |"
    assert table[4] == "| b | x | 2 | 4 ± 2.8 | a=1,b=x (2) |"  # points 2.0 and 6.0
    acc = [{**r, "test accuracy": -r["test mse"]} for r in rows]
    assert (
        report_tables.marginals_table(acc, "test accuracy").splitlines()[2].endswith("| a=1,b=x (-2) |")
    )  # the highest
    assert report_tables.marginals_table([{**r, "run": "lstm"} for r in rows], "test mse") is None
    assert report_tables.marginals_table([{**r, "run": "a=1"} for r in rows], "test mse") is None


def test_reader_is_tolerant_of_missing_files_keys_and_nan_strings(tmp_path):
    run = report_runs.read_run(str(tmp_path / "does_not_exist"))
    assert run.records == [] and run.config == {}
    assert report_runs.to_float("nan") != report_runs.to_float("nan") and report_runs.to_float(True) is None
    rec = {"step": 3, "eval/loss": "inf", "loss": 2.0}
    assert report_runs.metric_value(rec, "loss", "eval") == "inf"
    assert report_runs.metric_value(rec, "loss", "train") == 2.0
    assert report_runs.metric_value({"split": "eval", "loss": 1.0}, "loss", "train") is None
    assert report_plots.plot_loss_curves([run], str(tmp_path / "x.png")) is None
    assert not (tmp_path / "x.png").exists()


def test_grad_norm_plot_fits_the_rate(tmp_path):
    path = report_plots.plot_grad_norm_vs_distance(
        {"a": (0.5 ** np.arange(9, -1, -1.0)).tolist()}, str(tmp_path / "g.png")
    )
    assert os.path.getsize(path) > 1000
    assert report_plots.plot_grad_norm_vs_distance({"zeros": [0.0, 0.0]}, str(tmp_path / "z.png")) is None


@pytest.mark.parametrize("sections", [(), (("Notes", "free text"),)])
def test_write_report_skips_missing_figures(tmp_path, sections):
    sec = report.Section("Figures", "body", [str(tmp_path / "missing.png")])
    text = pathlib.Path(report.write_report(str(tmp_path), sec, *sections, published=False)).read_text()
    assert "missing.png" not in text and "Published results" not in text and "## Figures" in text
