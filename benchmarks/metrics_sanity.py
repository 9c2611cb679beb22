#!/usr/bin/env python
"""Sanity table of the metrics: real digits (the floor) vs noisy and blurred copies, FID and classifier metrics.

    python benchmarks/metrics_sanity.py --n 1000 --n_ref 2000

Checks the FID pipeline against known values (issue 6, 2k/2k: real ≈ 7.2, blur σ=1 ≈ 73, noise σ=0.1 ≈ 138) and
shows how FID and the FD-classifier rank the same corruptions. Costs N·3 + n_ref Inception passes the first time
(~85 ms each on 2 idle cores); the reference and floor statistics are cached.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.evaluation import classifier_metrics, fid, floor_images


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default="study-test", help="Reference set (see hub_models.evaluation).")
    p.add_argument("--n", type=int, default=1000, help="Images per evaluated set.")
    p.add_argument("--n_ref", type=int, default=2000, help="Reference images.")
    p.add_argument("--noise", type=float, default=0.1, help="Std of the additive Gaussian noise.")
    p.add_argument("--blur", type=float, default=1.0, help="Sigma (pixels) of the Gaussian blur (9×9 kernel).")
    return p.parse_args()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = torch.arange(-4, 5).float()
    k = torch.exp(-r**2 / (2 * sigma**2))
    k = (k[:, None] * k[None]) / k.sum() ** 2
    return F.conv2d(x, k[None, None], padding=4)


def main(args: argparse.Namespace) -> None:
    real = floor_images(args.reference, args.n).unsqueeze(1).float() / 255
    noisy = (real + args.noise * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    sets = {"real digits (floor pool)": real, f"noise σ={args.noise:g}": noisy,
            f"blur σ={args.blur:g}": gaussian_blur(real, args.blur)}
    print(f"reference {args.reference}, n_ref={args.n_ref}, N={args.n}\n")
    print("| set | FID | floor | FD-classifier | recognisable | KL to uniform | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, x in sets.items():
        start = time.perf_counter()
        f = fid(x, args.reference, args.n_ref)
        c = classifier_metrics(x, reference=args.reference, n_ref=args.n_ref)
        print(f"| {name} | {f['fid']:.2f} | {f['floor']:.2f} | {c['fd_classifier']:.2f} | "
              f"{c['confident_share']:.1%} | {c['kl_to_uniform']:.4f} | {time.perf_counter() - start:.0f} |",
              flush=True)


if __name__ == "__main__":
    main(parse_args())
