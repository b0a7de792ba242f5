"""`push_to_hub` and `from_pretrained("user/repo")` over real HTTP on 127.0.0.1, with no Hub.

- Push: `hub_server.LoopbackHub`, a small server speaking the Hub's commit API, run in a thread of this process.
- Pull: from that server, and through the PyPI mirror `olah` (a subprocess) in its two roles: serving bare git repos
  from its `mirrors-path` offline (DESIGN.md), and as a caching proxy whose upstream "huggingface.co" is the loopback
  server.

The Hub client reads `HF_ENDPOINT` once, at import (`huggingface_hub.constants.ENDPOINT`, the URL template and trusted
hosts built from it, and transformers' shared `HfApi`), and pytest imported it long before any server existed. So
the client side runs as a user would run it: a fresh Python process (`python tests/test_hub.py <client> <args>`)
started with `HF_ENDPOINT` set to the server, `HF_HOME` in a tmp dir (an empty cache; nothing leaks) and a dummy
`HF_TOKEN`; no module attribute is patched. The `client_*` functions below are those client sides: each asserts
what it sees and returns a JSON result that its test checks against the server's state. Importing transformers
dominates a client's time, so one process runs the three loopback clients (each in its own repos; a failure is
recorded with its traceback for its own test), and one more runs per olah test.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hub_server import LoopbackHub, Repo
from huggingface_hub.errors import EntryNotFoundError, RemoteEntryNotFoundError
from itnet_testing import free_port

TESTS = Path(__file__).resolve().parent
MODEL_REPO, TOKENIZER_REPO, RETRAINED_REPO = "user/itnet-vqa", "user/itnet-tokenizer", "user/itnet-vqa-retrained"
TEXTS = ["what color is the shape?", "is there a circle in the image?"]


# --- the client side: run in a fresh process with HF_ENDPOINT set (see run_client) ---


def _vqa(seed=0):
    """A tiny ITNetForVisualQuestionAnswering (the shipped tokenizer's vocabulary) and its ITNetProcessor."""
    from itnet_testing import tiny_builders
    from transformers import AutoTokenizer

    from modeling_itnet import ITNetForVisualQuestionAnswering, ITNetImageProcessorPil, ITNetProcessor, tokenizer_path

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    _, build = tiny_builders(vocab_size=len(tokenizer), max_position_embeddings=64, num_labels=3)
    processor = ITNetProcessor(ITNetImageProcessorPil(size={"height": 16, "width": 16}), tokenizer)
    return build(ITNetForVisualQuestionAnswering, seed=seed), processor, tokenizer


def _logits(model, processor):
    """The model's logits on fixed images and questions, prepared by `processor`."""
    import numpy as np
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)) for _ in TEXTS]
    with torch.no_grad():
        return model(**processor(images=images, text=TEXTS, return_tensors="pt")).logits


def _pull(repo, model_class=None, **kwargs):
    """Model, processor and tokenizer of `repo` loaded through the Auto classes (the model through `model_class`
    when given), as a user would."""
    from transformers import AutoModelForVisualQuestionAnswering, AutoProcessor, AutoTokenizer

    import modeling_itnet  # noqa: F401  (registers ITNet with the Auto classes)

    model = (model_class or AutoModelForVisualQuestionAnswering).from_pretrained(repo, **kwargs).eval()
    return model, AutoProcessor.from_pretrained(repo, **kwargs), AutoTokenizer.from_pretrained(repo, **kwargs)


def client_push_and_pull():
    import torch
    from transformers import AutoTokenizer

    model, processor, tokenizer = _vqa()
    model_commit = model.push_to_hub(MODEL_REPO).oid
    processor_commit = processor.push_to_hub(MODEL_REPO).oid
    tokenizer.push_to_hub(TOKENIZER_REPO)

    pulled_model, pulled_processor, _ = _pull(MODEL_REPO)
    assert type(pulled_model) is type(model) and type(pulled_processor) is type(processor)
    assert torch.equal(_logits(pulled_model, pulled_processor), _logits(model, processor))
    pulled_tokenizers = [AutoTokenizer.from_pretrained(TOKENIZER_REPO), pulled_processor.tokenizer]
    for loaded in pulled_tokenizers:
        assert type(loaded) is type(tokenizer) and loaded.get_vocab() == tokenizer.get_vocab()
        assert loaded(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]
    return {"model_commit": model_commit, "processor_commit": processor_commit}


