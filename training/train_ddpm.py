#!/usr/bin/env python
"""Train the study's DDPM: a UNet2DModel predicting ε under a cosine schedule over 4000 timesteps, on MNIST by
default or on any image data (the shared data flags: the UNet takes its `sample_size` and channels from the images).

    accelerate launch training/train_ddpm.py                                  # the study's recipe (20 epochs)
    accelerate launch training/train_ddpm.py --class_conditional --output_dir runs/ddpm-conditional
    accelerate launch training/train_ddpm.py --model_config attention --output_dir runs/ddpm-attn
    accelerate launch training/train_ddpm.py --train_data_dir ~/my_images --resolution 32 --class_conditional \
        --output_dir runs/my-images-ddpm      # one class per sub-folder; the resolution must halve at each level
    python training/train_ddpm.py --model_config tiny --max_train_steps 20 --output_dir /tmp/ddpm  # smoke run

Writes a pipeline folder (model_index.json, unet/ with EMA weights, scheduler/), unet_non_ema/, metrics.json,
training_config.json, figures/samples*.png, logs/ (tensorboard) and checkpoints/ into --output_dir, at the end of
EVERY epoch, so a run cut short is still usable. The loop is `hub_models.training.ddpm.DDPMTrainer`; see
training/README.md for the flags and docs/DDPM.md for the results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_ddpm.py` from a checkout

from hub_models.models.unet import UNET_CONFIGS
from hub_models.training import parse_training_args, training_parser
from hub_models.training.args import add_ddpm_args
from hub_models.training.ddpm import DDPMTrainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(__doc__, output_dir="runs/ddpm-default", num_epochs=20, train_batch_size=128,
                             learning_rate=1e-4)
    add_ddpm_args(parser, f"UNet config: one of {sorted(UNET_CONFIGS)} or a JSON file of UNet2DModel arguments.")
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    DDPMTrainer.main(parse_args())
