"""LatentDDPMPipeline of mnist-genlab 0.1.0, generated from the library's source
(hub_models.diffusion.latent and what it uses) when this repository was pushed: re-push rather than edit.
It imports only torch, diffusers and the standard library. Loaded with diffusers alone
(REPO: this repository's id or folder):

    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(REPO, trust_remote_code=True)

With mnist-genlab installed, `hub_models.hub.load(REPO)` builds the installed class and never runs this file.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    ImagePipelineOutput,
    UNet2DModel,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin


@functools.lru_cache(maxsize=1)
def native_cpu_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU's own vector units (AVX512 BW/VL/DQ, AVX512-BF16, AMX). Without them
    torch's bf16 convolution is a slow generic kernel: the 3.3M U-Net's 16-digit call took 5.6 s in bf16 against
    0.31 s in fp32 on an AVX2-only EPYC (docs/SPACE.md), hence `autocast`."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)  # private API: assume native if it goes
    return True if check is None else bool(check())


def bf16_convolutions_in_fp32(device_type: str, dtype: Any) -> bool:
    """Whether `autocast(device_type, dtype)` computes bf16 convolutions with fp32 kernels here (a CPU without
    native bf16)."""
    import torch

    return device_type == "cpu" and dtype == torch.bfloat16 and not native_cpu_bf16()


def autocast(device_type: str, dtype: Any = None) -> contextlib.AbstractContextManager:
    """`torch.autocast(device_type, dtype)` for inference; off when `dtype` is None.

    On a CPU without native bf16, bf16 autocast stays as it is (the same ops are cast, the activations stay bf16)
    but each convolution, the one op torch emulates slowly there, is computed by the fp32 kernel on its bf16
    inputs and its output rounded to bf16: the arithmetic of oneDNN's bf16 convolution (exact products of bf16
    values, fp32 sums, a rounded output) up to the order of the sums, at fp32 speed instead of ~18× slower.
    Inference only (no backward)."""
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device_type, dtype=dtype, enabled=dtype is not None))
    if bf16_convolutions_in_fp32(device_type, dtype):
        stack.enter_context(_convolutions_in_fp32()())
    return stack


@functools.lru_cache(maxsize=1)
def _convolutions_in_fp32() -> type:
    import torch
    from torch.overrides import TorchFunctionMode

    # The convolutions bf16 autocast casts to bf16; seen as calls, before autocast casts their inputs (a dispatch-level
    # mode would be simpler, but under inference_mode its fp32 call lands in torch's slow generic kernel).
    convolutions = {getattr(torch, name) for name in
                    ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")}
    bf16 = torch.bfloat16

    def rounded(x: Any) -> Any:  # what autocast hands the kernel, held in fp32 (exact)
        return x.to(bf16).float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

    class ConvolutionsInFp32(TorchFunctionMode):
        """A convolution under bf16 autocast → the fp32 kernel on its inputs rounded to bf16, output rounded to
        bf16; every other call as autocast makes it."""

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            if func in convolutions and torch.is_autocast_enabled("cpu"):
                with torch.autocast("cpu", enabled=False):
                    return func(*map(rounded, args), **{k: rounded(v) for k, v in kwargs.items()}).to(bf16)
            return func(*args, **kwargs)

    return ConvolutionsInFp32


# The study: 4000 timesteps, cosine β_t schedule (Nichol & Dhariwal's "squaredcos_cap_v2"), ε-prediction.
STUDY_NUM_TRAIN_TIMESTEPS = 4000


STUDY_BETA_SCHEDULE = "squaredcos_cap_v2"


SAMPLERS = ("ddpm", "ddim", "dpmsolver++", "unipc", "sde-dpmsolver++")


# Guidance when class labels are given and no scale is: the conditional model as trained (one UNet call per step).
DEFAULT_GUIDANCE_SCALE = 1.0


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
            # No lambda_min_clipped (diffusers suggests -5.1 for the cosine schedule): with x0 thresholded the
            # start at t = 3999 is stable, and starting there instead of at λ = -5.1 (t ≈ 3975) took release/ddpm
            # from FID 41.7 to 35.1 (docs/lab/DDPM.md#why-the-ode-samplers-stall).
        },
    ),
    # DPM-Solver++(2M) made stochastic: fresh noise each step like the ancestral sampler, second order like the
    # ODE solver (on the 9-epoch model it recovered 19 of the 22 FID points the ODE lost: docs/DDPM.md).
    "sde-dpmsolver++": (
        DPMSolverMultistepScheduler,
        {
            "algorithm_type": "sde-dpmsolver++",
            "solver_order": 2,
            "timestep_spacing": "trailing",
            "thresholding": True,
            "sample_max_value": 1.0,
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


# Options of a scheduler's `step()` rather than of its config (diffusers keeps them out of scheduler_config.json).
# `make_scheduler` takes them as overrides too, for the sampler study, and `sample_images` passes them to every step.
STEP_OPTIONS = ("use_clipped_model_output",)


# The library's own step options: DDIM re-derives ε from the clipped x0, else its direction term keeps the raw ε
# that the clipping rejected and it drifts as steps grow (FID 30.83 → 20.93 at 100 steps: docs/DDPM.md).
_DEFAULT_STEP_OPTIONS: dict[str, dict[str, Any]] = {"ddim": {"use_clipped_model_output": True}}


StepCallback = Callable[[int, int, torch.Tensor, "torch.Tensor | None"], None]


ClassLabels = int | Sequence[int] | torch.Tensor


def make_train_scheduler(
    num_train_timesteps: int = STUDY_NUM_TRAIN_TIMESTEPS,
    beta_schedule: str = STUDY_BETA_SCHEDULE,
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    rescale_betas_zero_snr: bool = False,
) -> DDPMScheduler:
    """The noise schedule used for training; its config is what every sampler is built from. `clip_sample`: x0
    clipped to [-1, 1] (pixels); off for unbounded inputs such as latents. `rescale_betas_zero_snr`: the last
    step's SNR made exactly 0 (Lin et al. 2024), which only a v- or x0-predicting UNet can learn."""
    if rescale_betas_zero_snr and prediction_type == "epsilon":
        raise ValueError("rescale_betas_zero_snr needs prediction_type 'v_prediction' or 'sample': at SNR 0 the "
                         "noisy input is pure noise, so predicting ε says nothing about the image")
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        prediction_type=prediction_type,
        clip_sample=clip_sample,
        clip_sample_range=1.0,
        rescale_betas_zero_snr=rescale_betas_zero_snr,
    )


