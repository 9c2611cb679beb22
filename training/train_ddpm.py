#!/usr/bin/env python
"""Train the study's DDPM on MNIST: a UNet2DModel predicting ε under a cosine schedule over 4000 timesteps.

    accelerate launch training/train_ddpm.py                                  # the study's recipe (20 epochs)
    accelerate launch training/train_ddpm.py --class_conditional --output_dir runs/ddpm-conditional
    accelerate launch training/train_ddpm.py --model_config attention --output_dir runs/ddpm-attn
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

from hub_models.diffusion import SAMPLERS
from hub_models.models.unet import UNET_CONFIGS
from hub_models.training import non_negative_float, parse_training_args, positive_int, training_parser
from hub_models.training.args import probability
from hub_models.training.ddpm import DEFAULT_GUIDANCE_SCALE, DDPMTrainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(__doc__, output_dir="runs/ddpm-default", num_epochs=20, train_batch_size=128,
                             learning_rate=1e-4)
    model = parser.add_argument_group("model and noise schedule")
    model.add_argument("--model_config", default="default",
                       help=f"UNet config: one of {sorted(UNET_CONFIGS)} or a JSON file of UNet2DModel arguments.")
    model.add_argument("--num_train_timesteps", type=positive_int, default=4000, help="Diffusion steps T.")
    model.add_argument("--beta_schedule", default="squaredcos_cap_v2",
                       choices=["squaredcos_cap_v2", "linear", "scaled_linear"], help="β_t schedule (cosine).")
    model.add_argument("--prediction_type", choices=["epsilon", "v_prediction", "sample"], default="epsilon",
                       help="What the UNet predicts; the study predicts ε.")
    model.add_argument("--class_conditional", action="store_true",
                       help="Condition on the digit: num_class_embeds = 10 digits + a null class (index 10) for "
                            "classifier-free guidance.")
    model.add_argument("--label_dropout", type=probability, default=0.1,
                       help="With --class_conditional: share of labels replaced by the null class in training.")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--lr_scheduler", default="constant",
                       choices=["constant", "constant_with_warmup", "cosine", "linear"],
                       help="Learning-rate schedule (the study: constant).")
    optim.add_argument("--lr_warmup_steps", type=int, default=0, help="Warm-up updates of the lr schedule.")
    optim.add_argument("--adam_beta1", type=float, default=0.9, help="Adam β1.")
    optim.add_argument("--adam_beta2", type=float, default=0.999, help="Adam β2.")
    optim.add_argument("--adam_weight_decay", type=float, default=0.0, help="Adam weight decay.")
    optim.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam ε.")
    optim.add_argument("--max_grad_norm", type=non_negative_float, default=1.0,
                       help="Gradient clipping norm (0 = off).")
    optim.add_argument("--num_workers", type=int, default=0,
                       help="DataLoader workers (0 is fastest here: batches are slices of an in-memory tensor).")
    optim.add_argument("--no_ema", dest="use_ema", action="store_false",
                       help="Do not keep an EMA of the weights (unet/ then holds the raw weights).")
    optim.add_argument("--ema_max_decay", type=float, default=0.9999, help="Maximum EMA decay.")
    optim.add_argument("--ema_inv_gamma", type=float, default=1.0, help="EMA warm-up inverse gamma.")
    optim.add_argument("--ema_power", type=float, default=3 / 4, help="EMA warm-up power.")

    evals = parser.add_argument_group("per-epoch evaluation and figures")
    evals.add_argument("--eval_batch_size", type=positive_int, default=256, help="Batch size of the test loss.")
    evals.add_argument("--max_eval_samples", type=positive_int, default=None,
                       help="Test loss on the first N held-out digits only (default: all; a faster epoch end).")
    evals.add_argument("--eval_seed", type=int, default=1234,
                       help="Seed of the test loss's noise and timesteps (the same for every epoch and run).")
    evals.add_argument("--sampler", choices=SAMPLERS, default="dpmsolver++", help="Sampler of the sample grids.")
    evals.add_argument("--sample_steps", type=positive_int, default=25, help="Denoising steps of the grids.")
    evals.add_argument("--num_sample_images", type=positive_int, default=64,
                       help="Digits in each grid (class-conditional: rounded up to whole rows, one per digit).")
    evals.add_argument("--guidance_scale", type=non_negative_float, default=DEFAULT_GUIDANCE_SCALE,
                       help="With --class_conditional: classifier-free guidance w of the grids.")
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    DDPMTrainer.main(parse_args())
