"""The study's application, measured: anomaly detection with a β-VAE trained on "healthy" data only.

For each digit d: train a VAE on every training digit except d, score the test set, and report the AUROC of
telling d (the anomaly, positive class) from the nine known digits, with two scores:
- reconstruction error: BCE(x, decode(μ(x))) summed over pixels (the study's proposal);
- negative ELBO: BCE + KLD averaged over a few posterior samples (the model's own surprise).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, TensorDataset

from hub_models.data import ImageSplit
from hub_models.models.registry import VAE_CLASSES
from hub_models.models.vae import BetaVAE, bernoulli_bce, kl_to_standard_normal


def train_vae(images: torch.Tensor, arch: str = "conv", latent_dim: int = 2, beta: float = 1.0, epochs: int = 10,
              batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0) -> BetaVAE:
    """A plain training loop with the study's recipe (Adam, BCE + β·KLD) on images `(N, 1, 28, 28)` in [0, 1]."""

    torch.manual_seed(seed)
    model = VAE_CLASSES[arch](latent_dim=latent_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    noise = torch.Generator().manual_seed(seed + 1)
    model.train()
    for _ in range(epochs):
        for (x,) in loader:
            loss = model.loss(x, beta, generator=noise).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.inference_mode()
def anomaly_scores(model: BetaVAE, images: torch.Tensor, elbo_samples: int = 8, batch_size: int = 1000,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Per-image anomaly scores (higher = more anomalous) of images `(N, 1, 28, 28)` in [0, 1]:
    `reconstruction` = BCE of the posterior-mean reconstruction, `neg_elbo` = BCE + KLD over `elbo_samples` z."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    recon, neg_elbo = [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        mean, logvar = model.encode(x)
        recon.append(bernoulli_bce(model.decode_logits(mean), x))
        bce = torch.stack([bernoulli_bce(model.decode_logits(model.reparameterize(mean, logvar, generator)), x)
                           for _ in range(elbo_samples)]).mean(0)
        neg_elbo.append(bce + kl_to_standard_normal(mean, logvar))
    return {"reconstruction": torch.cat(recon).double().numpy(), "neg_elbo": torch.cat(neg_elbo).double().numpy()}


def anomaly_auroc(train: ImageSplit, test: ImageSplit, digit: int, arch: str = "conv", latent_dim: int = 2,
                  beta: float = 1.0, epochs: int = 10, batch_size: int = 64, learning_rate: float = 1e-3,
                  seed: int = 0, elbo_samples: int = 8) -> tuple[dict[str, Any], BetaVAE]:
    """Train without `digit`, score all of `test`, return (AUROC record, model)."""
    keep = train.labels != digit
    start = time.perf_counter()
    model = train_vae(train.as_float()[keep], arch, latent_dim, beta, epochs, batch_size, learning_rate, seed)
    train_seconds = time.perf_counter() - start
    scores = anomaly_scores(model, test.as_float(), elbo_samples=elbo_samples, seed=seed)
    is_anomaly = (test.labels == digit).numpy()
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError(f"the test set must hold digit {digit} and other digits to compute an AUROC")
    return {
        "digit": digit,
        "auroc_reconstruction": float(roc_auc_score(is_anomaly, scores["reconstruction"])),
        "auroc_neg_elbo": float(roc_auc_score(is_anomaly, scores["neg_elbo"])),
        "mean_score_anomalous": float(scores["reconstruction"][is_anomaly].mean()),
        "mean_score_normal": float(scores["reconstruction"][~is_anomaly].mean()),
        "n_train": int(keep.sum()),
        "n_test": len(test),
        "n_anomalous": int(is_anomaly.sum()),
        "train_seconds": train_seconds,
    }, model


def anomaly_study(train: ImageSplit, test: ImageSplit, digits: Iterable[int] = range(10),
                  **kwargs: Any) -> list[dict[str, Any]]:
    """`anomaly_auroc` for each held-out digit (models discarded)."""
    return [anomaly_auroc(train, test, d, **kwargs)[0] for d in digits]


__all__ = ["anomaly_auroc", "anomaly_scores", "anomaly_study", "train_vae"]
