#!/usr/bin/env python
"""Distil a trained DDPM into a few-step student: progressive distillation (Salimans & Ho 2022), each round halving
the DDIM steps (32 → 16 → 8 → 4 by default), the student predicting v.

    accelerate launch training/distill_ddpm.py --teacher_model_name_or_path release/ddpm \\
        --output_dir runs/ddpm-distilled                                     # 3 rounds: 32 → 4 steps
    accelerate launch training/distill_ddpm.py --teacher_model_name_or_path runs/ddpm-conditional \\
        --start_steps 40 --num_rounds 3 --output_dir runs/ddpm-conditional-distilled        # 40 → 5 steps
    python training/distill_ddpm.py --teacher_model_name_or_path /tmp/ddpm --start_steps 8 --num_rounds 2 \\
        --max_train_steps 3 --output_dir /tmp/student                       # smoke run: 3 updates per round

--max_train_steps and --num_epochs count PER ROUND. The run folder ends as a pipeline folder of the last student
(unet/ with EMA weights, unet_non_ema/, scheduler/: DDIM, v-prediction), loadable with `hub_models.load` and
sampled with `sample_images(folder, sampler="ddim", num_inference_steps=<its steps>)`; every round's student is in
rounds/<N>steps/. Resume with --resume_from_checkpoint latest and the same flags. The loop is
`hub_models.training.distill.DistillTrainer`; see training/README.md for the flags and docs/DDPM.md for the design.
The training images are the teacher's, read from its training_config.json when no data flags are given (MNIST for
the study's DDPMs); a class-conditional student keeps the teacher's classes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/distill_ddpm.py` from a checkout

from hub_models.diffusion import DEFAULT_GUIDANCE_SCALE
from hub_models.training import non_negative_float, parse_training_args, positive_int, training_parser
from hub_models.training.args import add_ema_flags, probability
from hub_models.training.distill import DistillTrainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = training_parser(
        __doc__, output_dir="runs/ddpm-distilled", num_epochs=5, train_batch_size=128, learning_rate=1e-4
    )
    distil = parser.add_argument_group("distillation")
    distil.add_argument(
        "--teacher_model_name_or_path",
        required=True,
        help="The teacher: a DDPM run folder or Hub repo id (pipeline layout), ε- or v-prediction, "
        "unconditional or class-conditional.",
    )
    distil.add_argument(
        "--teacher_non_ema",
        dest="teacher_use_ema",
        action="store_false",
        help="Distil the teacher's raw weights (unet_non_ema/) instead of its EMA (unet/).",
    )
    distil.add_argument(
        "--start_steps",
        type=positive_int,
        default=32,
        help="DDIM steps of the teacher in round 1; must divide the teacher's training timesteps "
        "(4000: 32, 40, 80, 160, …) (default: %(default)s).",
    )
    distil.add_argument(
        "--num_rounds",
        type=positive_int,
        default=3,
        help="Rounds; each halves the steps: the student samples in start_steps / 2^num_rounds (default: %(default)s).",
    )
    distil.add_argument(
        "--label_dropout",
        type=probability,
        default=0.1,
        help="Class-conditional teacher: share of labels replaced by the null class, so the student "
        "keeps the unconditional branch that guidance needs (default: %(default)s).",
    )

    optim = parser.add_argument_group("optimisation")
    optim.add_argument(
        "--lr_scheduler",
        choices=["linear", "constant"],
        default="linear",
        help="linear: decay to 0 within each round (the paper); constant (default: %(default)s).",
    )
    optim.add_argument(
        "--max_grad_norm", type=non_negative_float, default=1.0, help="Gradient clipping norm (0 = off)."
    )
    add_ema_flags(optim, "Keep no EMA: the raw student is handed on and saved.")
    optim.add_argument(
        "--ema_max_decay",
        type=float,
        default=0.999,
        help="Maximum EMA decay (restarts with warm-up every round) (default: %(default)s).",
    )
    optim.add_argument("--ema_inv_gamma", type=float, default=1.0, help="EMA warm-up inverse gamma.")
    optim.add_argument("--ema_power", type=float, default=3 / 4, help="EMA warm-up power.")

    evals = parser.add_argument_group("sample grid")
    evals.add_argument(
        "--num_sample_images",
        type=positive_int,
        default=64,
        help="Images in the final grid, sampled at the student's step count.",
    )
    evals.add_argument(
        "--guidance_scale",
        type=non_negative_float,
        default=DEFAULT_GUIDANCE_SCALE,
        help="Class-conditional: classifier-free guidance w of the grid (applied at sampling).",
    )
    return parse_training_args(parser, argv)


if __name__ == "__main__":
    DistillTrainer.main(parse_args())
