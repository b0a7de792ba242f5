"""The ListOps generator of `offline_data` (LRA's rules: MIN/MAX/MED/SM over digits, depth <= 10, <= 10 arguments,
500 < tokens < 2000), its evaluator and the `offline:listops` dataset layout."""

from collections import Counter

import offline_data
import pytest
from datasets import ClassLabel, Value
from offline_data import (
    LISTOPS_END,
    LISTOPS_LABELS,
    LISTOPS_OPERATORS,
    build_listops,
    generate_listops,
    listops_tokens,
    listops_value,
    load_listops,
)


def _depth_and_args(expression: str) -> tuple[int, int]:
    """The tree depth (the root at depth 1, digits count as nodes) and the most arguments of one operator."""
    depth, deepest, counts, most = 0, 1, [], 0
    for token in listops_tokens(expression):
        if token in LISTOPS_OPERATORS:
            if counts:
                counts[-1] += 1
            depth += 1
            counts.append(0)
        elif token == LISTOPS_END:
            most = max(most, counts.pop())
            depth -= 1
        else:
            counts[-1] += 1
            deepest = max(deepest, depth + 1)
    return deepest, most


@pytest.fixture(scope="module")
def lra_sample():
    return generate_listops(150, seed=3)  # LRA's default rules


@pytest.fixture(scope="module")
def short_sample():
    return generate_listops(2000, min_length=10, max_length=80, max_depth=6, max_args=5, seed=1)


@pytest.mark.parametrize(
    "expression, value",
    [
        ("7", 7),
        ("[MIN 4 3 8 ]", 3),
        ("[MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]", 5),
        ("[MED 1 5 8 9 2 ]", 5),
        ("[MED 1 4 8 9 ]", 6),  # even count: the mean of 4 and 8
        ("[MED 1 2 ]", 1),  # 1.5 rounded down, as LRA's int(np.median)
        ("[SM 5 6 7 ]", 8),
        ("[SM 9 [MAX 0 9 ] [SM 1 1 ] ]", 0),
        ("[MIN [MAX 3 [MED 7 7 1 ] ] [SM 2 2 ] ]", 4),
        ("( ( ( [MAX 4 ) ( ( ( [MIN 2 ) 3 ) ] ) ) ] )", 4),  # LRA's TSV form, with parentheses
    ],
)
def test_evaluator_on_hand_examples(expression, value):
    assert listops_value(expression) == value


@pytest.mark.parametrize("bad", ["", "[MAX 1 2", "[MAX 1 2 ] ]", "[MAX ]", "[FOO 1 2 ]", "1 2", "[MAX 12 ]"])
def test_evaluator_rejects_malformed(bad):
    with pytest.raises(ValueError):
        listops_value(bad)


def test_source_uses_lra_parentheses():
    tree = ("[MAX", [4, ("[MIN", [2, 3])])
    assert offline_data._listops_string(tree) == "( ( ( [MAX 4 ) ( ( ( [MIN 2 ) 3 ) ] ) ) ] )"


@pytest.mark.parametrize("sample, min_length, max_length, max_depth, max_args", [
    ("lra_sample", 500, 2000, 10, 10), ("short_sample", 10, 80, 6, 5),
])  # fmt: skip
def test_generator_follows_the_rules(request, sample, min_length, max_length, max_depth, max_args):
    pairs = request.getfixturevalue(sample)
    assert len({source for source, _ in pairs}) == len(pairs)  # no repeats
    depths, args = [], []
    for source, target in pairs:
        tokens = listops_tokens(source)
        assert min_length < len(tokens) < max_length
        assert tokens[0] in LISTOPS_OPERATORS and tokens[-1] == LISTOPS_END
        assert set(tokens) <= set(LISTOPS_OPERATORS) | {LISTOPS_END} | set(LISTOPS_LABELS)
        depth, most = _depth_and_args(source)
        assert depth <= max_depth and 2 <= most <= max_args
        depths.append(depth)
        args.append(most)
        assert target == listops_value(source)
        assert source.count("(") == source.count(")")
    assert max(depths) == max_depth and max(args) == max_args  # the limits are reached
    operators = Counter(t for source, _ in pairs for t in listops_tokens(source) if t in LISTOPS_OPERATORS)
    assert set(operators) == set(LISTOPS_OPERATORS)
    assert max(operators.values()) < 1.2 * min(operators.values())  # drawn uniformly


def test_label_distribution(short_sample, lra_sample):
    for pairs in (short_sample, lra_sample):
        counts = Counter(target for _, target in pairs)
        assert set(counts) == set(range(10))
        assert max(counts.values()) < 0.3 * len(pairs)  # no class dominates (0 and 9 are the most frequent)


def test_generator_is_deterministic(short_sample):
    assert generate_listops(2000, min_length=10, max_length=80, max_depth=6, max_args=5, seed=1) == short_sample
    assert generate_listops(50, min_length=10, max_length=80, seed=2) != generate_listops(
        50, min_length=10, max_length=80, seed=3
    )


def test_listops_dataset_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("ITNET_DATA_CACHE", str(tmp_path))
    data = load_listops(60, 20, 20, min_length=10, max_length=50, seed=5)
    assert list(data) == ["train", "validation", "test"]
    assert data.num_rows == {"train": 60, "validation": 20, "test": 20}
    assert data["train"].features == {"Source": Value("string"), "Target": ClassLabel(names=LISTOPS_LABELS)}
    sources = [s for split in data.values() for s in split["Source"]]
    assert len(set(sources)) == 100  # the splits do not overlap
    for split in data.values():
        assert split["Target"] == [listops_value(s) for s in split["Source"]]
    assert (tmp_path / "listops-60-20-20-len10-50-depth10-args10-seed5" / "dataset_dict.json").exists()
    again = load_listops(60, 20, 20, min_length=10, max_length=50, seed=5)  # from the cache
    assert again["test"]["Source"] == data["test"]["Source"]
    rebuilt = build_listops({"train": 60, "validation": 20, "test": 20}, min_length=10, max_length=50, seed=5)
    assert rebuilt["train"]["Source"] == data["train"]["Source"]


def test_run_lra_reads_lra_tsv_release(tmp_path):
    """`run_lra.py --data_dir`: LRA's `basic_{train,val,test}.tsv` (Source, Target) load in the generated layout."""
    import csv

    import run_lra

    pairs = generate_listops(30, min_length=10, max_length=40, seed=7)
    parts = {"basic_train.tsv": pairs[:20], "basic_val.tsv": pairs[20:25], "basic_test.tsv": pairs[25:]}
    for name, part in parts.items():
        with open(tmp_path / name, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(["Source", "Target"])
            writer.writerows(part)
    data = run_lra.load_data(run_lra.DataTrainingArguments(data_dir=str(tmp_path)))
    assert data.num_rows == {"train": 20, "validation": 5, "test": 5}
    assert data["train"].features == {"Source": Value("string"), "Target": ClassLabel(names=LISTOPS_LABELS)}
    assert data["test"]["Source"] == [s for s, _ in pairs[25:]]
    assert data["test"]["Target"] == [t for _, t in pairs[25:]]
    tokenizer = run_lra.build_listops_tokenizer()
    for source in data["train"]["Source"]:
        ids = tokenizer(source)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids) == listops_tokens(source) and tokenizer.unk_token_id not in ids
    assert tokenizer.pad_token_id == 0 and len(tokenizer) == 20
    with pytest.raises(ValueError, match="only"):
        run_lra.load_data(run_lra.DataTrainingArguments(task="text"))
