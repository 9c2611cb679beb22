#!/usr/bin/env python
"""Train a diffusion prior over a released VAE's latent space (the "two-stage VAE", Dai & Wipf 2019).

    accelerate launch training/train_latent_prior.py --vae_name_or_path release/vae-conv-z4-beta1 \\
        --output_dir runs/latent-prior/conv-z4-beta1 --fid_samples 1000
    python training/train_latent_prior.py --max_train_steps 20 --output_dir /tmp/prior   # a quick smoke run

A small MLP denoiser (`hub_models.models.LatentPrior`, v-prediction by default) learns the standardised
posterior means of the training digits under the study's cosine schedule (1,000 steps); sampled with a diffusers
scheduler and decoded by the VAE.
Writes the prior folder (config.json + safetensors + scheduler/, `load_latent_prior`), metrics.json (with
`--fid_samples N`: the VAE's prior-sample FID with z ~ N(0, I) and with the learned prior, same protocol) and
figures. The loop is `hub_models.training.latent_prior.LatentPriorTrainer`; docs/lab/HYBRID.md has the results.
The latents are of the VAE's own data, read from its training_config.json when no data flags are given (MNIST for
the released VAEs); the FID and classifier points are MNIST's protocol and are left out on other data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_latent_prior.py` from a checkout

from hub_models.training import parse_training_args, training_parser
from hub_models.training.latent_prior import LatentPriorTrainer, add_latent_prior_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(
        __doc__, output_dir="runs/latent-prior/conv-z4-beta1", num_epochs=20, train_batch_size=256, learning_rate=1e-3
    )
    add_latent_prior_args(parser.add_argument_group("latent prior"))
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    LatentPriorTrainer.main(parse_args())
