"""Sampling a trained DDPM with any of four schedulers, with our own loop.

Why not `DDPMPipeline`: it passes `generator=` to every `step()` and never calls `scale_model_input`, so UniPC
(and Heun/DEIS/PNDM) fail inside it and Euler is silently wrong. The loop below calls `scale_model_input`,
passes the generator only to schedulers whose `step` takes one, and reports every step to an optional callback
(the Space streams the denoising from it).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    UNet2DModel,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from hub_models.diffusion.pipeline import load_ddpm, make_train_scheduler

SAMPLERS = ("ddpm", "ddim", "dpmsolver++", "unipc")

# What each sampler changes on top of the training scheduler's config.
# "trailing" spacing makes few-step schedules start at the last training timestep (t = T-1, pure noise);
# the default "leading" spacing of DDIM starts at t = 3751 for 16 of 4000 steps and leaves visible noise.
# Thresholding with sample_max_value=1 clips the predicted x0 to [-1, 1] like DDPM/DDIM's clip_sample.
_SAMPLER_SETTINGS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "ddpm": (DDPMScheduler, {"timestep_spacing": "trailing"}),
    "ddim": (DDIMScheduler, {"timestep_spacing": "trailing", "set_alpha_to_one": True}),
    "dpmsolver++": (
        DPMSolverMultistepScheduler,
        {
            "algorithm_type": "dpmsolver++",
            "solver_order": 2,
            "timestep_spacing": "trailing",
            "thresholding": True,
            "sample_max_value": 1.0,
            # Recommended by diffusers for the cosine (squaredcos_cap_v2) schedule: avoids a numerically
            # unstable last step near t = 0.
            "lambda_min_clipped": -5.1,
        },
    ),
    "unipc": (
        UniPCMultistepScheduler,
        {
            "solver_order": 2,
            "timestep_spacing": "trailing",
            "thresholding": True,
            "sample_max_value": 1.0,
        },
    ),
}

StepCallback = Callable[[int, int, torch.Tensor, "torch.Tensor | None"], None]


def make_scheduler(name: str, train_scheduler_config: Mapping[str, Any] | None = None) -> SchedulerMixin:
    """The sampler `name` (one of `SAMPLERS`) built from the training scheduler's config with `from_config`,
    so the noise schedule (β's, T, prediction type) is exactly the one the UNet was trained with.

    `train_scheduler_config=None` uses the study's schedule (4000 steps, cosine).
    """
    if name not in _SAMPLER_SETTINGS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {SAMPLERS}")
    if train_scheduler_config is None:

        train_scheduler_config = make_train_scheduler().config
    cls, overrides = _SAMPLER_SETTINGS[name]
    return cls.from_config(dict(train_scheduler_config), **overrides)


def _resolve(
    unet: UNet2DModel | DDPMPipeline | str | os.PathLike, scheduler_config: Mapping[str, Any] | None
) -> tuple[UNet2DModel, Mapping[str, Any] | None]:
    if isinstance(unet, DDPMPipeline):
        return unet.unet, scheduler_config if scheduler_config is not None else unet.scheduler.config
    if isinstance(unet, (str, os.PathLike)):

        model, scheduler = load_ddpm(unet)
        return model, scheduler_config if scheduler_config is not None else scheduler.config
    if isinstance(scheduler_config, SchedulerMixin):
        scheduler_config = scheduler_config.config
    return unet, scheduler_config


def _predicted_x0(
    scheduler: SchedulerMixin, model_output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """x0 implied by the model output at timestep t (for schedulers whose step does not return it)."""
    alpha_bar = scheduler.alphas_cumprod.to(sample.device)[int(t)].to(sample.dtype)
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        x0 = (sample - s * model_output) / a
    elif kind == "v_prediction":
        x0 = a * sample - s * model_output
    else:  # "sample"
        x0 = model_output
    return x0.clamp(-1, 1)


@torch.no_grad()
def sample_images(
    unet: UNet2DModel | DDPMPipeline | str | os.PathLike,
    scheduler_config: Mapping[str, Any] | SchedulerMixin | None = None,
    sampler: str = "dpmsolver++",
    num_inference_steps: int = 25,
    num_images: int = 16,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Generate digits.

    Args:
        unet: a `UNet2DModel`, a `DDPMPipeline`, or a DDPM run folder / Hub repo id (loaded with EMA weights).
        scheduler_config: the training scheduler's config (or the scheduler); taken from the pipeline/folder
            when `unet` is one, else the study's schedule.
        sampler: one of `SAMPLERS`.
        num_inference_steps: denoising steps (the UNet is evaluated this many times).
        num_images: batch size.
        generator: a CPU `torch.Generator`; the same seed gives the same images on any device.
        callback: `callback(step_index, num_steps, sample_t, pred_x0)` after every step; `sample_t` is the
            current noisy batch in [-1, 1], `pred_x0` the model's current estimate of the clean images.
        autocast_dtype: run the UNet under `torch.autocast` with this dtype (e.g. `torch.bfloat16`: 1.8× faster
            on CPUs with AVX512-BF16/AMX); the scheduler's arithmetic stays in the sample's dtype.

    Returns:
        `(num_images, channels, height, width)` float images in [0, 1], on the UNet's device.
    """
    model, scheduler_config = _resolve(unet, scheduler_config)
    scheduler = make_scheduler(sampler, scheduler_config)
    device, dtype = model.device, model.dtype
    scheduler.set_timesteps(num_inference_steps, device=device)

    size = model.config.sample_size
    height, width = (size, size) if isinstance(size, int) else size
    shape = (num_images, model.config.in_channels, height, width)
    # Noise drawn on CPU so a seed gives the same images on CPU and GPU.
    sample = torch.randn(shape, generator=generator, dtype=torch.float32).to(device, dtype)
    sample = sample * scheduler.init_noise_sigma

    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    timesteps = scheduler.timesteps
    was_training = model.training
    model.eval()
    try:
        for i, t in enumerate(timesteps):
            model_input = scheduler.scale_model_input(sample, t)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                model_output = model(model_input, t).sample
            model_output = model_output.to(sample.dtype)
            out = scheduler.step(model_output, t, sample, **step_kwargs)
            if callback is not None:
                pred_x0 = getattr(out, "pred_original_sample", None)
                if pred_x0 is None:
                    pred_x0 = _predicted_x0(scheduler, model_output, sample, t)
                sample = out.prev_sample
                callback(i, len(timesteps), sample, pred_x0)
            else:
                sample = out.prev_sample
    finally:
        model.train(was_training)
    return (sample.float() / 2 + 0.5).clamp(0, 1)


__all__ = ["SAMPLERS", "StepCallback", "make_scheduler", "sample_images"]
