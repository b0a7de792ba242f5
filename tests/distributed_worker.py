"""Worker for tests/test_distributed.py: trains a saved tiny ITNet image classifier with the real `Trainer` on the
offline MNIST digits, as one process or as one rank of several (launched by `torchrun` or `accelerate launch`).

    torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py --init DIR --output_dir OUT \
        --per_device_batch 4 --phases ddp,trainer_fsdp,fsdp2

Each phase writes to `OUT/<phase>/`. Every rank writes `rank<R>.json` (its `RANK`/`WORLD_SIZE` environment, what
`torch.distributed` and the `TrainingArguments` report, the labels of the examples it trained on, the parallel
mode); rank 0 also writes `weights.pt`, the full state dict after training (gathered from the shards under FSDP)
and `losses.json`.
`train(...)` is also called in-process by the test for the single-process reference runs.
"""

import argparse
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))


@lru_cache
def mnist_examples(num_examples: int, image_size: int) -> list[dict]:
    """The first `num_examples` offline MNIST-5k training digits as `{"pixel_values" [1, S, S], "labels"}` dicts."""
    from offline_data import load_offline

    from modeling_itnet import ITNetImageProcessorPil

    train = load_offline("mnist")["train"].select(range(num_examples))[:]
    processor = ITNetImageProcessorPil(size={"height": image_size, "width": image_size}, num_channels=1)
    pixel_values = processor(train["image"], return_tensors="pt")["pixel_values"]
    return [{"pixel_values": pixel_values[i], "labels": torch.tensor(label)} for i, label in enumerate(train["label"])]


def train(
    init: str,
    output_dir: str,
    per_device_batch: int,
    max_steps: int = 3,
    learning_rate: float = 0.05,
    optim: str = "sgd",
    num_examples: int = 48,
    sampling: str = "random",
    fsdp_config: dict | None = None,
    seed: int = 0,
) -> dict:
    from modeling_itnet import ITNetForImageClassification

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = ITNetForImageClassification.from_pretrained(init)
    data = mnist_examples(num_examples, model.config.image_size)
    seen = []

    def collate(features: list[dict]) -> dict:
        seen.append([int(f["labels"]) for f in features])
        return {
            "pixel_values": torch.stack([f["pixel_values"] for f in features]),
            "labels": torch.stack([f["labels"] for f in features]),
        }

    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        use_cpu=True,
        per_device_train_batch_size=per_device_batch,
        max_steps=max_steps,
        learning_rate=learning_rate,
        optim=optim,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        seed=seed,
        data_seed=seed,
        train_sampling_strategy=sampling,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **({"fsdp": True, "fsdp_config": fsdp_config} if fsdp_config is not None else {}),
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collate)
    trainer.train()
    state_dict = trainer.accelerator.get_state_dict(trainer.model)  # full weights on rank 0 (FSDP: gathered)

    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    record = {
        "env_rank": os.environ.get("RANK"),
        "env_world_size": os.environ.get("WORLD_SIZE"),
        "dist_world_size": torch.distributed.get_world_size() if dist else 1,
        "dist_backend": torch.distributed.get_backend() if dist else None,
        "args_world_size": args.world_size,
        "process_index": args.process_index,
        "parallel_mode": str(args.parallel_mode),
        "distributed_type": str(trainer.accelerator.distributed_type),
        "model_class": type(trainer.model_wrapped).__name__,
        "batches": seen,
    }
    (out / f"rank{args.process_index}.json").write_text(json.dumps(record))
    if args.process_index == 0:
        torch.save({k: v.detach().cpu().clone() for k, v in state_dict.items()}, out / "weights.pt")
        losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
        (out / "losses.json").write_text(json.dumps(losses))
    return record


def train_fsdp2(
    init: str,
    output_dir: str,
    per_device_batch: int,
    max_steps: int = 3,
    learning_rate: float = 0.05,
    num_examples: int = 48,
) -> dict:
    """The same training as `train(..., optim="sgd", sampling="sequential")`, written out by hand around torch's FSDP2
    (`fully_shard` on every ITNet block, then on the whole model) in the running process group: step `s` takes
    examples `[s*G, (s+1)*G)` (G = world size x per-device batch), rank `r` the `r`-th slice of them; mean loss,
    gradient clipping at 1.0 (the `Trainer` default), plain SGD. Rank 0 saves the gathered full state dict."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    from modeling_itnet import ITNetForImageClassification

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    model = ITNetForImageClassification.from_pretrained(init).train()
    data = mnist_examples(num_examples, model.config.image_size)
    for layer in model.itnet.layers:
        fully_shard(layer)
    fully_shard(model)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=learning_rate)
    seen, losses = [], []
    for step in range(max_steps):
        start = (step * world_size + rank) * per_device_batch
        batch = data[start : start + per_device_batch]
        seen.append([int(f["labels"]) for f in batch])
        loss = model(
            pixel_values=torch.stack([f["pixel_values"] for f in batch]),
            labels=torch.stack([f["labels"] for f in batch]),
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    state_dict = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    record = {
        "env_rank": os.environ.get("RANK"),
        "env_world_size": os.environ.get("WORLD_SIZE"),
        "dist_world_size": world_size,
        "dist_backend": dist.get_backend(),
        "process_index": rank,
        "model_class": type(model).__name__,
        "all_dtensor": all(isinstance(p, DTensor) for p in params),
        "local_numel": sum(p.to_local().numel() for p in params),
        "full_numel": sum(p.numel() for p in params),
        "batches": seen,
        "losses": losses,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    if rank == 0:
        torch.save(state_dict, out / "weights.pt")
    dist.barrier()
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--init", required=True, help="A saved ITNetForImageClassification folder.")
    parser.add_argument("--output_dir", required=True, help="Each phase writes to a sub-folder named after it.")
    parser.add_argument("--per_device_batch", type=int, required=True)
    parser.add_argument("--max_steps", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument(
        "--phases",
        default="ddp",
        help="Comma-separated, run in order in the same processes: `ddp` (Trainer, the default random sampler), "
        "`trainer_fsdp` (Trainer with fsdp=True: FSDP2, every ITNetLayer), `fsdp2` (a loop around fully_shard).",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    common = {
        "per_device_batch": args.per_device_batch,
        "max_steps": args.max_steps,
        "learning_rate": args.learning_rate,
    }
    for phase in args.phases.split(","):
        output_dir = str(Path(args.output_dir) / phase)
        if phase == "ddp":
            train(args.init, output_dir, **common)
        elif phase == "trainer_fsdp":
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state()  # a new Trainer in the same processes: keep the process group only
            fsdp_config = {"version": 2, "transformer_layer_cls_to_wrap": ["ITNetLayer"]}
            train(args.init, output_dir, fsdp_config=fsdp_config, **common)
        elif phase == "fsdp2":
            train_fsdp2(args.init, output_dir, **common)
        else:
            raise ValueError(f"Unknown phase {phase!r}.")


if __name__ == "__main__":
    main()
