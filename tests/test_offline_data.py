"""The offline datasets built from package data: easy-vqa (VQAv2 layout), NLVR2-style pairs of easy-vqa images and
trimesh point clouds (ModelNet40 layout). Each is built once into a temporary cache; determinism is checked against
a second build."""

import io

import numpy as np
import offline_data
import pytest
from datasets import ClassLabel, Image, Value
from offline_data import (
    EASY_VQA_ANSWERS,
    EASY_VQA_COLORS,
    EASY_VQA_SHAPES,
    NLVR2_EASY_LABELS,
    POINT_CLOUD_CLASSES,
    POINT_CLOUD_POINTS,
    load_offline,
)
from PIL import Image as PILImage

# The colours easy-vqa paints its shapes with (RGB), to check the shape colours derived from the questions.
EASY_VQA_RGB = {
    "green": (0, 255, 0), "red": (255, 0, 0), "gray": (128, 128, 128), "teal": (0, 128, 128),
    "black": (0, 0, 0), "yellow": (255, 255, 0), "brown": (165, 42, 42), "blue": (0, 0, 255),
}  # fmt: skip


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ITNET_DATA_CACHE", str(tmp_path_factory.mktemp("offline_data")))
        yield {name: load_offline(f"offline:{name}") for name in ("easy_vqa", "nlvr2_easy", "point_clouds")}


def _points(data) -> np.ndarray:
    """The `points` column as one float32 array [clouds, points, 3], read from Arrow (fast)."""
    column = data.data.column("points").combine_chunks()
    return column.flatten().flatten().to_numpy().reshape(len(data), -1, 3)


def _same_rows(a, b, count=5):
    for i in range(count):
        for column in a.column_names:
            assert a[i][column] == b[i][column], (i, column)


def test_easy_vqa_layout(offline):
    data = offline["easy_vqa"]
    assert list(data) == ["train", "validation"]
    assert data.num_rows == {"train": 38575, "validation": 9673}
    features = data["train"].features
    assert list(features) == ["question", "image", "question_id", "image_id", "label"]
    assert isinstance(features["image"], Image)
    assert features["question"] == Value("string")
    assert features["question_id"] == Value("int64") and features["image_id"] == Value("int64")
    assert set(features["label"]) == {"ids", "weights"}
    assert len(EASY_VQA_ANSWERS) == 13 and len(set(EASY_VQA_ANSWERS)) == 13
    assert offline_data.package_file("easy_vqa", "data/answers.txt").read_text().split() == EASY_VQA_ANSWERS

    row = data["train"][0]
    assert row["image"].mode == "RGB" and row["image"].size == (64, 64)
    assert isinstance(row["question"], str) and row["question"].endswith("?")


@pytest.mark.parametrize("split", ["train", "validation"])
def test_easy_vqa_labels(offline, split):
    data = offline["easy_vqa"][split]
    labels = data.data.column("label").combine_chunks()  # the Arrow struct column: fast on 38k rows
    ids, weights = labels.field("ids"), labels.field("weights")
    assert ids.value_lengths().to_pylist() == weights.value_lengths().to_pylist() == [1] * len(data)
    assert (weights.flatten().to_numpy() == 1.0).all()
    ids = ids.flatten().to_numpy()
    assert ids.min() >= 0 and ids.max() < len(EASY_VQA_ANSWERS)
    assert len(np.unique(ids)) == len(EASY_VQA_ANSWERS)  # every answer occurs
    assert data["question_id"] == list(range(len(data)))
    # the label indexes the answer vocabulary: yes/no questions get yes/no, "what color" questions a colour
    for question, i in zip(data["question"][:2000], ids[:2000]):
        answer = EASY_VQA_ANSWERS[i]
        if question.startswith("what color") or "the color of" in question:
            assert answer in EASY_VQA_COLORS, (question, answer)
        elif question.startswith("what shape"):
            assert answer in EASY_VQA_SHAPES, (question, answer)
        elif not question.startswith("what"):
            assert answer in ("yes", "no"), (question, answer)
    image_ids = np.array(data["image_id"])
    assert image_ids.min() == 0 and image_ids.max() == {"train": 3999, "validation": 999}[split]