def client_two_pushes():
    import torch
    from transformers import AutoModelForVisualQuestionAnswering

    first, processor, _ = _vqa(seed=0)
    second, _, _ = _vqa(seed=1)
    first_sha = first.push_to_hub(RETRAINED_REPO).oid
    processor.push_to_hub(RETRAINED_REPO)
    second_sha = second.push_to_hub(RETRAINED_REPO, commit_message="retrain").oid
    expected_first, expected_second = _logits(first, processor), _logits(second, processor)
    assert not torch.equal(expected_first, expected_second)

    main = _pull(RETRAINED_REPO)
    assert torch.equal(_logits(main[0], main[1]), expected_second)
    old = AutoModelForVisualQuestionAnswering.from_pretrained(RETRAINED_REPO, revision=first_sha)  # no processor yet
    assert torch.equal(_logits(old.eval(), processor), expected_first)
    assert torch.equal(_logits(*_pull(RETRAINED_REPO, revision=second_sha)[:2]), expected_second)
    return {"first": first_sha, "second": second_sha}


def client_pull_from_git_mirror(folders, first_sha):
    """Pull what olah serves from its git mirror; `folders` hold the two commits' files, `first_sha` is the first.

    olah (0.5.4, offline mirror) answers a path missing from the mirrored repo with 401 RepoNotFound instead of 404
    EntryNotFound, and transformers treats that as fatal when it probes optional files: `AutoProcessor` and
    `AutoTokenizer` probe `chat_template.json` and `additional_chat_templates/`, `AutoModel*` probes
    `adapter_config.json` when `peft` is installed. So here the model loads through its class and the processor and
    tokenizer from a `snapshot_download` of the revision; `client_pull_through_proxy` loads all three by repo id."""
    import torch
    from huggingface_hub import snapshot_download
    from transformers import AutoConfig

    from modeling_itnet import ITNetForVisualQuestionAnswering

    expected = [_pull(folder) for folder in folders]
    expected_logits = [_logits(*loaded[:2]) for loaded in expected]
    assert not torch.equal(*expected_logits)
    for revision, version in [(None, 1), ("v1", 0), (first_sha, 0)]:  # main, a tag, a commit sha
        kwargs = {"revision": revision} if revision else {}
        model = ITNetForVisualQuestionAnswering.from_pretrained(MODEL_REPO, **kwargs).eval()
        assert torch.equal(_logits(model, expected[version][1]), expected_logits[version]), revision
    snapshot = snapshot_download(MODEL_REPO, revision="v1")
    assert torch.equal(_logits(*_pull(snapshot)[:2]), expected_logits[0])
    assert _pull(snapshot)[2](TEXTS)["input_ids"] == expected[0][2](TEXTS)["input_ids"]
    return {"missing_repo": _error_of(lambda: AutoConfig.from_pretrained("user/missing"))}


def client_pull_through_proxy(folders, first_sha):
    """Pull model, processor and tokenizer by repo id through olah proxying the loopback Hub (see the test)."""
    import torch
    from huggingface_hub import hf_hub_download
    from transformers import AutoConfig

    expected = [_pull(folder) for folder in folders]
    for revision, version in [(None, 1), (first_sha, 0)]:
        pulled = _pull(MODEL_REPO, **({"revision": revision} if revision else {}))
        assert torch.equal(_logits(*pulled[:2]), _logits(*expected[version][:2])), revision
        assert pulled[2](TEXTS)["input_ids"] == expected[version][2](TEXTS)["input_ids"]
    return {
        "repo": _error_of(lambda: AutoConfig.from_pretrained("user/missing")),
        "file": _error_of(lambda: hf_hub_download(MODEL_REPO, "missing.json")),
        "revision": _error_of(lambda: AutoConfig.from_pretrained(MODEL_REPO, revision="no-such-branch")),
    }


