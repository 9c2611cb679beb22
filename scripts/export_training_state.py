#!/usr/bin/env python
"""Carry an unfinished run across machines: its newest checkpoint as a folder of safetensors + JSON (no pickles).

    python scripts/export_training_state.py --output_dir runs/ddpm-full --dest release/ddpm-training-state
    # on another machine: continue exactly where it stopped
    accelerate launch training/train_ddpm.py --mixed_precision bf16 --output_dir runs/ddpm-full \\
        --resume_from_checkpoint release/ddpm-training-state

The folder is replaced in place; `--resume_from_checkpoint <folder>` recreates the accelerate checkpoint in
`<output_dir>/checkpoints/` and resumes from it (hub_models/training/portable_checkpoint.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python scripts/...` from a checkout

from hub_models.training.accelerate_utils import checkpoint_step, list_checkpoints
from hub_models.training.portable_checkpoint import export_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="The run folder whose newest checkpoint is exported.")
    parser.add_argument("--checkpoint", default=None, help="A specific checkpoint folder instead of the newest.")
    parser.add_argument("--dest", required=True, help="The portable folder to write (replaced in place).")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> Path:
    checkpoints = [Path(args.checkpoint)] if args.checkpoint else list_checkpoints(args.output_dir)
    if not checkpoints or not checkpoints[-1].is_dir():
        raise SystemExit(f"error: no checkpoint in {args.output_dir}/checkpoints (nothing to export)")
    dest = export_checkpoint(checkpoints[-1], args.dest, checkpoint_step(checkpoints[-1]))
    size = sum(p.stat().st_size for p in dest.iterdir()) / 2**20
    print(f"[export] {checkpoints[-1]} → {dest} ({size:.1f} MB, no pickles)")
    return dest


if __name__ == "__main__":
    main(parse_args())
