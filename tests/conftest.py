"""Shared test set-up: the examples folder is importable (offline data adapters, quickstart), and under
pytest-xdist each worker takes its share of the CPU cores (torch would otherwise start one thread per core in every
worker and oversubscribe the machine)."""

import os
import sys
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
