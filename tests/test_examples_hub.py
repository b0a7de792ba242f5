"""The examples' Hub path, for real over HTTP: small dataset repos in the Hub's layout (parquet files under the
config's folder and a README whose `configs:` metadata maps splits to files, as `nyu-mll/glue` has them) are served
by the loopback Hub (`hub_server.py`); `run_glue.py`, `run_image_classification.py` and `run_vqa.py` run by the Hub
dataset name, unchanged, with `HF_ENDPOINT` pointing at it, push the trained model back with `--push_to_hub`, and the
pushed repo loads through `pipeline(...)` by its id with the same predictions as the local output folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import LoopbackHub, Repo
from offline_data import EASY_VQA_ANSWERS, load_offline
from test_examples import COMMON, EXAMPLES

STEPS = ["--do_train", "--do_eval", "--max_steps", "3", "--per_device_train_batch_size", "8",
         "--max_train_samples", "32", "--max_eval_samples", "16"]  # fmt: skip


def dataset_repo(hub: LoopbackHub, repo_id: str, splits: dict, config: str, folder: Path):
    """Commit `splits` (`{name: Dataset}`) as `<config>/<split>-00000-of-00001.parquet` with the README `configs:`
    block that maps them, the layout of `nyu-mll/glue`."""
    lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    for split, data in splits.items():
        (folder / config).mkdir(parents=True, exist_ok=True)
        data.to_parquet(str(folder / config / f"{split}-00000-of-00001.parquet"))
        lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (folder / "README.md").write_text("\n".join([*lines, "---", f"# {repo_id} (loopback copy)", ""]))
    hub.repos[f"datasets/{repo_id}"] = Repo()
    hub.repos[f"datasets/{repo_id}"].commit_folder(folder)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub-data")
    with LoopbackHub() as server:
        text = load_offline("rotten_tomatoes")
        dataset_repo(server, "nyu-mll/glue", {s: text[s].select(range(64)) for s in text}, "sst2", root / "glue")
        digits = load_offline("mnist")
        images = {"train": digits["train"].select(range(64)), "validation": digits["test"].select(range(32))}
        dataset_repo(server, "itnet-tests/mnist", images, "default", root / "mnist")
        vqa = load_offline("easy_vqa")
        questions = {s: vqa[s].select(range(48)) for s in ("train", "validation")}
        dataset_repo(server, "itnet-tests/easy-vqa", questions, "default", root / "easy-vqa")
        yield server


def client_env(hub: LoopbackHub, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    return {
        **env,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(home),
        "HF_TOKEN": "loopback",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def run(script: str, hub: LoopbackHub, tmp_path: Path, repo_id: str, *args: str):
    command = [sys.executable, str(EXAMPLES / script), "--output_dir", str(tmp_path / "out"), *COMMON, *STEPS,
               "--push_to_hub", "--hub_model_id", repo_id, *args]  # fmt: skip
    done = subprocess.run(command, env=client_env(hub, tmp_path / "hf"), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    pushed = hub.repos[repo_id].commits[hub.repos[repo_id].resolve("main")]
    assert {"config.json", "model.safetensors", "README.md"} <= set(pushed)


def predictions(hub: LoopbackHub, home: Path, task: str, model: str, call: str) -> list:
    """`pipeline(task, model=model)` applied as `call` in a fresh process (HF_ENDPOINT is read at import)."""
    script = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import modeling_itnet\n"
        "from offline_data import load_offline\n"
        "from transformers import pipeline\n"
        f"pipe = pipeline({task!r}, model={model!r}, device='cpu')\n"
        f"print('RESULT', json.dumps({call}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(EXAMPLES)], env=client_env(hub, home),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    # transformers' pipeline probes for a video processor and, from the image processor's auto_map, prints a
    # remote-code prompt (answered no here, stdin is empty) on the same line: take what follows the marker
    lines = [line.split("RESULT ", 1)[1] for line in done.stdout.splitlines() if "RESULT " in line]
    assert len(lines) == 1, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(lines[0])


def test_run_glue_by_its_hub_name(hub, tmp_path):
    run("run_glue.py", hub, tmp_path, "itnet-tests/itnet-sst2", "--task_name", "sst2")
    assert any(path.startswith("/api/datasets/nyu-mll/glue") for _, path in hub.requests)  # read from the Hub
    call = "pipe(['a warm, funny and beautifully acted film', 'a dull mess'])"
    local = predictions(hub, tmp_path / "hf", "text-classification", str(tmp_path / "out"), call)
    assert predictions(hub, tmp_path / "hf2", "text-classification", "itnet-tests/itnet-sst2", call) == local


def test_run_image_classification_by_its_hub_name(hub, tmp_path):
    run("run_image_classification.py", hub, tmp_path, "itnet-tests/itnet-mnist", "--dataset_name", "itnet-tests/mnist")
    call = "pipe(load_offline('mnist')['test'][0]['image'], top_k=3)"
    local = predictions(hub, tmp_path / "hf", "image-classification", str(tmp_path / "out"), call)
    assert predictions(hub, tmp_path / "hf2", "image-classification", "itnet-tests/itnet-mnist", call) == local


def test_run_vqa_by_its_hub_name(hub, tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(list(EASY_VQA_ANSWERS)))
    run("run_vqa.py", hub, tmp_path, "itnet-tests/itnet-vqa", "--dataset_name", "itnet-tests/easy-vqa",
        "--answers_file", str(answers))  # fmt: skip
    row = "load_offline('easy_vqa')['validation'][0]"
    call = f"pipe(image={row}['image'], question={row}['question'], top_k=3)"
    local = predictions(hub, tmp_path / "hf", "itnet-visual-question-answering", str(tmp_path / "out"), call)
    pushed = predictions(hub, tmp_path / "hf2", "itnet-visual-question-answering", "itnet-tests/itnet-vqa", call)
    assert pushed == local
