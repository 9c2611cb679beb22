#!/usr/bin/env python
"""Train the classifier that judges generated images: MNIST's digits by default (≥ 99 % test accuracy in a few CPU
minutes), or any labelled image data with the shared data flags, for the class metrics of models trained on it.

    accelerate launch training/train_classifier.py --output_dir release/digit-classifier
    accelerate launch training/train_classifier.py --train_data_dir ~/my_images --resolution 32 \
        --output_dir runs/my-images-classifier      # then: scripts/evaluate_ddpm.py --classifier_dir <that folder>

Writes OUTPUT_DIR/config.json + diffusion_pytorch_model.safetensors (so `DigitClassifier.from_pretrained(D)`
works), metrics.json, training_config.json, README.md (model card), logs/ and checkpoints/. The loop is
`hub_models.training.classifier.ClassifierTrainer`; see training/README.md for the flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_classifier.py` from a checkout

from hub_models.training import parse_training_args, positive_int, training_parser
from hub_models.training.args import probability
from hub_models.training.classifier import ClassifierTrainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(__doc__, split="official", num_epochs=5, train_batch_size=256, learning_rate=3e-3,
                             checkpointing_steps="epoch", checkpoints_total_limit=1)
    clf = parser.add_argument_group("model and optimiser")
    clf.add_argument("--channels", type=positive_int, nargs=2, default=[16, 32],
                     help="Channels of the two conv blocks.")
    clf.add_argument("--hidden_dim", type=positive_int, default=128, help="Size of the penultimate (feature) layer.")
    clf.add_argument("--dropout", type=probability, default=0.3, help="Dropout before the last layer.")
    clf.add_argument("--weight_decay", type=float, default=1e-4, help="AdamW weight decay.")
    clf.add_argument("--eval_batch_size", type=positive_int, default=1000, help="Batch size of the test evaluation.")
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    ClassifierTrainer.main(parse_args())
