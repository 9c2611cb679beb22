"""Where along t a UNet's ε-prediction errs: the sampler study's diagnostic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from diffusers import UNet2DModel

from hub_models.diffusion.sampling import make_scheduler
from hub_models.io import (
    autocast,
)


@torch.no_grad()
def epsilon_error_by_timestep(unet: UNet2DModel, scheduler_config: Mapping[str, Any], images: torch.Tensor,
                              timesteps: Iterable[int], *, seed: int = 0, batch_size: int = 256,
                              autocast_dtype: torch.dtype | None = None) -> dict[int, float]:
    """Mean squared error of the UNet's ε-prediction, per timestep, on real digits noised at that timestep.

    Each digit gets one noise draw (from `seed`), the same at every t, so the curve shows where along t the
    model's error sits (the held-out loss is its average over uniform t). ε-prediction UNets only.

    Args:
        images: uint8 images `(N, 28, 28)` (MNIST) or `(N, C, H, W)` (held-out ones: the model never saw them).
        timesteps: the training timesteps to score (0 = almost clean, T-1 = pure noise).
        autocast_dtype: run the UNet under `torch.autocast` with this dtype, as sampling does.
    """
    noise_scheduler = make_scheduler("ddpm", scheduler_config)
    if noise_scheduler.config.prediction_type != "epsilon":
        raise ValueError(f"ε-error needs an ε-prediction UNet, not {noise_scheduler.config.prediction_type!r}")
    device = unet.device
    x0 = (images.unsqueeze(1) if images.ndim == 3 else images).float().div(127.5).sub(1.0)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    errors = {}
    for t in timesteps:
        total = 0.0
        for start in range(0, len(x0), batch_size):
            clean, eps = x0[start:start + batch_size], noise[start:start + batch_size]
            step = torch.full((len(clean),), int(t), dtype=torch.long)
            noisy = noise_scheduler.add_noise(clean, eps, step).to(device, unet.dtype)
            with autocast(device.type, autocast_dtype):
                pred = unet(noisy, step.to(device)).sample
            total += (pred.float().cpu() - eps).pow(2).mean(dim=(1, 2, 3)).sum().item()
        errors[int(t)] = total / len(x0)
    return errors