def client_errors():
    """Missing repo, file and revision, straight from huggingface_hub and through transformers."""
    from huggingface_hub import hf_hub_download
    from transformers import AutoConfig, AutoModelForVisualQuestionAnswering

    from modeling_itnet import ITNetConfig

    ITNetConfig(num_labels=3).push_to_hub("user/only-config")  # a repo without weights
    return {
        "repo": _error_of(lambda: hf_hub_download("user/missing", "config.json")),
        "file": _error_of(lambda: hf_hub_download("user/only-readme", "config.json")),
        "revision": _error_of(lambda: hf_hub_download("user/only-readme", "README.md", revision="no-such-branch")),
        "auto_repo": _error_of(lambda: AutoConfig.from_pretrained("user/missing")),
        "auto_file": _error_of(lambda: AutoModelForVisualQuestionAnswering.from_pretrained("user/only-config")),
        "auto_revision": _error_of(lambda: AutoConfig.from_pretrained("user/only-readme", revision="no-such-branch")),
    }


def client_each(names):
    """Run each client of `names` in this process: {name: {"result": ...} or {"traceback": ...}}."""
    import traceback

    outcomes = {}
    for name in names:
        try:
            outcomes[name] = {"result": globals()[name]()}
        except Exception:  # noqa: BLE001 (any client error is reported to the test with its traceback)
            outcomes[name] = {"traceback": traceback.format_exc()}
    return outcomes


def _error_of(call):
    """The class names (the error, then its `__cause__`s) and message of what `call` raises."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 (the test asserts on the error chain, whatever its type)
        chain, cause = [], error
        while cause is not None:
            chain, cause = chain + [type(cause).__name__], cause.__cause__
        return {"chain": chain, "message": str(error)}
    raise AssertionError("no error raised")


def run_client(endpoint, tmp_path, client, *args, timeout=120):
    """Run `client(*args)` in a fresh process whose Hub client points at `endpoint`; return its JSON result."""
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),  # cache, token file and modules under the test's tmp dir
        "HF_TOKEN": "hf_loopback_dummy_token",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_MODULES_CACHE", "TRANSFORMERS_CACHE"):
        env.pop(name, None)
    command = [sys.executable, str(TESTS / "test_hub.py"), client, json.dumps(args)]
    done = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{client} failed:\n{done.stderr[-6000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the tests ---


LOOPBACK_CLIENTS = ["client_push_and_pull", "client_two_pushes", "client_errors"]


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    """The loopback Hub (stopped at the end of the module) and what one client process saw running each of
    `LOOPBACK_CLIENTS` against it; `outcome(name)` is a client's result, or fails the test with its traceback."""
    with LoopbackHub() as hub:
        hub.repos["user/only-readme"] = Repo()  # a repo without config.json, made here, for client_errors
        hub.repos["user/only-readme"].commit("main", [{"key": "file", "value": {"path": "README.md", "content": ""}}])
        outcomes = run_client(hub.url, tmp_path_factory.mktemp("loopback"), "client_each", LOOPBACK_CLIENTS)

        def outcome(name):
            if "traceback" in outcomes[name]:
                pytest.fail(f"{name} failed in the client process:\n{outcomes[name]['traceback']}", pytrace=False)
            return outcomes[name]["result"]

        yield hub, outcome


