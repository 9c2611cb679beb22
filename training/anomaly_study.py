#!/usr/bin/env python
"""The study's application, measured: AUROC of VAE anomaly detection, one held-out digit at a time.

    python training/anomaly_study.py --output_dir runs/anomaly --epochs 10

For each digit d in --digits: train a β-VAE on the training digits except d (the "healthy" data), score every
test digit by reconstruction error and by negative ELBO, and report the AUROC of finding the d's.
Writes OUTPUT_DIR/anomaly.json (per-digit records + settings), anomaly.md (a table) and figures/anomaly_auroc.png.
anomaly.json is rewritten after every digit; run the same command again and the digits already measured with the
same settings are kept, not retrained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.data import load_splits
from hub_models.evaluation.anomaly import anomaly_auroc
from hub_models.training import save_pretrained_atomic, write_json_atomic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", required=True, help="Folder for anomaly.json, anomaly.md and figures/.")
    p.add_argument("--digits", type=int, nargs="+", default=list(range(10)), help="Digits to hold out, one run each.")
    p.add_argument("--arch", default="conv", choices=["conv", "dense"], help="VAE architecture.")
    p.add_argument("--latent_dim", type=int, default=2, help="Latent dimension.")
    p.add_argument("--beta", type=float, default=1.0, help="β of the loss BCE + β·KLD.")
    p.add_argument("--epochs", type=int, default=10, help="Training epochs per held-out digit.")
    p.add_argument("--batch_size", type=int, default=64, help="Batch size (the study's 64).")
    p.add_argument("--learning_rate", type=float, default=1e-3, help="Adam learning rate (the study's 1e-3).")
    p.add_argument("--split", default="study", choices=["study", "official"],
                   help="'study': train on the 48k split, score the 12k held-out; 'official': 60k / 10k test.")
    p.add_argument("--limit", type=int, default=None, help="Use only the first N digits of each split (tests).")
    p.add_argument("--elbo_samples", type=int, default=8, help="Posterior samples of the negative-ELBO score.")
    p.add_argument("--seed", type=int, default=0, help="Seed of initialisation, shuffling and scoring.")
    p.add_argument("--save_models", action="store_true", help="Also save each VAE under models/without-<d>/.")
    return p.parse_args(argv)


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
    from hub_models.figures import plt

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


def finished_records(path: Path, settings: dict) -> dict[int, dict]:
    """Per-digit records of an earlier run in the same folder with the same settings (the digit list aside)."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    same = {k: v for k, v in earlier.get("settings", {}).items() if k != "digits"} == \
        {k: v for k, v in settings.items() if k != "digits"}
    return {r["digit"]: r for r in earlier.get("records", [])} if same else {}


def main(args: argparse.Namespace) -> list[dict]:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_splits(args.split, limit=args.limit)
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
                                      beta=args.beta, epochs=args.epochs, batch_size=args.batch_size,
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
    title = (f"{args.arch} VAE z={args.latent_dim} β={args.beta:g}, {args.epochs} epochs, {args.split} split: "
             "AUROC per held-out digit")
    (out / "anomaly.md").write_text(f"{title}\n\n{markdown_table(records)}")
    plot(records, out / "figures" / "anomaly_auroc.png", title)
    return records


if __name__ == "__main__":
    main(parse_args())
