#!/usr/bin/env python
"""Train the MNIST digit classifier that judges generated digits (≥ 99 % test accuracy in a few CPU minutes).

    accelerate launch training/train_classifier.py --output_dir release/digit-classifier

Writes OUTPUT_DIR/config.json + diffusion_pytorch_model.safetensors (so `DigitClassifier.from_pretrained(D)`
works), metrics.json, training_config.json, README.md (model card), logs/ and checkpoints/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.data import load_splits
from hub_models.models.classifier import DigitClassifier, classifier_model_card
from hub_models.training import (
    check_finite,
    end_training,
    load_checkpoint,
    make_accelerator,
    resume_point,
    save_checkpoint,
    save_pretrained_atomic,
    updates_per_epoch,
    write_json_atomic,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", required=True, help="Run folder (model at its root, metrics.json, card).")
    p.add_argument("--split", default="official", choices=["official", "study"],
                   help="'official': 60k train / 10k test (default); 'study': the study's 48k/12k split.")
    p.add_argument("--limit", type=int, default=None, help="Use only the first N digits of each split (tests).")
    p.add_argument("--epochs", type=int, default=5, help="Training epochs.")
    p.add_argument("--batch_size", type=int, default=256, help="Batch size per process.")
    p.add_argument("--learning_rate", type=float, default=3e-3, help="Peak learning rate of the one-cycle schedule.")
    p.add_argument("--weight_decay", type=float, default=1e-4, help="AdamW weight decay.")
    p.add_argument("--channels", type=int, nargs=2, default=[16, 32], help="Channels of the two conv blocks.")
    p.add_argument("--hidden_dim", type=int, default=128, help="Size of the penultimate (feature) layer.")
    p.add_argument("--dropout", type=float, default=0.3, help="Dropout before the last layer.")
    p.add_argument("--seed", type=int, default=0, help="Seed of initialisation and shuffling.")
    p.add_argument("--eval_batch_size", type=int, default=1000, help="Batch size of the test-set evaluation.")
    p.add_argument("--checkpointing_steps", type=str, default="epoch",
                   help="'epoch', an integer number of updates, or 'none'.")
    p.add_argument("--checkpoints_total_limit", type=int, default=1, help="Keep at most this many checkpoints.")
    p.add_argument("--resume_from_checkpoint", type=str, default=None, help="'latest' or a checkpoint folder.")
    p.add_argument("--repo_id", type=str, default="mnist-genlab-digit-classifier",
                   help="Repository id written into the model card.")
    return p.parse_args(argv)


@torch.no_grad()
def evaluate_accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int) -> dict[str, float]:
    """Accuracy and mean cross-entropy on a held-out set (eval mode)."""
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(model.device)
        y = labels[start:start + batch_size].to(model.device)
        logits = model.logits(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train()
    n = max(len(images), 1)
    return {"accuracy": correct / n, "loss": loss / n}


def main(args: argparse.Namespace) -> dict:
    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(output_dir)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output_dir / "training_config.json", vars(args))
        accelerator.init_trackers("train_classifier", config={k: str(v) for k, v in vars(args).items()})

    train, test = load_splits(args.split, limit=args.limit)
    loader = DataLoader(TensorDataset(train.as_float(), train.labels), batch_size=args.batch_size, shuffle=True,
                        drop_last=False, generator=torch.Generator().manual_seed(args.seed))
    model = DigitClassifier(channels=tuple(args.channels), hidden_dim=args.hidden_dim, dropout=args.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    steps_per_epoch = updates_per_epoch(math.ceil(len(train) / (args.batch_size * accelerator.num_processes)), 1)
    # One-cycle: fast warm-up then cosine decay, so a few epochs are enough for ≥ 99 %.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate,
                                                    total_steps=args.epochs * steps_per_epoch, pct_start=0.15)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    start = resume_point(load_checkpoint(accelerator, output_dir, args.resume_from_checkpoint)
                         if args.resume_from_checkpoint else None, steps_per_epoch, 1)
    global_step = start.global_step
    history: list[dict] = []
    if (output_dir / "metrics.json").exists() and global_step:
        history = [h for h in json.loads((output_dir / "metrics.json").read_text()).get("history", [])
                   if h["epoch"] < start.first_epoch]
    every = None if args.checkpointing_steps in ("epoch", "none") else int(args.checkpointing_steps)

    train_seconds = 0.0
    unwrapped = accelerator.unwrap_model(model)
    for epoch in range(start.first_epoch, args.epochs):
        model.train()
        epoch_loader = loader
        if epoch == start.first_epoch and start.batches_to_skip:
            epoch_loader = accelerator.skip_first_batches(loader, start.batches_to_skip)
        t0 = time.perf_counter()
        total, count, correct = 0.0, 0, 0
        for x, y in epoch_loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            check_finite(loss, global_step)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            global_step += 1
            total += loss.item() * len(y)
            count += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            if every and global_step % every == 0:
                save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
        train_seconds += time.perf_counter() - t0
        test_metrics = evaluate_accuracy(unwrapped, test.as_float(), test.labels, args.eval_batch_size)
        record = {"epoch": epoch, "train_loss": total / max(count, 1), "train_accuracy": correct / max(count, 1),
                  "test_loss": test_metrics["loss"], "test_accuracy": test_metrics["accuracy"],
                  "epoch_seconds": time.perf_counter() - t0}
        history.append(record)
        accelerator.log(record, step=global_step)
        accelerator.print(json.dumps(record))
        if args.checkpointing_steps == "epoch":
            save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)

    final = evaluate_accuracy(unwrapped, test.as_float(), test.labels, args.eval_batch_size)
    metrics = {
        "model": "digit-classifier",
        "parameters": sum(p.numel() for p in unwrapped.parameters()),
        "test_accuracy": final["accuracy"],
        "test_loss": final["loss"],
        "test_size": len(test),
        "train_size": len(train),
        "history": history,
        "train_seconds": train_seconds + sum(h.get("epoch_seconds", 0) for h in history[: start.first_epoch]),
        "seconds_per_epoch": (sum(h["epoch_seconds"] for h in history) / len(history)) if history else None,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "split": args.split,
        "global_step": global_step,
        "torch_threads": torch.get_num_threads(),
        "config": {k: v for k, v in unwrapped.config.items() if not k.startswith("_")},
    }
    if accelerator.is_main_process:
        save_pretrained_atomic(unwrapped, output_dir)
        write_json_atomic(output_dir / "metrics.json", metrics)
        classifier_model_card(metrics, args.repo_id).save(output_dir / "README.md")
        accelerator.print(f"test accuracy {final['accuracy']:.4%} → {output_dir}")
    end_training(accelerator)
    return metrics


if __name__ == "__main__":
    main(parse_args())
