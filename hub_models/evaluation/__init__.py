"""Evaluation: the Inception FID, VAE and classifier metrics, the DDPM evaluation, the anomaly study.

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
    load_digit_classifier,
    reference_images,
    reference_stats,
    vae_metrics,
)

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "REFERENCE_SETS",
    "FeatureStats",
    "classifier_metrics",
    "fid",
    "fid_floor",
    "floor_images",
    "format_fid",
    "frechet_distance",
    "importance_sampled_nll",
    "inception_stats",
    "load_digit_classifier",
    "reference_images",
    "reference_stats",
    "vae_metrics",
]
