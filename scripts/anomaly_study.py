#!/usr/bin/env python
"""The study's application, measured: AUROC of VAE anomaly detection, one held-out digit at a time.

    python scripts/anomaly_study.py --output_dir runs/anomaly --num_epochs 10

For each digit d in --digits: train a β-VAE on the training digits except d (the "healthy" data), score every
test digit by reconstruction error and by negative ELBO, and report the AUROC of finding the d's.
Writes OUTPUT_DIR/anomaly.json (per-digit records + settings), anomaly.md (a table) and figures/anomaly_auroc.png.
anomaly.json is rewritten after every digit; run the same command again and the digits already measured with the
same settings are kept, not retrained. The runner is `hub_models.study.anomaly.run_anomaly_study`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python scripts/anomaly_study.py` from a checkout

from hub_models.study.anomaly import run_anomaly_study
from hub_models.training import parse_training_args, positive_int, training_parser
from hub_models.training.vae import add_vae_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(__doc__, loop=False, num_epochs=10, train_batch_size=64, learning_rate=1e-3)
    study = parser.add_argument_group("anomaly study")
    study.add_argument("--digits", type=int, nargs="+", choices=range(10), default=list(range(10)), metavar="D",
                       help="Digits to hold out, one VAE each (default: 0–9).")
    add_vae_args(study)
    study.add_argument("--elbo_samples", type=positive_int, default=8,
                       help="Posterior samples of the negative-ELBO score.")
    study.add_argument("--save_models", action="store_true", help="Also save each VAE under models/without-<d>/.")
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    run_anomaly_study(parse_args())
