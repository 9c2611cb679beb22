"""One way of sampling a DDPM (`Point`): which weights, sampler, steps, precision and digits; and the sampler
it builds from a run folder (pixel or latent)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from safetensors import safe_open
from safetensors.torch import save_file

from hub_models.diffusion.latent import is_latent_run, load_latent_pipeline
from hub_models.diffusion.pipeline import load_ddpm
from hub_models.diffusion.sampling import make_scheduler, num_classes, sample_images
from hub_models.io import (
    compute_device,
    no_tf32,
    read_json,
)
from hub_models.reference import NUM_DIGITS

# What `Point.precision` names: the dtype the UNet runs in while sampling (the scheduler stays in fp32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
# Samplers with no state between steps: a chunk of theirs saves its progress every few minutes and resumes there
# (a 1,000-step chunk is hours of one core, longer than a process may live).
RESUMABLE_SAMPLERS = ("ddpm", "ddim")
CHECKPOINT_SECONDS = 300.0

@dataclass(frozen=True)
class Point:
    """One way of sampling the model: which weights, which sampler, how many steps, how many digits."""

    sampler: str = "dpmsolver++"
    steps: int = 25
    num_samples: int = 10_000
    ema: bool = True
    seed: int = 0
    precision: str = "fp32"
    # Sampler settings changed from the library's (`make_scheduler(sampler, config, **overrides)`), as
    # ((name, value), ...): the sampler study varies one at a time. Empty for every ordinary point.
    overrides: tuple[tuple[str, Any], ...] = ()
    # A class-conditional model: w of classifier-free guidance. Its images are requested in balanced classes
    # (image i of the N is class i mod the number of classes, `requested_labels`). None for an unconditional model.
    guidance_scale: float | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}: choose one of {sorted(PRECISIONS)}")

    @property
    def key(self) -> str:
        key = f"{self.sampler}-{self.steps}steps-{'ema' if self.ema else 'raw'}-n{self.num_samples}-seed{self.seed}"
        key = key if self.precision == "fp32" else f"{key}-{self.precision}"
        key = key if self.guidance_scale is None else f"{key}-w{self.guidance_scale:g}"
        return key + "".join(f"-{name}={value}" for name, value in self.overrides)

    def labels(self, num_images: int, first: int = 0, classes: int = NUM_DIGITS) -> dict[str, Any]:
        """The sampler's label arguments for images `first … first + num_images − 1` of the N, of a model with
        `classes` classes (none when unconditional)."""
        if self.guidance_scale is None:
            return {}
        return {"class_labels": requested_labels(num_images, first, classes), "guidance_scale": self.guidance_scale}

    def sample(self, unet: UNet2DModel, scheduler_config: Mapping[str, Any], num_images: int,
               seed: int, first: int = 0, progress: str | os.PathLike | None = None) -> torch.Tensor:
        """`num_images` images `(N, C, H, W)` in [0, 1] the way this point samples them, from `seed`; `first`:
        where they start in the N (which classes a conditional point requests); `progress`: a file where a
        `RESUMABLE_SAMPLERS` run saves its state every `CHECKPOINT_SECONDS` and resumes from (same digits)."""
        sampler = make_scheduler(self.sampler, scheduler_config, **dict(self.overrides)) if self.overrides \
            else self.sampler
        generator = torch.Generator().manual_seed(seed)
        resume = _resume(Path(progress), generator) if progress and self.sampler in RESUMABLE_SAMPLERS else {}
        with torch.inference_mode(), no_tf32():
            return sample_images(unet, scheduler_config, sampler, self.steps, num_images, generator=generator,
                                 autocast_dtype=PRECISIONS[self.precision], **resume,
                                 **self.labels(num_images, first, _classes(unet)))


def _resume(path: Path, generator: torch.Generator) -> dict[str, Any]:
    """`sample_images` arguments that continue a run from `path` (if saved) and keep saving it there."""
    resume: dict[str, Any] = {}
    if path.exists():
        with safe_open(path, "pt") as saved:
            resume = {"latents": saved.get_tensor("sample"), "first_step": int(saved.metadata()["next_step"])}
            generator.set_state(saved.get_tensor("generator_state"))
    last = time.monotonic()

    def save(i: int, num_steps: int, sample: torch.Tensor, pred_x0: torch.Tensor) -> None:
        nonlocal last
        if time.monotonic() - last < CHECKPOINT_SECONDS or i + 1 == num_steps:
            return
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"sample": sample.cpu().contiguous(), "generator_state": generator.get_state()}, tmp,
                  metadata={"next_step": str(i + 1)})
        os.replace(tmp, path)
        last = time.monotonic()

    return {**resume, "callback": save}


def requested_labels(num_images: int, first: int = 0, classes: int = NUM_DIGITS) -> torch.Tensor:
    """The classes a class-conditional point asks for: image i of the N is class i mod `classes` (balanced classes;
    MNIST's 10 digits by default)."""
    return (torch.arange(first, first + num_images) % classes).long()


def _classes(unet: UNet2DModel) -> int:
    """The classes of a conditional UNet (any number for an unconditional one: it takes no labels)."""
    return num_classes(unet) if getattr(unet.config, "num_class_embeds", None) is not None else NUM_DIGITS


def weights_digest(run_dir: str | os.PathLike, ema: bool = True) -> str:
    """sha256 (first 16 hex digits) of the UNet weights a point samples from."""
    path = Path(run_dir) / ("unet" if ema else "unet_non_ema") / "diffusion_pytorch_model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def point_sampler(run_dir: str | os.PathLike, point: Point) -> Callable[..., torch.Tensor]:
    """`draw(num_images, seed, first=0, progress=None)` → images `(N, C, H, W)` in [0, 1] as `point` samples
    them from the run's weights: a pixel DDPM folder, or a latent one (`LatentDDPMPipeline`: the latent is sampled,
    then decoded). `first`: where the digits start in the point's N (the classes a conditional point requests);
    `progress`: where a long pixel run saves its state and resumes from (`Point.sample`)."""
    device = compute_device()  # the noise is drawn on the CPU, so a seed gives the same starting noise anywhere
    if not is_latent_run(run_dir):
        unet, scheduler = load_ddpm(run_dir, use_ema=point.ema, device=device)
        return lambda n, seed, first=0, progress=None: point.sample(unet, scheduler.config, n, seed, first,
                                                                    progress)
    if point.overrides:
        raise ValueError("sampler overrides are for pixel DDPMs; a latent pipeline samples with its own settings")
    pipe = load_latent_pipeline(run_dir)
    if not point.ema:
        pipe.unet = UNet2DModel.from_pretrained(str(run_dir), subfolder="unet_non_ema", use_safetensors=True)
    pipe.to(device)

    def draw(n: int, seed: int, first: int = 0, progress: str | os.PathLike | None = None) -> torch.Tensor:
        with torch.inference_mode(), no_tf32():  # a latent run is short: no progress to save
            return pipe(batch_size=n, num_inference_steps=point.steps, sampler=point.sampler, output_type="pt",
                        generator=torch.Generator().manual_seed(seed),
                        autocast_dtype=PRECISIONS[point.precision],
                        **point.labels(n, first, _classes(pipe.unet))).images

    return draw

def is_conditional_run(run_dir: str | os.PathLike) -> bool:
    """True for a run folder whose UNet takes class labels (`num_class_embeds` in `unet/config.json`)."""
    return run_num_classes(run_dir) is not None


def run_num_classes(run_dir: str | os.PathLike) -> int | None:
    """The classes a class-conditional run folder generates (`num_class_embeds` − 1, the null class); None when
    unconditional."""
    config = Path(run_dir) / "unet" / "config.json"
    embeds = read_json(config).get("num_class_embeds") if config.exists() else None
    return None if embeds is None else embeds - 1
