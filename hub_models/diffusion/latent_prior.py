"""Diffusion in a VAE's latent space: the noise schedule, the loss, the sampler and the folder of a `LatentPrior`.

The schedule is the study's cosine one (`squaredcos_cap_v2`) over 1,000 training steps instead of 4,000: a
2–16-dimensional standardised latent needs no finer time grid (at T = 1,000 the cosine ᾱ_T is already ~2e-7,
pure noise), and T does not change the cost of sampling, which is set by the sampler's step count.

The network predicts v (`prediction_type="v_prediction"`) by default rather than the study's ε: near t = T the
x0 implied by an ε prediction divides its error by √ᾱ_t (a ×1,000–2,000 blow-up on this schedule), which pixel
DDPMs survive by clipping x0 to [-1, 1]; standardised latents have no such bound, and unclipped ε samples of a
toy 2-D Gaussian came out with standard deviations in the hundreds with all four samplers, while v samples
matched it (docs/lab/HYBRID.md). `prediction_type="epsilon"` is kept, with x0 clipped to ±`EPSILON_CLIP` σ.

A prior folder is `config.json` + safetensors (the `LatentPrior`) and `scheduler/` (its training scheduler);
`LatentPrior.from_pretrained(folder)` and `load_latent_prior(folder)` read it.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from hub_models.diffusion.sampling import STUDY_BETA_SCHEDULE, make_scheduler
from hub_models.diffusion.training import target_for
from hub_models.io import save_pretrained_atomic
from hub_models.models.latent_prior import LatentPrior

LATENT_NUM_TRAIN_TIMESTEPS = 1000
LATENT_PREDICTION_TYPE = "v_prediction"
EPSILON_CLIP = 5.0  # |x0| bound of ε-prediction, in standard deviations of the training latents
SCHEDULER_SUBFOLDER = "scheduler"


def make_latent_train_scheduler(
    num_train_timesteps: int = LATENT_NUM_TRAIN_TIMESTEPS, prediction_type: str = LATENT_PREDICTION_TYPE
) -> DDPMScheduler:
    """The study's cosine schedule for latents; v-prediction unclipped, or ε-prediction with x0 clipped to
    ±`EPSILON_CLIP`."""
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    epsilon = prediction_type == "epsilon"
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=STUDY_BETA_SCHEDULE,
        prediction_type=prediction_type,
        clip_sample=epsilon,
        clip_sample_range=EPSILON_CLIP if epsilon else 1.0,
    )


def latent_prior_loss(
    prior: torch.nn.Module, scheduler: DDPMScheduler, latents: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """MSE between the scheduler's target (v or ε) and the prior's prediction, for VAE latents
    `(batch, latent_dim)` (standardised here) noised at uniformly drawn timesteps."""
    base = prior.module if hasattr(prior, "module") else prior  # DDP-wrapped under accelerate
    z0 = base.standardize(latents)
    noise = torch.randn(z0.shape, generator=generator, device=generator.device).to(z0.device, z0.dtype)
    t = torch.randint(
        0, scheduler.config.num_train_timesteps, (len(z0),), generator=generator, device=generator.device
    ).to(z0.device)
    pred = prior(scheduler.add_noise(z0, noise, t), t).sample
    return F.mse_loss(pred.float(), target_for(scheduler, z0, noise, t).float())


def latent_sampler(name: str, train_scheduler_config: Mapping[str, Any] | None = None) -> SchedulerMixin:
    """One of the project's samplers (`SAMPLERS`) built from the latent schedule, without the pixel samplers'
    x0-thresholding to [-1, 1] (latents are unbounded)."""
    config = train_scheduler_config if train_scheduler_config is not None else make_latent_train_scheduler().config
    overrides = {"thresholding": False} if name in ("dpmsolver++", "unipc") else {}
    return make_scheduler(name, config, **overrides)


@torch.no_grad()
def sample_latents(
    prior: LatentPrior,
    scheduler_config: Mapping[str, Any] | SchedulerMixin | None = None,
    sampler: str | SchedulerMixin = "ddpm",
    num_inference_steps: int = 100,
    num_samples: int = 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw `num_samples` latents `(num_samples, latent_dim)` of the prior's VAE (un-standardised).

    Args:
        prior: a trained `LatentPrior`.
        scheduler_config: its training scheduler (or config); None = `make_latent_train_scheduler()`.
        sampler: a name in `SAMPLERS`, or a scheduler instance used as it is.
        num_inference_steps: denoising steps (one MLP call each).
        generator: CPU generator; the noise is drawn on the CPU, so a seed gives the same latents anywhere.
    """
    if isinstance(scheduler_config, SchedulerMixin):
        scheduler_config = scheduler_config.config
    scheduler = sampler if isinstance(sampler, SchedulerMixin) else latent_sampler(sampler, scheduler_config)
    scheduler.set_timesteps(num_inference_steps, device=prior.device)
    z = torch.randn((num_samples, prior.config.latent_dim), generator=generator).to(prior.device, prior.dtype)
    z = z * scheduler.init_noise_sigma
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    was_training = prior.training
    prior.eval()
    try:
        for t in scheduler.timesteps:
            eps = prior(scheduler.scale_model_input(z, t), t).sample
            z = scheduler.step(eps, t, z, **step_kwargs).prev_sample
    finally:
        prior.train(was_training)
    return prior.unstandardize(z)


def save_latent_prior(prior: LatentPrior, scheduler: DDPMScheduler, output_dir: str | os.PathLike) -> None:
    """`output_dir/` = the prior (config.json + safetensors) and `scheduler/` (its training scheduler)."""
    save_pretrained_atomic(prior, output_dir)
    scheduler.save_pretrained(Path(output_dir) / SCHEDULER_SUBFOLDER)


def load_latent_prior(
    path_or_repo: str | os.PathLike, device: str | torch.device = "cpu", **hub_kwargs: Any
) -> tuple[LatentPrior, DDPMScheduler]:
    """(prior, training scheduler) from a prior folder or Hub repo (safetensors only)."""
    prior = LatentPrior.from_pretrained(str(path_or_repo), use_safetensors=True, **hub_kwargs)
    scheduler = DDPMScheduler.from_pretrained(str(path_or_repo), subfolder=SCHEDULER_SUBFOLDER, **hub_kwargs)
    return prior.to(device).eval(), scheduler


__all__ = [
    "EPSILON_CLIP",
    "LATENT_NUM_TRAIN_TIMESTEPS",
    "LATENT_PREDICTION_TYPE",
    "latent_prior_loss",
    "latent_sampler",
    "load_latent_prior",
    "make_latent_train_scheduler",
    "sample_latents",
    "save_latent_prior",
]
