"""Trainers: the accelerate plumbing (accelerator, checkpoints, exact resume) and the loops the scripts call.

The top layer beside `study` and `space`: a trainer may use every layer below (data, models, diffusion, evaluation
for its per-epoch numbers, hub for `--push_to_hub`).
"""

from hub_models.io import save_pretrained_atomic, write_json_atomic
from hub_models.training.accelerate_utils import (
    CHECKPOINTS_DIR,
    CheckpointedGenerator,
    ResumePoint,
    Stopwatch,
    check_finite,
    checkpoint_step,
    end_training,
    list_checkpoints,
    load_checkpoint,
    make_accelerator,
    non_negative_float,
    positive_int,
    resume_from,
    resume_point,
    save_checkpoint,
    updates_per_epoch,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CheckpointedGenerator",
    "ResumePoint",
    "Stopwatch",
    "check_finite",
    "checkpoint_step",
    "end_training",
    "list_checkpoints",
    "load_checkpoint",
    "make_accelerator",
    "non_negative_float",
    "positive_int",
    "resume_from",
    "resume_point",
    "save_checkpoint",
    "save_pretrained_atomic",
    "updates_per_epoch",
    "write_json_atomic",
]
