#!/usr/bin/env python
"""Training images/s: train_vae.py's step vs the common tutorial loop, side by side in one run.

    python benchmarks/vae_throughput.py                 # Conv VAE, batch 64, 5 alternating rounds of 100 steps

Ours: uint8 tensors in memory, converted per batch, accelerate-prepared model/optimizer/loader (the step
train_vae.py runs, `hub_models.training.vae.training_step`). Baseline: a plain PyTorch loop over a
`torch.utils.data.Dataset` that turns each PIL image into a tensor per item (`transforms.ToTensor()`), the pattern
of most tutorials. Same model, batch size and loss.
Rounds alternate (A B A B ...) so machine noise hits both sides alike; the ratio of medians is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from hub_models import VAE_CLASSES
from hub_models.data import load_mnist, load_mnist_arrays
from hub_models.training import make_accelerator
from hub_models.training.vae import training_step


class PILDigits(Dataset):
    """The tutorial pattern: decode and convert one PIL image per item."""

    def __init__(self, hf_split) -> None:
        self.split, self.to_tensor = hf_split, transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.to_tensor(self.split[i]["image"])


def timed(loader, step, n_steps: int, batch_size: int) -> float:
    it, done = iter(loader), 0
    start = time.perf_counter()
    while done < n_steps:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        step(batch)
        done += 1
    return n_steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(VAE_CLASSES), default="conv", help="Which VAE.")
    parser.add_argument("--batch_size", type=int, default=64, help="Batch size (the study's 64).")
    parser.add_argument("--steps", type=int, default=100, help="Steps per round.")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating rounds per side.")
    args = parser.parse_args()

    train = load_mnist()["train"]
    images = load_mnist_arrays()["train_images"]

    torch.manual_seed(0)
    accelerator = make_accelerator("/tmp/vae-throughput", log_with=None)
    ours_model = VAE_CLASSES[args.arch]()
    ours_opt = torch.optim.Adam(ours_model.parameters(), lr=1e-3)
    ours_loader = DataLoader(TensorDataset(images), batch_size=args.batch_size, shuffle=True)
    ours_model, ours_opt, ours_loader = accelerator.prepare(ours_model, ours_opt, ours_loader)
    generator = torch.Generator().manual_seed(0)

    base_model = VAE_CLASSES[args.arch]()
    base_opt = torch.optim.Adam(base_model.parameters(), lr=1e-3)
    base_loader = DataLoader(PILDigits(train), batch_size=args.batch_size, shuffle=True)

    def ours_step(batch):
        training_step(accelerator, ours_model, ours_opt, batch[0], 1.0, generator, 0)

    def base_step(x):
        loss = base_model.loss(x, beta=1.0).loss
        base_opt.zero_grad()
        loss.backward()
        base_opt.step()

    ours, base = [], []
    timed(ours_loader, ours_step, 10, args.batch_size), timed(base_loader, base_step, 10, args.batch_size)  # warm-up
    for _ in range(args.rounds):
        ours.append(timed(ours_loader, ours_step, args.steps, args.batch_size))
        base.append(timed(base_loader, base_step, args.steps, args.batch_size))
    o, b = statistics.median(ours), statistics.median(base)
    print(f"{args.arch} VAE, batch {args.batch_size}, {args.rounds}×{args.steps} steps per side, "
          f"{torch.get_num_threads()} threads")
    print(f"train_vae.py step : {o:8.0f} images/s  (rounds: {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"PIL-per-item loop : {b:8.0f} images/s  (rounds: {', '.join(f'{v:.0f}' for v in base)})")
    print(f"ratio ours/baseline: {o / b:.2f}×")


if __name__ == "__main__":
    main()
