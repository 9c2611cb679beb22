#!/usr/bin/env python
"""Training images/s: train_ddpm.py's step, unconditional and class-conditional, vs diffusers'
`train_unconditional.py` step, side by side in one run.

    python benchmarks/ddpm_throughput.py                          # batch 32, 3 alternating rounds of 3 steps
    python benchmarks/ddpm_throughput.py --batch_size 128 --steps 10 --rounds 5    # the study's batch
    python benchmarks/ddpm_throughput.py --launcher_mixed_precision bf16   # `accelerate launch --mixed_precision bf16`

Ours: the library's `hub_models.diffusion.training.training_step`, the step `DDPMTrainer` runs (uint8 digits in
memory as a TensorDataset, converted to [-1, 1] per batch on the device; EMA; clipping; loss reduced across
processes every update). Ours, class-conditional: the same step on a UNet with `num_class_embeds=11` and label
dropout 0.1 (what `train_ddpm.py --class_conditional` trains); its cost over the unconditional step is printed.

Baseline: a faithful replica of the step of diffusers' examples/unconditional_image_generation/
train_unconditional.py, patched to 1 channel the way a user has to: the Hub-schema MNIST `datasets.Dataset`
with `.with_transform` running, per item, `image.convert("L")` (the example has "RGB") → Resize → CenterCrop →
(no flip) → ToTensor → Normalize([0.5], [0.5]); a DataLoader with the example's default 0 workers; AdamW with
the example's defaults; cosine lr with warm-up; EMAModel; clipping; `loss.item()` logged every step.

All sides use the same UNet config, noise schedule (4000 steps, cosine) and batch size. Rounds alternate
(A B C, C B A, ...) so a busy shared CPU hits every side alike; medians and their ratios are printed.
`--data_only` also times the two input pipelines alone (batches/s without the UNet).

`--launcher_mixed_precision bf16` times what happens under `accelerate launch --mixed_precision bf16`: train_ddpm.py
(`--mixed_precision` default None) runs in bf16 autocast, while the example's `--mixed_precision` default "no"
overrides the launcher and it stays in fp32. bf16 pays off on GPUs and on CPUs with AMX/AVX512-BF16.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from hub_models.data import load_mnist, load_splits
from hub_models.diffusion import make_train_scheduler
from hub_models.diffusion.training import training_step
from hub_models.models.unet import UNET_CONFIGS, count_parameters, make_unet
from hub_models.training import make_accelerator
from hub_models.training.ddpm import make_ddpm_unet


def example_dataset(hf_split, resolution: int = 28):
    """The example's input pipeline, with the one-line patch a 1-channel user needs ("RGB" → "L")."""
    augmentations = transforms.Compose(
        [
            transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(resolution),
            transforms.Lambda(lambda x: x),  # --random_flip off (digits are not symmetric)
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ]
    )

    def transform_images(examples):
        return {"input": [augmentations(image.convert("L")) for image in examples["image"]]}

    return hf_split.with_transform(transform_images)


