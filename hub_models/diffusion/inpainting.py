"""Digit completion (RePaint) and denoising with the pixel DDPM, on our own sampler loop.

RePaint (Lugmayr et al., 2022) completes an image with an unconditionally trained DDPM: at every reverse step the
known pixels are replaced by the original noised to the current timestep (`scheduler.add_noise`), the unknown
pixels come from the model's step, and "resampling jumps" (noise the sample forward `jump_length` steps again,
`jump_n_sample - 1` times at every `jump_length`-th step) let the generated part harmonise with the known part.
diffusers' `RePaintPipeline` is deprecated and breaks on 28×28 masks; this is the same algorithm on the
ancestral `DDPMScheduler` the study samples with (trailing spacing), with the guidance of `sampling.py`.

Denoising: noise a digit for `timestep` of the T forward steps, then run the reverse process from there.

Masks follow diffusers' inpainting pipelines: 1 = the pixel is unknown (the model fills it), 0 = known (kept).
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Mapping
from typing import Any

import torch
from diffusers import DDPMScheduler, DiffusionPipeline, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from hub_models.diffusion.sampling import (
    DEFAULT_GUIDANCE_SCALE,
    ClassLabels,
    GuidedModel,
    _resolve,
    check_class_labels,
    check_guidance_scale,
    make_scheduler,
)
from hub_models.io import autocast

# Defaults sized for a Space on a 2-core CPU: 25 steps with one resampling round every 5 steps is 45 UNet calls.
DEFAULT_COMPLETION_STEPS = 25
DEFAULT_JUMP_LENGTH = 5  # RePaint's j
DEFAULT_JUMP_N_SAMPLE = 2  # RePaint's r (1 = no resampling: plain replacement of the known pixels)
DEFAULT_DENOISE_STEPS = 25


def repaint_schedule(
    num_inference_steps: int, jump_length: int = DEFAULT_JUMP_LENGTH, jump_n_sample: int = DEFAULT_JUMP_N_SAMPLE
) -> list[int]:
    """RePaint's walk over the states of a `num_inference_steps`-step schedule (Lugmayr et al.'s `get_schedule_jump`).

    States count the denoising steps left: `num_inference_steps - 1` is the sampler's first (noisiest) timestep,
    0 its last one and -1 the clean image. The walk starts at the noisiest state and ends at -1; a decrease is one
    denoising step, an increase one step of forward noise (a resampling jump). At every `jump_length`-th state it
    goes back up `jump_length` states, `jump_n_sample - 1` times. Model calls: `num_inference_steps` plus
    `(jump_n_sample - 1) * jump_length` per jump point."""
    for name, value in (
        ("num_inference_steps", num_inference_steps),
        ("jump_length", jump_length),
        ("jump_n_sample", jump_n_sample),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
    jumps = {s: jump_n_sample - 1 for s in range(0, num_inference_steps - jump_length, jump_length)}
    s = num_inference_steps
    walk = []
    while s >= 1:
        s -= 1
        walk.append(s)
        if jumps.get(s, 0) > 0:
            jumps[s] -= 1
            for _ in range(jump_length):
                s += 1
                walk.append(s)
    walk.append(-1)
    return walk


def check_images(images: Any, unet: torch.nn.Module, what: str = "images") -> torch.Tensor:
    """`images` as a float tensor `(batch, channels, height, width)` in [0, 1] of the UNet's shape, or ValueError.
    A single image may come as `(height, width)` or `(channels, height, width)`."""
    try:
        x = torch.as_tensor(images)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a tensor of pixels in [0, 1], got {type(images).__name__}") from None
    if x.dtype == torch.bool or x.is_complex() or not (x.dtype.is_floating_point or x.dtype == torch.uint8):
        raise ValueError(f"{what} must hold float pixels in [0, 1], got dtype {x.dtype}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    while x.ndim < 4:
        x = x.unsqueeze(0)
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else size
    expected = (unet.config.in_channels, height, width)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected or len(x) == 0:
        raise ValueError(f"{what} must have shape (batch, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"{what} must be in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]")
    return x


def check_mask(mask: Any, images: torch.Tensor) -> torch.Tensor:
    """`mask` (1 = unknown, to complete; 0 = known) as a float tensor broadcast to `images`' shape, or ValueError:
    not 0/1 values, a shape that is neither one image's `(height, width)` / `(1, height, width)` nor the batch's,
    or no unknown pixel at all in some image (nothing to complete)."""
    try:
        m = torch.as_tensor(mask)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"mask must be a tensor of 0 (known) and 1 (to complete), got {type(mask).__name__}") from None
    if m.is_complex():
        raise ValueError("mask must hold 0 (known) and 1 (to complete), got complex values")
    m = m.float()
    if not torch.isfinite(m).all() or not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("mask must hold only 0 (known pixel) and 1 (pixel to complete)")
    batch, _, height, width = images.shape
    while m.ndim < 4:
        m = m.unsqueeze(0)
    if (
        m.ndim != 4
        or m.shape[-2:] != (height, width)
        or m.shape[1] not in (1, images.shape[1])
        or m.shape[0] not in (1, batch)
    ):
        raise ValueError(
            f"mask must have shape ({height}, {width}), (1, {height}, {width}) or "
            f"({batch}, 1, {height}, {width}), got {tuple(torch.as_tensor(mask).shape)}"
        )
    m = m.expand_as(images).contiguous()
    empty = (m.flatten(1).sum(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"the mask marks no pixel to complete (image{'s' if len(empty) > 1 else ''} "
            f"{', '.join(map(str, empty[:5]))}): nothing to do"
        )
    return m


def _guided_model(
    model: UNet2DModel, class_labels: ClassLabels | None, guidance_scale: float | None, num_images: int
) -> GuidedModel:
    """The UNet under classifier-free guidance, with `sample_images`' checks and defaults."""
    w = DEFAULT_GUIDANCE_SCALE
    if class_labels is not None or guidance_scale is not None:
        w = check_guidance_scale(w if guidance_scale is None else guidance_scale)
    labels = None if class_labels is None else check_class_labels(model, class_labels, num_images)
    if labels is None and guidance_scale is not None:
        check_class_labels(model, 0, num_images)  # an unconditional UNet: the same one-line refusal
    return GuidedModel(model, labels, w, num_images)


