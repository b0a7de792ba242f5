"""`benchmarks/compare_specialized.py`: the `--quick` CI run and the parameter-matching routine."""

import csv
import math
import subprocess
import sys
from pathlib import Path

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_specialized import COLUMNS
from specialized_models import PointNet, count_parameters, match_width, within_tolerance


def test_match_width_finds_closest_width():
    build = lambda w: nn.Sequential(nn.Linear(10, w), nn.Linear(w, 10))  # 21w + 10 parameters
    width, parameters = match_width(build, target=21 * 40 + 10, multiple=4)
    assert (width, parameters) == (40, 850)
    width, parameters = match_width(build, target=21 * 41 + 10, multiple=4)  # between 40 and 44: the closer one
    assert width == 40 and parameters == count_parameters(build(40))
    width, _ = match_width(build, target=21 * 43 + 10, multiple=4)
    assert width == 44
    assert within_tolerance(105, 100) and not within_tolerance(111, 100)


def test_match_width_on_a_baseline():
    target = 50_000
    width, parameters = match_width(lambda w: PointNet(w, 7), target, multiple=2)
    assert within_tolerance(parameters, target, 0.05) and width % 2 == 0


def test_quick_run_chooses_the_learning_rate_on_validation_and_reports_test(tmp_path):
    output = tmp_path / "quick"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "compare_specialized.py"), "--quick", "--tasks", "points",
        "--lr_grid", "1e-3", "1e-2", "--seeds", "0", "1", "--workers", "2", "--output", str(output),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, timeout=600)
    with open(output.with_suffix(".csv")) as handle:
        rows = list(csv.DictReader(handle))
    with open(tmp_path / "quick_lr.csv") as handle:
        search = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == COLUMNS
    assert [(row["model"], row["seed"]) for row in rows] == [("ITNet", "0"), ("ITNet", "1"), ("PointNet", "0"),
                                                             ("PointNet", "1")]  # fmt: skip
    for model in ("ITNet", "PointNet"):
        tried = [r for r in search if r["model"] == model]
        assert sorted(float(r["learning_rate"]) for r in tried) == [1e-3, 1e-2]
        chosen = max(tried, key=lambda r: float(r["validation"]))  # the first of equals, as the run keeps it
        assert [r for r in tried if r["chosen"] == "1"] == [chosen]
        assert {float(r["learning_rate"]) for r in rows if r["model"] == model} == {float(chosen["learning_rate"])}
    for row in rows:
        assert abs(int(row["parameters"]) - int(row["itnet_parameters"])) <= 0.1 * int(row["itnet_parameters"])
        assert 0.0 <= float(row["test"]) <= 1.0 and 0.0 <= float(row["validation"]) <= 1.0
        assert math.isfinite(float(row["final_train_loss"])) and float(row["seconds_per_step"]) > 0
    with open(tmp_path / "quick_curves.csv") as handle:
        curves = list(csv.DictReader(handle))
    assert {int(c["step"]) for c in curves} == set(range(1, 11))  # 10 points of a 10-step run
    with open(tmp_path / "quick_gates.csv") as handle:
        gates = list(csv.DictReader(handle))
    assert {g["family"] for g in gates} == {"low_rank"}  # the preset's content families, on points
    assert all(0.0 <= float(g["gate_mean"]) <= 1.0 for g in gates)
    for suffix in (".png", "_curves.png", "_gates.png"):
        assert (tmp_path / f"quick{suffix}").stat().st_size > 0
    with open(tmp_path / "quick_summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {s["model"] for s in summary} == {"ITNet", "PointNet"} and all(s["seeds"] == "2" for s in summary)


def test_quick_nlvr2_run_trains_itnet_and_vilt_on_image_pairs(tmp_path):
    output = tmp_path / "nlvr2"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "compare_specialized.py"), "--quick", "--tasks", "nlvr2",
        "--lr_grid", "1e-3", "--seeds", "0", "--workers", "1", "--output", str(output),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, timeout=600)
    with open(output.with_suffix(".csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["model"] for row in rows] == ["ITNet", "ViLT"]
    for row in rows:
        assert row["dataset"] == "offline:nlvr2_easy" and 0.0 <= float(row["test"]) <= 1.0
        assert abs(int(row["parameters"]) - int(row["itnet_parameters"])) <= 0.1 * int(row["itnet_parameters"])
