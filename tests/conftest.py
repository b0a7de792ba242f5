"""Shared test set-up: the examples folder is importable (offline data adapters, quickstart)."""

import sys
from pathlib import Path


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
