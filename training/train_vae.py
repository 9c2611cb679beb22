#!/usr/bin/env python
"""Train one β-VAE of the study on MNIST (the default) or on any image data.

    accelerate launch training/train_vae.py                      # Conv VAE, z=2, β=1: the study's recipe
    accelerate launch training/train_vae.py --arch dense --latent_dim 4 --beta 20
    accelerate launch training/train_vae.py --conditional        # a conditional VAE: the label goes in too
    python training/train_vae.py --max_train_steps 20 --output_dir /tmp/vae   # a quick smoke run

    # other data: a Hub image dataset, or a folder of images (one sub-folder per class, or none)
    accelerate launch training/train_vae.py --dataset_name zalando-datasets/fashion_mnist --output_dir runs/fashion-vae
    accelerate launch training/train_vae.py --train_data_dir ~/my_images --resolution 32 --output_dir runs/my-vae

Loss per image = BCE (summed over the pixels: 784 for MNIST) + β·KLD. The data sets the model's shape
(`in_channels`, `sample_size` in config.json: greyscale or RGB, --resolution; the Conv VAE needs a multiple of 4)
and, with --conditional, its classes (the data's labels). Writes the model (`save_pretrained`), metrics.json,
training_config.json (with the dataset), figures/*.png and tensorboard logs into --output_dir. The loop is
`hub_models.training.vae.VAETrainer`; see training/README.md for the flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_vae.py` from a checkout

from hub_models.training import non_negative_float, parse_training_args, positive_int, training_parser
from hub_models.training.vae import VAETrainer, add_vae_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(
        __doc__, output_dir="outputs/vae-conv-z2-beta1", num_epochs=20, train_batch_size=64, learning_rate=1e-3
    )
    vae = parser.add_argument_group("model and loss")
    add_vae_args(vae)
    vae.add_argument(
        "--kl_schedule",
        "--beta_schedule",  # its first name; the DDPM's --beta_schedule is the noise schedule
        dest="beta_schedule",  # the key released runs' metrics.json and training_config.json hold
        choices=["constant", "linear-warmup"],
        default="constant",
        help="KL weight schedule: constant β, or β-annealing: β grows linearly from 0 over --beta_warmup_epochs.",
    )
    vae.add_argument(
        "--beta_warmup_epochs",
        type=non_negative_float,
        default=10.0,
        help="Epochs of the linear β warm-up (with --kl_schedule linear-warmup).",
    )
    vae.add_argument("--num_figure_samples", type=positive_int, default=64, help="Prior samples in samples.png.")
    vae.add_argument(
        "--conditional",
        action="store_true",
        help="Train a conditional VAE: the one-hot class label feeds the encoder heads and the decoder (the data "
        "must have labels: MNIST's digits, a class sub-folder per label, or a label column).",
    )
    vae.add_argument(
        "--class_accuracy_samples",
        type=positive_int,
        default=100,
        help="With --conditional: generated digits per class whose class accuracy metrics.json records.",
    )
    vae.add_argument(
        "--classifier_dir",
        default=None,
        help="With --conditional on data other than MNIST: a classifier trained on that data "
        "(training/train_classifier.py) that scores the class accuracy; without it the metric is left out "
        "(MNIST: the shipped digit classifier).",
    )
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    VAETrainer.main(parse_args())
