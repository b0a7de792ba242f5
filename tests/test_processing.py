"""ITNetProcessor: layouts for VQA and NLVR2, round trips through AutoProcessor, clear errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer

from modeling_itnet import ITNetConfig, ITNetImageProcessorPil, ITNetProcessor, tokenizer_path


@pytest.fixture
def processor():
    image_processor = ITNetImageProcessorPil(size={"height": 32, "width": 32})
    return ITNetProcessor(image_processor, AutoTokenizer.from_pretrained(tokenizer_path()))


def images(count, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)) for _ in range(count)]


def test_one_image_per_question_matches_the_parts(processor):
    pictures, questions = images(2), ["what color is the shape?", "is there a circle?"]
    batch = processor(images=pictures, text=questions)
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    expected_pixels = processor.image_processor(pictures, return_tensors="pt")["pixel_values"]
    assert torch.equal(batch["pixel_values"], expected_pixels)
    expected_text = processor.tokenizer(questions, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], expected_text["input_ids"])
    assert torch.equal(batch["attention_mask"], expected_text["attention_mask"])


def test_groups_of_images_give_five_dimensional_pixels(processor):
    left, right = images(2, seed=1), images(2, seed=2)
    batch = processor(images=list(zip(left, right)), text=["both contain a circle", "the left one is red"])
    assert batch["pixel_values"].shape == (2, 2, 3, 32, 32)
    right_pixels = processor.image_processor(right, return_tensors="pt")["pixel_values"]
    assert torch.equal(batch["pixel_values"][:, 1], right_pixels)


def test_kwargs_are_routed_and_numpy_is_returned(processor):
    batch = processor(
        images=images(1)[0], text="what shape is it?", max_length=3, truncation=True, return_tensors="np"
    )
    assert isinstance(batch["input_ids"], np.ndarray) and batch["input_ids"].shape == (1, 3)
    assert batch["pixel_values"].shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"images": images(3), "text": ["a", "b"]}, "holds 3 images but `text` holds 2"),
        ({"images": [tuple(images(2)), tuple(images(1))], "text": ["a", "b"]}, "same number of images"),
        ({"images": images(1), "text": [3]}, "`text` must be"),
        ({}, "needs `images`, `text` or both"),
        ({"text": "a", "return_tensors": "tf"}, "return_tensors"),
    ],
)
def test_bad_inputs_raise_clear_errors(processor, kwargs, message):
    with pytest.raises(ValueError, match=message):
        processor(**kwargs)


def test_round_trip_through_auto_processor(processor, tmp_path):
    ITNetConfig(image_size=32).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ITNetProcessor)
    pictures, questions = images(2), ["what shape?", "what color is it?"]
    expected, got = processor(images=pictures, text=questions), loaded(images=pictures, text=questions)
    assert set(expected) == set(got) == {"input_ids", "attention_mask", "pixel_values"}
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def _folder(tmp_path, name, config, tokenizer=True, image_processor=False):
    folder = tmp_path / name
    config.save_pretrained(folder)
    if tokenizer:
        AutoTokenizer.from_pretrained(tokenizer_path()).save_pretrained(folder)
    if image_processor:
        ITNetImageProcessorPil().save_pretrained(folder)
    return folder


def test_auto_processor_of_a_text_only_folder_is_its_tokenizer_as_for_bert(tmp_path):
    from transformers import BertConfig

    itnet = AutoProcessor.from_pretrained(_folder(tmp_path, "itnet", ITNetConfig()))
    bert = AutoProcessor.from_pretrained(_folder(tmp_path, "bert", BertConfig()))
    assert type(itnet) is type(bert) is type(AutoTokenizer.from_pretrained(tokenizer_path()))
    assert itnet("a witty film")["input_ids"] == bert("a witty film")["input_ids"]


def test_auto_processor_of_an_image_only_folder_is_its_image_processor(tmp_path):
    folder = _folder(tmp_path, "image", ITNetConfig(image_size=32), tokenizer=False, image_processor=True)
    assert isinstance(AutoProcessor.from_pretrained(folder), ITNetImageProcessorPil)


def test_importing_the_package_does_not_change_how_other_folders_load(tmp_path):
    """The same folders (BERT's and ITNet's, tokenizer only) through `AutoProcessor`, before and after the import."""
    import subprocess
    import sys

    from transformers import BertConfig

    folders = [_folder(tmp_path, "bert", BertConfig()), _folder(tmp_path, "itnet", ITNetConfig())]
    script = (
        "import json, sys, transformers\n"
        "def kind(folder): return type(transformers.AutoProcessor.from_pretrained(folder)).__name__\n"
        "bert, itnet = sys.argv[1:]\n"
        "before = kind(bert)\n"  # an ITNet folder needs the package (or remote code) for its config
        "import modeling_itnet\n"
        "print(json.dumps([before, kind(bert), kind(itnet)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, folders)], check=True, capture_output=True, text=True
    )
    before, after, itnet = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == after == itnet
