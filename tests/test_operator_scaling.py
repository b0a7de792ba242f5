"""`benchmarks/operator_scaling.py` runs end to end at small lengths (its figures are not checked here: speed belongs
to the benchmark, not to tests), under glibc's default malloc and under a raised mmap threshold."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPERATORS = [
    "fft-conv",
    "projections",
    "spectral-transform",
    "spectral",
    "spectral-causal",
    "low_rank",
    "low_rank-causal",
    "itnet-mixer",
    "sdpa",
]


@pytest.mark.parametrize("threshold", [0, 1 << 30])
def test_operator_scaling_writes_every_operator_and_length(tmp_path, threshold):
    output = tmp_path / "scaling"
    command = [
        sys.executable,
        "benchmarks/operator_scaling.py",
        "--lengths",
        "33",
        "64",
        "--width",
        "16",
        "--heads",
        "2",
        "--repeats",
        "1",
        "--output",
        str(output),
        "--malloc_mmap_threshold",
        str(threshold),
    ]
    run = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    expected = f"MALLOC_MMAP_THRESHOLD_={threshold}" if threshold else "glibc default"
    assert f"malloc: {expected}" in run.stdout
    with open(output.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert [(r["operator"], int(r["length"])) for r in rows] == [(o, n) for o in OPERATORS for n in (33, 64)]
    assert all(math.isfinite(float(r["seconds"])) and float(r["seconds"]) > 0 for r in rows)
    assert output.with_suffix(".png").stat().st_size > 10_000
