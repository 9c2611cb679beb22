#!/usr/bin/env python
"""Training images/s: `training/train_ddpm.py` vs diffusers' own example `train_unconditional.py`, both run as
subprocesses, alternating, in fp32 and in bf16.

    # the example, for the installed diffusers version (kept outside the repo; not part of this project):
    V=$(python -c "import diffusers; print(diffusers.__version__)")
    curl -fLo runs/bench/train_unconditional.py \\
      https://raw.githubusercontent.com/huggingface/diffusers/v$V/examples/unconditional_image_generation/train_unconditional.py
    OMP_NUM_THREADS=1 python benchmarks/ddpm_throughput.py --example_script runs/bench/train_unconditional.py \\
      --batch_size 128 --warmup_steps 3 --steps 15 --rounds 2

What is compared, the same on both sides:
- data: the first `--num_train_samples` digits of the study's training split. train_ddpm.py reads them with
  `--limit_train_samples`; for the example they are written once as grayscale PNGs into an imagefolder
  (`--train_data_dir`), which the example loads with `datasets` and decodes per item, as a user's would.
- model: the project's UNet config (`--model_config`, default "default"), written as config.json and passed to the
  example's `--model_config_name_or_path`; noise schedule 4000 steps, cosine (`--ddpm_num_steps 4000
  --ddpm_beta_schedule squaredcos_cap_v2`); EMA on (`--use_ema`); batch `--batch_size`; resolution 28
  (`--resolution 28 --center_crop`, no flip); 0 DataLoader workers (both defaults).
- precision: `--mixed_precision no` and then `bf16`, passed explicitly to both scripts.
The example's one-line patch a 1-channel user needs, `image.convert("RGB")` → `image.convert("L")`, is applied to
a temporary copy (the file given is never changed; if that line is missing the benchmark stops with an error).
Everything else is the example as published (AdamW, cosine lr with warm-up, its own loop and logging).

Timing (details in benchmarks/anchor.py): each side prints a progress line per optimizer step (the example's tqdm
bar; train_ddpm.py with `--log_every 1`); this process stamps each line as it arrives, and a side's rate is
`--steps` × batch over the time from the end of step `--warmup_steps` to the end of step warm-up + steps. Start-up
(imports, building the imagefolder cache, model creation) is never timed; the child is stopped as soon as the last
timed step is seen. Rounds alternate (A B, B A, ...), each round is a fresh pair of processes; medians and their
ratio are printed per precision, with the load average at each run's start (the machine may be shared).
`--class_conditional_side` adds `train_ddpm.py --class_conditional` as a third side of the same rounds and prints
its cost per step over the unconditional one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from anchor import REPO, Side, environment_line, run_rounds, summarize, write_imagefolder, write_patched

from hub_models.data import load_splits
from hub_models.models.unet import UNET_CONFIGS, count_parameters, make_unet

ONE_CHANNEL_PATCH = [('image.convert("RGB")', 'image.convert("L")')]
EXAMPLE_PROGRESS = re.compile(r"Epoch \d+:.*?\|\s*(\d+)/\d+ \[")  # tqdm: "Epoch 0:  6%|▌  | 3/50 [00:10<…"
OURS_PROGRESS = re.compile(r"step (\d+)/\d+ epoch")  # train_ddpm.py's log line, "step 3/18 epoch 1 loss …"


def sides(args: argparse.Namespace, work: Path, precision: str) -> list[Side]:
    """[train_ddpm.py, the patched example (, train_ddpm.py --class_conditional)], with their flags for
    `precision`."""
    common_steps = args.warmup_steps + args.steps + 1
    ours = Side(
        "train_ddpm.py",
        [sys.executable, str(REPO / "training/train_ddpm.py"), "--model_config", args.model_config,
         "--limit_train_samples", str(args.num_train_samples), "--train_batch_size", str(args.batch_size),
         "--max_train_steps", str(common_steps), "--mixed_precision", precision, "--log_every", "1",
         "--output_dir", str(work / f"ours-{precision}"), "--seed", "0"],
        OURS_PROGRESS, lambda m: int(m.group(1)),
    )  # fmt: skip
    example = Side(
        "train_unconditional.py (L)",
        [sys.executable, str(work / "train_unconditional_L.py"), "--train_data_dir", str(work / "digits"),
         "--cache_dir", str(work / "hf-cache"), "--model_config_name_or_path", str(work / "unet"),
         "--resolution", "28", "--center_crop", "--train_batch_size", str(args.batch_size), "--num_epochs", "1",
         "--use_ema", "--ddpm_num_steps", "4000", "--ddpm_beta_schedule", "squaredcos_cap_v2",
         "--mixed_precision", precision, "--output_dir", str(work / f"example-{precision}")],
        EXAMPLE_PROGRESS, lambda m: int(m.group(1)),
    )  # fmt: skip
    if not args.class_conditional_side:
        return [ours, example]
    conditional = Side(
        "train_ddpm.py --class_conditional",
        [*ours.argv[:-4], "--output_dir", str(work / f"ours-conditional-{precision}"), "--seed", "0",
         "--class_conditional"],
        OURS_PROGRESS, lambda m: int(m.group(1)),
    )  # fmt: skip
    return [ours, example, conditional]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--example_script",
        required=True,
        help="Path of diffusers' examples/unconditional_image_generation/train_unconditional.py "
        "for the installed diffusers version (see the docstring for the curl command).",
    )
    parser.add_argument("--model_config", default="default", help=f"UNet config: {sorted(UNET_CONFIGS)} or a JSON.")
    parser.add_argument("--batch_size", type=int, default=128, help="Batch size of both sides (the study: 128).")
    parser.add_argument("--warmup_steps", type=int, default=3, help="Steps per run before timing starts.")
    parser.add_argument("--steps", type=int, default=15, help="Timed steps per run.")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds per precision.")
    parser.add_argument("--num_train_samples", type=int, default=6400, help="Digits both sides train on.")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["no", "bf16"],
        default=["no", "bf16"],
        help="`--mixed_precision` values, each passed to both scripts.",
    )
    parser.add_argument(
        "--class_conditional_side",
        action="store_true",
        help="Also time `train_ddpm.py --class_conditional` (num_class_embeds=11, label dropout 0.1) in the same "
        "rounds and print its cost over the unconditional step.",
    )
    parser.add_argument("--work_dir", default=None, help="Where the data, configs and logs go (default: a temp dir).")
    args = parser.parse_args()  # fmt: skip
    if args.warmup_steps < 1 or args.steps < 1:
        parser.error("--warmup_steps and --steps must be ≥ 1 (step 0 is the start-up)")
    if args.warmup_steps + args.steps + 1 > args.num_train_samples // args.batch_size:
        parser.error(
            "warm-up + timed steps must fit in one epoch (no end-of-epoch sampling inside the timing): "
            "raise --num_train_samples or lower --steps"
        )

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="ddpm-throughput-"))
    write_patched(args.example_script, ONE_CHANNEL_PATCH, work / "train_unconditional_L.py")
    unet = make_unet(args.model_config)
    unet.save_config(work / "unet")
    digits = load_splits("study", limit=args.num_train_samples)[0].images.numpy()
    write_imagefolder(digits, work / "digits")
    print(
        f"UNet '{args.model_config}' ({count_parameters(unet):,} parameters), {len(digits)} digits, batch "
        f"{args.batch_size}, {args.warmup_steps} warm-up + {args.steps} timed steps per run, {args.rounds} "
        f"alternating rounds per precision; {environment_line()}; logs in {work}",
        flush=True,
    )
    for precision in args.precisions:
        ours, example, *conditional = runs = sides(args, work, precision)
        run_rounds(
            runs,
            args.batch_size,
            args.warmup_steps,
            args.steps,
            args.rounds,
            work / "logs",
            label=f"mixed_precision={precision}",
        )
        summarize(ours, example, label=f"mixed_precision={precision}")
        for side in conditional:
            cost = statistics.median(ours.rates) / statistics.median(side.rates) - 1
            print(
                f"mixed_precision={precision} {side.name}: {statistics.median(side.rates):.1f} images/s (rounds: "
                f"{', '.join(f'{v:.1f}' for v in side.rates)}); cost per step over unconditional: {cost:+.1%}"
            )
    print(f"done; {environment_line()}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