def load_ddpm(
    path_or_repo: str | os.PathLike, *, use_ema: bool = True, device: str | torch.device = "cpu", **hub_kwargs
) -> tuple[UNet2DModel, DDPMScheduler | DDIMScheduler]:
    """(unet, scheduler) from a DDPM run folder or a Hub repo laid out as a pipeline (`DDPMPipeline` or
    `ClassConditionalDDPMPipeline`: the UNet's config says which). Safetensors only; never runs repo code.

    Args:
        path_or_repo: local folder (`model_index.json`, `unet/`, `scheduler/`) or a Hub repo id.
        use_ema: load `unet/` (EMA weights, the default for sampling); False loads `unet_non_ema/`.
        hub_kwargs: passed to `from_pretrained` (e.g. `revision`, `cache_dir`, `local_files_only`).
    """
    subfolder = "unet" if use_ema else "unet_non_ema"
    unet = UNet2DModel.from_pretrained(str(path_or_repo), subfolder=subfolder, use_safetensors=True, **hub_kwargs)
    config = DDPMScheduler.load_config(str(path_or_repo), subfolder="scheduler", **hub_kwargs)
    # A distilled student ships DDIM (v-prediction, no clipping: hub_models.diffusion.distillation); others DDPM.
    scheduler_cls = DDIMScheduler if config.get("_class_name") == "DDIMScheduler" else DDPMScheduler
    scheduler = scheduler_cls.from_config(config)
    return unet.to(device).eval(), scheduler


