#!/usr/bin/env python
"""Train the study's DDPM on MNIST: a UNet2DModel predicting ε under a cosine schedule over 4000 timesteps.

    accelerate launch training/train_ddpm.py                                  # the study's recipe (20 epochs)
    accelerate launch training/train_ddpm.py --model_config attention --output_dir runs/ddpm-attn
    python training/train_ddpm.py --model_config tiny --max_train_steps 20 --output_dir /tmp/ddpm  # smoke run

Writes a `DDPMPipeline` folder (model_index.json, unet/ with EMA weights, scheduler/), unet_non_ema/,
metrics.json, training_config.json, figures/samples*.png, logs/ (tensorboard) and checkpoints/ into
--output_dir, at the end of EVERY epoch, so a run cut short is still usable. See docs/DDPM.md.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_ddpm.py` from a checkout

from hub_models.data import MNISTUnavailableError, load_splits
from hub_models.diffusion.pipeline import make_train_scheduler, save_pipeline
from hub_models.diffusion.sampling import SAMPLERS, sample_images
from hub_models.figures import save_png, to_pil
from hub_models.models.unet import UNET_CONFIGS, count_parameters, make_unet
from hub_models.reference import STUDY_DDPM
from hub_models.training import (
    CheckpointedGenerator,
    Stopwatch,
    check_finite,
    end_training,
    list_checkpoints,
    make_accelerator,
    positive_int,
    resume_from,
    save_checkpoint,
    save_pretrained_atomic,
    updates_per_epoch,
    write_json_atomic,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Model and noise schedule
    parser.add_argument(
        "--model_config",
        default="default",
        help=f"UNet config: one of {sorted(UNET_CONFIGS)} or a JSON file of UNet2DModel arguments.",
    )
    parser.add_argument("--num_train_timesteps", type=positive_int, default=4000, help="Diffusion steps T.")
    parser.add_argument(
        "--beta_schedule",
        default="squaredcos_cap_v2",
        choices=["squaredcos_cap_v2", "linear", "scaled_linear"],
        help="β_t schedule (cosine).",
    )
    parser.add_argument(
        "--prediction_type",
        choices=["epsilon", "v_prediction", "sample"],
        default="epsilon",
        help="What the UNet predicts; the study predicts ε.",
    )
    # Data
    parser.add_argument(
        "--split",
        choices=["study", "official"],
        default="study",
        help="study: 80/20 of the 60k training digits (48k/12k); official: 60k train / 10k test.",
    )
    parser.add_argument(
        "--limit_train_samples",
        type=positive_int,
        default=None,
        help="Use only the first N digits of each split (quick runs, tests).",
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=0,
        help="DataLoader workers (0 is fastest here: batches are slices of an in-memory tensor).",
    )
    # Optimisation
    parser.add_argument("--num_epochs", type=positive_int, default=20, help="Training epochs.")
    parser.add_argument(
        "--max_train_steps",
        type=positive_int,
        default=None,
        help="Stop after this many updates (overrides --num_epochs; for tests and short runs).",
    )
    parser.add_argument("--train_batch_size", type=positive_int, default=128, help="Batch size per process.")
    parser.add_argument("--eval_batch_size", type=positive_int, default=256, help="Batch size of the test loss.")
    parser.add_argument(
        "--max_eval_samples", type=positive_int, default=None,
        help="Test loss on the first N held-out digits only (default: all; a faster epoch end on a CPU).",
    )  # fmt: skip
    parser.add_argument("--learning_rate", type=float, default=1e-4, help="Adam learning rate.")
    parser.add_argument(
        "--lr_scheduler",
        default="constant",
        choices=["constant", "constant_with_warmup", "cosine", "linear"],
        help="Learning-rate schedule (the study: constant).",
    )
    parser.add_argument("--lr_warmup_steps", type=int, default=0, help="Warm-up updates of the lr schedule.")
    parser.add_argument("--adam_beta1", type=float, default=0.9, help="Adam β1.")
    parser.add_argument("--adam_beta2", type=float, default=0.999, help="Adam β2.")
    parser.add_argument("--adam_weight_decay", type=float, default=0.0, help="Adam weight decay.")
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam ε.")
    parser.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm (0 = off).")
    parser.add_argument(
        "--gradient_accumulation_steps", type=positive_int, default=1, help="Batches per optimizer update."
    )
    parser.add_argument(
        "--mixed_precision",
        choices=["no", "fp16", "bf16"],
        default=None,
        help="Defaults to `accelerate launch`'s setting (none when run with python).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of initialisation, shuffling and noise.")
    # EMA
    parser.add_argument(
        "--no_ema",
        dest="use_ema",
        action="store_false",
        help="Do not keep an EMA of the weights (unet/ then holds the raw weights).",
    )
    parser.add_argument("--ema_max_decay", type=float, default=0.9999, help="Maximum EMA decay.")
    parser.add_argument("--ema_inv_gamma", type=float, default=1.0, help="EMA warm-up inverse gamma.")
    parser.add_argument("--ema_power", type=float, default=3 / 4, help="EMA warm-up power.")
    # Evaluation and figures
    parser.add_argument(
        "--eval_seed",
        type=int,
        default=1234,
        help="Seed of the test loss's noise and timesteps (the same for every epoch and run).",
    )
    parser.add_argument("--sampler", choices=SAMPLERS, default="dpmsolver++", help="Sampler of the sample grids.")
    parser.add_argument("--sample_steps", type=positive_int, default=25, help="Denoising steps of the grids.")
    parser.add_argument("--num_sample_images", type=positive_int, default=64, help="Digits in each grid.")
    parser.add_argument(
        "--log_every",
        type=positive_int,
        default=50,
        help="Print a progress line every N updates when stderr is not a terminal.",
    )
    # Checkpoints and outputs
    parser.add_argument("--output_dir", default="runs/ddpm-default", help="Where the run is written.")
    parser.add_argument(
        "--checkpointing_steps",
        type=positive_int,
        default=500,
        help="Save an accelerate checkpoint every N updates (and at the end).",
    )
    parser.add_argument(
        "--checkpoints_total_limit", type=positive_int, default=2, help="Keep the newest K checkpoints."
    )
    parser.add_argument(
        "--resume_from_checkpoint",
        default=None,
        help="'latest' or a checkpoint folder: continue exactly where that run stopped.",
    )
    parser.add_argument("--logger", choices=["tensorboard", "none"], default="tensorboard", help="Tracker.")
    parser.add_argument("--push_to_hub", action="store_true", help="Push the finished run to the Hub.")
    parser.add_argument("--hub_model_id", default=None, help="Repo id for --push_to_hub (user/name).")
    parser.add_argument("--hub_private", action="store_true", help="Create the Hub repo as private.")
    parser.add_argument(
        "--write_rank_fingerprints",
        action="store_true",
        help="Each process writes a hash of its final weights (checks data-parallel sync).",
    )
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    return args


class TrainState:
    """What an exact resume needs beyond model/optimizer/RNG: the running loss of the current epoch, the loss
    of every update so far and the per-epoch history. Saved by `accelerator.register_for_checkpointing`."""

    def __init__(self) -> None:
        self.epoch_loss_sum = 0.0
        self.epoch_updates = 0
        self.loss_curve: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.train_seconds = 0.0  # wall time of the updates, summed over resumed sessions

    def record(self, entry: dict[str, Any]) -> None:
        # A partial epoch (stop at --max_train_steps) is replaced when a resumed run finishes that epoch.
        self.history = [h for h in self.history if h["epoch"] != entry["epoch"]] + [entry]

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_updates": self.epoch_updates,
            "loss_curve": list(self.loss_curve),
            "history": [dict(h) for h in self.history],
            "train_seconds": self.train_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch_loss_sum, self.epoch_updates = state["epoch_loss_sum"], state["epoch_updates"]
        self.loss_curve, self.history = list(state["loss_curve"]), [dict(h) for h in state["history"]]
        self.train_seconds = state.get("train_seconds", 0.0)


def weights_fingerprint(*modules: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (batch, 28, 28) → float (batch, 1, 28, 28) in [-1, 1], on the images' device."""
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0)


