"""The anomaly study runner: for each held-out digit, train a β-VAE without it and report the AUROC of finding it
(`hub_models.evaluation.anomaly.anomaly_auroc`), writing anomaly.json after every digit so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hub_models.data import load_splits
from hub_models.evaluation.anomaly import anomaly_auroc
from hub_models.figures import plt
from hub_models.io import save_pretrained_atomic, write_json_atomic, write_text_atomic

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
    """`training/anomaly_study.py`: one VAE per digit of --digits; anomaly.json, anomaly.md, figures/."""
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


__all__ = ["finished_records", "markdown_table", "plot", "run_anomaly_study"]