def make_scheduler(name: str, train_scheduler_config: Mapping[str, Any] | None = None,
                   **overrides: Any) -> SchedulerMixin:
    """The sampler `name` (one of `SAMPLERS`) built from the training scheduler's config with `from_config`,
    so the noise schedule (β's, T, prediction type) is exactly the one the UNet was trained with.

    `train_scheduler_config=None` uses the study's schedule (4000 steps, cosine). `overrides` replace single
    settings of the sampler (e.g. `thresholding=False`) or set an option of its step (`STEP_OPTIONS`, e.g.
    `use_clipped_model_output=False`, where DDIM's default is True), for studies of what each one does.
    """
    if name not in _SAMPLER_SETTINGS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {SAMPLERS}")
    if train_scheduler_config is None:
        train_scheduler_config = make_train_scheduler().config
    cls, settings = _SAMPLER_SETTINGS[name]
    step_options = {**_DEFAULT_STEP_OPTIONS.get(name, {}),
                    **{key: overrides.pop(key) for key in STEP_OPTIONS if key in overrides}}
    unknown = [key for key in step_options if key not in inspect.signature(cls.step).parameters]
    if unknown:
        raise ValueError(f"{cls.__name__}.step takes no {', '.join(unknown)}")
    scheduler = cls.from_config(dict(train_scheduler_config), **{**settings, **overrides})
    scheduler.step_options = step_options  # read by `sample_images`
    return scheduler


def is_class_conditional(unet: torch.nn.Module) -> bool:
    """True for a UNet with a label embedding (`num_class_embeds` set: the digits plus the null class last)."""
    config = getattr(unet, "config", None)
    return getattr(config, "num_class_embeds", None) is not None


def num_classes(unet: torch.nn.Module) -> int:
    """How many classes a conditional UNet generates (the last embedding is the null class of CFG)."""
    return unet.config.num_class_embeds - 1


def _require_conditional(unet: torch.nn.Module) -> None:
    if not is_class_conditional(unet):
        raise ValueError("this UNet is unconditional (unet.config.num_class_embeds is not set): it takes no "
                         "class_labels or guidance_scale")
    if getattr(unet.config, "class_embed_type", None) is not None:
        raise ValueError(f"class_embed_type={unet.config.class_embed_type!r} is not supported: labels are indices "
                         "into num_class_embeds")


def check_class_labels(unet: torch.nn.Module, class_labels: ClassLabels, num_images: int | None = None
                       ) -> torch.Tensor:
    """`class_labels` as a LongTensor `(num_images,)`, or ValueError (one line) unless they are whole numbers in
    0..num_classes-1, one per image. A single label (an int or a 0-d tensor) is repeated `num_images` times (16 if
    not given)."""
    _require_conditional(unet)
    n = num_classes(unet)
    try:
        labels = torch.as_tensor(class_labels)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"class_labels must be whole numbers 0–{n - 1}, got {class_labels!r}") from None
    if labels.dtype == torch.bool or labels.is_complex() or labels.ndim > 1 or labels.numel() == 0:
        raise ValueError(f"class_labels must be one digit or a 1-D list of digits 0–{n - 1}, got {class_labels!r}")
    if labels.dtype.is_floating_point and not torch.equal(labels, labels.round()):
        raise ValueError(f"class_labels must be whole numbers 0–{n - 1}, got {labels.tolist()}")
    bad = labels[(labels < 0) | (labels >= n)]
    if len(bad):
        raise ValueError(f"class_labels must be digits 0–{n - 1}, got {bad.unique().tolist()}")
    labels = labels.long()
    if labels.ndim == 0:
        labels = labels.repeat(16 if num_images is None else num_images)
    if num_images is not None and len(labels) != num_images:
        raise ValueError(f"{len(labels)} class_labels for num_images={num_images}: give one label per image")
    return labels


def check_guidance_scale(guidance_scale: Any) -> float:
    """`guidance_scale` as a float, or ValueError (one line) unless it is a finite number ≥ 0."""
    try:
        w = float(guidance_scale)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_scale must be a number ≥ 0, got {guidance_scale!r}") from None
    if isinstance(guidance_scale, bool) or not math.isfinite(w) or w < 0:
        raise ValueError(f"guidance_scale must be a finite number ≥ 0, got {guidance_scale!r}")
    return w


