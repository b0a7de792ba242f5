"""Remote code: a folder written by `save_pretrained` loads with `trust_remote_code=True` in a virtual environment
where `modeling_itnet` is NOT installed, with outputs identical to the package's.

The environment is a real venv (`python -m venv --without-pip`) whose site-packages links every distribution of this
one except `modeling_itnet`; the test checks that `import modeling_itnet` fails there before loading anything.

Across transformers versions: with `ITNET_CROSS_VENV` naming another virtual environment (CI sets it to the venv of
the other end of the supported range), the same folders load in an isolated environment made from that venv's
site-packages, under its transformers, with identical logits and tokens. CI runs this at both ends, so both
directions (saved under the oldest, loaded under the newest, and back) are checked.
"""

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import transformers
from itnet_testing import HEAD_CASES, tiny_builders
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from PIL import Image
from transformers import AutoTokenizer

import modeling_itnet
from modeling_itnet import (
    AUTO_CLASSES,
    ITNetConfig,
    ITNetForImageClassification,
    ITNetImageProcessorPil,
    ITNetProcessor,
)
from modeling_itnet.compat_itnet import TESTED_TRANSFORMERS

_, build = tiny_builders(max_position_embeddings=64, num_labels=3)

# how the isolated environment loads each head of HEAD_CASES (the two without a transformers Auto class by name)
LOADERS = {
    "model-text": "AutoModel",
    "model-image": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "image-classification": "AutoModelForImageClassification",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "visual-question-answering": "AutoModelForVisualQuestionAnswering",
    "images-and-text": "heads_itnet.ITNetForImagesAndTextClassification",
    "point-cloud": "heads_itnet.ITNetForPointCloudClassification",
}


LOADER = textwrap.dedent(
    """
    import importlib.util, json, sys
    import torch, transformers
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    assert importlib.util.find_spec("modeling_itnet") is None, "modeling_itnet is importable"
    root, heads = sys.argv[1], json.loads(sys.argv[2])
    results = {"transformers": transformers.__version__}
    for name, (loader, key) in heads.items():
        path = f"{root}/{name}"
        if loader.startswith("Auto"):
            model = getattr(transformers, loader).from_pretrained(path, trust_remote_code=True)
        else:
            model = get_class_from_dynamic_module(loader, path).from_pretrained(path)
        inputs = torch.load(f"{path}/inputs.pt")
        with torch.no_grad():
            outputs = model(**inputs)
        results[name] = outputs[key]
        results[name + ":module"] = type(model).__module__
        if name == "causal-lm":
            prompt = inputs["input_ids"][:1, :4]
            results["generated"] = model.generate(prompt, max_new_tokens=6, do_sample=False)
        if name == "sequence-classification":  # a head's folder names every other head: load the base model
            base = transformers.AutoModel.from_pretrained(path, trust_remote_code=True)
            results["base_from_sequence"] = type(base).__name__

    processor = transformers.AutoProcessor.from_pretrained(f"{root}/processor", trust_remote_code=True)
    image_processor = transformers.AutoImageProcessor.from_pretrained(f"{root}/processor", trust_remote_code=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(f"{root}/processor")
    images = torch.load(f"{root}/processor/images.pt", weights_only=False)  # PIL images
    results["processor"] = dict(processor(images=images, text=["what shape is it?", "a red circle"], padding=True,
                                          return_tensors="pt"))
    results["processor:class"] = type(processor).__name__ + "/" + type(processor.image_processor).__name__
    results["image_processor"] = image_processor(images, return_tensors="pt")["pixel_values"]
    results["tokenizer"] = tokenizer("a red circle")["input_ids"]
    torch.save(results, f"{root}/results.pt")
    """
)


def make_isolated_python(venv: Path, source: Path) -> Path:
    """A venv at `venv` linking the site-packages `source` minus `modeling_itnet` (its code, dist-info, editable
    hooks); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for entry in source.iterdir():
        if "modeling_itnet" not in entry.name and not (target / entry.name).exists():
            (target / entry.name).symlink_to(entry)
    return python


@pytest.fixture(scope="module")
def isolated_python(tmp_path_factory) -> Path:
    """This environment's site-packages, without `modeling_itnet`."""
    venv = tmp_path_factory.mktemp("venv-without-modeling-itnet")
    return make_isolated_python(venv, Path(sysconfig.get_paths()["purelib"]))


