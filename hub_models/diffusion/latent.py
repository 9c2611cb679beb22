"""Latent diffusion: diffusers' `AutoencoderKL` compresses a 1×28×28 digit to a 4×7×7 latent, a `UNet2DModel`
denoises latents under the study's noise schedule, and `LatentDDPMPipeline` (vae/, unet/, scheduler/) samples
latents with the library's sampler loop and decodes them. See docs/LATENT_DIFFUSION.md.

Other image data sets the autoencoder's `in_channels = out_channels` and `sample_size` (`make_autoencoder`), and
the latent UNet follows the autoencoder's latent (`latent_unet_config`): C×32×32 RGB images give 4×8×8 latents.

As in Stable Diffusion, the UNet sees latents multiplied by `vae.config.scaling_factor` (1 / std of the training
latents, measured by the autoencoder trainer), so they have unit variance like the noise; and nothing clips them
to [-1, 1] (the scheduler is saved with `clip_sample=False`, the ODE samplers run without thresholding).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from hub_models.diffusion.pipeline import OUTPUT_TYPES, read_index_as
from hub_models.diffusion.sampling import (
    STUDY_BETA_SCHEDULE,
    STUDY_NUM_TRAIN_TIMESTEPS,
    ClassLabels,
    StepCallback,
    make_scheduler,
    make_train_scheduler,
    sample_images,
)
from hub_models.io import autocast, save_pretrained_atomic
from hub_models.models.unet import named_config

# 28 → 14 → 7 (diffusers' encoder pads and strides; the decoder upsamples ×2 twice): a 4×7×7 latent, 4× fewer
# numbers than the image. Small widths so an epoch fits in CPU minutes.
AUTOENCODER_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {
        "in_channels": 1,
        "out_channels": 1,
        "down_block_types": ("DownEncoderBlock2D",) * 3,
        "up_block_types": ("UpDecoderBlock2D",) * 3,
        "block_out_channels": (16, 32, 32),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 28,
        "scaling_factor": 1.0,  # replaced by 1 / std of the training latents when the autoencoder is trained
    },
}
# For tests: same path (3 levels, mid-block attention), 8 channels.
AUTOENCODER_CONFIGS["tiny"] = {**AUTOENCODER_CONFIGS["default"], "block_out_channels": (8, 8, 8), "norm_num_groups": 4}

# A 7×7 latent cannot be halved and doubled back (7 → 4 → 8), so the latent UNet works at one resolution: ResNet
# blocks and self-attention at 7×7 (receptive field > 7 after a few 3×3 convolutions, attention sees it all).
# in_channels, out_channels and sample_size come from the autoencoder (`latent_unet_config`).
LATENT_UNET_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {
        "block_out_channels": (64,),
        "down_block_types": ("AttnDownBlock2D",),
        "up_block_types": ("AttnUpBlock2D",),
        "layers_per_block": 2,
        "norm_num_groups": 16,
        "attention_head_dim": 16,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    },
    "tiny": {
        "block_out_channels": (8,),
        "down_block_types": ("AttnDownBlock2D",),
        "up_block_types": ("AttnUpBlock2D",),
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "attention_head_dim": 8,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    },
}

# The samplers' x0 thresholding to [-1, 1] suits pixels, not unit-variance latents.
LATENT_SAMPLER_OVERRIDES: dict[str, Any] = {"thresholding": False}


def autoencoder_config(name_or_path: str | os.PathLike = "default") -> dict[str, Any]:
    """An `AutoencoderKL` config by name (`default`, `tiny`) or from a JSON file / model folder."""
    return named_config(name_or_path, AUTOENCODER_CONFIGS, "autoencoder")


def check_autoencoder_size(config: dict[str, Any], what: str = "sample_size") -> None:
    """ValueError (one line, with sizes that work) unless the image size halves cleanly at each of the encoder's
    down-sampling levels (`len(block_out_channels) - 1`), so the decoder gives back the image's own size."""
    size, levels = config.get("sample_size", 28), len(config["block_out_channels"])
    step = 2 ** (levels - 1)
    if isinstance(size, int) and size % step:
        near = sorted({max(step, size // step * step), (size // step + 1) * step})
        raise ValueError(f"{what} {size} does not fit this autoencoder: its {levels} levels halve the image "
                         f"{levels - 1} times, so the size must be a multiple of {step} (e.g. "
                         f"{' or '.join(map(str, near))})")


def make_autoencoder(name_or_path: str | os.PathLike = "default", *, channels: int | None = None,
                     resolution: int | None = None, what: str = "sample_size") -> AutoencoderKL:
    """A freshly initialised `AutoencoderKL` (seed torch first for reproducible weights), for images of `channels`
    × `resolution`² when given (`in_channels = out_channels`, `sample_size`; default: the config's own shape,
    1×28² for the named configs, whose configs then stay exactly as released).

    Raises:
        ValueError: a size the encoder's levels cannot halve (`check_autoencoder_size`; `what` names it).
    """
    config = autoencoder_config(name_or_path)
    if channels is not None:
        config = {**config, "in_channels": channels, "out_channels": channels}
    if resolution is not None:
        config = {**config, "sample_size": resolution}
    check_autoencoder_size(config, what)
    return AutoencoderKL(**config)


def latent_shape(vae: AutoencoderKL) -> tuple[int, int, int]:
    """(channels, height, width) of the latent: each encoder level but the last halves the image."""
    side = vae.config.sample_size // 2 ** (len(vae.config.block_out_channels) - 1)
    return vae.config.latent_channels, side, side


def latent_unet_config(name_or_path: str | os.PathLike, vae: AutoencoderKL) -> dict[str, Any]:
    """A latent UNet config (`default`, `tiny` or a JSON file) with channels and size set to `vae`'s latent."""
    config = named_config(name_or_path, LATENT_UNET_CONFIGS, "latent UNet")
    channels, side, _ = latent_shape(vae)
    return {**config, "in_channels": channels, "out_channels": channels, "sample_size": side}


def make_latent_train_scheduler(
    num_train_timesteps: int = STUDY_NUM_TRAIN_TIMESTEPS,
    beta_schedule: str = STUDY_BETA_SCHEDULE,
    prediction_type: str = "epsilon",
    rescale_betas_zero_snr: bool = False,
) -> DDPMScheduler:
    """The study's noise schedule without clipping x0 to [-1, 1] (latents are unit-variance, not bounded)."""
    return make_train_scheduler(num_train_timesteps, beta_schedule, prediction_type, clip_sample=False,
                                rescale_betas_zero_snr=rescale_betas_zero_snr)


def load_autoencoder(path_or_repo: str | os.PathLike, **hub_kwargs: Any) -> AutoencoderKL:
    """An `AutoencoderKL` from a model folder / repo (config.json at the root) or a pipeline folder (vae/)."""
    path = Path(path_or_repo)
    subfolder = "vae" if (path / "vae" / "config.json").is_file() else None
    if path.exists() and subfolder is None and not (path / "config.json").is_file():
        raise ValueError(f"{path} holds no autoencoder: expected config.json or vae/config.json")
    vae = AutoencoderKL.from_pretrained(str(path_or_repo), subfolder=subfolder, use_safetensors=True, **hub_kwargs)
    return vae.eval()


def _encoder_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 `(batch, 28, 28)` (MNIST) or `(batch, C, H, W)`, or float `(batch, C, H, W)` in [0, 1] → the
    autoencoder's [-1, 1]."""
    if images.dtype == torch.uint8:
        images = (images.unsqueeze(1) if images.ndim == 3 else images).float() / 255
    return images * 2 - 1


@torch.no_grad()
def encode_latents(
    vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 512, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scaled latents `(batch, 4, 7, 7)` of digits (uint8 `(batch, 28, 28)` or `(batch, C, H, W)`, or floats in
    [0, 1]; other images: the autoencoder's latent shape), on the CPU:
    the posterior mean, or a posterior sample with `generator`, times `vae.config.scaling_factor`."""
    out = []
    for batch in images.split(batch_size):
        dist = vae.encode(_encoder_input(batch).to(vae.device, vae.dtype)).latent_dist
        z = (
            dist.mean
            if generator is None
            else dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator).to(dist.mean.device)
        )
        out.append(z.float().cpu())
    return torch.cat(out) * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents → images `(batch, C, H, W)` in [0, 1] (digits: `(batch, 1, 28, 28)`), on the autoencoder's
    device."""
    images = vae.decode((latents / vae.config.scaling_factor).to(vae.device, vae.dtype)).sample
    return (images.float() / 2 + 0.5).clamp(0, 1)


def check_latent_unet(vae: AutoencoderKL, unet: UNet2DModel) -> None:
    """ValueError (one line) unless the UNet denoises exactly the autoencoder's latent shape."""
    channels, side, _ = latent_shape(vae)
    size = unet.config.sample_size
    unet_side = size if isinstance(size, int) else tuple(size)
    if (unet.config.in_channels, unet.config.out_channels) != (channels, channels) or unet_side not in (
        side,
        (side, side),
    ):
        raise ValueError(
            f"the UNet denoises {unet.config.in_channels}×{size}×{size} latents but the autoencoder's latent is "
            f"{channels}×{side}×{side}: train the UNet on this autoencoder's latents"
        )


class _LastSample:
    """A sampler-loop callback keeping the final latent (the loop itself returns images clamped to [0, 1])."""

    def __init__(self, then: StepCallback | None) -> None:
        self.then, self.sample = then, None

    def __call__(self, i: int, n: int, sample: torch.Tensor, pred_x0: torch.Tensor | None) -> None:
        self.sample = sample
        if self.then is not None:
            self.then(i, n, sample, pred_x0)


class LatentDDPMPipeline(DiffusionPipeline):
    """Digits from a latent diffusion model: denoise a latent with the UNet, decode it with the autoencoder.

    Samples with `self.scheduler` as diffusers pipelines do, or with one of the library's samplers by name
    (`sampler="dpmsolver++"`, built from `self.scheduler.config` without x0 thresholding), through the library's
    loop (`hub_models.diffusion.sampling.sample_images`).

    Args:
        vae: an `AutoencoderKL` whose `config.scaling_factor` is the one the UNet was trained with.
        unet: a `UNet2DModel` on `(batch, latent_channels, h, w)` latents (a class-conditional one takes labels).
        scheduler: the training noise schedule (`clip_sample=False`).

    Raises:
        ValueError: the UNet's input shape is not the autoencoder's latent shape.
    """

    model_cpu_offload_seq = "unet->vae"

    def __init__(self, vae: AutoencoderKL, unet: UNet2DModel, scheduler: SchedulerMixin) -> None:
        super().__init__()
        check_latent_unet(vae, unet)
        self.register_modules(vae=vae, unet=unet, scheduler=scheduler)

    @classmethod
    def _dict_from_json_file(cls, json_file: str | os.PathLike) -> dict:
        # how diffusers reads model_index.json: a repo's shipped code is ignored (`read_index_as`)
        return read_index_as(cls, super()._dict_from_json_file(json_file))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> LatentDDPMPipeline:
        """diffusers' loader, with a one-line error when a local folder lacks one of vae/, unet/, scheduler/."""
        path = Path(pretrained_model_name_or_path)
        if path.is_dir():
            missing = [f"{sub}/" for sub in ("vae", "unet", "scheduler") if not (path / sub).is_dir()]
            if missing or not (path / "model_index.json").is_file():
                missing = missing or ["model_index.json"]
                raise ValueError(f"{path} is not a latent diffusion pipeline folder: missing {', '.join(missing)}")
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        num_inference_steps: int = 25,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        sampler: str | None = None,
        autocast_dtype: torch.dtype | None = None,
        callback: StepCallback | None = None,
        class_labels: ClassLabels | None = None,
        guidance_scale: float | None = None,
    ) -> ImagePipelineOutput | tuple:
        """Generate digits.

        Args:
            batch_size: number of digits (default: one per class label, else 1).
            num_inference_steps: denoising steps (UNet evaluations); the decoder runs once.
            generator: a CPU `torch.Generator` (same seed → same digits on any device).
            output_type: "pil", "np" (`(batch, H, W, C)` in [0, 1]: `(batch, 28, 28, 1)` for digits), "pt"
                (`(batch, C, H, W)` in [0, 1]) or "latent" (the scaled latents, `(batch, 4, 7, 7)` for digits,
                undecoded).
            return_dict: `ImagePipelineOutput` if True, else the tuple `(images,)`.
            sampler: None samples with `self.scheduler`; a name from `SAMPLERS` uses the library's sampler.
            autocast_dtype: run the UNet and the decoder under `torch.autocast` with this dtype.
            callback: `callback(step_index, num_steps, latent_t, pred_latent_x0)` after every step.
            class_labels, guidance_scale: for a class-conditional UNet, as in `sample_images`.
        """
        if output_type not in (*OUTPUT_TYPES, "latent"):
            raise ValueError(f"unknown output_type {output_type!r}: choose one of {(*OUTPUT_TYPES, 'latent')}")
        if class_labels is None and batch_size is None:
            batch_size = 1
        scheduler = (
            self.scheduler
            if sampler is None
            else make_scheduler(sampler, self.scheduler.config, **LATENT_SAMPLER_OVERRIDES)
        )
        last = _LastSample(callback)
        sample_images(
            self.unet,
            self.scheduler.config,
            scheduler,
            num_inference_steps,
            batch_size,
            generator=generator,
            callback=last,
            autocast_dtype=autocast_dtype,
            class_labels=class_labels,
            guidance_scale=guidance_scale,
        )
        latents = last.sample.float()
        if output_type == "latent":
            return ImagePipelineOutput(images=latents) if return_dict else (latents,)
        device = self.vae.device
        with autocast(device.type, autocast_dtype):
            images = decode_latents(self.vae, latents)
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        return ImagePipelineOutput(images=images) if return_dict else (images,)


def save_latent_pipeline(
    vae: AutoencoderKL, unet: UNet2DModel, scheduler: SchedulerMixin, output_dir: str | os.PathLike
) -> None:
    """Write a `LatentDDPMPipeline` folder (model_index.json, vae/, unet/, scheduler/) in safetensors, file by
    file atomically; the scheduler with trailing spacing (few-step sampling starts from pure noise) and no
    clipping."""
    scheduler = type(scheduler).from_config(scheduler.config, timestep_spacing="trailing", clip_sample=False)
    save_pretrained_atomic(
        LatentDDPMPipeline(vae=vae, unet=unet, scheduler=scheduler), output_dir, safe_serialization=True
    )


def is_latent_run(path: str | os.PathLike) -> bool:
    """True for a folder whose model_index.json names `LatentDDPMPipeline`."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return False
    return read_index_as(LatentDDPMPipeline, json.loads(index.read_text())).get("_class_name") == "LatentDDPMPipeline"


def load_latent_pipeline(
    path_or_repo: str | os.PathLike, device: str | torch.device = "cpu", **hub_kwargs: Any
) -> LatentDDPMPipeline:
    """A `LatentDDPMPipeline` from a run folder or Hub repo, safetensors only, on `device`."""
    pipe = LatentDDPMPipeline.from_pretrained(str(path_or_repo), use_safetensors=True, **hub_kwargs)
    return pipe.to(device)


__all__ = [
    "AUTOENCODER_CONFIGS",
    "LATENT_SAMPLER_OVERRIDES",
    "LATENT_UNET_CONFIGS",
    "LatentDDPMPipeline",
    "autoencoder_config",
    "check_autoencoder_size",
    "check_latent_unet",
    "decode_latents",
    "encode_latents",
    "is_latent_run",
    "latent_shape",
    "latent_unet_config",
    "load_autoencoder",
    "load_latent_pipeline",
    "make_autoencoder",
    "make_latent_train_scheduler",
    "save_latent_pipeline",
]
