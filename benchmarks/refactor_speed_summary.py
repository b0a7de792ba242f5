"""Summarises `refactor_speed.sh`: per operator and length, the best of the three rounds before and after the
refactor (seconds, forward + backward) and their ratio. Writes `benchmarks/results/refactor_speed.csv`.

    python benchmarks/refactor_speed_summary.py
"""

import csv
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main():
    best = defaultdict(lambda: float("inf"))
    for phase in ("before", "after"):
        for path in sorted(RESULTS.glob(f"refactor_speed_{phase}_*.csv")):
            for row in csv.DictReader(path.open()):
                key = (row["operator"], int(row["length"]), phase)
                best[key] = min(best[key], float(row["seconds"]))
    rows = []
    for operator, length in sorted({(o, n) for o, n, _ in best}):
        before, after = best[(operator, length, "before")], best[(operator, length, "after")]
        rows.append({"operator": operator, "length": length, "before_s": f"{before:.4f}", "after_s": f"{after:.4f}",
                     "after_over_before": f"{after / before:.3f}"})  # fmt: skip
        print(f"{operator:16s} {length:6d}  before {before:.4f} s  after {after:.4f} s  ratio {after / before:.3f}")
    with (RESULTS / "refactor_speed.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
