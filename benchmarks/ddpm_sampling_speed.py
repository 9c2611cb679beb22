#!/usr/bin/env python
"""Wall time to generate 16 digits per sampler and step count (hub_models.diffusion.sampling.sample_images).

    python benchmarks/ddpm_sampling_speed.py                              # 10/25/50 steps, random default UNet
    python benchmarks/ddpm_sampling_speed.py --model runs/ddpm-default --all   # 10/25/50/250/1000 steps
    python benchmarks/ddpm_sampling_speed.py --steps 25 --samplers ddim dpmsolver++
    python benchmarks/ddpm_sampling_speed.py --precision fp32 bf16     # + the bf16/fp32 speed-up, side by side

The time depends on the UNet's size, not on its weights, so a randomly initialised UNet of the same config
gives the same figures as a trained one. Each cell is the best of --repeats runs (after one warm-up call).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.diffusion.pipeline import load_ddpm, make_train_scheduler
from hub_models.diffusion.sampling import SAMPLERS, sample_images
from hub_models.models.unet import UNET_CONFIGS, count_parameters, make_unet

ALL_STEPS = (10, 25, 50, 250, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="A DDPM run folder; default: a random UNet of --model_config.")
    parser.add_argument(
        "--model_config", default="default", help=f"UNet config when no --model: {sorted(UNET_CONFIGS)}."
    )
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS), help="Samplers to time.")
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 25, 50], help="Step counts to time.")
    parser.add_argument("--all", action="store_true", help=f"Time every step count of the issue: {ALL_STEPS}.")
    parser.add_argument("--num_images", type=int, default=16, help="Digits per call.")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="UNet dtype(s) while sampling; with both, each cell alternates them and prints the ratio.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs per cell (the best is kept).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="Device.")
    args = parser.parse_args()
    steps = list(ALL_STEPS) if args.all else args.steps

    if args.model:
        unet, scheduler = load_ddpm(args.model, device=args.device)
        config = scheduler.config
    else:
        torch.manual_seed(0)
        unet, config = make_unet(args.model_config).to(args.device).eval(), make_train_scheduler().config
    print(
        f"{args.num_images} images, UNet {count_parameters(unet):,} parameters on {args.device} "
        f"({torch.get_num_threads()} threads); seconds per call",
        flush=True,
    )

    dtypes = {"fp32": None, "bf16": torch.bfloat16}
    for precision in args.precision:  # warm-up
        sample_images(unet, config, "ddim", 2, args.num_images, autocast_dtype=dtypes[precision])
    columns = [f"{n} steps{'' if len(args.precision) == 1 else ' ' + p}" for n in steps for p in args.precision]
    if len(args.precision) == 2:
        columns += [f"{n} steps: bf16 speed-up" for n in steps]
    header = "| sampler | " + " | ".join(columns) + " |"
    rows = [header, "|---|" + "---:|" * len(columns)]
    print(header, flush=True)
    for sampler in args.samplers:
        cells, speedups = [], []
        for n in steps:
            best = dict.fromkeys(args.precision, float("inf"))
            for _ in range(args.repeats):
                for precision in args.precision:  # alternated, so machine noise hits both alike
                    generator = torch.Generator().manual_seed(0)
                    start = time.perf_counter()
                    sample_images(unet, config, sampler, n, args.num_images, generator=generator,
                                  autocast_dtype=dtypes[precision])
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    best[precision] = min(best[precision], time.perf_counter() - start)
            cells += [f"{best[p]:.2f}" for p in args.precision]
            print(f"  {sampler} {n} steps: " + ", ".join(f"{p} {best[p]:.2f} s" for p in args.precision), flush=True)
            if len(args.precision) == 2:
                speedups.append(f"{best['fp32'] / best['bf16']:.2f}×")
        rows.append(f"| {sampler} | " + " | ".join(cells + speedups) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
