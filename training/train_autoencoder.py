#!/usr/bin/env python
"""Train the autoencoder of latent diffusion: diffusers' AutoencoderKL, 1×28×28 digits → 4×7×7 latents.

    accelerate launch training/train_autoencoder.py                                    # runs/autoencoder
    accelerate launch training/train_autoencoder.py --train_data_dir ~/my_images --resolution 32 \
        --output_dir runs/my-autoencoder                                  # your own images: C×32×32 → 4×8×8
    python training/train_autoencoder.py --model_config tiny --max_train_steps 20 --output_dir /tmp/ae  # smoke run
    accelerate launch training/train_ldm.py --pretrained_vae_model_name_or_path runs/autoencoder  # the next stage

Loss: L1 on [-1, 1] pixels + --kl_weight·KL per latent element. Writes the model (config.json with
`scaling_factor` = 1 / std of the training latents, diffusion_pytorch_model.safetensors), metrics.json,
training_config.json, figures/reconstructions*.png, logs/ and checkpoints/ into --output_dir after EVERY epoch.
The loop is `hub_models.training.autoencoder.AutoencoderTrainer`; see docs/LATENT_DIFFUSION.md.
The data flags (--dataset_name, --train_data_dir, --resolution, --num_channels) set the autoencoder's
in_channels/out_channels and sample_size; the resolution must be a multiple of 2^(levels − 1) (4 for the named
configs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_autoencoder.py` from a checkout

from hub_models.diffusion.latent import AUTOENCODER_CONFIGS
from hub_models.training import non_negative_float, parse_training_args, positive_int, training_parser
from hub_models.training.autoencoder import AutoencoderTrainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(
        __doc__, output_dir="runs/autoencoder", num_epochs=5, train_batch_size=64, learning_rate=1e-3
    )
    model = parser.add_argument_group("model and loss")
    model.add_argument(
        "--model_config",
        default="default",
        help=f"AutoencoderKL config: one of {sorted(AUTOENCODER_CONFIGS)} or a JSON file of AutoencoderKL arguments.",
    )
    model.add_argument(
        "--kl_weight",
        type=non_negative_float,
        default=1e-3,
        help="Weight of the KL term (per latent element) beside the L1 loss (per pixel).",
    )
    model.add_argument(
        "--max_grad_norm", type=non_negative_float, default=1.0, help="Gradient clipping norm (0 = off)."
    )
    model.add_argument("--dataloader_num_workers", "--num_workers", dest="num_workers", type=int, default=0,
                       help="DataLoader workers.")
    evals = parser.add_argument_group("per-epoch evaluation")
    evals.add_argument("--eval_batch_size", type=positive_int, default=256, help="Batch size of the evaluation.")
    evals.add_argument(
        "--max_eval_samples",
        type=positive_int,
        default=2000,
        help="Held-out images scored, and training images whose latents give the scaling factor.",
    )
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    AutoencoderTrainer.main(parse_args())
