#!/usr/bin/env python
"""FID of a trained DDPM (EMA and raw weights) and the sampler sweep, written to `<run>/evaluation.json`.

    python scripts/evaluate_ddpm.py --run_dir runs/ddpm-default --sweep   # select on the 12k held-out digits
    python scripts/evaluate_ddpm.py --run_dir runs/ddpm-default           # report: 10k digits vs 10k test digits
    python scripts/evaluate_ddpm.py --run_dir release/ddpm --protocol --precision bf16 --batch_size 250 \
        --no_ema_samples 1000 --raw_run_dir runs/ddpm-full  # the whole of docs/lab/PROTOCOL.md's sweep, resumable
    python scripts/evaluate_ddpm.py --run_dir release/ddpm --check_card_snippet --batch_size 250  # the card check

The protocol (docs/lab/PROTOCOL.md): the sweep selects sampler, steps and precision on the study's 12,000 held-out
digits (seed 0); the main FID reports the chosen one once against the official 10,000 test digits with a fresh
seed (1). Every FID states N, the reference set and the real-vs-real floor at that N. Interrupted runs resume:
digits are saved in chunks as they are generated, finished points are cached (keyed by the weights and the FID
protocol, so more training or another resize invalidates them). `python scripts/run_study.py --report_only`
then puts them in the report. On a machine with a GPU the digits are sampled and scored there; `--generate_only`
samples and stops, so digits made on a GPU machine can be scored on another (`sampled_on`/`scored_on` in each
point).

A run trained on other data (`train_ddpm.py --train_data_dir / --dataset_name`) is scored against its own held-out
images (`held-out`: rebuilt from the flags in its training_config.json), with the real-vs-real floor drawn from its
train images at the same N; its "recognisable" share and class accuracy need a classifier trained on that data:

    python training/train_classifier.py --train_data_dir ~/my_images --resolution 32 --output_dir runs/my-clf
    python scripts/evaluate_ddpm.py --run_dir runs/my-ddpm --num_samples 1000 --classifier_dir runs/my-clf

Without --classifier_dir those metrics are left out (one line says so); the MNIST digit classifier never judges
other data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE, SAMPLERS
from hub_models.evaluation import REFERENCE_SETS
from hub_models.evaluation.ddpm import PRECISIONS, SWEEP_STEPS
from hub_models.evaluation.ddpm.run_data import RUN_REFERENCE
from hub_models.evaluation.ddpm.runner import evaluate_run
from hub_models.hub.remote_code import add_remote_code
from hub_models.io import keep_freed_memory
from hub_models.training import non_negative_float, positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run_dir", default="runs/ddpm-default", help="A DDPM run folder (train_ddpm.py's output).")
    p.add_argument("--num_samples", type=positive_int, default=10_000,
                   help="Digits for the main FID (the report's N; the study states none).")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddpm",
                   help="Sampler of the main FID (ancestral DDPM: the best FID per second in the sweep).")
    p.add_argument("--steps", type=positive_int, default=25, help="Denoising steps of the main FID.")
    p.add_argument("--no_ema_samples", type=int, default=0,
                   help="Also the FID of the raw (non-EMA) weights with this many digits (0: skip).")
    p.add_argument("--sweep", action="store_true", help="Also the sampler sweep: FID vs time per sampler and steps.")
    p.add_argument("--sweep_samples", type=positive_int, default=1000, help="Digits per sweep point (one N for all).")
    p.add_argument("--sweep_samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    p.add_argument("--sweep_steps", nargs="+", type=positive_int, default=list(SWEEP_STEPS))
    p.add_argument("--reference", choices=[*sorted(REFERENCE_SETS), RUN_REFERENCE], default=None,
                   help="Real reference set of the main FID (default, the report: the official 10k test digits; "
                        f"for a run on other data its own held-out images, {RUN_REFERENCE!r}).")
    p.add_argument("--sweep_reference", choices=[*sorted(REFERENCE_SETS), RUN_REFERENCE], default=None,
                   help="Real reference set of the sweep (default, selection: the study's 12k held-out digits; for a "
                        f"run on other data its own held-out images, {RUN_REFERENCE!r}).")
    p.add_argument("--classifier_dir", default=None,
                   help="A classifier folder of training/train_classifier.py trained on the run's data, for the "
                        "recognisable share and class accuracy (default: the shipped digit classifier for MNIST "
                        "runs; none for other data, whose class metrics are then left out).")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32",
                   help="dtype of the UNet while sampling, for every point (bf16: 1.8× faster on CPUs with "
                        "AVX512-BF16/AMX; points are cached per precision).")
    p.add_argument("--batch_size", type=positive_int, default=500, help="Digits generated per chunk.")
    p.add_argument("--seed", type=int, default=1, help="Seed of the main FID (fresh: not used by the sweep).")
    p.add_argument("--sweep_seed", type=int, default=0, help="Seed of every sweep point.")
    p.add_argument("--guidance_scale", type=non_negative_float, default=None,
                   help="Class-conditional model: w of classifier-free guidance of the main FID and the sweep "
                   f"(default {DEFAULT_GUIDANCE_SCALE}); the digits are requested in balanced classes.")
    p.add_argument("--guidance_sweep", nargs="+", type=non_negative_float, default=None, metavar="W",
                   help="Class-conditional model: score these w (selection: --guidance_samples digits against "
                   "--sweep_reference, with --sampler, --steps, --precision and --sweep_seed); plot in "
                   "figures/guidance.png.")
    p.add_argument("--guidance_samples", type=positive_int, default=2000, help="Digits per --guidance_sweep point.")
    p.add_argument("--sweep_only", action="store_true",
                   help="Only the sweep's points (selection); no main FID until the sweep is complete.")
    p.add_argument("--protocol", action="store_true",
                   help="docs/lab/PROTOCOL.md's whole sequence for an unconditional model, resuming where it stopped: "
                        "the missing sweep points (bf16, in the plan's order), the fp32 re-runs of the best three, "
                        "the selection, the raw-weights point (with --no_ema_samples), then the main FID of the "
                        "selected sampler, steps and precision (--num_samples, --reference, --seed).")
    p.add_argument("--generate_only", action="store_true",
                   help="Only sample the digits of every point these flags plan (with --protocol: the sweep's "
                        "missing points), saved in chunks; score them later, on this machine or another, by running "
                        "the same command without it (e.g. sample on a GPU machine, score where the FID network is).")
    p.add_argument("--check_card_snippet", action="store_true",
                   help="docs/lab/PROTOCOL.md's card check: run the card's How-to-use snippet (README.md in --run_dir) "
                        "for --card_check_samples digits and compare its FID with the evaluator's at the headline's "
                        "settings over 5 seeds (passes within 3 σ); exit status 1 if it fails.")
    p.add_argument("--retime", action="store_true",
                   help="Re-measure the seconds per 16 digits of every cached point on this machine (a quiet one) "
                        "and redraw the sweep plot: a sweep sampled on several machines then has one machine's "
                        "timings. FIDs are untouched.")
    p.add_argument("--card_check_samples", type=positive_int, default=1000, help="N of the card check.")
    p.add_argument("--raw_run_dir", default=None,
                   help="With --protocol: the run folder holding this model's raw weights (unet_non_ema/), when "
                        "--run_dir is a release (EMA only). Default: --run_dir.")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    if args.check_card_snippet:  # the card's first snippet loads the code a push ships: ship it here too
        add_remote_code(Path(args.run_dir))
    return evaluate_run(args)


if __name__ == "__main__":
    keep_freed_memory()  # hours of CPU sampling and Inception: glibc keeps freed memory (benchmarks/cpu_allocator.py)
    sys.exit(main(parse_args()))