def test_easy_vqa_deterministic(offline):
    rebuilt = offline_data._build_easy_vqa()
    for split in ("train", "validation"):
        _same_rows(offline["easy_vqa"][split].cast_column("image", Image(decode=False)),
                   rebuilt[split].cast_column("image", Image(decode=False)))  # fmt: skip


def test_easy_vqa_attributes_match_pixels():
    """The shape colour derived from an image's questions is painted in the image (test split: 1,000 images)."""
    questions, images = offline_data._easy_vqa_split("test")
    attributes = offline_data._easy_vqa_attributes(questions)
    assert len(attributes) > 0.8 * len(images)
    assert {shape for shape, _ in attributes.values()} == set(EASY_VQA_SHAPES)
    assert {color for _, color in attributes.values()} == set(EASY_VQA_COLORS)
    for image_id, (_, color) in attributes.items():
        pixels = np.asarray(PILImage.open(io.BytesIO(images[image_id]))).reshape(-1, 3)
        assert (pixels == EASY_VQA_RGB[color]).all(axis=1).any(), (image_id, color)


def test_nlvr2_easy_layout(offline):
    data = offline["nlvr2_easy"]
    assert list(data) == ["train", "validation"]
    assert data.num_rows == {"train": 4000, "validation": 1000}
    features = data["train"].features
    assert list(features) == ["left_image", "right_image", "sentence", "label"]
    assert isinstance(features["left_image"], Image) and isinstance(features["right_image"], Image)
    assert features["sentence"] == Value("string")
    assert features["label"] == ClassLabel(names=NLVR2_EASY_LABELS) and NLVR2_EASY_LABELS == ["False", "True"]
    row = data["validation"][0]
    assert row["left_image"].mode == "RGB" and row["right_image"].size == (64, 64)
    for split in ("train", "validation"):
        labels = np.array(data[split]["label"])
        assert set(labels.tolist()) == {0, 1}
        assert labels.sum() == len(labels) // 2  # exactly balanced
        assert len(set(data[split]["sentence"])) > 50


def test_nlvr2_easy_labels_are_true(offline):
    """Each validation statement, re-evaluated on the two images' shapes and colours, has the dataset's label."""
    questions, images = offline_data._easy_vqa_split("test")
    attributes = {images[i]: value for i, value in offline_data._easy_vqa_attributes(questions).items()}
    data = offline["nlvr2_easy"]["validation"]
    data = data.cast_column("left_image", Image(decode=False)).cast_column("right_image", Image(decode=False))
    true_templates, false_templates = set(), set()
    for row in data:
        left, right = attributes[row["left_image"]["bytes"]], attributes[row["right_image"]["bytes"]]
        assert row["left_image"]["bytes"] != row["right_image"]["bytes"] or left == right
        truths = {
            (name, text): truth
            for name, options in offline_data._nlvr2_statements(left, right).items()
            for text, truth in options
        }
        (key,) = [key for key in truths if key[1] == row["sentence"]]
        assert truths[key] == bool(row["label"]), (row["sentence"], left, right, row["label"])
        (true_templates if row["label"] else false_templates).add(key[0])
    assert true_templates == false_templates == set(offline_data._nlvr2_statements(left, right))


def test_nlvr2_easy_deterministic(offline):
    rebuilt = offline_data._build_nlvr2_easy()
    for split in ("train", "validation"):
        a, b = offline["nlvr2_easy"][split], rebuilt[split]
        for column in ("left_image", "right_image"):
            a, b = a.cast_column(column, Image(decode=False)), b.cast_column(column, Image(decode=False))
        _same_rows(a, b)
        assert a["sentence"] == b["sentence"] and a["label"] == b["label"]


