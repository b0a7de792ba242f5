"""`benchmarks/compare_specialized.py`: the `--quick` CI run and the parameter-matching routine."""

import csv
import math
import subprocess
import sys
from pathlib import Path

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_specialized import COLUMNS  # noqa: E402
from specialized_models import PointNet, count_parameters, match_width, within_tolerance  # noqa: E402


def test_match_width_finds_closest_width():
    build = lambda w: nn.Sequential(nn.Linear(10, w), nn.Linear(w, 10))  # 21w + 10 parameters  # noqa: E731
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


def test_quick_run_writes_matched_finite_rows(tmp_path):
    output = tmp_path / "quick"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "compare_specialized.py"), "--quick", "--tasks", "points",
        "--steps", "2", "--seeds", "0", "--output", str(output), "--no-progress",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, timeout=300)
    with open(output.with_suffix(".csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == COLUMNS
    assert [row["model"] for row in rows] == ["ITNet", "PointNet"]
    for row in rows:
        assert abs(int(row["parameters"]) - int(row["itnet_parameters"])) <= 0.1 * int(row["itnet_parameters"])
        assert math.isfinite(float(row["value"])) and 0.0 <= float(row["value"]) <= 1.0
        assert math.isfinite(float(row["final_train_loss"])) and float(row["train_seconds"]) > 0
    assert output.with_suffix(".png").stat().st_size > 0
    assert (tmp_path / "quick_summary.csv").exists() and output.with_suffix(".log").exists()
