"""The Reconstruct tab: a prepared digit reconstructed by a VAE, with its −ELBO and the anomaly percentile among
the calibration digits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from hub_models.figures import to_pil
from hub_models.models.vae import BetaVAE, bernoulli_bce, kl_to_standard_normal
from hub_models.space.checks import SpaceError
from hub_models.space.preprocess import fit_image, prepare_digit, prepare_image
from hub_models.space.registry import VAEEntry, require_unconditional

DIGIT_SCALE = 10  # 28 px → 280 px, nearest-neighbour


@torch.inference_mode()
def negative_elbo(model: BetaVAE, x: torch.Tensor, labels: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic per-image (BCE, KLD, −ELBO, μ): the decoder is evaluated at the posterior mean. `labels`:
    the digits, for a conditional VAE (its encoder and decoder both take them)."""
    mean, logvar = model.encode(x, labels)
    bce = bernoulli_bce(model.decode_logits(mean, labels), x)
    kld = kl_to_standard_normal(mean, logvar)
    return bce, kld, bce + kld, mean


@dataclass
class Reconstruction:
    name: str
    image: Image.Image
    bce: float
    kld: float
    neg_elbo: float
    percentile: float | None  # share of test digits with a lower −ELBO, in %


def anomaly_percentile(entry: VAEEntry, neg_elbo: float) -> float | None:
    """Percentile rank of a −ELBO among the calibration digits (100 = worse than every test digit)."""
    if entry.calibration is None or len(entry.calibration) == 0:
        return None
    return 100.0 * float(np.searchsorted(entry.calibration, neg_elbo, side="left")) / len(entry.calibration)


def prepare_for(entries: list[VAEEntry], source: Any) -> torch.Tensor:
    """A user image prepared for these VAEs: MNIST's digit recipe (`prepare_digit`) when they are all MNIST's,
    else `prepare_image` at the largest of their shapes (RGB if one is), which `reconstruct` fits to each."""
    if all(e.mnist_like for e in entries):
        return prepare_digit(source)
    channels = max(e.channels for e in entries)
    return prepare_image(source, channels, max(e.resolution for e in entries))


@torch.inference_mode()
def reconstruct(entry: VAEEntry, x: torch.Tensor) -> Reconstruction:
    """Reconstruct a prepared digit `(1, 1, 28, 28)` (or image, brought to the model's shape) and score it against
    the test set."""
    require_unconditional(entry, "reconstructing a digit")
    if not torch.isfinite(x).all():
        raise SpaceError("The digit contains NaN values.")
    x = fit_image(x, entry.channels, entry.resolution)
    bce, kld, score, mean = negative_elbo(entry.model, x)
    recon = entry.model.decode(mean)
    s = float(score[0])
    return Reconstruction(entry.name, to_pil(recon, nrow=1, padding=0, scale=DIGIT_SCALE), float(bce[0]),
                          float(kld[0]), s, anomaly_percentile(entry, s))


__all__ = ["DIGIT_SCALE", "Reconstruction", "anomaly_percentile", "negative_elbo", "prepare_for", "reconstruct"]
