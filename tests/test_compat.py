"""The supported transformers range (`compat_itnet`): the declared range is the tested one, a version outside it
gets one warning naming the range, a missing transformers API a clear `ImportError`, and both names of the cache
(5.24's `cache`, 5.23's `past_key_values`) work in forward, in outputs and in `generate`."""

import logging
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import tomllib
import torch
import transformers
from itnet_testing import tiny_builders
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from modeling_itnet import ITNetCache, ITNetForCausalLM, ITNetModel, compat_itnet
from modeling_itnet.compat_itnet import CACHE_FIELD, TESTED_TRANSFORMERS, cache_of
from modeling_itnet.modeling_itnet import ITNetModelOutput

ROOT = Path(__file__).resolve().parents[1]
_, build = tiny_builders(is_causal=True, kernel_families=["spectral", "low_rank", "recurrent"])
NEW_NAMES = Version(transformers.__version__) >= Version("5.24")


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [dep for group in project["optional-dependencies"].values() for dep in group]
    return {Requirement(dep).name: Requirement(dep) for dep in project["dependencies"] + extras}


def test_the_declared_range_is_the_tested_one_and_holds_the_installed_version():
    declared = requirements()
    assert declared["transformers"].specifier == SpecifierSet(TESTED_TRANSFORMERS)
    assert Version(transformers.__version__) in SpecifierSet(TESTED_TRANSFORMERS)
    for name in (
        "torch",
        "transformers",
        "accelerate",
        "datasets",
        "huggingface-hub",
        "peft",
        "safetensors",
        "evaluate",
    ):
        specifier = declared[name].specifier
        assert any(spec.operator in ("<", "<=", "==", "~=") for spec in specifier), f"{name} has no upper bound"


def test_a_version_outside_the_range_gets_one_warning_naming_it(caplog):
    assert compat_itnet.check_transformers_version()
    assert compat_itnet.check_transformers_version("5.23.0") and compat_itnet.check_transformers_version("5.24.3")
    with caplog.at_level(logging.WARNING):
        assert not compat_itnet.check_transformers_version("5.99.0")
        compat_itnet.check_transformers_version("5.99.0")
        assert not compat_itnet.check_transformers_version("5.22.0")
    messages = [record.getMessage() for record in caplog.records if "5.99.0" in record.getMessage()]
    assert len(messages) == 1 and TESTED_TRANSFORMERS in messages[0]


def test_a_missing_transformers_api_raises_an_import_error_naming_it_and_the_range(tmp_path):
    script = "import transformers.utils.output_capturing as m; del m.capture_outputs\nimport modeling_itnet\n"
    run = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ITNet needs a transformers API"), last
    assert "capture_outputs" in last and TESTED_TRANSFORMERS in last


def test_outputs_carry_the_cache_under_the_installed_transformers_name():
    assert CACHE_FIELD == ("cache" if NEW_NAMES else "past_key_values")
    assert CACHE_FIELD in {field.name for field in fields(ITNetModelOutput)}
    model = build(ITNetForCausalLM)
    input_ids = torch.randint(1, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(input_ids=input_ids, use_cache=True)
        base = model.itnet(input_ids=input_ids, use_cache=True)
    for output in (out, base):
        assert isinstance(cache_of(output), ITNetCache) and getattr(output, CACHE_FIELD) is cache_of(output)
        assert output.past_key_values is cache_of(output)  # 5.23's name reads the cache on both versions
    assert isinstance(ITNetModel(model.config).eval()(input_ids=input_ids), ITNetModelOutput)


@pytest.mark.parametrize("old_name", ["past_key_values", "cache_params"])
def test_the_old_cache_names_continue_a_sequence_as_cache_does(old_name, caplog):
    model = build(ITNetForCausalLM)
    input_ids = torch.randint(1, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        new = model(input_ids=input_ids[:, :6], use_cache=True)
        new = model(input_ids=input_ids[:, 6:], cache=cache_of(new)).logits
        old = model(input_ids=input_ids[:, :6], use_cache=True)
        logging.Logger.warning_once.cache_clear()  # transformers' once-only warnings: see this call's
        with caplog.at_level(logging.WARNING):
            old = model(input_ids=input_ids[:, 6:], **{old_name: cache_of(old)}).logits
    assert torch.equal(new, old)
    deprecated = [r for r in caplog.records if "deprecated" in r.getMessage() and old_name in r.getMessage()]
    assert bool(deprecated) == NEW_NAMES  # silent on 5.23, where it is what `generate` passes


def test_two_different_caches_under_both_names_are_refused():
    model = build(ITNetForCausalLM)
    input_ids = torch.randint(1, 50, (1, 4))
    first, second = (cache_of(model(input_ids=input_ids, use_cache=True)) for _ in range(2))
    with pytest.raises(ValueError, match="both `cache` and `past_key_values`"):
        model(input_ids=input_ids[:, :1], cache=first, past_key_values=second)


@pytest.mark.parametrize("name", ["past_key_values"] + ["cache"] * NEW_NAMES)  # 5.23's generate knows no `cache`
def test_generate_resumes_from_a_returned_cache_under_either_name(name):
    model = build(ITNetForCausalLM)
    input_ids = torch.randint(1, 50, (2, 5), generator=torch.Generator().manual_seed(2))
    reference = model.generate(input_ids, do_sample=False, max_new_tokens=8)
    first = model.generate(input_ids, do_sample=False, max_new_tokens=4, return_dict_in_generate=True)
    resumed = model.generate(
        first.sequences,
        attention_mask=torch.ones_like(first.sequences),
        do_sample=False,
        max_new_tokens=4,
        **{name: cache_of(first)},
    )
    assert torch.equal(resumed, reference)
    assert torch.equal(reference, model.generate(input_ids, do_sample=False, max_new_tokens=8, use_cache=False))