def target_for(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    return x0


def diffusion_loss(
    model: torch.nn.Module, noise_scheduler, images: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The DDPM training loss of one batch of uint8 digits: noise them at random timesteps, MSE to the target."""
    x0 = to_model_range(images)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (len(x0),), generator=generator, device=x0.device
    )
    pred = model(noise_scheduler.add_noise(x0, noise, timesteps), timesteps).sample
    return F.mse_loss(pred.float(), target_for(noise_scheduler, x0, noise, timesteps).float())


def training_step(
    accelerator,
    model,
    optimizer,
    lr_scheduler,
    noise_scheduler,
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    max_grad_norm: float,
    ema: EMAModel | None = None,
    step: int = 0,
) -> torch.Tensor:
    """One micro-batch: loss, backward, clip + optimizer/lr/EMA updates when gradients sync. Returns the loss.
    (Shared with benchmarks/ddpm_throughput.py, so the benchmark times exactly this code.)"""
    with accelerator.accumulate(model):
        loss = diffusion_loss(model, noise_scheduler, images, generator)
        check_finite(loss, step)
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    if accelerator.sync_gradients and ema is not None:
        ema.step(accelerator.unwrap_model(model).parameters())
    return loss.detach()


@torch.no_grad()
def test_loss(model: UNet2DModel, scheduler, images: torch.Tensor, batch_size: int, seed: int, accelerator) -> float:
    """Held-out MSE with noise and timesteps drawn from `seed + batch index`: the same numbers every epoch, on
    any number of processes (batches are dealt out round-robin and the sums all-reduced)."""
    was_training = model.training
    model.eval()
    device = accelerator.device
    total = torch.zeros(2, device=device, dtype=torch.float64)
    batches = images.split(batch_size)
    for index in range(accelerator.process_index, len(batches), accelerator.num_processes):
        x0 = to_model_range(batches[index]).to(device)
        gen = torch.Generator().manual_seed(seed + index)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=gen).to(device)
        with accelerator.autocast():
            pred = model(scheduler.add_noise(x0, noise, timesteps), timesteps).sample
        per_image = F.mse_loss(
            pred.float(), target_for(scheduler, x0, noise, timesteps).float(), reduction="none"
        ).mean(dim=(1, 2, 3))
        total += torch.stack([per_image.sum().double(), torch.tensor(len(x0), device=device, dtype=torch.float64)])
    total = accelerator.reduce(total, reduction="sum")
    model.train(was_training)
    return (total[0] / total[1]).item()


def main(args: argparse.Namespace) -> None:
    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(
        output_dir,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=None if args.logger == "none" else args.logger,
    )
    set_seed(args.seed)

    try:
        train, held_out = load_splits(args.split, limit=args.limit_train_samples)
    except MNISTUnavailableError as err:
        raise SystemExit(f"error: {err}") from None

    model = make_unet(args.model_config)
    noise_scheduler = make_train_scheduler(args.num_train_timesteps, args.beta_schedule, args.prediction_type)
    ema = None
    if args.use_ema:
        ema = EMAModel(
            model.parameters(),
            decay=args.ema_max_decay,
            use_ema_warmup=True,
            inv_gamma=args.ema_inv_gamma,
            power=args.ema_power,
            model_cls=UNet2DModel,
            model_config=model.config,
        )
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )
    # uint8 tensors stay in memory; batches become floats on the device: no per-item PIL transforms.
    loader = DataLoader(
        TensorDataset(train.images),
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=False,
        num_workers=args.num_workers,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = updates_per_epoch(len(loader), args.gradient_accumulation_steps)  # per process, after sharding
    max_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    # The prepared scheduler steps once per process per update, hence the factors (as in diffusers' examples).
    lr_scheduler = accelerator.prepare(
        get_scheduler(
            args.lr_scheduler,
            optimizer,
            num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=max_steps * accelerator.num_processes,
        )
    )
    num_epochs = math.ceil(max_steps / steps_per_epoch)

    # Registration order is the checkpoint layout: keep it fixed.
    noise_rng = CheckpointedGenerator(args.seed + accelerator.process_index, accelerator.device)
    state = TrainState()
    accelerator.register_for_checkpointing(noise_rng)
    accelerator.register_for_checkpointing(state)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    start = resume_from(accelerator, output_dir, args.resume_from_checkpoint, steps_per_epoch,
                        args.gradient_accumulation_steps)
    if ema is not None:
        ema.to(accelerator.device)  # load_state puts the shadow weights on the CPU

    unwrapped = accelerator.unwrap_model(model)
    parameters = count_parameters(unwrapped)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            output_dir / "training_config.json",
            {
                **vars(args),
                "num_processes": accelerator.num_processes,
                "mixed_precision_used": accelerator.mixed_precision,
                "total_batch_size": args.train_batch_size
                * accelerator.num_processes
                * args.gradient_accumulation_steps,
            },
        )
        accelerator.init_trackers("train_ddpm", config={k: str(v) if v is None else v for k, v in vars(args).items()})
    accelerator.print(
        f"UNet '{args.model_config}': {parameters:,} parameters; {len(train):,} train / "
        f"{len(held_out):,} held-out digits; {max_steps} updates ({steps_per_epoch}/epoch); "
        f"{accelerator.num_processes} process(es) on {accelerator.device}; "
        f"mixed precision {accelerator.mixed_precision}"
    )

    interactive = sys.stderr.isatty()
    progress = tqdm(
        total=max_steps,
        initial=start.global_step,
        desc="train_ddpm",
        disable=not (accelerator.is_local_main_process and interactive),
    )
    global_step, clock = start.global_step, Stopwatch()
    images_seen, last_print = 0, time.perf_counter()
    eval_images = held_out.images[: args.max_eval_samples]
    ema_unet = UNet2DModel.from_config(unwrapped.config).to(accelerator.device) if ema is not None else None
    for epoch in range(start.first_epoch, num_epochs):
        model.train()
        loader.set_epoch(epoch)
        resuming_mid_epoch = epoch == start.first_epoch and start.batches_to_skip > 0
        batches = accelerator.skip_first_batches(loader, start.batches_to_skip) if resuming_mid_epoch else loader
        if not resuming_mid_epoch:
            state.epoch_loss_sum, state.epoch_updates = 0.0, 0
        update_loss = torch.zeros((), device=accelerator.device)
        tick = time.perf_counter()
        with clock:
            for (images,) in batches:
                loss = training_step(
                    accelerator, model, optimizer, lr_scheduler, noise_scheduler, images, noise_rng.generator,
                    max_grad_norm=args.max_grad_norm, ema=ema, step=global_step,
                )  # fmt: skip
                update_loss += loss / args.gradient_accumulation_steps
                images_seen += len(images) * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                global_step += 1
                now = time.perf_counter()
                state.train_seconds, tick = state.train_seconds + now - tick, now
                step_loss = accelerator.reduce(update_loss, reduction="mean").item()
                update_loss.zero_()
                state.loss_curve.append(step_loss)
                state.epoch_loss_sum += step_loss
                state.epoch_updates += 1
                progress.update(1)
                progress.set_postfix(loss=f"{step_loss:.4f}")
                logs = {"train/loss": step_loss, "train/lr": lr_scheduler.get_last_lr()[0]}
                if ema is not None:
                    logs["train/ema_decay"] = ema.cur_decay_value
                accelerator.log(logs, step=global_step)
                if not interactive and global_step % args.log_every == 0:
                    now = time.perf_counter()
                    accelerator.print(
                        f"step {global_step}/{max_steps} epoch {epoch + 1} loss {step_loss:.4f} "
                        f"(epoch mean {state.epoch_loss_sum / state.epoch_updates:.4f}) "
                        f"{(now - last_print) / args.log_every:.2f} s/step",
                        flush=True,
                    )
                    last_print = now
                if global_step % args.checkpointing_steps == 0:
                    save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
                if global_step >= max_steps:
                    break

        # End of epoch (or of a partial one): test loss with fixed noise, then a usable pipeline on disk.
        train_loss = state.epoch_loss_sum / max(state.epoch_updates, 1)
        entry = {
            "epoch": epoch + 1,
            "step": global_step,
            "train_loss": train_loss,
            # The unwrapped model: ranks may run different numbers of eval batches, so no DDP forward here.
            "test_loss": test_loss(
                unwrapped, noise_scheduler, eval_images, args.eval_batch_size, args.eval_seed, accelerator
            ),
        }
        if ema is not None:
            ema.copy_to(ema_unet.parameters())
            entry["test_loss_ema"] = test_loss(
                ema_unet, noise_scheduler, eval_images, args.eval_batch_size, args.eval_seed, accelerator
            )
        entry["complete"] = state.epoch_updates == steps_per_epoch
        state.record(entry)
        accelerator.log(
            {
                "epoch/train_loss": entry["train_loss"],
                "epoch/test_loss": entry["test_loss"],
                **({"epoch/test_loss_ema": entry["test_loss_ema"]} if ema is not None else {}),
            },
            step=global_step,
        )
        accelerator.print(
            f"epoch {epoch + 1}: train loss {entry['train_loss']:.4f} | test loss "
            f"{entry['test_loss']:.4f}" + (f" (EMA {entry['test_loss_ema']:.4f})" if ema else ""),
            flush=True,
        )
        if global_step >= max_steps and not any(
            c.name == f"checkpoint-{global_step}" for c in list_checkpoints(output_dir)
        ):
            save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
        if accelerator.is_main_process:
            write_run(
                output_dir,
                unwrapped,
                ema_unet,
                noise_scheduler,
                state,
                args,
                epoch,
                global_step,
                parameters,
                clock,
                images_seen,
                accelerator.num_processes,
                len(train),
                len(held_out),
                steps_per_epoch,
                accelerator.mixed_precision,
            )
        accelerator.wait_for_everyone()
        if global_step >= max_steps:
            break
    progress.close()

    if args.write_rank_fingerprints:
        modules = (unwrapped, ema_unet) if ema_unet is not None else (unwrapped,)
        (output_dir / f"rank{accelerator.process_index}.sha256").write_text(weights_fingerprint(*modules))
    if accelerator.is_main_process and args.push_to_hub:
        _push(output_dir, args)
    end_training(accelerator)


def write_run(
    output_dir: Path,
    unwrapped: UNet2DModel,
    ema_unet: UNet2DModel | None,
    noise_scheduler,
    state: TrainState,
    args: argparse.Namespace,
    epoch: int,
    global_step: int,
    parameters: int,
    clock: Stopwatch,
    images_seen: int,
    num_processes: int,
    n_train: int,
    n_test: int,
    steps_per_epoch: int,
    mixed_precision: str,
) -> None:
    """The pipeline folder (EMA weights in unet/, raw in unet_non_ema/), a sample grid and metrics.json."""
    sampling_unet = ema_unet if ema_unet is not None else unwrapped
    save_pipeline(sampling_unet, noise_scheduler, output_dir)
    save_pretrained_atomic(unwrapped, output_dir / "unet_non_ema", safe_serialization=True)

    generator = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    images = sample_images(
        sampling_unet,
        noise_scheduler.config,
        args.sampler,
        args.sample_steps,
        args.num_sample_images,
        generator=generator,
    )
    sample_seconds = time.perf_counter() - t0
    grid = to_pil(images, nrow=math.ceil(math.sqrt(args.num_sample_images)), scale=3)
    save_png(grid, output_dir / "figures" / f"samples_epoch_{epoch + 1:03d}.png")
    save_png(grid, output_dir / "figures" / "samples.png")
    save_png(loss_figure(state, steps_per_epoch), output_dir / "figures" / "loss_curve.png")

    last = state.history[-1]
    write_json_atomic(
        output_dir / "metrics.json",
        {
            "model": "ddpm",
            "unet_config": str(args.model_config),
            "parameters": parameters,
            "num_train_timesteps": args.num_train_timesteps,
            "beta_schedule": args.beta_schedule,
            "prediction_type": args.prediction_type,
            "ema": ema_unet is not None,
            "train_loss": last["train_loss"],
            "test_loss": last["test_loss"],
            **({"test_loss_ema": last["test_loss_ema"]} if "test_loss_ema" in last else {}),
            "history": state.history,
            "epochs": epoch + 1,
            "epochs_planned": args.num_epochs,
            "global_step": global_step,
            "num_processes": num_processes,
            "mixed_precision": mixed_precision,
            "train_batch_size": args.train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "train_seconds": state.train_seconds,
            "seconds_per_epoch": state.train_seconds * steps_per_epoch / max(global_step, 1),
            "images_per_second_this_session": images_seen / clock.total if clock.total else None,
            "sampler": {
                "name": args.sampler,
                "steps": args.sample_steps,
                "seconds": sample_seconds,
                "num_images": args.num_sample_images,
            },
            "seed": args.seed,
            "split": args.split,
            "train_samples": n_train,
            "test_samples": n_test,
            "test_loss_samples": min(n_test, args.max_eval_samples or n_test),
            "loss_curve": state.loss_curve,
            "study": STUDY_DDPM,
        },
    )


def loss_figure(state: TrainState, steps_per_epoch: int):
    """Training loss per update (smoothed) and per-epoch train/test losses, next to the study's figures."""
    import matplotlib.pyplot as plt

    from hub_models.figures import figure_to_pil

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    curve = torch.tensor(state.loss_curve)
    window = max(1, min(50, len(curve) // 10))
    smooth = curve.unfold(0, window, 1).mean(1) if len(curve) >= window else curve
    ax.plot(
        torch.arange(window, window + len(smooth)) / steps_per_epoch, smooth, lw=1, label=f"train (mean of {window})"
    )
    epochs = [h for h in state.history if h.get("complete")]
    if epochs:
        x = [h["step"] / steps_per_epoch for h in epochs]
        ax.plot(x, [h["train_loss"] for h in epochs], "o-", label="train, epoch mean")
        ax.plot(x, [h["test_loss"] for h in epochs], "s-", label="held-out")
    ax.axhline(STUDY_DDPM["test_loss"], color="grey", ls="--", lw=1, label="study: test 0.0280")
    ax.set(xlabel="epoch", ylabel="ε-prediction MSE", yscale="log", title="DDPM training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return figure_to_pil(fig)


def _push(output_dir: Path, args: argparse.Namespace) -> None:
    """The run is safe on disk already: a failed upload is reported, never raised."""
    try:
        from hub_models.hub import push_run

        url = push_run(output_dir, args.hub_model_id, private=args.hub_private)
        print(f"Pushed to {url}")
    except Exception as err:
        print(f"warning: push to the Hub failed ({type(err).__name__}: {err}); the run is in {output_dir}")


if __name__ == "__main__":
    try:
        main(parse_args())
    except FloatingPointError as err:  # diverged: the checkpoints on disk are the last good state
        raise SystemExit(f"error: {err}") from None
