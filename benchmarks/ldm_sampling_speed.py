#!/usr/bin/env python
"""Seconds per 16 digits: the pixel DDPM against a latent diffusion pipeline, side by side in one process.

    python benchmarks/ldm_sampling_speed.py --pixel release/ddpm --latent release/ldm
    python benchmarks/ldm_sampling_speed.py --pixel release/ddpm --latent runs/ldm --rounds 5 --precision fp32 bf16

Both models sample the same way (sampler, steps, precision: docs/lab/PROTOCOL.md fixes ancestral `ddpm`, 25 steps,
bf16) through `hub_models.evaluation.ddpm.point_sampler`, the code that generates their FID digits. After one
warm-up call each, the rounds alternate pixel, latent, pixel, latent… so machine load hits both alike; each
round records CPU seconds (`time.process_time`: what this process computed) and wall seconds. Prints the medians
and the ratio pixel / latent, and writes them as JSON with --output.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.diffusion.sampling import SAMPLERS
from hub_models.evaluation.ddpm import PRECISIONS, Point, point_sampler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pixel", required=True, help="A pixel DDPM folder (e.g. release/ddpm).")
    p.add_argument("--latent", required=True, help="A latent diffusion pipeline folder (train_ldm.py's output).")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddpm")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--precision", nargs="+", choices=sorted(PRECISIONS), default=["bf16"])
    p.add_argument("--rounds", type=int, default=3, help="Timed rounds per model and precision.")
    p.add_argument("--num_images", type=int, default=16)
    p.add_argument("--output", type=Path, default=None, help="Also write the results here as JSON.")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    models = {"pixel": args.pixel, "latent": args.latent}
    results: dict = {"command": "python benchmarks/ldm_sampling_speed.py " + " ".join(sys.argv[1:]),
                     "sampler": args.sampler, "steps": args.steps, "num_images": args.num_images,
                     "rounds": args.rounds, "torch_threads": torch.get_num_threads(), "models": models}
    for precision in args.precision:
        point = Point(args.sampler, args.steps, args.num_images, precision=precision)
        draws = {name: point_sampler(path, point) for name, path in models.items()}
        for draw in draws.values():
            draw(args.num_images, 0)  # warm-up
        times: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in draws}
        for r in range(args.rounds):
            for name, draw in draws.items():
                c0, w0 = time.process_time(), time.perf_counter()
                draw(args.num_images, r)
                times[name]["cpu"].append(time.process_time() - c0)
                times[name]["wall"].append(time.perf_counter() - w0)
        row = {name: {**t, "cpu_median": statistics.median(t["cpu"]), "wall_median": statistics.median(t["wall"])}
               for name, t in times.items()}
        row["pixel_over_latent_cpu"] = row["pixel"]["cpu_median"] / row["latent"]["cpu_median"]
        row["pixel_over_latent_wall"] = row["pixel"]["wall_median"] / row["latent"]["wall_median"]
        results[precision] = row
        print(f"{precision}: pixel {row['pixel']['cpu_median']:.2f} CPU s / {row['pixel']['wall_median']:.2f} wall s, "
              f"latent {row['latent']['cpu_median']:.2f} / {row['latent']['wall_median']:.2f} per "
              f"{args.num_images} digits: pixel / latent = {row['pixel_over_latent_cpu']:.1f}× CPU, "
              f"{row['pixel_over_latent_wall']:.1f}× wall", flush=True)
    results["load_average_end"] = os.getloadavg()
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(parse_args())
