"""Trainers: the accelerate plumbing (accelerator, checkpoints, exact resume), the shared flags, and the loops the
training scripts call (`trainer.Trainer` and its subclasses in vae.py, ddpm.py, classifier.py, autoencoder.py,
ldm.py).

The top layer beside `study` and `space`: a trainer may use every layer below (data, models, diffusion, evaluation
for its per-epoch numbers, hub for `--push_to_hub`). This package exports the light plumbing only; import a
trainer from its module (`from hub_models.training.ddpm import DDPMTrainer`).
"""

from hub_models.io import check_finite, save_pretrained_atomic, write_json_atomic
from hub_models.training.accelerate_utils import (
    CHECKPOINTS_DIR,
    CheckpointedGenerator,
    CheckpointLayoutError,
    ResumePoint,
    Stopwatch,
    checkpoint_step,
    end_training,
    list_checkpoints,
    load_checkpoint,
    make_accelerator,
    resume_from,
    resume_point,
    save_checkpoint,
    updates_per_epoch,
    weights_fingerprint,
)
from hub_models.training.args import (
    non_negative_float,
    parse_training_args,
    positive_int,
    training_parser,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CheckpointLayoutError",
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
    "parse_training_args",
    "positive_int",
    "resume_from",
    "resume_point",
    "save_checkpoint",
    "save_pretrained_atomic",
    "training_parser",
    "updates_per_epoch",
    "weights_fingerprint",
    "write_json_atomic",
]