@pytest.fixture(scope="module")
def cross_python(tmp_path_factory) -> Path:
    """The site-packages of the venv `ITNET_CROSS_VENV` (another transformers version), without `modeling_itnet`."""
    other = os.environ.get("ITNET_CROSS_VENV")
    if not other:
        pytest.skip("ITNET_CROSS_VENV is not set (CI sets it to the venv of the other end of the supported range)")
    other_python = Path(other) / "bin" / "python"
    if not other_python.exists():
        raise FileNotFoundError(f"ITNET_CROSS_VENV={other} has no bin/python")
    source = subprocess.run(
        [other_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return make_isolated_python(tmp_path_factory.mktemp("venv-cross-version"), Path(source))


def isolated_env(tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    return {
        **env,
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": str(torch.get_num_threads()),
    }  # same summation order


def test_the_isolated_environment_cannot_import_the_package(isolated_python, tmp_path):
    found = subprocess.run(
        [
            isolated_python,
            "-c",
            "import importlib.util, transformers; print(importlib.util.find_spec('modeling_itnet'))",
        ],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "None"


def test_saved_folder_holds_the_code_and_an_auto_map_naming_every_head(tmp_path):
    build(ITNetForImageClassification).save_pretrained(tmp_path)
    assert {
        "configuration_itnet.py",
        "modeling_itnet.py",
        "heads_itnet.py",
        "layers_itnet.py",
        "branches_itnet.py",
        "branches_grid_itnet.py",
        "branches_content_itnet.py",
        "embeddings_itnet.py",
        "validation_itnet.py",
        "kernels_itnet.py",
        "compat_itnet.py",
    } <= {path.name for path in tmp_path.glob("*.py")}
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_itnet.ITNetConfig",
        **{
            auto_class: f"{head.__module__.rsplit('.', 1)[-1]}.{head.__name__}"
            for auto_class, head in AUTO_CLASSES.items()
        },
    }
    assert set(AUTO_CLASSES) >= {loader for loader in LOADERS.values() if loader.startswith("Auto")}


def test_saving_does_not_depend_on_registration_or_change_the_config(tmp_path):
    model = build(ITNetForImageClassification)
    before = model.config.to_dict()
    model.save_pretrained(tmp_path / "registered")
    with (
        mock.patch.object(ITNetConfig, "_auto_class", None),
        mock.patch.object(ITNetForImageClassification, "_auto_class", None),
    ):
        model.save_pretrained(tmp_path / "unregistered")
    after = model.config.to_dict()
    assert "auto_map" not in after  # `architectures` and `dtype` are set by transformers' own save_pretrained
    assert {k: v for k, v in after.items() if k not in ("architectures", "dtype")} == {
        k: v for k, v in before.items() if k not in ("architectures", "dtype")
    }
    for name in ("config.json", "modeling_itnet.py", "branches_itnet.py"):
        assert (tmp_path / "registered" / name).read_text() == (tmp_path / "unregistered" / name).read_text()


def save_every_head_and_the_processor(root: Path) -> dict:
    """Save every head of HEAD_CASES (with its inputs) and a processor under `root`; returns the package's outputs."""
    expected = {}
    for name, (head, overrides, make_inputs, key) in HEAD_CASES.items():
        model = build(head, **overrides)
        model.save_pretrained(root / name)
        inputs = make_inputs()
        torch.save(inputs, root / name / "inputs.pt")
        with torch.no_grad():
            expected[name] = model(**inputs)[key]
        if name == "causal-lm":
            expected["generated"] = model.generate(inputs["input_ids"][:1, :4], max_new_tokens=6, do_sample=False)

    tokenizer = AutoTokenizer.from_pretrained(modeling_itnet.tokenizer_path())
    processor = ITNetProcessor(ITNetImageProcessorPil(size={"height": 16, "width": 16}), tokenizer)
    processor.save_pretrained(root / "processor")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)) for _ in range(2)]
    torch.save(images, root / "processor" / "images.pt")
    texts = ["what shape is it?", "a red circle"]
    expected["processor"] = processor(images=images, text=texts, padding=True, return_tensors="pt")
    expected["tokenizer"] = tokenizer("a red circle")["input_ids"]
    return expected


def load_in(python: Path, root: Path) -> dict:
    """Run LOADER on the folders under `root` with the isolated `python`; returns what it computed."""
    heads = {name: (LOADERS[name], key) for name, (_, _, _, key) in HEAD_CASES.items()}
    subprocess.run(
        [python, "-c", LOADER, str(root), json.dumps(heads)],
        cwd=root,
        env=isolated_env(root),
        check=True,
        timeout=600,
    )
    return torch.load(root / "results.pt", weights_only=False)


def assert_same_outputs(results: dict, expected: dict):
    for name in HEAD_CASES:
        assert results[name + ":module"].startswith("transformers_modules."), results[name + ":module"]
        torch.testing.assert_close(
            results[name], expected[name], rtol=0, atol=0, msg=lambda m, name=name: f"{name}: {m}"
        )
    assert torch.equal(results["generated"], expected["generated"])
    assert results["base_from_sequence"] == "ITNetModel"
    ours = expected["processor"]
    assert results["processor"].keys() == ours.keys()
    for key in ours:
        assert torch.equal(results["processor"][key], ours[key]), key
    assert results["processor:class"] == "ITNetProcessor/ITNetImageProcessorPil"
    assert torch.equal(results["image_processor"], ours["pixel_values"])
    assert results["tokenizer"] == expected["tokenizer"]


def test_every_head_and_the_processor_load_without_the_package(isolated_python, tmp_path):
    expected = save_every_head_and_the_processor(tmp_path)
    results = load_in(isolated_python, tmp_path)
    assert results["transformers"] == transformers.__version__
    assert_same_outputs(results, expected)


def test_every_head_loads_under_the_other_transformers_of_the_range(cross_python, tmp_path):
    """Saved under this transformers, loaded without the package under the other end of the range."""
    expected = save_every_head_and_the_processor(tmp_path)
    results = load_in(cross_python, tmp_path)
    assert results["transformers"] != transformers.__version__, "ITNET_CROSS_VENV has the same transformers"
    assert Version(results["transformers"]) in SpecifierSet(TESTED_TRANSFORMERS)
    assert_same_outputs(results, expected)
