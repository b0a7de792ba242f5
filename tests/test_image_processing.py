"""ITNet image processors: hand-computed values, input types, channels, both backends, save/load, pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, pipeline
from transformers.image_utils import PILImageResampling
from transformers.utils import is_torchvision_available

from modeling_itnet import ITNetConfig, ITNetForImageClassification, ITNetImageProcessor, ITNetImageProcessorPil

NO_TORCHVISION = "torchvision is not installed"
BACKENDS = [
    ITNetImageProcessorPil,
    pytest.param(ITNetImageProcessor, marks=pytest.mark.skipif(not is_torchvision_available(), reason=NO_TORCHVISION)),
]
DEFAULT_BACKEND = ITNetImageProcessor if is_torchvision_available() else ITNetImageProcessorPil  # AutoImageProcessor's
QUANTUM = 2 / 255  # one uint8 step after rescale 1/255 and normalize with std 0.5


def random_uint8(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def pixel_values(processor, images, **kwargs) -> torch.Tensor:
    return processor(images, return_tensors="pt", **kwargs)["pixel_values"]


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_defaults_give_the_quickstart_scaling(processor_class):
    """Same size: no resampling; rescale 1/255 then normalize 0.5/0.5 is x / 127.5 - 1."""
    image = random_uint8(28, 28)
    processor = processor_class(size={"height": 28, "width": 28})
    out = pixel_values(processor, Image.fromarray(image))
    assert out.shape == (1, 1, 28, 28) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0], torch.from_numpy(image / 127.5 - 1).float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_resize_rescale_normalize_by_hand(processor_class):
    """2x2 RGB -> 4x4 with nearest (each pixel a 2x2 block), then (x / 255 - mean_c) / std_c per channel."""
    image = random_uint8(2, 2, 3)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 0.125]
    processor = processor_class(
        size={"height": 4, "width": 4}, resample=PILImageResampling.NEAREST, image_mean=mean, image_std=std
    )
    out = pixel_values(processor, Image.fromarray(image))
    resized = image.repeat(2, axis=0).repeat(2, axis=1).transpose(2, 0, 1)  # [3, 4, 4]
    expected = (resized / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert out.shape == (1, 3, 4, 4)
    torch.testing.assert_close(out[0], torch.from_numpy(expected).float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_bilinear_resize_keeps_a_constant_image_and_sets_the_size(processor_class):
    image = np.full((20, 36, 3), 200, dtype=np.uint8)
    out = pixel_values(processor_class(), Image.fromarray(image))
    assert out.shape == (1, 3, 32, 32)
    torch.testing.assert_close(out, torch.full_like(out, 200 / 127.5 - 1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_steps_can_be_switched_off(processor_class):
    image = random_uint8(3, 8, 8)
    out = pixel_values(processor_class(), image, do_resize=False, do_normalize=False)
    torch.testing.assert_close(out[0], torch.from_numpy(image / 255).float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_pil_numpy_and_torch_batches_give_the_same_pixel_values(processor_class):
    """The same two grayscale and two RGB images as PIL, `[H, W]`/`[H, W, C]`/`[C, H, W]` arrays and tensors."""
    processor = processor_class(size={"height": 16, "width": 16})
    gray = [random_uint8(20, 20, seed=s) for s in (1, 2)]
    rgb = [random_uint8(20, 20, 3, seed=s) for s in (3, 4)]
    for images in (gray, rgb):
        expected = pixel_values(processor, [Image.fromarray(image) for image in images])
        channels = 1 if images is gray else 3
        assert expected.shape == (2, channels, 16, 16)
        chw = [image[None] if image.ndim == 2 else image.transpose(2, 0, 1) for image in images]
        for batch in (
            images,  # [H, W] or [H, W, C] arrays
            chw,  # [C, H, W] arrays
            [torch.from_numpy(image) for image in images],
            [torch.from_numpy(image) for image in chw],
            torch.from_numpy(np.stack(chw)),  # one [B, C, H, W] tensor
            np.stack(chw),  # one [B, C, H, W] array
        ):
            torch.testing.assert_close(pixel_values(processor, batch), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_grayscale_to_rgb(processor_class):
    """`do_convert_rgb=True` and `num_channels=3` both repeat a grayscale channel three times."""
    processor = processor_class(size={"height": 16, "width": 16})
    image = Image.fromarray(random_uint8(20, 20))
    gray = pixel_values(processor, image)
    for kwargs in ({"do_convert_rgb": True}, {"num_channels": 3}):
        rgb = pixel_values(processor, image, **kwargs)
        assert rgb.shape == (1, 3, 16, 16)
        torch.testing.assert_close(rgb, gray.expand(-1, 3, -1, -1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_rgba_is_composited_on_white(processor_class):
    image = random_uint8(8, 8, 4)
    image[..., 3] = 0  # fully transparent: white
    out = pixel_values(processor_class(do_resize=False, num_channels=3), Image.fromarray(image, "RGBA"))
    torch.testing.assert_close(out, torch.ones(1, 3, 8, 8))


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_rgb_to_one_channel_is_pil_luma(processor_class):
    """`num_channels=1`: RGB -> PIL's "L" weights (within one step of its integer rounding); gray stays exact."""
    processor = processor_class(size={"height": 16, "width": 16}, num_channels=1)
    image = Image.fromarray(random_uint8(16, 16, 3))
    out = pixel_values(processor, image)
    assert out.shape == (1, 1, 16, 16)
    torch.testing.assert_close(out, pixel_values(processor, image.convert("L")), atol=QUANTUM + 1e-6, rtol=0)
    gray = Image.fromarray(random_uint8(16, 16))
    torch.testing.assert_close(pixel_values(processor, gray.convert("RGB")), pixel_values(processor, gray))


