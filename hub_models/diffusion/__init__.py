"""Diffusion on top of the models: the study's noise schedule, the samplers and classifier-free guidance
(sampling.py), the pipeline folders (pipeline.py: `DDPMPipeline`, our `ClassConditionalDDPMPipeline`),
latent diffusion (latent.py: `AutoencoderKL` configs, `LatentDDPMPipeline`), and digit completion and denoising
(inpainting.py: RePaint on the ancestral sampler)."""

from hub_models.diffusion.inpainting import complete, denoise
from hub_models.diffusion.latent import (
    LatentDDPMPipeline,
    is_latent_run,
    load_latent_pipeline,
    save_latent_pipeline,
)
from hub_models.diffusion.pipeline import (
    ClassConditionalDDPMPipeline,
    is_ddpm_run,
    pipeline_class,
    save_pipeline,
)
from hub_models.diffusion.sampling import (
    DEFAULT_GUIDANCE_SCALE,
    SAMPLERS,
    STUDY_BETA_SCHEDULE,
    STUDY_NUM_TRAIN_TIMESTEPS,
    check_class_labels,
    check_guidance_scale,
    is_class_conditional,
    load_ddpm,
    make_scheduler,
    make_train_scheduler,
    sample_images,
)

__all__ = [
    "DEFAULT_GUIDANCE_SCALE",
    "SAMPLERS",
    "STUDY_BETA_SCHEDULE",
    "STUDY_NUM_TRAIN_TIMESTEPS",
    "ClassConditionalDDPMPipeline",
    "LatentDDPMPipeline",
    "check_class_labels",
    "check_guidance_scale",
    "complete",
    "denoise",
    "is_class_conditional",
    "is_ddpm_run",
    "is_latent_run",
    "load_ddpm",
    "load_latent_pipeline",
    "make_scheduler",
    "make_train_scheduler",
    "pipeline_class",
    "sample_images",
    "save_latent_pipeline",
    "save_pipeline",
]
