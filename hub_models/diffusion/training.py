"""Training a DDPM: the loss of one batch, one optimizer step, the held-out loss, and label dropout for
classifier-free guidance. The loop around them (checkpoints, EMA bookkeeping, evaluation) is
`hub_models.training.ddpm.DDPMTrainer`; benchmarks/ddpm_throughput.py times train_ddpm.py against diffusers' example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import extract_model_from_parallel
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel, compute_snr

from hub_models.diffusion.sampling import num_classes
from hub_models.io import optimizer_update


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 `(batch, height, width)` (MNIST) or `(batch, channels, height, width)` → float `(batch, channels,
    height, width)` in [-1, 1], on the images' device. A float tensor (the scaled latents `(batch, c, h, w)` of
    latent diffusion) is the model's input already and is returned as is."""
    if images.is_floating_point():
        return images
    return (images.unsqueeze(1) if images.ndim == 3 else images).float().div_(127.5).sub_(1.0)


def target_for(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict under the scheduler's `prediction_type`."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    return x0


def drop_labels(labels: torch.Tensor, p: float, null_class: int, generator: torch.Generator) -> torch.Tensor:
    """Labels with each one replaced by `null_class` with probability `p` (classifier-free guidance's label
    dropout: the same UNet learns the unconditional ε_∅ on the null class)."""
    if p == 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator, device=generator.device) < p
    return torch.where(drop.to(labels.device), torch.full_like(labels, null_class), labels)


def min_snr_weights(noise_scheduler, timesteps: torch.Tensor, snr_gamma: float) -> torch.Tensor:
    """Per-image loss weights of min-SNR-γ (Hang et al. 2023), `(batch,)`: min(SNR_t, γ) divided by what the
    target's MSE already carries (ε: SNR_t; v: SNR_t + 1; x0: 1). Where SNR_t = 0 (a zero-terminal-SNR schedule's
    last step) an ε-target's weight is 1, as in diffusers' examples."""
    snr = compute_snr(noise_scheduler, timesteps)
    clipped = snr.clamp(max=snr_gamma)
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return torch.where(snr > 0, clipped / snr.clamp(min=torch.finfo(snr.dtype).tiny), torch.ones_like(snr))
    if kind == "v_prediction":
        return clipped / (snr + 1)
    return clipped


def diffusion_loss(
    model: torch.nn.Module,
    noise_scheduler,
    images: torch.Tensor,
    generator: torch.Generator,
    class_labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """The DDPM loss of one batch of uint8 images (`to_model_range`'s shapes): noise them at random timesteps, MSE
    to the target. With `class_labels` (a conditional UNet), labels are first dropped to the null class with
    probability `label_dropout`. With `snr_gamma`, each image's MSE is weighted by min-SNR-γ (`min_snr_weights`)."""
    x0 = to_model_range(images)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (len(x0),), generator=generator, device=x0.device
    )
    kwargs = {}
    if class_labels is not None:
        null = num_classes(extract_model_from_parallel(model))  # the last embedding
        kwargs["class_labels"] = drop_labels(class_labels, label_dropout, null, generator)
    pred = model(noise_scheduler.add_noise(x0, noise, timesteps), timesteps, **kwargs).sample
    target = target_for(noise_scheduler, x0, noise, timesteps).float()
    if snr_gamma is None:
        return F.mse_loss(pred.float(), target)
    per_image = F.mse_loss(pred.float(), target, reduction="none").mean(dim=tuple(range(1, pred.ndim)))
    return (per_image * min_snr_weights(noise_scheduler, timesteps, snr_gamma).to(per_image)).mean()


def training_step(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler,
    noise_scheduler,
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    max_grad_norm: float,
    ema: EMAModel | None = None,
    step: int = 0,
    class_labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """One micro-batch: loss, backward, then clipping + optimizer/lr/EMA updates when gradients sync.
    Returns the (detached) loss. Raises FloatingPointError on a NaN/inf loss, before anything is updated."""
    with accelerator.accumulate(model):
        loss = diffusion_loss(model, noise_scheduler, images, generator, class_labels, label_dropout, snr_gamma)
        optimizer_update(accelerator, model, loss, optimizer, step=step, max_grad_norm=max_grad_norm,
                         lr_scheduler=lr_scheduler, ema=ema)
    return loss.detach()


@torch.no_grad()
def held_out_loss(
    model: UNet2DModel,
    scheduler,
    images: torch.Tensor,
    batch_size: int,
    seed: int,
    accelerator: Accelerator,
    labels: torch.Tensor | None = None,
) -> float:
    """Held-out MSE with noise and timesteps drawn from `seed + batch index`: the same numbers every epoch, on
    any number of processes (batches are dealt out round-robin and the sums all-reduced). A conditional UNet is
    scored on the true `labels` (no dropout)."""
    was_training = model.training
    model.eval()
    device = accelerator.device
    total = torch.zeros(2, device=device, dtype=torch.float64)
    batches = images.split(batch_size)
    label_batches = labels.split(batch_size) if labels is not None else None
    for index in range(accelerator.process_index, len(batches), accelerator.num_processes):
        x0 = to_model_range(batches[index]).to(device)
        gen = torch.Generator().manual_seed(seed + index)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=gen).to(device)
        kwargs = {"class_labels": label_batches[index].to(device)} if label_batches is not None else {}
        with accelerator.autocast():
            pred = model(scheduler.add_noise(x0, noise, timesteps), timesteps, **kwargs).sample
        per_image = F.mse_loss(
            pred.float(), target_for(scheduler, x0, noise, timesteps).float(), reduction="none"
        ).mean(dim=(1, 2, 3))
        total += torch.stack([per_image.sum().double(), torch.tensor(len(x0), device=device, dtype=torch.float64)])
    total = accelerator.reduce(total, reduction="sum")
    model.train(was_training)
    return (total[0] / total[1]).item()


__all__ = [
    "diffusion_loss",
    "drop_labels",
    "held_out_loss",
    "min_snr_weights",
    "target_for",
    "to_model_range",
    "training_step",
]
