#!/usr/bin/env python
"""Conv vs Dense VAE training speed, side by side in one process: the study's claim "Conv trains faster".

    OMP_NUM_THREADS=1 python benchmarks/vae_arch_speed.py --output runs/bench/vae_arch_speed.json
    python scripts/run_study.py --report_only --speed_benchmark runs/bench/vae_arch_speed.json   # the verdict

Both architectures (z=2, β=1, the study's recipe: batch 64, Adam 1e-3) take the library's own training step
(`hub_models.training.vae.training_step`: uint8 → [0, 1], BCE(sum) + β·KLD, backward, update, through accelerate) on
the same real training digits. Rounds alternate the order (Conv Dense, Dense Conv, ...), each architecture times
`--steps` updates after `--warmup_steps` in every round, and the medians over rounds are compared, so machine load
hits both alike. Per-run wall time of the study's trainings is never used (it varied 3× with load). The JSON is what
`run_study.py --speed_benchmark` reads.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

import torch
from accelerate import Accelerator

from hub_models.data import load_splits
from hub_models.io import write_json_atomic
from hub_models.models.registry import vae_class
from hub_models.training import positive_int
from hub_models.training.vae import training_step

ARCHS = ("conv", "dense")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latent_dim", type=positive_int, default=2)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--batch_size", type=positive_int, default=64, help="The study's batch.")
    p.add_argument("--learning_rate", type=float, default=1e-3, help="The study's Adam learning rate.")
    p.add_argument("--steps", type=positive_int, default=100, help="Timed updates per architecture and round.")
    p.add_argument("--warmup_steps", type=int, default=10, help="Untimed updates before each timed block.")
    p.add_argument("--rounds", type=positive_int, default=4, help="Rounds; the order alternates between them.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="Write the result as JSON here (run_study.py --speed_benchmark).")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    accelerator = Accelerator(cpu=True)
    train = load_splits()[0].images
    need = args.batch_size * (args.warmup_steps + args.steps)
    images = train[torch.arange(need) % len(train)]  # the first real training digits, the same for both
    sides = {}
    for arch in ARCHS:
        model = vae_class(arch)(latent_dim=args.latent_dim)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
        sides[arch] = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(args.seed)
    rates: dict[str, list[float]] = {arch: [] for arch in ARCHS}
    step = 0
    for r in range(args.rounds):
        for arch in ARCHS if r % 2 == 0 else ARCHS[::-1]:
            model, optimizer = sides[arch]
            batches = images.split(args.batch_size)
            for i, batch in enumerate(batches):
                if i == args.warmup_steps:
                    start = time.perf_counter()
                training_step(accelerator, model, optimizer, batch, args.beta, generator, step)
                step += 1
            rates[arch].append(args.steps * args.batch_size / (time.perf_counter() - start))
            print(f"round {r + 1} {arch:5s}: {rates[arch][-1]:,.0f} images/s", flush=True)
    conv, dense = (statistics.median(rates[arch]) for arch in ARCHS)
    result = {"conv_images_per_s": conv, "dense_images_per_s": dense, "ratio_conv_over_dense": conv / dense,
              "side_by_side": True, "rounds": rates, "batch_size": args.batch_size, "steps": args.steps,
              "warmup_steps": args.warmup_steps, "latent_dim": args.latent_dim, "beta": args.beta,
              "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()[0],
              "command": "python benchmarks/vae_arch_speed.py " + shlex.join(sys.argv[1:])}
    print(f"median over {args.rounds} rounds: Conv {conv:,.0f} vs Dense {dense:,.0f} images/s: "
          f"Conv/Dense = {conv / dense:.2f}×")
    if args.output:
        write_json_atomic(Path(args.output), result)
        print(f"written: {args.output}")
    return result


if __name__ == "__main__":
    main(parse_args())
