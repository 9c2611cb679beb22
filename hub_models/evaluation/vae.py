"""Every number the report and the card need for one VAE run, cached in `<run>/evaluation.json` (schema 2).

Held-out metrics (BCE, KLD, ELBO, importance-sampled NLL), latent metrics (class separation, active units, the
aggregate posterior's distance to the prior) and one point of prior samples (FID + classifier metrics).
Also the hybrids' measurements (docs/lab/HYBRID.md): a conditional VAE's class accuracy, and the prior-sample point with
z from a learned latent prior (the two-stage VAE) under the same protocol.
`evaluate_vae_run` only recomputes what is stale: a new FID protocol re-scores the FID and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hub_models.data import ImageSplit, load_splits
from hub_models.diffusion.latent_prior import sample_latents
from hub_models.evaluation.metrics import classifier_metrics, fid, is_standard_fid, load_digit_classifier, vae_metrics
from hub_models.evaluation.schema import Evaluation, HeldOut, point_key, vae_point
from hub_models.models.registry import config_class_name, vae_class

# Variance of E_q[z_d|x] over digits above which latent dimension d counts as used (Burda et al., 2016).
ACTIVE_UNIT_THRESHOLD = 0.01


@dataclass
class EvalSettings:
    """How much each run is evaluated (the defaults are the report's; tests shrink them)."""

    fid_samples: int = 1000
    fid_reference: str = "study-test"
    fid_reference_n: int = 2000
    nll_samples: int = 1000
    nll_images: int = 500
    latent_points: int = 5000
    seed: int = 0


def weights_digest(run_dir: str | os.PathLike) -> str:
    """sha256 (16 hex digits) of a VAE run's weights."""
    path = Path(run_dir) / "diffusion_pytorch_model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def latent_knn_accuracy(means: np.ndarray, labels: np.ndarray, k: int = 5, seed: int = 0) -> float:
    """How well digits separate in latent space: k-NN accuracy on the latent means (half fit, half scored)."""
    from sklearn.model_selection import train_test_split  # scikit-learn is slow to import; only this uses it
    from sklearn.neighbors import KNeighborsClassifier

    fit_x, test_x, fit_y, test_y = train_test_split(means, labels, test_size=0.5, random_state=seed,
                                                    stratify=labels)
    return float(KNeighborsClassifier(n_neighbors=k).fit(fit_x, fit_y).score(test_x, test_y))


def active_units(means: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dimensions whose posterior mean varies across digits (Var_x E_q[z_d|x] > threshold)."""
    return int((np.var(np.asarray(means, dtype=np.float64), axis=0, ddof=1) > threshold).sum())


def prior_mismatch_kl(means: np.ndarray, logvars: np.ndarray) -> float:
    """KL(N(μ̂, Σ̂) ‖ N(0, I)) of the moment-matched aggregate posterior q(z) = E_x q(z|x): Σ̂ = Cov(means) +
    mean posterior variance. Large = prior samples land where no digit was encoded (a "scattered" latent space)."""
    means = np.asarray(means, dtype=np.float64)
    d = means.shape[1]
    mu = means.mean(0)
    cov = np.atleast_2d(np.cov(means, rowvar=False)) + np.diag(np.exp(np.asarray(logvars, np.float64)).mean(0))
    _, logdet = np.linalg.slogdet(cov)
    return float(0.5 * (np.trace(cov) + mu @ mu - d - logdet))


@torch.inference_mode()
def latent_metrics(model, held_out: ImageSplit, n: int, seed: int = 0) -> dict[str, Any]:
    """Class separation (5-NN accuracy), active units and prior mismatch on the first `n` held-out digits."""
    subset = held_out.subset(n)
    encoded = [model.encode(x) for x in subset.as_float().split(1000)]
    means = torch.cat([m for m, _ in encoded]).double().numpy()
    logvars = torch.cat([lv for _, lv in encoded]).double().numpy()
    return {"latent_knn_accuracy": latent_knn_accuracy(means, subset.labels.numpy(), seed=seed),
            "latent_points": len(subset), "active_units": active_units(means),
            "prior_mismatch_kl": prior_mismatch_kl(means, logvars)}


HELD_OUT_KEYS = ("bce", "kld", "elbo", "latent_knn_accuracy", "active_units", "prior_mismatch_kl")


def evaluate_vae_run(run_dir: str | os.PathLike, settings: EvalSettings | None = None,
                     force: bool = False) -> Evaluation:
    """Evaluate a VAE run folder (or reuse `<run>/evaluation.json` where it is still valid) and write it back.

    Reused when the settings match: the held-out metrics (if complete) and the classifier metrics of the prior
    samples. Recomputed: whatever is missing, and the FID when it was measured with another protocol or on other
    weights.
    """
    settings = settings or EvalSettings()
    run_dir = Path(run_dir)
    old = None if force else Evaluation.read(run_dir, kind="vae")
    same_settings = old is not None and {k: v for k, v in old.settings.items() if k != "version"} == asdict(settings)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    split = metrics.get("split", "study")
    model = None
    _, held_out_split = load_splits(split)

    def model_() -> Any:
        nonlocal model
        model = model if model is not None else vae_class(config_class_name(run_dir)).from_pretrained(run_dir).eval()
        return model

    digest = weights_digest(run_dir)
    held_out: HeldOut | None = old.held_out if same_settings else None
    if held_out is not None and held_out.get("weights") not in (digest, None):  # retrained: nothing is reusable
        held_out, same_settings = None, False
    if held_out is None or any(k not in held_out for k in HELD_OUT_KEYS) or held_out.get("split") != split:
        base = {k: v for k, v in (held_out or {}).items() if k in ("n", "bce", "kld", "elbo", "nll", "nll_samples",
                                                                    "nll_n")}
        if "bce" not in base or (settings.nll_samples and "nll" not in base):
            base = vae_metrics(model_(), held_out_split, nll_samples=settings.nll_samples,
                               nll_limit=settings.nll_images, seed=settings.seed)
        held_out = HeldOut(split=split, **base, **latent_metrics(model_(), held_out_split, settings.latent_points,
                                                                  settings.seed))
    held_out["weights"] = digest

    old_point = old.prior if same_settings else None
    # Files from before schema 2 name no weights digest: they were written next to these same weights.
    same_weights = old_point is not None and old_point.get("weights") in (digest, None)
    if same_weights and old_point.get("weights") == digest and is_standard_fid(old_point["fid"]):
        point = old_point
    else:
        samples = model_().sample(settings.fid_samples, generator=torch.Generator().manual_seed(settings.seed))
        fid_result = fid(samples, reference=settings.fid_reference, n_ref=settings.fid_reference_n)
        classifier = old_point["classifier"] if same_weights and old_point.get("classifier") else \
            classifier_metrics(samples, reference=settings.fid_reference, n_ref=settings.fid_reference_n)
        point = vae_point(settings.fid_samples, settings.seed, fid_result, classifier, weights=digest)
    evaluation = Evaluation(kind="vae", points={point_key(point): point}, held_out=held_out,
                            settings=asdict(settings))
    evaluation.write(run_dir)
    return evaluation


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


__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "EvalSettings",
    "active_units",
    "conditional_class_accuracy",
    "evaluate_vae_run",
    "latent_knn_accuracy",
    "latent_metrics",
    "prior_mismatch_kl",
    "prior_sample_point",
    "weights_digest",
]
