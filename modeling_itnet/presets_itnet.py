# Copyright 2026 The modeling_itnet Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Named ITNet presets and tokenizer assets: the folders of the repository's `configuration/` and `tokenization/`.

They ship inside the wheel as `modeling_itnet/presets/<name>/config.json` and
`modeling_itnet/tokenization/<name>/tokenizer.json` (see `pyproject.toml`); in a source checkout they are read from
`configuration/` and `tokenization/` directly.

    >>> from modeling_itnet import ITNetForImageClassification, preset_config
    >>> model = ITNetForImageClassification(preset_config("itnet-tiny", num_labels=10))
"""

import json
from pathlib import Path

from .configuration_itnet import ITNetConfig

DEFAULT_TOKENIZER = "itnet-wordpiece-8k"
CAUSAL_TOKENIZER = "itnet-wordpiece-8k-causal"
"""The causal-LM variant: no `[CLS] … [SEP]` template, `bos_token` `[CLS]`, `eos_token` `[SEP]`, left padding."""


def _asset_dir(installed_name: str, checkout_name: str) -> Path:
    installed = Path(__file__).resolve().parent / installed_name
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parent.parent / checkout_name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"No ITNet assets found at {installed} or {checkout}.")


def presets_dir() -> Path:
    """The folder holding one sub-folder per preset, installed or in a source checkout."""
    return _asset_dir("presets", "configuration")


def tokenizer_path(name: str = DEFAULT_TOKENIZER) -> Path:
    """The folder of tokenizer `name`, loadable with `AutoTokenizer.from_pretrained` (no custom class needed)."""
    path = _asset_dir("tokenization", "tokenization") / name
    if not (path / "tokenizer.json").is_file():
        raise ValueError(f"Unknown ITNet tokenizer {name!r} (looked in {path.parent}).")
    return path


def list_presets() -> list[str]:
    """Names of the available presets, e.g. `["itnet-base", "itnet-small", "itnet-tiny"]`."""
    return sorted(p.parent.name for p in presets_dir().glob("*/config.json"))


def preset_path(name: str) -> Path:
    """The folder of preset `name`, loadable with `AutoConfig.from_pretrained`."""
    path = presets_dir() / name
    if not (path / "config.json").is_file():
        raise ValueError(f"Unknown ITNet preset {name!r}; available: {list_presets()}.")
    return path


def preset_config(name: str, **overrides) -> ITNetConfig:
    """`ITNetConfig` of preset `name`, with `overrides` applied (e.g. `num_labels=10`).

    Raises a `ValueError` if the preset file holds a key that is not an `ITNetConfig` field.
    """
    path = preset_path(name) / "config.json"
    values = json.loads(path.read_text())
    if values.pop("model_type", "itnet") != "itnet":
        raise ValueError(f"{path}: `model_type` must be 'itnet'.")
    unknown = sorted(set(values) - set(ITNetConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{path}: keys {unknown} are not ITNetConfig fields.")
    values.update(overrides)
    return ITNetConfig(**values)


__all__ = ["CAUSAL_TOKENIZER", "list_presets", "preset_config", "preset_path", "presets_dir", "tokenizer_path"]
