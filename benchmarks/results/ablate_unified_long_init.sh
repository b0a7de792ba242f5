#!/bin/bash
# The initialisation scale at the long budget, every task the ablation covers, seed 0, validation: itnet-unified
# (std 0.02) against initializer_range 0.2 (diagnose_points.py hypothesis 14), then 0.1 (the middle, `<task>_0.1`),
# each at the two rates around the task's chosen one. A task whose csv exists is skipped: a rerun resumes.
# Run from the repository root: bash benchmarks/results/ablate_unified_long_init.sh
set -e
run() {  # output suffix, variants (comma-separated), task
    out="benchmarks/results/ablate_unified_long_init_$3$1"
    [ -f "$out.csv" ] && return
    case $3 in images) rates="3e-3 1e-2" ;; sentiment) rates="3e-4 1e-3" ;; *) rates="1e-3 3e-3" ;; esac
    python benchmarks/ablate_unified.py --tasks "$3" --variants ${2//,/ } --budget long --lr_grid $rates --output "$out"
}
for task in images sentiment points lm vqa listops; do run "" unified,init=0.2 $task; done
for task in images sentiment points lm vqa listops; do run _0.1 init=0.1 $task; done
