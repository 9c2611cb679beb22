"""Evaluation: the Inception FID, VAE and classifier metrics, the DDPM evaluation, and the one `evaluation.json`
schema every run writes (`schema.py`). The studies that use them live in `hub_models.study`.

The `evaluate` modules in `hub_models/evaluation/modules/` are thin wrappers of these functions.
"""

from hub_models.evaluation.metrics import (
    CONFIDENCE_THRESHOLD,
    REFERENCE_SETS,
    FeatureStats,
    classifier_metrics,
    fid,
    fid_floor,
    floor_images,
    format_fid,
    frechet_distance,
    importance_sampled_nll,
    inception_stats,
    is_standard_fid,
    load_digit_classifier,
    reference_images,
    reference_stats,
    vae_metrics,
)
from hub_models.evaluation.schema import EVALUATION_FILE, Evaluation, read_evaluation

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "EVALUATION_FILE",
    "REFERENCE_SETS",
    "Evaluation",
    "FeatureStats",
    "classifier_metrics",
    "fid",
    "fid_floor",
    "floor_images",
    "format_fid",
    "frechet_distance",
    "importance_sampled_nll",
    "inception_stats",
    "is_standard_fid",
    "load_digit_classifier",
    "read_evaluation",
    "reference_images",
    "reference_stats",
    "vae_metrics",
]
