"""Training on two CPU processes (gloo), as a user without GPUs would launch it.

On a CPU-only machine `accelerate launch --cpu --num_processes 2` starts ONE process (accelerate 1.15 takes its
simple launcher for `--cpu`), so these tests launch with `torchrun --standalone --nproc_per_node 2` and
`accelerate launch --multi_gpu --num_processes 2`, which start two; `Trainer` then runs DDP over gloo. Every worker
writes what it saw itself (`RANK`, `WORLD_SIZE`, `torch.distributed`'s world size and backend), and the tests
check that there were two.

What is verified (3 SGD steps of a tiny `ITNetForImageClassification` on real MNIST digits, dropout 0, the same
saved initial weights everywhere):

- data-parallel `Trainer` on 2 processes x batch 4 gives the weights of 1 process x batch 8, to `ATOL` (1e-6; seen:
  ~1e-8), while 1 process x batch 4 ends ~1e-2 away: the check would fail if the world size were silently 1;
- `Trainer` with `fsdp=True` (FSDP2, `ITNetLayer` wrapped) on CPU trains, but as DDP (accelerate enables FSDP only
  for GPU-like devices);
- torch's FSDP2 (`fully_shard`) does shard on CPU over gloo (each rank holds half of the parameters) and gives the
  single-process weights to `ATOL`;
- `accelerate launch --multi_gpu --num_processes 2 examples/run_image_classification.py` trains, evaluates and saves.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from distributed_worker import train
from filelock import FileLock
from itnet_testing import free_port, tiny_builders
from safetensors.torch import load_file

from modeling_itnet import ITNetForImageClassification

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS.parent / "examples"
ATOL = 1e-6  # max |difference| of any weight, float32; observed ~7e-9 (order of the gloo all-reduce vs batch mean)
PER_DEVICE_BATCH, MAX_STEPS = 4, 3

_, build = tiny_builders(num_channels=1, num_labels=10, hidden_dropout_prob=0.0)


def launch_env(**extra) -> dict:
    """The environment of a launch: no distributed variables inherited from the caller, one thread per process."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
        and not key.startswith(("ACCELERATE_", "FSDP_", "PYTEST_"))
    }
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def run_launch(command: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=timeout, cwd=TESTS.parent
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def assert_two_ranks(folder: Path) -> list[dict]:
    records = [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, record in enumerate(records):
        assert record["env_rank"] == str(rank) and record["env_world_size"] == "2", record
        assert record["dist_world_size"] == 2 and record["dist_backend"] == "gloo", record
    assert not (folder / "rank2.json").exists()
    return records


def assert_same_weights(actual: dict, expected: dict, atol: float = ATOL):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=atol, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


def max_difference(a: dict, b: dict) -> float:
    return max((a[name] - b[name]).abs().max().item() for name in b)


def shared_once(tmp_path_factory, name: str, produce) -> Path:
    """`produce(folder)` once per test session, also under pytest-xdist (`pytest -n 2`): the workers share one base
    temporary folder and a lock, so the 2-process launch runs once, not once per worker that gets one of its tests."""
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent
    folder, done = root / f"distributed-{name}", root / f"distributed-{name}.done"
    with FileLock(str(root / f"distributed-{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            produce(folder)
            done.touch()
    return folder


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory) -> Path:
    def produce(folder: Path):
        build(ITNetForImageClassification).save_pretrained(folder)

    return shared_once(tmp_path_factory, "init", produce)


@pytest.fixture(scope="module")
def two_ranks(init_dir, tmp_path_factory) -> Path:
    """One 2-process launch running, in order: Trainer DDP, Trainer with fsdp=True, a loop around FSDP2."""

    def produce(out: Path):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",  # a free port
            str(TESTS / "distributed_worker.py"),
            "--init",
            str(init_dir),
            "--output_dir",
            str(out),
            "--per_device_batch",
            str(PER_DEVICE_BATCH),
            "--max_steps",
            str(MAX_STEPS),
            "--phases",
            "ddp,trainer_fsdp,fsdp2",
        ]
        run_launch(command, launch_env())

    return shared_once(tmp_path_factory, "two-ranks", produce)


ONE_PROCESS_RUNS = {
    "double": {"per_device_batch": 2 * PER_DEVICE_BATCH},
    "sequential_double": {"per_device_batch": 2 * PER_DEVICE_BATCH, "sampling": "sequential"},
    "same_per_device": {"per_device_batch": PER_DEVICE_BATCH},  # the control
}


@pytest.fixture(scope="module")
def one_process(init_dir, tmp_path_factory) -> dict:
    """Single-process references, trained in this process: batch 2B (random and sequential order) and batch B."""

    def produce(out: Path):
        for name, kwargs in ONE_PROCESS_RUNS.items():
            train(str(init_dir), str(out / name), max_steps=MAX_STEPS, **kwargs)

    out = shared_once(tmp_path_factory, "one-process", produce)
    results = {}
    for name in ONE_PROCESS_RUNS:
        record = json.loads((out / name / "rank0.json").read_text())
        assert record["dist_world_size"] == 1 and record["env_world_size"] is None, record
        results[name] = {"record": record, "weights": torch.load(out / name / "weights.pt")}
    return results


def test_ddp_on_two_processes_equals_one_process_with_double_batch(two_ranks, one_process, init_dir):
    ranks = assert_two_ranks(two_ranks / "ddp")
    assert all(r["model_class"] == "DistributedDataParallel" and r["args_world_size"] == 2 for r in ranks)
    # Trainer's sampler is shared, accelerate deals whole per-device batches to ranks in turn: at every step the two
    # ranks together trained on exactly the examples of the single process's batch of 8
    reference = one_process["double"]
    for step in range(MAX_STEPS):
        assert ranks[0]["batches"][step] + ranks[1]["batches"][step] == reference["record"]["batches"][step]
    weights = torch.load(two_ranks / "ddp" / "weights.pt")
    init = load_file(init_dir / "model.safetensors")
    assert max_difference(weights, init) > 1000 * ATOL  # training moved the weights well beyond the tolerance
    assert_same_weights(weights, reference["weights"])
    # the control: one process with the per-device batch alone ends far outside the tolerance
    assert max_difference(one_process["same_per_device"]["weights"], reference["weights"]) > 1000 * ATOL


def test_trainer_fsdp_on_cpu_trains_as_ddp(two_ranks, one_process):
    ranks = assert_two_ranks(two_ranks / "trainer_fsdp")
    for record in ranks:
        # accelerate 1.15 (state.py, AcceleratorState) switches to DistributedType.FSDP only for MULTI_GPU/NPU/XPU/...
        # types, not MULTI_CPU: `fsdp` is ignored without an error. If this changes, update the README.
        assert record["distributed_type"] == "DistributedType.MULTI_CPU", record
        assert record["model_class"] == "DistributedDataParallel", record
    assert_same_weights(torch.load(two_ranks / "trainer_fsdp" / "weights.pt"), one_process["double"]["weights"])


def test_fsdp2_fully_shard_on_gloo_equals_one_process(two_ranks, one_process):
    ranks = assert_two_ranks(two_ranks / "fsdp2")
    for record in ranks:
        assert record["model_class"] == "FSDPITNetForImageClassification" and record["all_dtensor"], record
        assert record["local_numel"] <= record["full_numel"] // 2 + 64, record  # each rank holds its half
    reference = one_process["sequential_double"]
    for step in range(MAX_STEPS):
        assert ranks[0]["batches"][step] + ranks[1]["batches"][step] == reference["record"]["batches"][step]
    assert_same_weights(torch.load(two_ranks / "fsdp2" / "weights.pt"), reference["weights"])


SITECUSTOMIZE = """
import atexit, json, os, sys

def _record_rank():
    torch = sys.modules.get("torch")
    initialized = torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized()
    record = {
        "env_rank": os.environ["RANK"],
        "env_world_size": os.environ.get("WORLD_SIZE"),
        "dist_world_size": torch.distributed.get_world_size() if initialized else None,
        "dist_backend": torch.distributed.get_backend() if initialized else None,
    }
    with open(os.path.join(os.environ["ITNET_RANK_DIR"], "rank" + os.environ["RANK"] + ".json"), "w") as f:
        json.dump(record, f)

if "RANK" in os.environ and "ITNET_RANK_DIR" in os.environ:  # a launched worker, not the launcher
    atexit.register(_record_rank)
"""


def test_accelerate_launch_two_processes_runs_image_classification_example(tmp_path):
    """The user's command, unchanged; a `sitecustomize` on PYTHONPATH makes every worker write its rank on exit."""
    hooks, ranks, out = tmp_path / "hooks", tmp_path / "ranks", tmp_path / "out"
    hooks.mkdir(), ranks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert accelerate, "the `accelerate` command is not installed"
    command = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(EXAMPLES / "run_image_classification.py"),
        "--dataset_name",
        "offline:mnist",
        "--output_dir",
        str(out),
        "--do_train",
        "--do_eval",
        "--max_steps",
        "4",
        "--per_device_train_batch_size",
        "8",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
        "--use_cpu",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
        "--seed",
        "0",
    ]
    pythonpath = os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))
    run_launch(command, launch_env(PYTHONPATH=pythonpath, ITNET_RANK_DIR=str(ranks)))
    for rank in (0, 1):
        record = json.loads((ranks / f"rank{rank}.json").read_text())
        assert record == {"env_rank": str(rank), "env_world_size": "2", "dist_world_size": 2, "dist_backend": "gloo"}
    assert sorted(p.name for p in ranks.iterdir()) == ["rank0.json", "rank1.json"]
    results = json.loads((out / "all_results.json").read_text())
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(results)
    # 4 steps x 2 processes x 8 = 64 examples = the whole training set: one epoch (one process would have seen half)
    assert results["epoch"] == 1.0, results
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
    model = ITNetForImageClassification.from_pretrained(out)
    assert model.config.num_labels == 10 and (out / "preprocessor_config.json").exists()
