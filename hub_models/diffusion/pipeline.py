"""The DDPM as a diffusers pipeline folder: our class-conditional pipeline, saving a run, recognising one.

An unconditional UNet is saved as diffusers' own `DDPMPipeline`. A class-conditional one (`num_class_embeds` set:
ten digits + the null class of classifier-free guidance) is saved as `ClassConditionalDDPMPipeline`, because
`DDPMPipeline` takes no labels. A run's `model_index.json` names that class as a plain string; a pushed repo also
ships the class's code, generated from this library (`hub_models.hub.remote_code`), and names it
`["<module>", "ClassConditionalDDPMPipeline"]` for diffusers' `trust_remote_code`. The installed class reads only the
class name of that list (`read_index_as`), so `ClassConditionalDDPMPipeline.from_pretrained(folder_or_repo)` never
imports the repo's file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import DDPMPipeline, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from hub_models.diffusion.sampling import (
    STUDY_BETA_SCHEDULE,
    STUDY_NUM_TRAIN_TIMESTEPS,
    ClassLabels,
    StepCallback,
    is_class_conditional,
    load_ddpm,
    make_train_scheduler,
    sample_images,
)
from hub_models.io import save_pretrained_atomic

OUTPUT_TYPES = ("pil", "np", "pt")


def read_index_as(cls: type, config: dict) -> dict:
    """A model_index.json as the installed `cls` reads it: `["<module>", "<cls name>"]` (a repo's shipped code, for
    diffusers' `trust_remote_code`) becomes the class name, so diffusers does not import the repo's module; any other
    list is left for diffusers to refuse without `trust_remote_code`."""
    name = config.get("_class_name")
    if isinstance(name, list) and len(name) == 2 and name[1] == cls.__name__:
        config["_class_name"] = name[1]
    return config


class ClassConditionalDDPMPipeline(DiffusionPipeline):
    """Digits of chosen classes from a class-conditional `UNet2DModel`, with classifier-free guidance.

    Samples with `self.scheduler` as diffusers pipelines do (swap it with
    `pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)`), or with one of the
    library's tuned samplers by name (`sampler="dpmsolver++"`), through the library's loop
    (`hub_models.diffusion.sampling.sample_images`).

    Args:
        unet: a `UNet2DModel` with `num_class_embeds` = classes + 1 (the last index is the null class).
        scheduler: the training noise schedule (any diffusers scheduler made from its config).
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @classmethod
    def _dict_from_json_file(cls, json_file: str | os.PathLike) -> dict:
        # how diffusers reads model_index.json, in from_pretrained and in download: the repo's own code is ignored
        return read_index_as(cls, super()._dict_from_json_file(json_file))

    @torch.no_grad()
    def __call__(
        self,
        class_labels: ClassLabels | None = None,
        guidance_scale: float | None = None,
        num_inference_steps: int = 25,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        batch_size: int | None = None,
        sampler: str | None = None,
        autocast_dtype: torch.dtype | None = None,
        callback: StepCallback | None = None,
    ) -> ImagePipelineOutput | tuple:
        """Generate one image per class label.

        Args:
            class_labels: the digit of each image, e.g. `[3, 3, 7]` or a LongTensor `(batch,)`; one int with
                `batch_size` repeats it; None generates unconditionally (the null class), `batch_size` images.
            guidance_scale: w in ε = ε_∅ + w·(ε_c − ε_∅): 0 unconditional, 1 the conditional model as trained
                (default: `DEFAULT_GUIDANCE_SCALE`).
            num_inference_steps: denoising steps.
            generator: a CPU `torch.Generator` (same seed → same images on any device).
            output_type: "pil" (list of grey PIL images), "np" (`(batch, height, width, 1)` floats in [0, 1]) or
                "pt" (`(batch, 1, height, width)` floats in [0, 1]).
            return_dict: `ImagePipelineOutput` if True, else the tuple `(images,)`.
            batch_size: number of images (default: one per label, or 1 without labels).
            sampler: None samples with `self.scheduler`; a name from `SAMPLERS` uses the library's sampler
                built from `self.scheduler.config`.
            autocast_dtype: run the UNet under `torch.autocast` with this dtype (e.g. `torch.bfloat16`).
            callback: `callback(step_index, num_steps, sample_t, pred_x0)` after every step.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"unknown output_type {output_type!r}: choose one of {OUTPUT_TYPES}")
        if class_labels is None and batch_size is None:
            batch_size = 1
        images = sample_images(
            self.unet,
            self.scheduler.config,
            sampler if sampler is not None else self.scheduler,
            num_inference_steps,
            batch_size,
            generator=generator,
            callback=callback,
            autocast_dtype=autocast_dtype,
            class_labels=class_labels,
            guidance_scale=guidance_scale,
        )
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        return ImagePipelineOutput(images=images) if return_dict else (images,)


def pipeline_class(unet: UNet2DModel) -> type[DiffusionPipeline]:
    """The pipeline class a UNet is saved as: `ClassConditionalDDPMPipeline` when it has class embeddings."""
    return ClassConditionalDDPMPipeline if is_class_conditional(unet) else DDPMPipeline


def save_pipeline(unet: UNet2DModel, scheduler: SchedulerMixin, output_dir: str | os.PathLike) -> None:
    """Write a pipeline folder (model_index.json, unet/, scheduler/) in safetensors, file by file atomically:
    a `DDPMPipeline`, or a `ClassConditionalDDPMPipeline` when `unet.config.num_class_embeds` is set.

    The scheduler is saved with trailing timestep spacing (what every sampler of the library uses), so the
    folder's own pipeline called with few steps starts from pure noise (t = T − 1) as our samplers do; the
    spacing plays no part in training."""
    scheduler = type(scheduler).from_config(scheduler.config, timestep_spacing="trailing")
    pipe = pipeline_class(unet)(unet=unet, scheduler=scheduler)
    save_pretrained_atomic(pipe, output_dir, safe_serialization=True)


def is_ddpm_run(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / "model_index.json").is_file() and (path / "unet" / "config.json").is_file()


# Re-exported: callers import the schedule and the loader from here too.
__all__ = [
    "OUTPUT_TYPES",
    "STUDY_BETA_SCHEDULE",
    "STUDY_NUM_TRAIN_TIMESTEPS",
    "ClassConditionalDDPMPipeline",
    "is_ddpm_run",
    "load_ddpm",
    "make_train_scheduler",
    "pipeline_class",
    "read_index_as",
    "save_pipeline",
]