def test_nlvr2_easy_pairs_of_chosen_templates(offline):
    """`templates=` draws only those templates (the sentences of each, balanced labels); an unknown name raises."""
    pairs = offline_data.nlvr2_easy_pairs("test", 40, seed=3, templates=["left_color", "same_shape"])
    colors = {f"the left image has a {c} shape" for c in EASY_VQA_COLORS}
    assert set(pairs["sentence"]) <= colors | {"both images show the same kind of shape"}
    assert sum(pairs["label"]) == 20
    with pytest.raises(ValueError, match="templates"):
        offline_data.nlvr2_easy_pairs("test", 4, seed=0, templates=["left_colour"])


def test_point_clouds_layout(offline):
    data = offline["point_clouds"]
    assert list(data) == ["train", "validation"]
    assert data.num_rows == {"train": 200 * len(POINT_CLOUD_CLASSES), "validation": 50 * len(POINT_CLOUD_CLASSES)}
    features = data["train"].features
    assert list(features) == ["points", "label"]
    assert features["label"] == ClassLabel(names=POINT_CLOUD_CLASSES) and 6 <= len(POINT_CLOUD_CLASSES) <= 8
    assert features["points"].length == POINT_CLOUD_POINTS == 256
    assert features["points"].feature.length == 3 and features["points"].feature.feature == Value("float32")
    for split, per_class in (("train", 200), ("validation", 50)):
        counts = np.bincount(data[split]["label"], minlength=len(POINT_CLOUD_CLASSES))
        assert counts.tolist() == [per_class] * len(POINT_CLOUD_CLASSES)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_point_clouds_normalised(offline, split):
    points = _points(offline["point_clouds"][split])
    assert points.shape == (len(offline["point_clouds"][split]), 256, 3) and points.dtype == np.float32
    assert np.abs(points.mean(axis=1)).max() < 1e-5  # centred
    radius = np.linalg.norm(points, axis=2).max(axis=1)
    assert radius.max() <= 1 + 1e-5 and radius.min() > 1 - 1e-5  # the farthest point on the unit sphere
    assert np.isfinite(points).all()
    assert len({p.tobytes() for p in points}) == len(points)  # no two clouds alike


def test_point_clouds_rotated(offline):
    """Random rotations: the clouds' principal axes are not aligned with the coordinate axes."""
    points = _points(offline["point_clouds"]["train"])[:100]
    aligned = 0
    for cloud in points:
        axes = np.linalg.svd(cloud - cloud.mean(0), full_matrices=False)[2]
        aligned += np.abs(axes).max(axis=1).min() > 0.99
    assert aligned < 10


def test_point_clouds_deterministic(offline):
    rebuilt = offline_data._build_point_clouds()
    for split in ("train", "validation"):
        _same_rows(offline["point_clouds"][split], rebuilt[split])
        assert np.array_equal(_points(offline["point_clouds"][split]), _points(rebuilt[split]))
        assert offline["point_clouds"][split]["label"] == rebuilt[split]["label"]


def test_shakespeare_splits_whole_plays_in_the_wikitext_layout():
    data = offline_data._build_shakespeare()
    assert set(data) == {"train", "validation", "test"}
    assert data["train"].features == {"text": Value("string")}
    validation = data["validation"]["text"]
    assert (
        validation[0] == " = Hamlet = "  # the article heading that opens each play
        and "HAMLET:" in validation
        and "To be, or not to be: that is the question:" in validation
    )
    assert "MACBETH:" in data["test"]["text"] and "MACBETH:" not in data["train"]["text"]
    assert not any(line.startswith(("#", "**")) for line in data["train"]["text"][:5000])
    assert 160_000 < len(data["train"]) < 180_000
    assert data["train"]["text"][:200] == offline_data._build_shakespeare()["train"]["text"][:200]