class GuidedModel:
    """The UNet's output under classifier-free guidance: ε = ε_∅ + w·(ε_c − ε_∅).

    Both branches run in ONE batched UNet call (`[x, x]` with `[labels, null]`); w = 0 runs only the null branch
    and w = 1 only the conditional one (one call of `num_images` each); an unconditional UNet is called as is.
    The combination is applied to the raw output whatever the prediction type: ε, v and x0 are all affine in ε
    at a fixed x_t, and the weights (1 − w, w) sum to one, so guiding v or x0 is guiding ε.
    """

    def __init__(self, unet: torch.nn.Module, class_labels: torch.Tensor | None, guidance_scale: float,
                 num_images: int) -> None:
        self.unet, self.w = unet, guidance_scale
        self.labels = self.null = None
        if is_class_conditional(unet):
            null = torch.full((num_images,), num_classes(unet), dtype=torch.long)
            if class_labels is None or guidance_scale == 0:
                self.labels = null
            elif guidance_scale == 1:
                self.labels = class_labels
            else:
                self.labels, self.null = class_labels, null

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.labels is None:
            return self.unet(x, t).sample
        if self.null is None:
            return self.unet(x, t, class_labels=self.labels.to(x.device)).sample
        labels = torch.cat([self.labels, self.null]).to(x.device)
        cond, uncond = self.unet(torch.cat([x, x]), t, class_labels=labels).sample.float().chunk(2)
        return uncond + self.w * (cond - uncond)


