#!/usr/bin/env python
"""glibc's default malloc against `keep_freed_memory()` on the two long CPU jobs of an evaluation, side by side.

    OMP_NUM_THREADS=1 python benchmarks/cpu_allocator.py --model release/ddpm --rounds 3

Jobs: one UNet call on a batch of `--unet_batch` noised digits (a chunk's sampling step) and Inception features of
`--inception_images` real digits (scoring). Each measurement runs in a fresh process (the allocator setting is
process-wide and sticks), the two settings alternating within each round; the medians over rounds of wall seconds,
and of the kernel's share of the CPU time (the page faults the setting removes), are printed with their ratio. The
outputs of both settings are compared bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

import torch

from hub_models.io import keep_freed_memory
from hub_models.training import positive_int

SETTINGS = ("glibc default", "keep_freed_memory()")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="A DDPM folder (its unet/); default: a random --model_config UNet.")
    p.add_argument("--model_config", default="default", help="UNet config when no --model.")
    p.add_argument("--unet_batch", type=positive_int, default=250, help="Digits per UNet call (evaluate_ddpm's chunk).")
    p.add_argument("--unet_calls", type=positive_int, default=3)
    p.add_argument("--inception_images", type=positive_int, default=100, help="Digits of the Inception job.")
    p.add_argument("--rounds", type=positive_int, default=3)
    p.add_argument("--job", choices=["unet", "inception"], help=argparse.SUPPRESS)  # one measurement (a child)
    p.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _timed(work: Callable[[], torch.Tensor]) -> dict:
    work()  # warm-up: weights, kernels, first allocations
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = work()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"wall": wall, "kernel_share": system / max(user + system, 1e-9),
            "digest": hashlib.sha1(out.contiguous().numpy().tobytes()).hexdigest()}


def measure(args: argparse.Namespace) -> dict:
    """One job in this process (the child side)."""
    if args.keep and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() does not apply here (libc is not glibc)")
    torch.manual_seed(0)
    if args.job == "unet":
        from hub_models.diffusion.pipeline import load_ddpm
        from hub_models.models.unet import make_unet

        unet = load_ddpm(args.model)[0] if args.model else make_unet(args.model_config)
        x = torch.randn(args.unet_batch, 1, 28, 28)

        def work() -> torch.Tensor:
            with torch.inference_mode():
                return torch.stack([unet(x, 2000 + k).sample for k in range(args.unet_calls)])
    else:
        from hub_models.evaluation.inception import inception_features
        from hub_models.evaluation.metrics import floor_images

        digits = floor_images("study-test", args.inception_images)

        def work() -> torch.Tensor:
            return torch.from_numpy(inception_features(digits))
    return _timed(work)


def main(args: argparse.Namespace) -> int:
    if args.job:
        print(json.dumps(measure(args)))
        return 0
    jobs = ["unet", "inception"]
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.rounds):
        for job in jobs:
            for setting in SETTINGS if r % 2 == 0 else SETTINGS[::-1]:
                cmd = [sys.executable, __file__, "--job", job, "--model_config", args.model_config,
                       "--unet_batch", str(args.unet_batch), "--unet_calls", str(args.unet_calls),
                       "--inception_images", str(args.inception_images)]
                cmd += ["--model", args.model] if args.model else []
                cmd += ["--keep"] if setting == SETTINGS[1] else []
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
                runs.setdefault((job, setting), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}; median of {args.rounds} "
          f"rounds, settings alternating, one process per measurement; load average at the end "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| job | " + " | ".join(f"{s}: s (kernel share)" for s in SETTINGS) + " | speed-up | same output |")
    print("|---|---:|---:|---:|:---:|")
    for job in jobs:
        default, kept = (runs[job, s] for s in SETTINGS)
        walls = [statistics.median(m["wall"] for m in ms) for ms in (default, kept)]
        shares = [statistics.median(m["kernel_share"] for m in ms) for ms in (default, kept)]
        same = len({m["digest"] for m in default + kept}) == 1
        name = (f"UNet call, {args.unet_batch} digits × {args.unet_calls}" if job == "unet"
                else f"Inception, {args.inception_images} digits")
        print(f"| {name} | {walls[0]:.2f} ({shares[0]:.0%}) | {walls[1]:.2f} ({shares[1]:.0%}) | "
              f"{walls[0] / walls[1]:.2f}× | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
