"""The study's DDPM as diffusers objects: the training scheduler, loading a trained run (safetensors only)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from hub_models.io import save_pretrained_atomic

# The study: 4000 timesteps, cosine β_t schedule (Nichol & Dhariwal's "squaredcos_cap_v2"), ε-prediction.
STUDY_NUM_TRAIN_TIMESTEPS = 4000
STUDY_BETA_SCHEDULE = "squaredcos_cap_v2"


def make_train_scheduler(
    num_train_timesteps: int = STUDY_NUM_TRAIN_TIMESTEPS,
    beta_schedule: str = STUDY_BETA_SCHEDULE,
    prediction_type: str = "epsilon",
) -> DDPMScheduler:
    """The noise schedule used for training; its config is what every sampler is built from."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        prediction_type=prediction_type,
        clip_sample=True,
        clip_sample_range=1.0,
    )


def load_ddpm(
    path_or_repo: str | os.PathLike, *, use_ema: bool = True, device: str | torch.device = "cpu", **hub_kwargs
) -> tuple[UNet2DModel, DDPMScheduler]:
    """(unet, scheduler) from a DDPM run folder or a Hub repo laid out as a `DDPMPipeline`.

    Args:
        path_or_repo: local folder (`model_index.json`, `unet/`, `scheduler/`) or a Hub repo id.
        use_ema: load `unet/` (EMA weights, the default for sampling); False loads `unet_non_ema/`.
        hub_kwargs: passed to `from_pretrained` (e.g. `revision`, `cache_dir`, `local_files_only`).
    """
    subfolder = "unet" if use_ema else "unet_non_ema"
    unet = UNet2DModel.from_pretrained(str(path_or_repo), subfolder=subfolder, use_safetensors=True, **hub_kwargs)
    scheduler = DDPMScheduler.from_pretrained(str(path_or_repo), subfolder="scheduler", **hub_kwargs)
    return unet.to(device).eval(), scheduler


def save_pipeline(unet: UNet2DModel, scheduler: DDPMScheduler, output_dir: str | os.PathLike) -> None:
    """Write a `DDPMPipeline` folder (model_index.json, unet/, scheduler/) in safetensors, file by file atomically."""
    save_pretrained_atomic(DDPMPipeline(unet=unet, scheduler=scheduler), output_dir, safe_serialization=True)


def is_ddpm_run(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / "model_index.json").is_file() and (path / "unet" / "config.json").is_file()


__all__ = [
    "STUDY_BETA_SCHEDULE",
    "STUDY_NUM_TRAIN_TIMESTEPS",
    "is_ddpm_run",
    "load_ddpm",
    "make_train_scheduler",
    "save_pipeline",
]