def _ddpm_scheduler(scheduler_config: Mapping[str, Any] | None, sampler: str | SchedulerMixin) -> DDPMScheduler:
    scheduler = sampler if isinstance(sampler, SchedulerMixin) else make_scheduler(sampler, scheduler_config)
    if not isinstance(scheduler, DDPMScheduler):
        # The jumps need the ancestral step's q(x_{t-1} | x_t, x0); ODE samplers keep multistep state.
        raise ValueError(
            f"completion and denoising need the ancestral DDPMScheduler ('ddpm'), got {type(scheduler).__name__}"
        )
    return scheduler


def _timestep(scheduler: DDPMScheduler, state: int) -> torch.Tensor:
    """The scheduler timestep of a state of the walk (state 0 is the last, least noisy, timestep)."""
    return scheduler.timesteps[len(scheduler.timesteps) - 1 - state]


def _alpha_bar(scheduler: DDPMScheduler, state: int) -> torch.Tensor:
    """ᾱ at a state of the walk (-1: the clean image, ᾱ = 1)."""
    if state < 0:
        return torch.tensor(1.0)
    return scheduler.alphas_cumprod[int(_timestep(scheduler, state))].float().cpu()


@torch.no_grad()
def _reverse(
    model: UNet2DModel,
    guided: GuidedModel,
    scheduler: DDPMScheduler,
    sample: torch.Tensor,
    walk: list[int],
    generator: torch.Generator | None,
    autocast_dtype: torch.dtype | None,
    known: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Follow `walk` (states, see `repaint_schedule`) from `sample` at `walk[0]`; with `known` (the clean
    image in [-1, 1]) and `mask`, the known pixels are the original noised to each new state."""
    device, dtype = model.device, model.dtype
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    was_training = model.training
    model.eval()
    try:
        for state, nxt in itertools.pairwise(walk):
            if nxt < state:  # one denoising step
                t = _timestep(scheduler, state)
                with autocast(device.type, autocast_dtype):
                    out = guided(scheduler.scale_model_input(sample, t), t)
                sample = scheduler.step(out.to(sample.dtype), t, sample, **step_kwargs).prev_sample
            else:  # one step of forward noise: q(x_next | x_state) = N(√(ᾱn/ᾱs)·x, (1 − ᾱn/ᾱs)·I)
                ratio = (_alpha_bar(scheduler, nxt) / _alpha_bar(scheduler, state)).to(device)
                noise = torch.randn(sample.shape, generator=generator, dtype=torch.float32).to(device, dtype)
                sample = ratio.sqrt() * sample + (1 - ratio).sqrt() * noise
            if known is not None:
                if nxt < 0:
                    known_t = known
                else:
                    noise = torch.randn(known.shape, generator=generator, dtype=torch.float32).to(device, dtype)
                    known_t = scheduler.add_noise(known, noise, _timestep(scheduler, nxt).reshape(1))
                sample = mask * sample + (1 - mask) * known_t
    finally:
        model.train(was_training)
    return sample


def complete(
    unet: UNet2DModel | DiffusionPipeline | str | os.PathLike,
    images: Any,
    mask: Any,
    scheduler_config: Mapping[str, Any] | SchedulerMixin | None = None,
    num_inference_steps: int = DEFAULT_COMPLETION_STEPS,
    jump_length: int = DEFAULT_JUMP_LENGTH,
    jump_n_sample: int = DEFAULT_JUMP_N_SAMPLE,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
    class_labels: ClassLabels | None = None,
    guidance_scale: float | None = None,
    sampler: str | SchedulerMixin = "ddpm",
) -> torch.Tensor:
    """Complete the unknown pixels of digits with the DDPM (RePaint).

    Args:
        unet: a `UNet2DModel`, a pipeline, or a run folder / Hub repo id (as `sample_images`).
        images: `(batch, 1, 28, 28)` (or one `(28, 28)` digit) in [0, 1]; the values under the mask are ignored.
        mask: 1 where the pixel is unknown (generated), 0 where it is known (kept): one `(28, 28)` mask for the
            batch or one per image. All ones is a plain unconditional sample; all zeros (nothing to complete) is
            an error.
        scheduler_config: the training scheduler's config; taken from the pipeline/folder when `unet` is one.
        num_inference_steps: steps of the ancestral DDPM schedule (trailing spacing, as the Space samples).
        jump_length, jump_n_sample: RePaint's j and r; r = 1 is no resampling. UNet calls:
            `num_inference_steps + (r - 1) · j · (number of jump points)`; the defaults (25, 5, 2) make 45.
        generator: a CPU generator (the same seed gives the same completion on any device).
        autocast_dtype: run the UNet under `torch.autocast` with this dtype (e.g. `torch.bfloat16`).
        class_labels, guidance_scale: for a class-conditional UNet, the digit(s) to complete towards, with
            classifier-free guidance (as `sample_images`); an unconditional UNet takes neither.
        sampler: "ddpm" (built from `scheduler_config`) or a `DDPMScheduler` instance.

    Returns:
        `(batch, 1, 28, 28)` in [0, 1]: the known pixels are the input's exactly, the unknown ones generated.

    Raises:
        ValueError: images or mask of the wrong shape or values, an empty mask, bad RePaint parameters, labels or
            guidance that the UNet cannot take, a sampler other than DDPM.
    """
    model, scheduler_config = _resolve(unet, scheduler_config)
    walk = repaint_schedule(num_inference_steps, jump_length, jump_n_sample)
    x0 = check_images(images, model)
    m = check_mask(mask, x0)
    guided = _guided_model(model, class_labels, guidance_scale, len(x0))
    scheduler = _ddpm_scheduler(scheduler_config, sampler)
    device, dtype = model.device, model.dtype
    scheduler.set_timesteps(num_inference_steps, device=device)
    known = (x0 * 2 - 1).to(device, dtype)
    m = m.to(device, dtype)
    sample = torch.randn(known.shape, generator=generator, dtype=torch.float32).to(device, dtype)
    sample = sample * scheduler.init_noise_sigma
    sample = _reverse(model, guided, scheduler, sample, walk, generator, autocast_dtype, known, m)
    out = (sample.float() / 2 + 0.5).clamp(0, 1)
    # The clean known pixels are put back exactly (the last replacement did it up to float rounding).
    return torch.where(m.bool(), out, x0.to(out.device))


def denoise_timesteps(timestep: int, num_inference_steps: int) -> list[int]:
    """The descending scheduler timesteps that take a digit noised for `timestep` forward steps back to clean:
    `num_inference_steps` of them (fewer when `timestep` is smaller), trailing-spaced from `timestep - 1`."""
    n = max(1, min(num_inference_steps, timestep))
    spaced = torch.arange(timestep, 0, -timestep / n).round().long() - 1
    return sorted({int(t) for t in spaced.clamp(min=0)}, reverse=True)


def denoise(
    unet: UNet2DModel | DiffusionPipeline | str | os.PathLike,
    images: Any,
    timestep: int,
    scheduler_config: Mapping[str, Any] | SchedulerMixin | None = None,
    num_inference_steps: int = DEFAULT_DENOISE_STEPS,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
    class_labels: ClassLabels | None = None,
    guidance_scale: float | None = None,
    sampler: str | SchedulerMixin = "ddpm",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise digits for `timestep` of the T forward steps (`scheduler.add_noise`), then denoise them back.

    Args:
        images: `(batch, 1, 28, 28)` (or one `(28, 28)` digit) in [0, 1].
        timestep: how many forward steps of noise, 0..T: 0 adds none (the input comes back unchanged), T is pure
            noise (the result is then an unconditional sample).
        num_inference_steps: reverse steps from there (at most `timestep`).
        Others as `complete`.

    Returns:
        (noisy, denoised): both `(batch, 1, 28, 28)` in [0, 1] (the noisy digits clamped for display).
    """
    model, scheduler_config = _resolve(unet, scheduler_config)
    x0 = check_images(images, model)
    scheduler = _ddpm_scheduler(scheduler_config, sampler)
    total = int(scheduler.config.num_train_timesteps)
    if isinstance(timestep, bool) or not isinstance(timestep, int) or not 0 <= timestep <= total:
        raise ValueError(f"timestep must be a whole number 0–{total} (forward steps of noise), got {timestep!r}")
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be a whole number ≥ 1, got {num_inference_steps!r}")
    guided = _guided_model(model, class_labels, guidance_scale, len(x0))
    if timestep == 0:
        return x0.clone(), x0.clone()
    device, dtype = model.device, model.dtype
    timesteps = denoise_timesteps(timestep, num_inference_steps)
    scheduler.set_timesteps(timesteps=timesteps, device=device)
    clean = (x0 * 2 - 1).to(device, dtype)
    noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32).to(device, dtype)
    noisy = scheduler.add_noise(clean, noise, torch.tensor([timestep - 1], device=device))
    walk = [*range(len(timesteps) - 1, -1, -1), -1]
    sample = _reverse(model, guided, scheduler, noisy, walk, generator, autocast_dtype)
    return (noisy.float() / 2 + 0.5).clamp(0, 1), (sample.float() / 2 + 0.5).clamp(0, 1)


__all__ = [
    "DEFAULT_COMPLETION_STEPS",
    "DEFAULT_DENOISE_STEPS",
    "DEFAULT_JUMP_LENGTH",
    "DEFAULT_JUMP_N_SAMPLE",
    "check_images",
    "check_mask",
    "complete",
    "denoise",
    "denoise_timesteps",
    "repaint_schedule",
]
