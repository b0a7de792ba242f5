"""transformers-mlinter over the package's model files with its default rules, failing on any finding except the rules
that do not apply to a model outside the transformers repository (README "Lint"):

- TRF057 (`@auto_docstring`): auto_docstring builds a model's documentation for the transformers docs site from the
  library's own argument registry and the model's doc page in that repository; ITNet's classes and forwards carry
  hand-written docstrings instead (`help()` shows them), and its inputs (`points`, `point_features`, the layouts) are
  not in that registry.

    python .ci/mlinter.py
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

NOT_APPLICABLE = {"TRF057"}
ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    files = sorted(str(path) for path in (ROOT / "modeling_itnet").glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "mlinter.json"
        command = [
            str(Path(sys.executable).parent / "mlinter"),
            "--no-progress",
            "--no-cache",
            "--output-json",
            str(report),
            *files,
        ]
        subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
        findings = json.loads(report.read_text())["findings"]
    kept = [f for f in findings if f["rule"] not in NOT_APPLICABLE]
    for finding in kept:
        print(f"{finding['path']}:{finding['line']}: {finding['message']}")
    skipped = len(findings) - len(kept)
    print(
        f"mlinter: {len(kept)} finding(s); {skipped} of the rules that do not apply ({', '.join(sorted(NOT_APPLICABLE))})"
    )
    return 1 if kept else 0


if __name__ == "__main__":
    sys.exit(main())
