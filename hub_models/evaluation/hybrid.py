"""Measurements of the study's hybrids (docs/HYBRID.md): a conditional VAE's class accuracy, and the prior-sample
FID of a VAE with z ~ N(0, I) vs z from a learned latent prior (the two-stage VAE), under the protocol of the
released VAEs (docs/PROTOCOL.md: N = 1,000 prior samples, seed 0, against 2,000 digits of `study-test`).
"""

from __future__ import annotations

from typing import Any

import torch

from hub_models.diffusion.latent_prior import sample_latents
from hub_models.evaluation.metrics import classifier_metrics, fid, load_digit_classifier
from hub_models.evaluation.vae import EvalSettings


@torch.no_grad()
def conditional_class_accuracy(
    model, per_class: int = 100, seed: int = 0, classifier=None, batch_size: int = 1000
) -> dict[str, Any]:
    """How often the digit classifier reads a conditional VAE's prior samples as the class they were asked for.

    `per_class` digits of every class, z ~ N(0, I) drawn with `seed` (class-major order).

    Returns:
        `{"n", "per_class", "seed", "accuracy", "accuracy_by_class": [..], "confident_share"}`: the share read as
        the requested class, overall and per requested class, and the share read with confidence > 0.9.
    """
    if not getattr(model, "is_conditional", False):
        raise ValueError("class accuracy needs a conditional VAE (config.num_classes > 0)")
    classifier = classifier if classifier is not None else load_digit_classifier()
    k = model.num_classes
    requested = torch.arange(k).repeat_interleave(per_class)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((len(requested), model.config.latent_dim), generator=generator).to(model.device, model.dtype)
    was_training = model.training
    model.eval()
    images = (
        torch.cat(
            [model.decode(zc, yc) for zc, yc in zip(z.split(batch_size), requested.split(batch_size), strict=True)]
        )
        .float()
        .cpu()
    )
    model.train(was_training)
    # Quantized like every generated digit the project scores (what a PNG holds).
    images = images.mul(255).round().div(255)
    probs, _, predicted = classifier.predict(images, batch_size)
    correct = (predicted == requested).double()
    return {
        "n": len(requested),
        "per_class": per_class,
        "seed": seed,
        "accuracy": float(correct.mean()),
        "accuracy_by_class": [float(correct[requested == c].mean()) for c in range(k)],
        "confident_share": float((probs.max(1).values > 0.9).double().mean()),
    }


@torch.no_grad()
def prior_sample_point(
    vae,
    prior=None,
    scheduler_config=None,
    sampler: str = "ddpm",
    num_inference_steps: int = 100,
    settings: EvalSettings | None = None,
    classifier: bool = True,
    inception: bool = True,
) -> dict[str, Any]:
    """FID (+ classifier metrics) of a VAE's prior samples, with z ~ N(0, I) (`prior=None`: exactly what
    `evaluate_vae_run` measures) or with z drawn from a learned `LatentPrior` (`sample_latents`), decoded by `vae`.

    Same N, seed, reference set and Inception protocol either way (`EvalSettings`: the report's VAE protocol).
    `inception=False` skips the FID (the CPU-heavy part) and keeps the digit classifier's metrics.

    Returns:
        `{"prior", "num_samples", "seed", "fid": {...}, "classifier": {...}}` (+ sampler and steps for a learned
        prior; no "fid" without `inception`).
    """
    settings = settings or EvalSettings()
    vae.eval()
    if prior is None:
        samples = vae.sample(settings.fid_samples, generator=torch.Generator().manual_seed(settings.seed))
        point: dict[str, Any] = {"prior": "N(0, I)"}
    else:
        z = sample_latents(
            prior,
            scheduler_config,
            sampler=sampler,
            num_inference_steps=num_inference_steps,
            num_samples=settings.fid_samples,
            generator=torch.Generator().manual_seed(settings.seed),
        )
        samples = vae.decode(z.to(vae.device, vae.dtype))
        point = {"prior": "learned", "sampler": sampler, "steps": num_inference_steps}
    point.update({"num_samples": settings.fid_samples, "seed": settings.seed})
    if inception:
        point["fid"] = fid(samples, reference=settings.fid_reference, n_ref=settings.fid_reference_n)
    if classifier:
        point["classifier"] = classifier_metrics(
            samples, reference=settings.fid_reference, n_ref=settings.fid_reference_n
        )
    return point


__all__ = ["conditional_class_accuracy", "prior_sample_point"]
