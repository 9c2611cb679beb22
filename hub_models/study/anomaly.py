"""The study's application, measured: anomaly detection with a β-VAE trained on "healthy" data only.

For each digit d: train a VAE on every training digit except d, score the test set, and report the AUROC of
telling d (the anomaly, positive class) from the nine known digits, with two scores:
- reconstruction error: BCE(x, decode(μ(x))) summed over pixels (the study's proposal);
- negative ELBO: BCE + KLD averaged over a few posterior samples (the model's own surprise).

`run_anomaly_study` (what `scripts/anomaly_study.py` runs) writes anomaly.json after every digit, so a rerun with
the same settings keeps the digits already measured; anomaly.md and figures/anomaly_auroc.png at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, TensorDataset

from hub_models.data import ImageSplit, load_splits
from hub_models.figures import plt
from hub_models.io import save_pretrained_atomic, write_json_atomic, write_text_atomic
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


LEGACY_SETTINGS = {"epochs": "num_epochs", "batch_size": "train_batch_size", "limit": "limit_train_samples"}


def markdown_table(records: list[dict]) -> str:
    lines = ["| held-out digit | AUROC (reconstruction BCE) | AUROC (−ELBO) | anomalous / test | train s |",
             "|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['digit']} | {r['auroc_reconstruction']:.3f} | {r['auroc_neg_elbo']:.3f} | "
                     f"{r['n_anomalous']} / {r['n_test']} | {r['train_seconds']:.0f} |")
    if records:
        rec = np.mean([r["auroc_reconstruction"] for r in records])
        elbo = np.mean([r["auroc_neg_elbo"] for r in records])
        lines.append(f"| **mean** | **{rec:.3f}** | **{elbo:.3f}** | | |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path, title: str) -> None:
    digits = [r["digit"] for r in records]
    x = np.arange(len(digits))
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    ax.bar(x - 0.2, [r["auroc_reconstruction"] for r in records], 0.4, label="reconstruction BCE")
    ax.bar(x + 0.2, [r["auroc_neg_elbo"] for r in records], 0.4, label="−ELBO")
    ax.axhline(0.5, color="grey", lw=1, ls="--", label="chance")
    ax.set_xticks(x, [str(d) for d in digits])
    ax.set_xlabel("held-out (anomalous) digit")
    ax.set_ylabel("AUROC")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without the digit list, under the canonical flag names (studies run before the rename match)."""
    return {LEGACY_SETTINGS.get(k, k): v for k, v in settings.items() if k != "digits"}


def finished_records(path: Path, settings: dict) -> dict[int, dict]:
    """Per-digit records of an earlier run in the same folder with the same settings (the digit list aside)."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    same = _comparable(earlier.get("settings", {})) == _comparable(settings)
    return {r["digit"]: r for r in earlier.get("records", [])} if same else {}


def run_anomaly_study(args: argparse.Namespace) -> list[dict]:
    """`scripts/anomaly_study.py`: one VAE per digit of --digits; anomaly.json, anomaly.md, figures/."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_splits(args.split, limit=args.limit_train_samples)
    settings = {k: v for k, v in vars(args).items() if k != "output_dir"}
    done = finished_records(out / "anomaly.json", settings)
    records = []
    start = time.perf_counter()
    for digit in args.digits:
        if digit in done:  # measured by an earlier, interrupted run with the same settings
            records.append(done[digit])
            print(f"digit {digit}: already measured, kept", flush=True)
            continue
        record, model = anomaly_auroc(train, test, digit, arch=args.arch, latent_dim=args.latent_dim,
                                      beta=args.beta, epochs=args.num_epochs, batch_size=args.train_batch_size,
                                      learning_rate=args.learning_rate, seed=args.seed,
                                      elbo_samples=args.elbo_samples)
        records.append(record)
        print(f"digit {digit}: AUROC reconstruction {record['auroc_reconstruction']:.3f}, "
              f"−ELBO {record['auroc_neg_elbo']:.3f} ({record['train_seconds']:.0f} s)", flush=True)
        if args.save_models:
            save_pretrained_atomic(model, out / "models" / f"without-{digit}")
        # Written after every digit, so an interrupted study keeps what it measured.
        write_json_atomic(out / "anomaly.json", {"settings": settings, "records": records,
                                                 "seconds": time.perf_counter() - start})
    title = (f"{args.arch} VAE z={args.latent_dim} β={args.beta:g}, {args.num_epochs} epochs, {args.split} split: "
             "AUROC per held-out digit")
    write_text_atomic(out / "anomaly.md", f"{title}\n\n{markdown_table(records)}")
    plot(records, out / "figures" / "anomaly_auroc.png", title)
    return records

__all__ = [
    "anomaly_auroc",
    "anomaly_scores",
    "anomaly_study",
    "finished_records",
    "markdown_table",
    "plot",
    "run_anomaly_study",
    "train_vae",
]
