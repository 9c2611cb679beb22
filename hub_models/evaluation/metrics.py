"""Metrics of mnist-genlab, computed once here and wrapped by the `evaluate` modules in
`hub_models/evaluation/modules/`.

- `fid`: FID with the standard Inception-v3 pool3 network (`hub_models.evaluation.inception`), against a named real
  reference set (MNIST's) or another dataset's held-out images (`ReferenceSet`), with the real-vs-real floor at the
  same N.
- `classifier_metrics`: recognisable share (confidence > 0.9), class histogram, KL(histogram ‖ uniform) and the
  FD-classifier (a Fréchet distance on our digit classifier's penultimate features: MNIST-specific, not an FID).
- `vae_metrics`: test BCE, KLD, ELBO and the importance-sampled NLL (k samples) of a β-VAE.

Images are accepted as uint8 `(N, 28, 28)` or floats in [0, 1] `(N, 1, 28, 28)`; generated images are quantized to
uint8 first (what a saved PNG holds), for every metric.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from safetensors.numpy import load_file, save_file

from hub_models.data import ImageSplit, load_splits, uint8_to_unit
from hub_models.evaluation.inception import (
    NETWORK_DESCRIPTION,
    NETWORK_SHA1,
    PREPROCESSING,
    fid_cache_dir,
    inception_features,
    to_uint8,
)
from hub_models.models.classifier import DigitClassifier
from hub_models.models.vae import bernoulli_bce, kl_to_standard_normal

ImagesLike = torch.Tensor | np.ndarray | ImageSplit

# Named real reference sets: the set generated digits are compared with, and a disjoint pool of real digits that
# plays a perfect generator for the floor (the training distribution of the models evaluated against that set).
REFERENCE_SETS: dict[str, dict[str, str]] = {
    "mnist-test": {"split": "official", "reference": "held_out", "floor_pool": "train",
                   "description": "official MNIST test set (10,000); floor pool: official train set (60,000)"},
    "study-test": {"split": "study", "reference": "held_out", "floor_pool": "train",
                   "description": "the study's 20 % held-out split (12,000); floor pool: its 80 % train split"},
}
REFERENCE_SEED, FLOOR_SEED = 0, 1
CONFIDENCE_THRESHOLD = 0.9


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """Real images of another dataset to score against (MNIST's are named: `REFERENCE_SETS`): its held-out images
    and, for the floor, a disjoint pool of its real images (its train split), uint8 `(N, H, W)` or `(N, C, H, W)`.

    `identity` says which data they are (e.g. `ImageDatasetInfo.to_dict()` as JSON: name, config, split, seed,
    shape); it is in every cache key beside the pixels' digest, so no cached statistics of another set (MNIST's)
    are ever reused for it.
    """

    name: str  # what a result records as its `reference`
    images: torch.Tensor
    floor_pool: torch.Tensor
    identity: str

    @classmethod
    def held_out_of(cls, name: str, train: ImageSplit, held_out: ImageSplit, info: Any) -> ReferenceSet:
        """A run's own data (`hub_models.image_datasets.run_training_data`): its held-out images, its train images
        as the floor pool, identified by `info.to_dict()`."""
        return cls(name, held_out.images, train.images, json.dumps(info.to_dict(), sort_keys=True))

    @property
    def cache_name(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name).strip("_")[-40:]  # a file name: no folders, no spaces
        return f"{safe}-{hashlib.sha1(self.identity.encode()).hexdigest()[:12]}"


ReferenceLike = str | ReferenceSet


# --------------------------------------------------------------------------------------------------------------
# Inputs and reference sets
# --------------------------------------------------------------------------------------------------------------
def as_uint8(images: ImagesLike) -> torch.Tensor:
    """Any accepted image format → uint8 `(N, H, W)` (grey: MNIST's `(N, 28, 28)`) or `(N, 3, H, W)` (RGB)
    (floats are read as [0, 1] and rounded)."""
    return to_uint8(images.images if isinstance(images, ImageSplit) else images)


def _take(images: torch.Tensor, n: int | None, seed: int, name: str) -> torch.Tensor:
    if n is None or n == len(images):
        return images
    if n > len(images):
        raise ValueError(f"{name} holds {len(images)} digits, {n} were asked for")
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx.sort().values]


def reference_images(reference: ReferenceLike = "mnist-test", n: int | None = None) -> torch.Tensor:
    """The first `n` images of a seeded permutation of a reference set (all of it when `n` is None)."""
    if isinstance(reference, ReferenceSet):
        return _take(reference.images, n, REFERENCE_SEED, reference.name)
    spec = _spec(reference)
    train, held_out = load_splits(spec["split"])
    pool = held_out if spec["reference"] == "held_out" else train
    return _take(pool.images, n, REFERENCE_SEED, reference)


def floor_images(reference: ReferenceLike, n: int) -> torch.Tensor:
    """`n` real images disjoint from the reference set (its floor pool), seeded."""
    if isinstance(reference, ReferenceSet):
        return _take(reference.floor_pool, n, FLOOR_SEED, f"the floor pool of {reference.name}")
    spec = _spec(reference)
    train, held_out = load_splits(spec["split"])
    pool = train if spec["floor_pool"] == "train" else held_out
    return _take(pool.images, n, FLOOR_SEED, f"the floor pool of {reference}")


def _spec(reference: str) -> dict[str, str]:
    if reference not in REFERENCE_SETS:
        raise ValueError(f"unknown reference set {reference!r}; known: {sorted(REFERENCE_SETS)}")
    return REFERENCE_SETS[reference]


def _cache_name(reference: ReferenceLike) -> str:
    """The reference's part of the cache keys: MNIST's set names as always, another set's name + identity."""
    return reference.cache_name if isinstance(reference, ReferenceSet) else reference


def _digest(images: torch.Tensor) -> str:
    return hashlib.sha1(images.contiguous().numpy().tobytes()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------------------------
@dataclass
class FeatureStats:
    """Mean and covariance of features (float64). Below `dim` samples the centred features are kept too: the
    Fréchet distance then needs an n×n SVD instead of two dim×dim eigendecompositions."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    centered: np.ndarray | None = None

    @classmethod
    def from_features(cls, features: np.ndarray) -> FeatureStats:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"need at least 2 feature vectors (N, D), got shape {f.shape}")
        mu = f.mean(0)
        centered = f - mu
        sigma = centered.T @ centered / (len(f) - 1)
        return cls(mu, sigma, len(f), centered if len(f) < f.shape[1] else None)

    def save(self, path: str | os.PathLike) -> None:
        tensors = {"mu": self.mu, "sigma": self.sigma, "n": np.array([self.n], dtype=np.int64)}
        if self.centered is not None:
            tensors["centered"] = self.centered
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        t = load_file(str(path))
        return cls(t["mu"], t["sigma"], int(t["n"][0]), t.get("centered"))


def _trace_sqrt_product(a: FeatureStats, b: FeatureStats) -> float:
    """tr √(Σa Σb), via the PSD matrix Σa^½ Σb Σa^½ (same eigenvalues), or via the singular values of
    Aᵀ-products when both sets are small: Σa Σb has the nonzero eigenvalues of (Ca Cbᵀ)(Cb Caᵀ)/((na−1)(nb−1))."""
    if a.centered is not None and b.centered is not None:
        s = np.linalg.svd(a.centered @ b.centered.T, compute_uv=False)
        return float(s.sum() / math.sqrt((a.n - 1) * (b.n - 1)))
    w, v = np.linalg.eigh(a.sigma)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ b.sigma @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """‖μa − μb‖² + tr Σa + tr Σb − 2 tr √(Σa Σb) (clamped at 0: the estimate can dip below by rounding)."""
    diff = a.mu - b.mu
    value = diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * _trace_sqrt_product(a, b)
    return max(float(value), 0.0)


# --------------------------------------------------------------------------------------------------------------
# FID (Inception-v3)
# --------------------------------------------------------------------------------------------------------------
def _stats_dir() -> Path:
    return fid_cache_dir() / "stats"


def _protocol_tag() -> str:
    """Network + input convention, in every cache key: statistics made with another resize are never reused."""
    return f"{NETWORK_SHA1[:8]}-{PREPROCESSING}"


def inception_stats(images: torch.Tensor, cache_key: str | None = None, batch_size: int = 50,
                    progress: bool = False) -> FeatureStats:
    """Inception statistics of uint8 images, cached on disk under `cache_key` + a digest of the pixels. Processes
    asking for the same statistics at once compute them once: the others wait and read the cache (a reference set
    of 10,000 digits is ~25 min of one CPU core)."""
    if cache_key is None:
        return FeatureStats.from_features(inception_features(images, batch_size=batch_size, progress=progress))
    path = _stats_dir() / f"{cache_key}-n{len(images)}-{_digest(images)}-{_protocol_tag()}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock")):
        if path.exists():
            return FeatureStats.load(path)
        stats = FeatureStats.from_features(inception_features(images, batch_size=batch_size, progress=progress))
        stats.save(path)
        return stats


def reference_stats(reference: ReferenceLike = "mnist-test", n: int | None = None, batch_size: int = 50,
                    progress: bool = False) -> FeatureStats:
    """Cached Inception statistics of a reference set (N = `n`, all of it when None)."""
    return inception_stats(reference_images(reference, n), f"ref-{_cache_name(reference)}", batch_size, progress)


def fid_floor(reference: ReferenceLike = "mnist-test", n: int = 1000, n_ref: int | None = None, batch_size: int = 50,
              progress: bool = False) -> float:
    """Real-vs-real FID: `n` real images disjoint from the reference (its floor pool) against the reference
    statistics at `n_ref`; what a perfect generator of the training distribution scores at this N. Cached."""
    ref = reference_images(reference, n_ref)
    pool = floor_images(reference, n)
    name = _cache_name(reference)
    key = f"{name}|ref{len(ref)}-{_digest(ref)}|floor{n}-{_digest(pool)}|{_protocol_tag()}"
    table_path = _stats_dir() / "floors.json"
    table = json.loads(table_path.read_text()) if table_path.exists() else {}
    if key not in table:
        ref_stats = inception_stats(ref, f"ref-{name}", batch_size, progress)
        pool_stats = inception_stats(pool, f"floor-{name}", batch_size, progress)
        table = json.loads(table_path.read_text()) if table_path.exists() else {}  # re-read: another process
        table[key] = frechet_distance(pool_stats, ref_stats)
        table_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = table_path.with_name(f".floors.json.{os.getpid()}.tmp")  # unique: other processes may write too
        tmp.write_text(json.dumps(table, indent=1))
        os.replace(tmp, table_path)
    return float(table[key])


def fid(images: ImagesLike | None = None, reference: ReferenceLike | ImagesLike | FeatureStats = "mnist-test",
        n_ref: int | None = None, *,
        features: np.ndarray | None = None, floor: bool = True, batch_size: int = 50,
        progress: bool = False) -> dict[str, Any]:
    """FID of `images` (or of precomputed Inception `features`) against a reference set.

    Args:
        images: generated images, uint8 `(N, H, W)` / `(N, 3, H, W)` or floats in [0, 1] `(N, C, H, W)`.
        reference: a name in `REFERENCE_SETS` (default: the official 10k test set), another dataset's
            `ReferenceSet` (with its floor), real images themselves or their precomputed `FeatureStats` (then no
            floor is computed: there is no disjoint pool).
        n_ref: size of the reference subset (default: the whole set).
        features: Inception features `(N, 2048)` of the generated digits, instead of `images` (cache them).
        floor: also compute the real-vs-real floor at N = number of generated digits.

    Returns:
        `{"fid", "n_gen", "n_ref", "reference", "floor", "floor_n", "network", "preprocessing"}`.
    """
    if features is None:
        if images is None:
            raise ValueError("pass images or features")
        features = inception_features(as_uint8(images), batch_size=batch_size, progress=progress)
    gen = FeatureStats.from_features(features)
    if isinstance(reference, FeatureStats):
        ref, name, floor_value = reference, "custom", None
    elif isinstance(reference, str | ReferenceSet):
        ref = reference_stats(reference, n_ref, batch_size, progress)
        name = reference if isinstance(reference, str) else reference.name
        floor_value = fid_floor(reference, gen.n, n_ref, batch_size, progress) if floor else None
    else:
        ref_images = as_uint8(reference)
        ref = FeatureStats.from_features(inception_features(ref_images, batch_size=batch_size))
        name, floor_value = "custom", None
    return {
        "fid": frechet_distance(gen, ref),
        "n_gen": gen.n,
        "n_ref": ref.n,
        "reference": name,
        "floor": floor_value,
        "floor_n": gen.n if floor_value is not None else None,
        "network": NETWORK_DESCRIPTION,
        "preprocessing": PREPROCESSING,
    }


def is_standard_fid(result: dict[str, Any]) -> bool:
    """Whether an FID result was computed with the standard input convention (TF1 bilinear resize). Results
    written before it carry no `preprocessing` field: they used torch's bilinear resize."""
    return result.get("preprocessing") == PREPROCESSING


LEGACY_FID_NOTE = "old torch-bilinear resize, pending re-measurement"


def format_fid(result: dict[str, Any]) -> str:
    """One line that always states N, the reference set and the floor (and flags the old resize)."""
    floor = f", real-vs-real floor {result['floor']:.2f}" if result.get("floor") is not None else ""
    legacy = "" if is_standard_fid(result) else f"; {LEGACY_FID_NOTE}"
    return (f"FID {result['fid']:.2f} (N={result['n_gen']:,} generated vs {result['n_ref']:,} of "
            f"{result['reference']}{floor}{legacy})")


# --------------------------------------------------------------------------------------------------------------
# Digit-classifier metrics
# --------------------------------------------------------------------------------------------------------------
# The shipped classifier of a checkout (release/digit-classifier); elsewhere pass a folder or set the variable.
DEFAULT_CLASSIFIER_DIR = Path(__file__).resolve().parents[2] / "release" / "digit-classifier"


def load_digit_classifier(path: str | os.PathLike | None = None) -> DigitClassifier:
    """The shipped classifier (`release/digit-classifier/`, or `$MNIST_GENLAB_CLASSIFIER`), in eval mode."""
    path = Path(path or os.environ.get("MNIST_GENLAB_CLASSIFIER") or DEFAULT_CLASSIFIER_DIR)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"no digit classifier in {path}: train one with `python training/train_classifier.py --output_dir "
            f"{DEFAULT_CLASSIFIER_DIR}` (a few minutes on CPU) or pass its folder."
        )
    return DigitClassifier.from_pretrained(path).eval()




def classifier_metrics(images: ImagesLike, classifier=None, reference: ReferenceLike | None = "mnist-test",
                       n_ref: int | None = None, threshold: float = CONFIDENCE_THRESHOLD,
                       batch_size: int = 1000, requested: torch.Tensor | None = None) -> dict[str, Any]:
    """What the digit classifier (or `classifier`, one trained on the images' own data) says about generated images.

    `requested`: the class each image was asked for `(N,)` (a class-conditional model). Other data than MNIST needs
    its own `classifier` (`training/train_classifier.py` on that data): the images must have its input shape.

    Returns:
        `n`; `confident_share` (share with max probability > `threshold`: "recognisable"); `mean_confidence`;
        `class_counts` / `class_histogram` (predicted labels); `kl_to_uniform` (KL(histogram ‖ uniform) in nats,
        0 = every digit equally often, ln 10 ≈ 2.30 = a single digit); and, when `reference` is given,
        `fd_classifier` (Fréchet distance on the classifier's penultimate features against `n_ref` digits of the
        reference set; MNIST-specific, NOT an FID) with `fd_classifier_floor` (real digits of its floor pool, same
        N); when `requested` is given, `class_accuracy` (share read as the requested digit) and
        `class_accuracy_per_digit`.
    """

    classifier = classifier if classifier is not None else load_digit_classifier()
    x = uint8_to_unit(as_uint8(images))
    # Released configs predate the shape fields: they are MNIST's.
    c, size = getattr(classifier.config, "in_channels", 1), getattr(classifier.config, "sample_size", 28)
    if tuple(x.shape[1:]) != (c, size, size):
        raise ValueError(f"the classifier takes images ({c}, {size}, {size}), not {tuple(x.shape[1:])}: use one "
                         "trained on the images' own data (training/train_classifier.py)")
    probs, feats, labels = classifier.predict(x, batch_size)
    confidence = probs.max(1).values
    counts = torch.bincount(labels, minlength=classifier.config.num_classes)
    hist = counts.double() / max(len(labels), 1)
    nonzero = hist > 0
    kl = float((hist[nonzero] * torch.log(hist[nonzero] * len(hist))).sum())
    out: dict[str, Any] = {
        "n": len(labels),
        "confidence_threshold": threshold,
        "confident_share": float((confidence > threshold).double().mean()),
        "mean_confidence": float(confidence.double().mean()),
        "class_counts": counts.tolist(),
        "class_histogram": hist.tolist(),
        "kl_to_uniform": kl,
    }
    if requested is not None:
        requested = torch.as_tensor(requested).long()
        if requested.shape != labels.shape:
            raise ValueError(f"requested holds {tuple(requested.shape)} labels for {len(labels)} images")
        hit = (labels == requested).double()
        out["class_accuracy"] = float(hit.mean())
        out["class_accuracy_per_digit"] = [float(hit[requested == d].mean()) if (requested == d).any() else None
                                           for d in range(classifier.config.num_classes)]
    if reference is not None:
        gen = FeatureStats.from_features(feats.numpy())
        ref_x = uint8_to_unit(reference_images(reference, n_ref))
        ref = FeatureStats.from_features(classifier.predict(ref_x, batch_size)[1].numpy())
        pool_x = uint8_to_unit(floor_images(reference, len(labels)))
        pool = FeatureStats.from_features(classifier.predict(pool_x, batch_size)[1].numpy())
        out.update({"fd_classifier": frechet_distance(gen, ref), "fd_classifier_floor": frechet_distance(pool, ref),
                    "reference": reference if isinstance(reference, str) else reference.name, "n_ref": ref.n})
    return out


# --------------------------------------------------------------------------------------------------------------
# VAE metrics
# --------------------------------------------------------------------------------------------------------------
@torch.inference_mode()
def vae_metrics(model, images: ImagesLike, batch_size: int = 1000, nll_samples: int = 0,
                nll_limit: int | None = None, nll_chunk: int = 20_000, seed: int = 0,
                labels: torch.Tensor | None = None) -> dict[str, Any]:
    """Per-image test metrics of a β-VAE (nats, averaged over images).

    BCE (summed over the 784 pixels) and KLD come from one posterior sample z ~ q(z|x) per image, as in the
    loss; ELBO = −(BCE + KLD). With `nll_samples = k > 0`, also the importance-sampled estimate
    −log p(x) ≈ −log (1/k) Σ p(x|zᵢ) p(zᵢ) / q(zᵢ|x), zᵢ ~ q(z|x), on the first `nll_limit` images (all by
    default). On grey-level MNIST the Bernoulli "likelihood" is not a normalised density over [0, 1] pixel
    values, so BCE/ELBO/NLL compare models with each other, not with likelihoods reported elsewhere.

    Args:
        model: a `BetaVAE` (its device/dtype are used).
        images: uint8 `(N, 28, 28)`, floats in [0, 1] `(N, 1, 28, 28)` or an `ImageSplit`.
        batch_size: images per forward pass.
        nll_samples: k for the NLL (1000 in reports; 0 = skip, the cheap per-epoch path).
        nll_limit: estimate the NLL on the first `nll_limit` images only.
        nll_chunk: decoder passes per chunk of the NLL (memory bound).
        seed: seed of the posterior samples (results are reproducible).
        labels: the digits `(N,)` of a conditional VAE (taken from an `ImageSplit` when not given); BCE/KLD/ELBO
            are then conditional on them (the NLL is not supported for it).
    """
    if getattr(model, "is_conditional", False):
        labels = images.labels if labels is None and isinstance(images, ImageSplit) else labels
        if nll_samples > 0:
            raise ValueError("the importance-sampled NLL is not implemented for a conditional VAE")
    was_training = model.training
    model.eval()
    x_all = _as_unit(images)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    # All posterior noise drawn at once: the result does not depend on batch_size.
    eps_all = torch.randn((len(x_all), model.config.latent_dim), generator=generator, device=model.device,
                          dtype=model.dtype)
    bce_sum = kld_sum = 0.0
    for start in range(0, len(x_all), batch_size):
        x = x_all[start:start + batch_size].to(model.device, model.dtype)
        cond = () if labels is None else (labels[start:start + batch_size],)
        mean, logvar = model.encode(x, *cond)
        z = mean + torch.exp(0.5 * logvar) * eps_all[start:start + batch_size]
        bce_sum += float(bernoulli_bce(model.decode_logits(z, *cond), x).double().sum())
        kld_sum += float(kl_to_standard_normal(mean, logvar).double().sum())
    n = max(len(x_all), 1)
    result: dict[str, Any] = {"n": len(x_all), "bce": bce_sum / n, "kld": kld_sum / n,
                              "elbo": -(bce_sum + kld_sum) / n}
    if nll_samples > 0:
        x_nll = x_all[:nll_limit] if nll_limit else x_all
        nll = importance_sampled_nll(model, x_nll, nll_samples, chunk=nll_chunk, generator=generator)
        result.update({"nll": float(nll.double().mean()), "nll_samples": nll_samples, "nll_n": len(x_nll)})
    model.train(was_training)
    return result


@torch.inference_mode()
def importance_sampled_nll(model, images: torch.Tensor, k: int = 1000, chunk: int = 20_000,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """−log p(x) per image `(N,)`: −logmeanexp over k samples zᵢ ~ q(z|x) of log p(x|zᵢ) + log p(zᵢ) − log q(zᵢ|x).

    Images `(N, 1, 28, 28)` in [0, 1]; the decoder runs on `chunk` latents at a time.
    """
    per_pass = max(1, chunk // k)  # images per chunk when k fits; otherwise 1 image, k split in pieces
    draws = max(1, min(k, chunk))
    out = []
    log2pi = math.log(2 * math.pi)
    for start in range(0, len(images), per_pass):
        x = images[start:start + per_pass].to(model.device, model.dtype)
        mean, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        log_w = []
        for s in range(0, k, draws):
            m = min(draws, k - s)
            eps = torch.randn((len(x), m, mean.shape[1]), generator=generator, device=x.device, dtype=x.dtype)
            z = mean[:, None] + std[:, None] * eps
            log_q = (-0.5 * (eps.pow(2) + logvar[:, None] + log2pi)).sum(-1)
            log_pz = (-0.5 * (z.pow(2) + log2pi)).sum(-1)
            logits = model.decode_logits(z.reshape(-1, mean.shape[1]))
            target = x.repeat_interleave(m, dim=0)
            log_px = -bernoulli_bce(logits, target).view(len(x), m)
            log_w.append((log_px + log_pz - log_q).double())
        log_w = torch.cat(log_w, dim=1)
        out.append(-(torch.logsumexp(log_w, dim=1) - math.log(k)))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def _as_unit(images: ImagesLike) -> torch.Tensor:
    """Real data kept exact: uint8 → /255; floats in [0, 1] used as they are (no quantization: test data)."""
    if isinstance(images, ImageSplit):
        return images.as_float()
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        return (x.unsqueeze(1) if x.ndim == 3 else x).float().div(255.0)
    return x.unsqueeze(1) if x.ndim == 3 else x


__all__ = [
    "CONFIDENCE_THRESHOLD",
    "DEFAULT_CLASSIFIER_DIR",
    "LEGACY_FID_NOTE",
    "REFERENCE_SETS",
    "FeatureStats",
    "ReferenceSet",
    "as_uint8",
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
    "module_features",
    "module_images",
    "reference_images",
    "reference_stats",
    "vae_metrics",
]


# --------------------------------------------------------------------------------------------------------------
# Shared by the `evaluate` modules in hub_models/evaluation/modules/
# --------------------------------------------------------------------------------------------------------------
def module_images(images: ImagesLike | None) -> np.ndarray | None:
    """Any accepted image format → float32 `(N, 1, 28, 28)` in [0, 1], the storage format of the modules
    (uint8 → /255 is exact, so quantizing back in the metric is lossless)."""
    if images is None:
        return None
    x = _as_unit(images).float().clamp(0, 1)
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def module_features():
    """`datasets.Features` of the image metrics: `predictions` = images `(1, 28, 28)` float32 in [0, 1]."""
    from datasets import Array3D, Features

    return Features({"predictions": Array3D(shape=(1, 28, 28), dtype="float32")})
