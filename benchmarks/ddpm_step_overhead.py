#!/usr/bin/env python
"""What train_ddpm.py's step costs besides the UNet, and the UNet's memory layout: side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/ddpm_step_overhead.py                      # fp32, batch 64
    OMP_NUM_THREADS=1 python benchmarks/ddpm_step_overhead.py --precision bf16     # under bf16 autocast

Sides, all on the default UNet with the same batch of real digits:
- full step: the library's `training_step` as `DDPMTrainer` runs it (accelerate-prepared model and optimizer,
  accumulate, clipping, lr schedule, EMA every update, the loss reduced across processes and read every update);
- UNet only: forward + MSE + backward + a plain Adam step, nothing else (what no training loop can avoid);
- full step, channels_last: the full step with the UNet in `torch.channels_last` memory format.
Rounds alternate (A B C, C B A, …) so a busy shared CPU hits every side alike; medians and ratios are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from hub_models.data import load_splits
from hub_models.diffusion import make_train_scheduler
from hub_models.diffusion.training import to_model_range, training_step
from hub_models.training import make_accelerator
from hub_models.training.ddpm import make_ddpm_unet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_config", default="default", help="UNet config (default, attention, tiny).")
    parser.add_argument("--batch_size", type=int, default=64, help="Digits per step.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds of 2 steps per side.")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: every side under torch.autocast (what `--mixed_precision bf16` does).")
    args = parser.parse_args()

    torch.manual_seed(0)
    accelerator = make_accelerator("/tmp/ddpm-step-overhead", log_with=None)
    noise_scheduler = make_train_scheduler()
    images = load_splits("study", limit=args.batch_size)[0].images[: args.batch_size]
    autocast = torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def full_step(channels_last: bool):
        model = make_ddpm_unet(args.model_config)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        model, optimizer = accelerator.prepare(model, optimizer)
        model.forward = autocast(model.forward)
        lr_scheduler = accelerator.prepare(get_scheduler("constant", optimizer))
        generator = torch.Generator(device=accelerator.device).manual_seed(0)

        def step() -> None:
            loss = training_step(accelerator, model, optimizer, lr_scheduler, noise_scheduler, images, generator,
                                 max_grad_norm=1.0, ema=ema)
            accelerator.reduce(loss, reduction="mean").item()

        return step

    bare = make_ddpm_unet(args.model_config).to(accelerator.device)
    bare_optimizer = torch.optim.Adam(bare.parameters(), lr=1e-4)

    def unet_only() -> None:
        generator = torch.Generator().manual_seed(1)
        x0 = to_model_range(images).to(accelerator.device)
        noise = torch.randn(x0.shape, generator=generator).to(accelerator.device)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(x0),), generator=generator)
        with autocast:
            pred = bare(noise_scheduler.add_noise(x0, noise, t.to(x0.device)), t.to(x0.device)).sample
        F.mse_loss(pred.float(), noise).backward()
        bare_optimizer.step()
        bare_optimizer.zero_grad()

    sides = {"full step": full_step(False), "UNet only": unet_only, "full step, channels_last": full_step(True)}
    print(f"UNet '{args.model_config}', batch {args.batch_size}, {args.precision}, {torch.get_num_threads()} threads, "
          f"{accelerator.device}, {args.rounds} alternating rounds of 2 steps per side", flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for step in sides.values():  # warm-up
        step()
    for r in range(args.rounds):
        for name in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            t0 = time.perf_counter()
            sides[name]()
            sides[name]()
            seconds[name].append((time.perf_counter() - t0) / 2)
            print(f"  round {r + 1}: {name:26s} {seconds[name][-1]:6.2f} s/step", flush=True)
    full = statistics.median(seconds["full step"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:26s}: {median:6.2f} s/step (median), speed {full / median:.3f}× the full step's")


if __name__ == "__main__":
    main()
