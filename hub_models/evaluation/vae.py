"""Every number the report and the card need for one VAE run, cached in `<run>/evaluation.json` (schema 2).

Held-out metrics (BCE, KLD, ELBO, importance-sampled NLL), latent metrics (class separation, active units, the
aggregate posterior's distance to the prior) and one point of prior samples (FID + classifier metrics).
Also the hybrids' measurements (docs/lab/HYBRID.md): a conditional VAE's class accuracy, and the prior-sample point with
z from a learned latent prior (the two-stage VAE) under the same protocol.
`evaluate_vae_run` only recomputes what is stale: a new FID protocol re-scores the FID and nothing else.

A run on other data than MNIST (its training_config.json records `--dataset_name` / `--train_data_dir`) is
evaluated on its own held-out images, rebuilt from the recorded flags: FID against them (floor: its train images),
and the classifier metrics only with a classifier trained on that data (the MNIST digit classifier never scores
other images: without one they are left out, with a line saying so).
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
from hub_models.evaluation.metrics import (
    ReferenceLike,
    ReferenceSet,
    classifier_metrics,
    fid,
    is_standard_fid,
    load_digit_classifier,
    vae_metrics,
)
from hub_models.evaluation.schema import Evaluation, HeldOut, point_key, vae_point
from hub_models.image_datasets import ImageDatasetInfo, recorded_dataset, run_training_data
from hub_models.io import log
from hub_models.models.registry import config_class_name, vae_class

# Variance of E_q[z_d|x] over digits above which latent dimension d counts as used (Burda et al., 2016).
ACTIVE_UNIT_THRESHOLD = 0.01


@dataclass
class EvalSettings:
    """How much each run is evaluated (the defaults are the report's; tests shrink them)."""

    fid_samples: int = 1000
    fid_reference: ReferenceLike = "study-test"  # an MNIST set's name, or another dataset's `ReferenceSet`
    fid_reference_n: int = 2000
    nll_samples: int = 1000
    nll_images: int = 500
    latent_points: int = 5000
    seed: int = 0


def weights_digest(run_dir: str | os.PathLike) -> str:
    """sha256 (16 hex digits) of a VAE run's weights."""
    path = Path(run_dir) / "diffusion_pytorch_model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def latent_knn_accuracy(means: np.ndarray, labels: np.ndarray, k: int = 5, seed: int = 0) -> float | None:
    """How well digits separate in latent space: k-NN accuracy on the latent means (half fit, half scored).
    None when the labels cannot measure it: unlabelled images (-1), or too few per class for the stratified
    halves and k neighbours."""
    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    if (labels < 0).any() or len(counts) < 2 or counts.min() < 2 or len(labels) < 2 * k:
        return None
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
    """Class separation (5-NN accuracy; None for unlabelled images), active units and prior mismatch on the first
    `n` held-out images."""
    subset = held_out.subset(n)
    encoded = [model.encode(x) for x in subset.as_float().split(1000)]
    means = torch.cat([m for m, _ in encoded]).double().numpy()
    logvars = torch.cat([lv for _, lv in encoded]).double().numpy()
    return {"latent_knn_accuracy": latent_knn_accuracy(means, subset.labels.numpy(), seed=seed),
            "latent_points": len(subset), "active_units": active_units(means),
            "prior_mismatch_kl": prior_mismatch_kl(means, logvars)}


HELD_OUT_KEYS = ("bce", "kld", "elbo", "latent_knn_accuracy", "active_units", "prior_mismatch_kl")


@dataclass
class RunData:
    """The images a VAE run is evaluated on: MNIST's split (`info` None: the study's data, scored as it always
    was) or the run's own data, rebuilt from its recorded flags."""

    split: str
    train: ImageSplit | None  # other data only: the floor pool of its FID
    held_out: ImageSplit
    info: ImageDatasetInfo | None

    def reference(self) -> ReferenceSet:
        """Other data's FID reference: its held-out images; floor pool: its train images."""
        return ReferenceSet.held_out_of(f"{self.info.name} held-out", self.train, self.held_out, self.info)


def run_data(run_dir: str | os.PathLike) -> RunData:
    """The held-out images of a run: its own data (`hub_models.image_datasets.run_training_data`), or, when it
    was trained on MNIST (also runs from before the data flags), the MNIST split metrics.json records."""
    run_dir = Path(run_dir)
    if recorded_dataset(run_dir) is None:
        split = json.loads((run_dir / "metrics.json").read_text()).get("split", "study")
        _, held_out = load_splits(split)
        return RunData(split, None, held_out, None)
    train, held_out, info = run_training_data(run_dir)
    return RunData(info.split, train, held_out, info)


def evaluate_vae_run(run_dir: str | os.PathLike, settings: EvalSettings | None = None,
                     force: bool = False, classifier: str | os.PathLike | None = None) -> Evaluation:
    """Evaluate a VAE run folder (or reuse `<run>/evaluation.json` where it is still valid) and write it back.

    Reused when the settings match: the held-out metrics (if complete) and the classifier metrics of the prior
    samples. Recomputed: whatever is missing, and the FID when it was measured with another protocol or on other
    weights.

    A run on other data (see `run_data`) is scored on its own held-out images (`settings.fid_reference` names
    MNIST's sets and is not used for it); its classifier metrics need `classifier`, a classifier trained on that
    data (default: the run's recorded `--classifier_dir`), and are left out (`{}`) without one.
    """
    settings = settings or EvalSettings()
    run_dir = Path(run_dir)
    old = None if force else Evaluation.read(run_dir, kind="vae")
    same_settings = old is not None and {k: v for k, v in old.settings.items() if k != "version"} == asdict(settings)
    data = run_data(run_dir)
    split, held_out_split = data.split, data.held_out
    mnist = data.info is None
    if not mnist and classifier is None:
        classifier = json.loads((run_dir / "training_config.json").read_text()).get("classifier_dir")
    model = None

    def model_() -> Any:
        nonlocal model
        model = model if model is not None else vae_class(config_class_name(run_dir)).from_pretrained(run_dir).eval()
        return model

    digest = weights_digest(run_dir)
    held_out: HeldOut | None = old.held_out if same_settings else None
    if held_out is not None and held_out.get("weights") not in (digest, None):  # retrained: nothing is reusable
        held_out, same_settings = None, False
    dataset = None if mnist else data.info.name  # recorded for other data only: MNIST's files stay as they were
    if held_out is not None and held_out.get("dataset") != dataset:  # other images: nothing is reusable
        held_out, same_settings = None, False
    if held_out is None or any(k not in held_out for k in HELD_OUT_KEYS) or held_out.get("split") != split:
        base = {k: v for k, v in (held_out or {}).items() if k in ("n", "bce", "kld", "elbo", "nll", "nll_samples",
                                                                    "nll_n")}
        if "bce" not in base or (settings.nll_samples and "nll" not in base):
            base = vae_metrics(model_(), held_out_split, nll_samples=settings.nll_samples,
                               nll_limit=settings.nll_images, seed=settings.seed)
        held_out = HeldOut(split=split, **base, **latent_metrics(model_(), held_out_split, settings.latent_points,
                                                                  settings.seed))
        if dataset is not None:
            held_out["dataset"] = dataset
    held_out["weights"] = digest

    old_point = old.prior if same_settings else None
    # Files from before schema 2 name no weights digest: they were written next to these same weights.
    same_weights = old_point is not None and old_point.get("weights") in (digest, None)
    if same_weights and old_point.get("weights") == digest and is_standard_fid(old_point["fid"]):
        point = old_point
    else:
        samples = model_().sample(settings.fid_samples, generator=torch.Generator().manual_seed(settings.seed))
        if mnist:
            fid_result = fid(samples, reference=settings.fid_reference, n_ref=settings.fid_reference_n)
            scores = old_point["classifier"] if same_weights and old_point.get("classifier") else \
                classifier_metrics(samples, reference=settings.fid_reference, n_ref=settings.fid_reference_n)
        else:
            fid_result, scores = _other_data_point(samples, data, settings, classifier)
        point = vae_point(settings.fid_samples, settings.seed, fid_result, scores, weights=digest)
    evaluation = Evaluation(kind="vae", points={point_key(point): point}, held_out=held_out,
                            settings=asdict(settings))
    evaluation.write(run_dir)
    return evaluation


def _other_data_point(samples: torch.Tensor, data: RunData, settings: EvalSettings,
                      classifier: str | os.PathLike | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """FID of prior samples against the run's own held-out images (all of them when fewer than
    `settings.fid_reference_n`; the floor needs as many train images as samples), and the classifier metrics
    with a classifier trained on that data (`{}`, said in the log, without one)."""
    reference = data.reference()
    n_ref = min(settings.fid_reference_n, len(data.held_out))
    floor = len(data.train) >= len(samples)
    if not floor:
        log("evaluation", f"no FID floor: {data.info.name} has {len(data.train)} train images for "
                          f"{len(samples)} samples")
    fid_result = fid(samples, reference=reference, n_ref=n_ref, floor=floor)
    if classifier is None:
        log("evaluation", f"classifier metrics left out: the digit classifier is MNIST's, not {data.info.name}'s "
                          "(train one with training/train_classifier.py on that data and pass it)")
        return fid_result, {}
    scores = classifier_metrics(samples, classifier=load_digit_classifier(classifier),
                                reference=reference if floor else None, n_ref=n_ref)
    scores["classifier"] = str(classifier)
    return fid_result, scores


@torch.no_grad()
def conditional_class_accuracy(
    model, per_class: int = 100, seed: int = 0, classifier=None, batch_size: int = 1000
) -> dict[str, Any]:
    """How often the digit classifier (or `classifier`, one trained on the VAE's data) reads a conditional VAE's
    prior samples as the class they were asked for.

    `per_class` digits of every class, z ~ N(0, I) drawn with `seed` (class-major order).

    Returns:
        `{"n", "per_class", "seed", "accuracy", "accuracy_by_class": [..], "confident_share"}`: the share read as
        the requested class, overall and per requested class, and the share read with confidence > 0.9.
    """
    if not getattr(model, "is_conditional", False):
        raise ValueError("class accuracy needs a conditional VAE (config.num_classes > 0)")
    classifier = classifier if classifier is not None else load_digit_classifier()
    k = model.num_classes
    # Released classifier configs predate the shape fields: they are MNIST's.
    shape = (getattr(classifier.config, "in_channels", 1), *(2 * [getattr(classifier.config, "sample_size", 28)]))
    if classifier.config.num_classes != k or shape != tuple(model.image_shape):
        raise ValueError(f"the classifier takes {classifier.config.num_classes} classes of images {shape}, the VAE "
                         f"makes {k} classes of {tuple(model.image_shape)}: use one trained on the VAE's data")
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
    "RunData",
    "active_units",
    "conditional_class_accuracy",
    "evaluate_vae_run",
    "latent_knn_accuracy",
    "latent_metrics",
    "prior_mismatch_kl",
    "prior_sample_point",
    "run_data",
    "weights_digest",
]