def test_push_to_hub_and_from_pretrained_model_processor_and_tokenizer(loopback):
    hub, outcome = loopback
    result = outcome("client_push_and_pull")

    repo = hub.repos[MODEL_REPO]
    assert list(repo.commits) == [result["model_commit"], result["processor_commit"]]
    assert repo.branches["main"] == result["processor_commit"]
    model_files, all_files = repo.commits[result["model_commit"]], repo.commits[result["processor_commit"]]
    assert {"config.json", "model.safetensors", "README.md"} <= set(model_files)
    assert {"processor_config.json", "tokenizer.json", "tokenizer_config.json"} <= set(all_files) - set(model_files)
    tokenizer_repo = hub.repos[TOKENIZER_REPO]
    assert "tokenizer.json" in tokenizer_repo.commits[tokenizer_repo.branches["main"]]
    downloaded = {
        path.rsplit("/", 1)[1]
        for method, path in hub.requests
        if method == "GET" and path.startswith(f"/{MODEL_REPO}/resolve/")
    }
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= downloaded


def test_second_push_is_a_new_revision_and_revision_loads_the_first(loopback):
    hub, outcome = loopback
    result = outcome("client_two_pushes")

    repo = hub.repos[RETRAINED_REPO]
    assert len(repo.commits) == 3 and next(iter(repo.commits)) == result["first"]  # model, processor, retrained model
    assert repo.branches["main"] == result["second"] != result["first"]
    assert repo.commits[result["first"]]["model.safetensors"] != repo.commits[result["second"]]["model.safetensors"]
    assert "processor_config.json" not in repo.commits[result["first"]]


def test_missing_repo_file_and_revision_give_the_clients_errors(loopback):
    hub, outcome = loopback
    errors = outcome("client_errors")

    assert errors["repo"]["chain"][0] == "RepositoryNotFoundError"
    message = errors["repo"]["message"]
    assert f"Repository Not Found for url: {hub.url}/user/missing/resolve/main/config.json" in message
    assert errors["file"]["chain"][0] == "RemoteEntryNotFoundError"
    assert issubclass(RemoteEntryNotFoundError, EntryNotFoundError)
    url = f"{hub.url}/user/only-readme/resolve"
    assert f"Entry Not Found for url: {url}/main/config.json" in errors["file"]["message"]
    assert errors["revision"]["chain"][0] == "RevisionNotFoundError"
    assert f"Revision Not Found for url: {url}/no-such-branch/README.md" in errors["revision"]["message"]

    assert errors["auto_repo"]["chain"][:2] == ["OSError", "RepositoryNotFoundError"]
    message = errors["auto_repo"]["message"]
    assert message.startswith("user/missing is not a local folder and is not a valid model identifier")
    assert errors["auto_file"]["chain"][0] == "OSError"
    assert errors["auto_file"]["message"].startswith("user/only-config does not appear to have a file named")
    assert "model.safetensors" in errors["auto_file"]["message"]
    assert errors["auto_revision"]["chain"][:2] == ["OSError", "RevisionNotFoundError"]
    assert errors["auto_revision"]["message"].startswith("no-such-branch is not a valid git identifier")


# --- pull through olah ---


