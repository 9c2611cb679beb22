#!/usr/bin/env python
"""The study's hybrid, measured: latent diffusion against the pixel DDPM, and the released VAEs as codecs.

    python benchmarks/ldm_sampling_speed.py --pixel release/ddpm --latent release/ldm --output runs/hybrid/speed.json
    python scripts/hybrid_study.py --output_dir runs/hybrid            # FIDs (N=10,000), codec table, hybrid.md
    python scripts/run_study.py --update_ddpm_and_anomaly --ddpm_dir release/ddpm --hybrid_dir runs/hybrid

Follows docs/lab/PROTOCOL.md, "Latent diffusion against the pixel DDPM": both models sample the same way (ancestral
DDPM, 25 steps, bf16, EMA, seed 1) and are scored at N = 10,000 against the official test digits. The generated
digits are cached in chunks, so an interrupted run resumes. The report includes `<output_dir>/hybrid.md`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python scripts/hybrid_study.py` from a checkout

from hub_models.reference import RELEASE_VAES
from hub_models.study.hybrid import run_hybrid_study


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", type=Path, default=Path("runs/hybrid"), help="Where hybrid.json/.md go.")
    p.add_argument("--pixel", default="release/ddpm", help="The pixel DDPM folder.")
    p.add_argument("--latent", default="release/ldm", help="The latent diffusion pipeline folder.")
    p.add_argument("--release_dir", type=Path, default=Path("release"), help="Where the released VAEs are.")
    p.add_argument("--speed_json", type=Path, default=None,
                   help="benchmarks/ldm_sampling_speed.py's --output (default: <output_dir>/speed.json).")
    p.add_argument("--num_codec_digits", type=int, default=10_000, help="Official test digits of the codec table.")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    vaes = {name: args.release_dir / name for name in RELEASE_VAES if (args.release_dir / name).is_dir()}
    path = run_hybrid_study(args.output_dir, pixel_dir=args.pixel, latent_dir=args.latent, vaes=vaes,
                            speed_json=args.speed_json or args.output_dir / "speed.json",
                            num_codec_digits=args.num_codec_digits,
                            command="python scripts/hybrid_study.py " + " ".join(sys.argv[1:]))
    print(f"[hybrid] {path}")


if __name__ == "__main__":
    main(parse_args())
