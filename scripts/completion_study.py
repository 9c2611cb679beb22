#!/usr/bin/env python
"""Digit completion, measured: the DDPM (RePaint) against a VAE, with the top or the right half of test digits hidden.

    python scripts/completion_study.py --output_dir runs/completion --ddpm release/ddpm \
        --vae release/vae-conv-z4-beta1 --num_digits 1000

For each hidden half: the DDPM completes the hidden pixels (RePaint: the known pixels re-noised at every step,
resampling jumps), the VAE decodes the posterior mean of the masked digit (hidden pixels given as 0, known pixels
pasted back), and the digit classifier reads every result; the score is the share read as the original label.
Writes OUTPUT_DIR/completion.json and completion_<region>.png (masked input / DDPM / VAE / original). The runner is
`hub_models.study.completion.run_completion_study`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python scripts/completion_study.py` from a checkout

from hub_models.diffusion.inpainting import DEFAULT_COMPLETION_STEPS, DEFAULT_JUMP_LENGTH, DEFAULT_JUMP_N_SAMPLE
from hub_models.study.completion import REGIONS, run_completion_study
from hub_models.training import positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", default="runs/completion", help="Where the JSON and figures go.")
    p.add_argument("--ddpm", default="release/ddpm", help="The pixel DDPM: a pipeline folder or a Hub repo id.")
    p.add_argument("--vae", default="release/vae-conv-z4-beta1", help="The VAE baseline: a folder or a Hub repo id.")
    p.add_argument("--classifier", default=None, help="The digit classifier's folder (default: the release's).")
    p.add_argument("--num_digits", type=positive_int, default=1000, help="Test digits completed per hidden half.")
    p.add_argument(
        "--split",
        choices=["study", "official"],
        default="official",
        help="Held-out digits of the study's 80/20 split or of the official test set (default).",
    )
    p.add_argument("--regions", nargs="+", choices=REGIONS, default=["top", "right"], help="Halves to hide.")
    p.add_argument(
        "--num_inference_steps",
        type=positive_int,
        default=DEFAULT_COMPLETION_STEPS,
        help="Steps of the ancestral DDPM schedule (trailing spacing).",
    )
    p.add_argument("--jump_length", type=positive_int, default=DEFAULT_JUMP_LENGTH, help="RePaint's j.")
    p.add_argument(
        "--jump_n_sample", type=positive_int, default=DEFAULT_JUMP_N_SAMPLE, help="RePaint's r (1: no resampling)."
    )
    p.add_argument("--batch_size", type=positive_int, default=100, help="Digits completed per UNet batch.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the DDPM's noise.")
    p.add_argument(
        "--mixed_precision",
        choices=["no", "bf16"],
        default="bf16",
        help="Run the UNet under bf16 autocast (default) or in fp32.",
    )
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    run_completion_study(
        args.ddpm,
        args.vae,
        args.output_dir,
        classifier=args.classifier,
        num_digits=args.num_digits,
        split=args.split,
        bf16=args.mixed_precision == "bf16",
        regions=args.regions,
        num_inference_steps=args.num_inference_steps,
        jump_length=args.jump_length,
        jump_n_sample=args.jump_n_sample,
        batch_size=args.batch_size,
        seed=args.seed,
    )


if __name__ == "__main__":
    main(parse_args())
