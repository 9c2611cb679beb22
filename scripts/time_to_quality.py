#!/usr/bin/env python
"""Time to quality (issue 39, goal 2): held-out FID against training CPU-hours for the full runs, and the CPU-hours
each recipe needs to reach FID ≤ 10, as docs/lab/PROTOCOL.md fixes them.

    bash scripts/recipe_full_runs.sh eval              # score every snapshot that has no FID yet
    python scripts/time_to_quality.py                  # runs/time-to-quality/time_to_quality.{json,md,png}

Reads only what the evaluation wrote (`runs/full-<name>/snapshots/cpu_hours_<k>/evaluation.json`); a run still
training is reported as far as it is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python scripts/time_to_quality.py` from a checkout

from hub_models.study.time_to_quality import RECIPE_LABELS, write_time_to_quality


def named_folder(value: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER, got {value!r}")
    return name, Path(folder)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=named_folder, action="append", dest="runs", metavar="NAME=FOLDER",
                   help="A run to read (repeatable; the first is the new recipe). Default: new, study and "
                        "diffusers at runs/full-<name>.")
    p.add_argument("--output_dir", type=Path, default=Path("runs/time-to-quality"),
                   help="Where time_to_quality.json, .md and .png go.")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    missing = [str(folder) for _, folder in args.runs or [] if not folder.is_dir()]
    if missing:  # a default run not started yet is reported as such; a folder named here must exist
        sys.exit(f"error: no run folder {', '.join(missing)}")
    runs = dict(args.runs or [(name, Path(f"runs/full-{name}")) for name in RECIPE_LABELS])
    result = write_time_to_quality(runs, args.output_dir)
    print((args.output_dir / "time_to_quality.md").read_text())
    print(json.dumps({name: r["hours"] for name, r in result["runs"].items()}))


if __name__ == "__main__":
    main(parse_args())