class Side:
    """A model + optimizer + loader + step function, timed in rounds."""

    def __init__(self, name: str, loader, step) -> None:
        self.name, self.loader, self.step, self.rates = name, loader, step, []
        self._it = iter(loader)

    def next_batch(self):
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            return next(self._it)

    def run(self, n_steps: int, batch_size: int, record: bool = True, data_only: bool = False) -> float:
        start = time.perf_counter()
        for _ in range(n_steps):
            batch = self.next_batch()
            if not data_only:
                self.step(batch)
        rate = n_steps * batch_size / (time.perf_counter() - start)
        if record:
            self.rates.append(rate)
        return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_config", default="default", help=f"UNet config: {sorted(UNET_CONFIGS)} or a JSON.")
    parser.add_argument("--batch_size", type=int, default=32, help="Batch size of both sides (the study: 128).")
    parser.add_argument("--steps", type=int, default=3, help="Timed training steps per round and side.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds per side.")
    parser.add_argument("--num_train_samples", type=int, default=4096, help="Digits in both datasets.")
    parser.add_argument("--data_only", action="store_true", help="Also time the input pipelines alone.")
    parser.add_argument(
        "--launcher_mixed_precision", choices=["no", "bf16"], default="no",
        help="What `accelerate launch` was told: train_ddpm.py follows it, the example's own default ('no') wins.",
    )  # fmt: skip
    args = parser.parse_args()

    n = args.num_train_samples
    ours_split = load_splits("study", limit=n)[0]
    hf_train = load_mnist()["train"].select(range(n))
    torch.manual_seed(0)
    accelerator = make_accelerator("/tmp/ddpm-throughput", log_with=None)
    noise_scheduler = make_train_scheduler()
    # What accelerate does to forward() with mixed_precision="bf16" (one process holds only one AcceleratorState,
    # and the example's side must stay in fp32).
    ours_bf16 = args.launcher_mixed_precision == "bf16"

    def our_side(name: str, class_conditional: bool) -> Side:
        """Exactly train_ddpm.py's step (DDPMTrainer's), on its own model, optimizer, EMA and loader."""
        model = make_ddpm_unet(args.model_config, class_conditional)
        ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        loader = DataLoader(TensorDataset(ours_split.images, ours_split.labels), batch_size=args.batch_size,
                            shuffle=True)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        lr_scheduler = accelerator.prepare(get_scheduler("constant", optimizer))
        ema.to(accelerator.device)
        generator = torch.Generator(device=accelerator.device).manual_seed(0)
        if ours_bf16:
            model.forward = torch.autocast(accelerator.device.type, dtype=torch.bfloat16)(model.forward)

        def step(batch) -> None:
            images, labels = batch
            loss = training_step(
                accelerator, model, optimizer, lr_scheduler, noise_scheduler, images, generator, max_grad_norm=1.0,
                ema=ema, class_labels=labels if class_conditional else None, label_dropout=0.1,
            )  # fmt: skip
            accelerator.reduce(loss, reduction="mean").item()  # the trainer logs the reduced loss every update

        return Side(name, loader, step)

    # --- baseline: the diffusers example's step, 1-channel patch ------------------------------------------------
    base_model = make_unet(args.model_config)
    base_ema = EMAModel(
        base_model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75,
        model_cls=UNet2DModel, model_config=base_model.config,
    )  # fmt: skip
    base_opt = torch.optim.AdamW(base_model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    base_loader = DataLoader(example_dataset(hf_train), batch_size=args.batch_size, shuffle=True, num_workers=0)
    base_lr = get_scheduler("cosine", optimizer=base_opt, num_warmup_steps=500, num_training_steps=10_000)
    base_model, base_opt, base_loader, base_lr = accelerator.prepare(base_model, base_opt, base_loader, base_lr)
    base_ema.to(accelerator.device)
    weight_dtype = torch.float32

    def base_step(batch) -> None:
        clean_images = batch["input"].to(weight_dtype)
        noise = torch.randn(clean_images.shape, dtype=weight_dtype, device=clean_images.device)
        bsz = clean_images.shape[0]
        timesteps = torch.randint(
            0, noise_scheduler.config.num_train_timesteps, (bsz,), device=clean_images.device
        ).long()
        noisy_images = noise_scheduler.add_noise(clean_images, noise, timesteps)
        with accelerator.accumulate(base_model):
            model_output = base_model(noisy_images, timesteps).sample
            loss = F.mse_loss(model_output.float(), noise.float())
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(base_model.parameters(), 1.0)
            base_opt.step()
            base_lr.step()
            base_opt.zero_grad()
        if accelerator.sync_gradients:
            base_ema.step(base_model.parameters())
        logs = {"loss": loss.detach().item(), "lr": base_lr.get_last_lr()[0], "ema_decay": base_ema.cur_decay_value}
        accelerator.log(logs)

    ours = our_side("train_ddpm.py step", class_conditional=False)
    cond = our_side("train_ddpm.py conditional", class_conditional=True)
    base = Side("diffusers example step", base_loader, base_step)
    sides = (ours, cond, base)
    print(
        f"UNet '{args.model_config}' ({count_parameters(make_unet(args.model_config)):,} parameters; conditional "
        f"+{count_parameters(make_ddpm_unet(args.model_config, True)) - count_parameters(make_unet(args.model_config))}"
        f"), batch {args.batch_size}, {args.rounds}×{args.steps} steps per side, {torch.get_num_threads()} threads, "
        f"{accelerator.device}; launcher mixed precision: {args.launcher_mixed_precision} "
        f"(train_ddpm.py: {'bf16' if ours_bf16 else 'fp32'}, example: fp32)",
        flush=True,
    )
    if args.data_only:
        data_rates = {s.name: [] for s in (ours, base)}
        for _ in range(3):
            for side in (ours, base):
                data_rates[side.name].append(side.run(20, args.batch_size, record=False, data_only=True))
        for name, rates in data_rates.items():
            print(f"input pipeline only, {name:26s}: {statistics.median(rates):9.0f} images/s")

    for side in sides:  # warm-up
        side.run(1, args.batch_size, record=False)
    for r in range(args.rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            side.run(args.steps, args.batch_size)
            print(f"  round {r + 1}: {side.name:26s} {side.rates[-1]:7.1f} images/s", flush=True)
    o, c, b = (statistics.median(side.rates) for side in sides)
    for side, rate in zip(sides, (o, c, b), strict=True):
        print(f"{side.name:26s}: {rate:7.1f} images/s (median of {len(side.rates)} rounds)")
    print(f"ratio ours/example: {o / b:.2f}×")
    print(f"conditional step cost over unconditional: {o / c - 1:+.1%} per step (ratio {c / o:.3f}×)")

if __name__ == "__main__":
    main()