def _git(*args, cwd):
    """git with a fixed identity and dates and no user or system config, so commits are reproducible."""
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("GIT_")},
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@localhost",
        "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@localhost",
        "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    }
    result = subprocess.run(["git", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


@contextlib.contextmanager
def running_olah(folder, **settings):
    """olah on a free port of 127.0.0.1 with `settings` as its `[basic]` TOML (and `offline`), run from `folder`;
    yields its URL once it answers, and stops it on exit."""
    cli = shutil.which("olah-cli") or str(Path(sys.executable).parent / "olah-cli")
    if not Path(cli).exists():
        pytest.skip("olah is not installed (pip install olah)")
    port, offline = free_port(), settings.pop("offline")
    basic = {"host": "127.0.0.1", "port": port, "repos-path": str(folder / "olah-cache"), **settings}
    config = folder / "olah.toml"
    config.write_text(
        "[basic]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in basic.items())
        + f"\n[accessibility]\noffline = {json.dumps(offline)}\n"
    )
    url, output = f"http://127.0.0.1:{port}", folder / "olah.out"
    with open(output, "wb") as log:
        process = subprocess.Popen(
            [cli, "-c", str(config), "--log-path", str(folder / "olah-logs")],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:  # poll until it answers any HTTP request
                try:
                    urllib.request.urlopen(url, timeout=1).close()
                    break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"olah did not start:\n{output.read_text()}")
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Two saved versions (different weights) of a tiny VQA model + processor + tokenizer, and a git repo holding
    them as two commits on main, the first tagged v1: (folders, git work tree, first commit sha)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("versions")
    folders = [root / "v1", root / "v2"]
    for seed, folder in enumerate(folders):
        model, processor, _ = _vqa(seed=seed)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    work = root / "git"
    _git("init", "--quiet", "--initial-branch=main", str(work), cwd=root)
    for number, folder in enumerate(folders):
        shutil.copytree(folder, work, dirs_exist_ok=True)
        # copytree keeps the files' mtimes and overwrites them in place (same inode, same size): git's index could
        # take version 2's weights for version 1's within one second and commit nothing, so every file is hashed anew
        (work / ".git" / "index").unlink(missing_ok=True)
        _git("add", "--all", cwd=work)
        _git("commit", "--quiet", "-m", f"version {number + 1}", cwd=work)
        if number == 0:
            _git("tag", "v1", cwd=work)
    return [str(folder) for folder in folders], work, _git("rev-parse", "v1", cwd=work)


def test_from_pretrained_through_olah_serving_a_git_mirror(two_versions, tmp_path):
    """olah as DESIGN.md sets it up: offline, a bare clone at mirrors/models/user/itnet-vqa."""
    folders, work, first_sha = two_versions
    _git("clone", "--quiet", "--bare", str(work), str(tmp_path / "mirrors" / "models" / MODEL_REPO), cwd=tmp_path)
    with running_olah(tmp_path, **{"mirrors-path": [str(tmp_path / "mirrors")], "offline": True}) as url:
        result = run_client(url, tmp_path, "client_pull_from_git_mirror", folders, first_sha)

    assert result["missing_repo"]["chain"][:2] == ["OSError", "RepositoryNotFoundError"]
    assert result["missing_repo"]["message"].startswith("user/missing is not a local folder")


def test_from_pretrained_through_olah_proxying_the_loopback_hub(two_versions, tmp_path):
    """olah as a caching proxy whose upstream "huggingface.co" is the loopback Hub: Auto classes by repo id, a
    revision, and the upstream's errors passed through to the client."""
    folders, _, _ = two_versions
    with LoopbackHub() as hub:
        hub.repos[MODEL_REPO] = Repo()
        first_sha = hub.repos[MODEL_REPO].commit_folder(folders[0])
        hub.repos[MODEL_REPO].commit_folder(folders[1])
        netloc = hub.url.removeprefix("http://")
        settings = {"hf-scheme": "http", "hf-netloc": netloc, "hf-lfs-netloc": netloc, "offline": False}
        with running_olah(tmp_path, **settings) as url:
            errors = run_client(url, tmp_path, "client_pull_through_proxy", folders, first_sha)
        assert any(path.startswith(f"/{MODEL_REPO}/resolve/") for _, path in hub.requests)  # it went upstream

    assert errors["repo"]["chain"][:2] == ["OSError", "RepositoryNotFoundError"]
    assert errors["repo"]["message"].startswith("user/missing is not a local folder")
    assert errors["file"]["chain"][0] == "RemoteEntryNotFoundError" and "missing.json" in errors["file"]["message"]
    assert errors["revision"]["chain"][:2] == ["OSError", "RevisionNotFoundError"]
    assert errors["revision"]["message"].startswith("no-such-branch is not a valid git identifier")


if __name__ == "__main__":  # the client side of a test: python tests/test_hub.py <client> '<json list of args>'
    print(json.dumps(globals()[sys.argv[1]](*json.loads(sys.argv[2]))))
