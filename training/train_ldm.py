#!/usr/bin/env python
"""Train a latent diffusion model: a UNet2DModel on the 4×7×7 latents of a trained AutoencoderKL, under the study's
noise schedule (cosine β over 4000 timesteps), predicting v, with the DDPM trainer's loop.

    accelerate launch training/train_autoencoder.py --output_dir runs/autoencoder          # stage 1
    accelerate launch training/train_ldm.py --pretrained_vae_model_name_or_path runs/autoencoder   # stage 2
    python training/train_ldm.py --pretrained_vae_model_name_or_path /tmp/ae --model_config tiny \\
        --max_train_steps 20 --output_dir /tmp/ldm                                          # smoke run

The images are the autoencoder's: with no data flags the run reads them from the autoencoder's
training_config.json (MNIST for the study's); data flags naming other images stop with a one-line error.
--class_conditional embeds the data's classes (+ the null class of guidance).

Writes a LatentDDPMPipeline folder (model_index.json, vae/, unet/ with EMA weights, scheduler/), unet_non_ema/,
metrics.json, training_config.json, figures/samples*.png, logs/ and checkpoints/ into --output_dir after EVERY
epoch. Load it with `LatentDDPMPipeline.from_pretrained(folder)` or `hub_models.hub.load(folder)`. The loop is
`hub_models.training.ldm.LDMTrainer`; see docs/LATENT_DIFFUSION.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_ldm.py` from a checkout

from hub_models.diffusion.latent import LATENT_UNET_CONFIGS
from hub_models.training import parse_training_args, training_parser
from hub_models.training.args import add_ddpm_args
from hub_models.training.ldm import LDMTrainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(
        __doc__, output_dir="runs/ldm-default", num_epochs=20, train_batch_size=128, learning_rate=2e-4
    )
    parser.add_argument(
        "--pretrained_vae_model_name_or_path",
        required=True,
        help="The trained AutoencoderKL: a train_autoencoder.py run folder, a folder with vae/, or a Hub repo id.",
    )
    add_ddpm_args(
        parser,
        f"Latent UNet config: one of {sorted(LATENT_UNET_CONFIGS)} or a JSON file of UNet2DModel "
        "arguments (channels and size are set from the autoencoder's latent).",
    )
    # v, not ε: at t = T the cosine ᾱ is 1.5e-10, so an ε error reaches x0 ×81,000; pixels are clipped to [-1, 1],
    # unbounded latents are not (docs/LATENT_DIFFUSION.md, "Why the first latent model made blobs").
    parser.set_defaults(max_eval_samples=2000, prediction_type="v_prediction")
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    LDMTrainer.main(parse_args())