@pytest.mark.parametrize("processor_class", BACKENDS)
@pytest.mark.parametrize("num_channels", [0, 2, 4])
def test_bad_num_channels_is_named(processor_class, num_channels):
    with pytest.raises(ValueError, match="`num_channels` must be 1, 3 or None"):
        processor_class(num_channels=num_channels)
    with pytest.raises(ValueError, match="`num_channels` must be 1, 3 or None"):
        processor_class()(random_uint8(8, 8), num_channels=num_channels)


@pytest.mark.skipif(not is_torchvision_available(), reason=NO_TORCHVISION)
@pytest.mark.parametrize(
    "images, kwargs, atol",
    [
        ([Image.fromarray(random_uint8(28, 28, seed=s)) for s in range(3)], {"size": {"height": 28, "width": 28}}, 0),
        ([Image.fromarray(random_uint8(20, 20, seed=s)) for s in range(3)], {}, 0),  # upsampling
        ([random_uint8(20, 24, 3, seed=s) for s in range(2)], {"do_convert_rgb": True}, 0),
        (torch.from_numpy(random_uint8(4, 1, 20, 20)), {"num_channels": 3}, 0),
        (torch.from_numpy(random_uint8(2, 3, 20, 20)), {"num_channels": 1}, 0),
        (Image.fromarray(random_uint8(30, 30, 4), "RGBA"), {"num_channels": 3}, 0),
        # downsampling: torchvision's and PIL's antialiasing round differently, by at most one uint8 step
        ([Image.fromarray(random_uint8(50, 40, 3, seed=s)) for s in range(2)], {}, QUANTUM),
        ([Image.fromarray(random_uint8(50, 40, 3, seed=s)) for s in range(2)], {"num_channels": 1}, QUANTUM),
    ],
)
def test_torchvision_and_pil_backends_agree(images, kwargs, atol):
    fast = pixel_values(ITNetImageProcessor(**kwargs), images)
    slow = pixel_values(ITNetImageProcessorPil(**kwargs), images)
    assert fast.shape == slow.shape
    torch.testing.assert_close(fast, slow, atol=atol + 1e-6, rtol=0)
    assert (fast - slow).abs().mean() < QUANTUM / 4


@pytest.mark.skipif(is_torchvision_available(), reason="torchvision is installed")
def test_torchvision_backend_without_torchvision_raises_a_clear_import_error(tmp_path):
    with pytest.raises(ImportError, match="needs `torchvision`.*ITNetImageProcessorPil"):
        ITNetImageProcessor()
    ITNetImageProcessorPil().save_pretrained(tmp_path)
    with pytest.raises(ImportError, match="needs `torchvision`"):
        AutoImageProcessor.from_pretrained(tmp_path, backend="torchvision")
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is ITNetImageProcessorPil


@pytest.mark.parametrize("processor_class", BACKENDS)
def test_save_and_load_with_auto_image_processor(processor_class, tmp_path):
    processor = processor_class(size={"height": 24, "width": 20}, num_channels=1, image_mean=0.4, image_std=0.2)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").exists()
    loaded = [
        (DEFAULT_BACKEND, AutoImageProcessor.from_pretrained(tmp_path)),
        (ITNetImageProcessorPil, AutoImageProcessor.from_pretrained(tmp_path, backend="pil")),
    ]
    images = [Image.fromarray(random_uint8(30, 30, 3, seed=s)) for s in range(2)]
    expected = pixel_values(processor, images)
    assert expected.shape == (2, 1, 24, 20)
    for backend_class, reloaded in loaded:
        assert type(reloaded) is backend_class
        assert reloaded.to_dict() == processor.to_dict()
        assert reloaded.to_dict()["image_processor_type"] == "ITNetImageProcessor"
        atol = 0 if backend_class is processor_class else 1 / 255 / 0.2  # one uint8 step: downsampling, see above
        torch.testing.assert_close(pixel_values(reloaded, images), expected, atol=atol + 1e-6, rtol=0)


@pytest.mark.parametrize("num_channels", [1, 3])
def test_image_classification_pipeline(num_channels, tmp_path, monkeypatch):
    """A tiny classifier saved with its processor: labels from `id2label`, scores summing to 1, argmax of the model;
    loading it asks nothing on stdin (`pipeline` also tries `AutoVideoProcessor`, which derives a remote class from the
    image processor's `auto_map` and asked whether to run it until ITNet registered that it has no video processor)."""
    names = ["zero", "one", "two"]
    config = ITNetConfig(
        image_size=16,
        patch_size=4,
        num_channels=num_channels,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        kernel_num_frequencies=4,
        kernel_mlp_size=8,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
    )
    torch.manual_seed(0)
    model = ITNetForImageClassification(config).eval()
    processor = ITNetImageProcessorPil(size={"height": 16, "width": 16}, num_channels=num_channels)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    prompts = []
    monkeypatch.setattr("builtins.input", lambda *args: prompts.append(args) or "n")
    classifier = pipeline("image-classification", model=str(tmp_path), device="cpu")
    assert prompts == []
    images = [Image.fromarray(random_uint8(20, 20, seed=s)) for s in range(3)]  # grayscale; the pipeline opens as RGB
    results = classifier(images, top_k=len(names))
    assert type(classifier.image_processor) is DEFAULT_BACKEND
    with torch.no_grad():
        logits = model(pixel_values=pixel_values(classifier.image_processor, images)).logits
    assert len(results) == len(images)
    for result, image_logits in zip(results, logits):
        assert sorted(r["label"] for r in result) == sorted(names)
        assert sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-5)
        assert result[0]["label"] == names[image_logits.argmax()]
        assert result[0]["score"] == pytest.approx(image_logits.softmax(-1).max().item(), abs=1e-5)
