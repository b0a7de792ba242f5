#!/usr/bin/env bash
# The kernel-family refactor's speed check: benchmarks/operator_scaling.py before (the commit given, default the
# pre-refactor a86ee28) and after (this checkout), alternated three times in the same minutes so that both see the
# same machine load; writes benchmarks/results/refactor_speed_{before,after}_<round>.csv.
#   bash benchmarks/refactor_speed.sh [commit] [python]
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:-a86ee28}
python=${2:-python}
tree=$(mktemp -d)
git worktree add -q --detach "$tree" "$before"
trap 'git worktree remove --force "$tree"' EXIT
args=(--lengths 1024 4096 16384 --operators spectral spectral-causal low_rank low_rank-causal itnet-mixer --repeats 3)
for round in 1 2 3; do
  (cd "$tree" && PYTHONPATH="$tree" "$python" benchmarks/operator_scaling.py "${args[@]}" \
    --output "$OLDPWD/benchmarks/results/refactor_speed_before_$round")
  PYTHONPATH="$PWD" "$python" benchmarks/operator_scaling.py "${args[@]}" --output "benchmarks/results/refactor_speed_after_$round"
done
