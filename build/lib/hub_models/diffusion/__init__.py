"""Diffusion on top of the models: the study's noise schedule, the samplers, the DDPM pipeline folder."""

from hub_models.diffusion.pipeline import (
    STUDY_BETA_SCHEDULE,
    STUDY_NUM_TRAIN_TIMESTEPS,
    is_ddpm_run,
    load_ddpm,
    make_train_scheduler,
    save_pipeline,
)
from hub_models.diffusion.sampling import SAMPLERS, make_scheduler, sample_images

__all__ = [
    "SAMPLERS",
    "STUDY_BETA_SCHEDULE",
    "STUDY_NUM_TRAIN_TIMESTEPS",
    "is_ddpm_run",
    "load_ddpm",
    "make_scheduler",
    "make_train_scheduler",
    "sample_images",
    "save_pipeline",
]
