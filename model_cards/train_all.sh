#!/usr/bin/env bash
# Reproduces the committed run behind every card in model_cards/: trains each checkpoint on CPU with the offline data
# (see examples/offline_data.py), writes it under outputs/<card>/ and copies the card (README.md, written by the
# example) and the run's results beside the other cards. Run from the repository root:
#
#     bash model_cards/train_all.sh            # every card
#     bash model_cards/train_all.sh glue vqa   # some: quickstart glue images clm vqa nlvr2 points
#
# Learning rates: the ones benchmarks/compare_specialized.py's validation search chose for itnet-unified on the task
# (images 1e-2; sentiment 1e-3; VQA, the language model and point clouds 3e-3; NLVR2 3e-4 over its long budget's
# 2,000 steps, where shorter runs stay at chance: benchmarks/diagnose_nlvr2.py).
# Numbers on another machine may differ in the last digits (CPU kernels, thread counts).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=1  # models this small run as fast on one thread, and the numbers do not depend on the core count
COMMON=(--do_train --do_eval --use_cpu --report_to none --save_strategy no --disable_tqdm true --seed 0
        --logging_steps 50 --warmup_steps 20 --lr_scheduler_type cosine --weight_decay 0.01)

card() {  # card <name>: copy the run's card and results into model_cards/<name>/
    mkdir -p "model_cards/$1"
    cp "outputs/$1/README.md" "outputs/$1/all_results.json" "model_cards/$1/"
}

run() {  # run <key> <card name> <script> <args...>
    local key=$1 name=$2 script=$3
    shift 3
    if [ -n "${SELECTED}" ] && [[ " ${SELECTED} " != *" ${key} "* ]]; then return; fi
    local start=${SECONDS}
    "$PYTHON" "examples/${script}" --output_dir "outputs/${name}" "${COMMON[@]}" "$@"
    card "${name}"
    echo "${name}: $((SECONDS - start)) s"
}
SELECTED="$*"

if [ -z "${SELECTED}" ] || [[ " ${SELECTED} " == *" quickstart "* ]]; then
    "$PYTHON" examples/quickstart.py --output_dir outputs/quickstart  # images, text and VQA, a few minutes
    for saved_card in itnet-mnist:itnet-unified-mnist itnet-rotten-tomatoes:itnet-unified-rotten-tomatoes \
                      itnet-easy-vqa:itnet-unified-easy-vqa-quickstart; do
        mkdir -p "model_cards/${saved_card#*:}"
        cp "outputs/quickstart/${saved_card%%:*}/README.md" "outputs/quickstart/${saved_card%%:*}/results.json" \
            "model_cards/${saved_card#*:}/"
    done
    cp outputs/quickstart/kernels.png model_cards/itnet-unified-mnist/  # the three models' kernels and gates
fi
run glue itnet-unified-sst2-rotten-tomatoes run_glue.py --task_name sst2 --dataset_name offline:rotten_tomatoes \
    --max_seq_length 64 --max_steps 500 --per_device_train_batch_size 32 --learning_rate 1e-3
run images itnet-unified-mnist-image-classification run_image_classification.py --dataset_name offline:mnist \
    --max_steps 300 --per_device_train_batch_size 64 --learning_rate 1e-2
run clm itnet-unified-shakespeare-clm run_clm.py --dataset_name offline:shakespeare --block_size 128 \
    --max_eval_samples 100 --max_steps 400 --per_device_train_batch_size 8 --learning_rate 3e-3
run vqa itnet-unified-easy-vqa run_vqa.py --dataset_name offline:easy_vqa --max_eval_samples 1000 \
    --max_steps 300 --per_device_train_batch_size 32 --learning_rate 3e-3
run nlvr2 itnet-unified-nlvr2-easy run_nlvr2.py --dataset_name offline:nlvr2_easy \
    --max_steps 2000 --per_device_train_batch_size 32 --learning_rate 3e-4
run points itnet-unified-point-clouds run_point_cloud.py --dataset_name offline:point_clouds --normalize true \
    --max_steps 300 --per_device_train_batch_size 32 --learning_rate 3e-3