def _resolve(
    unet: UNet2DModel | DiffusionPipeline | str | os.PathLike, scheduler_config: Mapping[str, Any] | None
) -> tuple[UNet2DModel, Mapping[str, Any] | None]:
    if isinstance(unet, DiffusionPipeline):
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
    unet: UNet2DModel | DiffusionPipeline | str | os.PathLike,
    scheduler_config: Mapping[str, Any] | SchedulerMixin | None = None,
    sampler: str | SchedulerMixin = "dpmsolver++",
    num_inference_steps: int = 25,
    num_images: int | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    autocast_dtype: torch.dtype | None = None,
    class_labels: ClassLabels | None = None,
    guidance_scale: float | None = None,
    latents: torch.Tensor | None = None,
    first_step: int = 0,
) -> torch.Tensor:
    """Generate digits, unconditionally or of chosen classes with classifier-free guidance.

    Args:
        unet: a `UNet2DModel`, a pipeline (`DDPMPipeline`, `ClassConditionalDDPMPipeline`), or a run folder /
            Hub repo id (loaded with EMA weights).
        scheduler_config: the training scheduler's config (or the scheduler); taken from the pipeline/folder
            when `unet` is one, else the study's schedule.
        sampler: one of `SAMPLERS` (built from `scheduler_config` with our settings), or a scheduler instance
            used as it is (as a diffusers pipeline uses its `scheduler`).
        num_inference_steps: denoising steps (the UNet is evaluated this many times, batched under guidance).
        num_images: batch size; defaults to one image per class label, else 16.
        generator: a CPU `torch.Generator`; the same seed gives the same images on any device.
        callback: `callback(step_index, num_steps, sample_t, pred_x0)` after every step; `sample_t` is the
            current noisy batch in [-1, 1], `pred_x0` the model's current estimate of the clean images.
        autocast_dtype: run the UNet under `torch.autocast` with this dtype (e.g. `torch.bfloat16`: 1.8× faster
            on CPUs with AVX512-BF16/AMX); the scheduler's arithmetic and the guidance stay in fp32.
        class_labels: for a class-conditional UNet, the digit of each image `(num_images,)` (or one digit for
            all); None generates unconditionally (the null class). An unconditional UNet takes none.
        guidance_scale: w of classifier-free guidance, ε = ε_∅ + w·(ε_c − ε_∅): 0 = unconditional, 1 = the
            conditional model as trained, > 1 = stronger class adherence. None: `DEFAULT_GUIDANCE_SCALE`.
        latents: the starting batch instead of fresh noise (as diffusers pipelines take `latents`): with
            `first_step`, a sample resumed where a `callback` saw it (then restore `generator`'s state too).
        first_step: skip the schedule's first steps; only for samplers without state between steps (ancestral
            `ddpm`, `ddim`), where `latents` after step k − 1 and the generator then resume the run exactly.

    Returns:
        `(num_images, channels, height, width)` float images in [0, 1], on the UNet's device.

    Raises:
        ValueError: labels outside the UNet's classes or not one per image, a negative or non-numeric guidance
            scale, labels/guidance for an unconditional UNet, `latents` of another shape than the batch, or a
            `first_step` outside the schedule or for a multistep sampler.
    """
    model, scheduler_config = _resolve(unet, scheduler_config)
    w = DEFAULT_GUIDANCE_SCALE
    if class_labels is not None or guidance_scale is not None:
        _require_conditional(model)
        w = check_guidance_scale(w if guidance_scale is None else guidance_scale)
    if class_labels is not None:
        class_labels = check_class_labels(model, class_labels, num_images)
        num_images = len(class_labels)
    num_images = 16 if num_images is None else num_images
    guided = GuidedModel(model, class_labels, w, num_images)

    scheduler = sampler if isinstance(sampler, SchedulerMixin) else make_scheduler(sampler, scheduler_config)
    device, dtype = model.device, model.dtype
    scheduler.set_timesteps(num_inference_steps, device=device)

    size = model.config.sample_size
    height, width = (size, size) if isinstance(size, int) else size
    shape = (num_images, model.config.in_channels, height, width)
    if not 0 <= first_step <= len(scheduler.timesteps):
        raise ValueError(f"first_step {first_step} is outside the schedule's {len(scheduler.timesteps)} steps")
    if first_step and not isinstance(scheduler, (DDPMScheduler, DDIMScheduler)):
        raise ValueError(f"{type(scheduler).__name__} keeps earlier steps' outputs: it cannot start at step "
                         f"{first_step}; resume only ancestral `ddpm` or `ddim`")
    if latents is None:
        # Noise drawn on CPU so a seed gives the same images on CPU and GPU.
        sample = torch.randn(shape, generator=generator, dtype=torch.float32).to(device, dtype)
        sample = sample * scheduler.init_noise_sigma
    elif tuple(latents.shape) != shape:
        raise ValueError(f"latents of shape {tuple(latents.shape)}, expected {shape}")
    else:
        sample = latents.to(device, dtype)

    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    step_kwargs.update(getattr(scheduler, "step_options", {}))
    timesteps = scheduler.timesteps
    was_training = model.training
    model.eval()
    try:
        for i, t in enumerate(timesteps[first_step:], start=first_step):
            model_input = scheduler.scale_model_input(sample, t)
            with autocast(device.type, autocast_dtype):
                model_output = guided(model_input, t)
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


OUTPUT_TYPES = ("pil", "np", "pt")


def read_index_as(cls: type, config: dict) -> dict:
    """A model_index.json as the installed `cls` reads it: `["<module>", "<cls name>"]` (a repo's shipped code, for
    diffusers' `trust_remote_code`) becomes the class name, so diffusers does not import the repo's module; any other
    list is left for diffusers to refuse without `trust_remote_code`."""
    name = config.get("_class_name")
    if isinstance(name, list) and len(name) == 2 and name[1] == cls.__name__:
        config["_class_name"] = name[1]
    return config


# The samplers' x0 thresholding to [-1, 1] suits pixels, not unit-variance latents.
LATENT_SAMPLER_OVERRIDES: dict[str, Any] = {"thresholding": False}


def latent_shape(vae: AutoencoderKL) -> tuple[int, int, int]:
    """(channels, height, width) of the latent: each encoder level but the last halves the image."""
    side = vae.config.sample_size // 2 ** (len(vae.config.block_out_channels) - 1)
    return vae.config.latent_channels, side, side


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


__all__ = ["LatentDDPMPipeline"]
