#!/usr/bin/env python
"""Regenerate `release/` — the models the Space shows by default — from a study folder and a DDPM run.

    python training/make_release.py                                 # studies/vae-grid + runs/ddpm-default → release/
    python training/publish_study.py --study_dir release --namespace <you>   # then push it to the Hub

Each release folder holds exactly what a Hub push publishes (model config + safetensors, metrics.json,
training_config.json, figures) plus its model card as README.md. Checkpoints, logs and optimizer state never go in.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.hub import published_files
from hub_models.hub.cards import render_model_card
from hub_models.hub.naming import hub_repo_name
from hub_models.reference import RELEASE_VAES

MAX_RELEASE_MB = 30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study_dir", default="studies/vae-grid", help="Folder of VAE runs (run_study.py).")
    parser.add_argument("--ddpm_dir", default="runs/ddpm-default", help="The DDPM run to release.")
    parser.add_argument("--release_dir", default="release", help="Where the release is written.")
    parser.add_argument("--namespace", default="mnist-genlab", help="Hub namespace the cards' snippets name.")
    return parser.parse_args(argv)


def release_run(run_dir: Path, dest: Path, repo_id: str) -> None:
    """Copy the publishable files of `run_dir` into `dest` (replacing it) and write its model card."""
    files = published_files(run_dir)
    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in files:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / rel, tmp / rel)
    (tmp / "README.md").write_text(str(render_model_card(run_dir, repo_id)))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def main(args: argparse.Namespace) -> None:
    release = Path(args.release_dir)
    release.mkdir(parents=True, exist_ok=True)
    sources = {name: Path(args.study_dir) / name for name in RELEASE_VAES}
    sources["ddpm"] = Path(args.ddpm_dir)
    for name, run_dir in sources.items():
        if not (run_dir / "metrics.json").exists():
            print(f"[release] {name}: no finished run in {run_dir}, skipped")
            continue
        release_run(run_dir, release / name, f"{args.namespace}/{hub_repo_name(name)}")
        print(f"[release] {name}: from {run_dir}")
    total = sum(p.stat().st_size for p in release.rglob("*") if p.is_file()) / 2**20
    print(f"[release] {release}: {total:.1f} MB")
    if total > MAX_RELEASE_MB:
        raise SystemExit(f"error: the release is {total:.1f} MB, over the {MAX_RELEASE_MB} MB budget")


if __name__ == "__main__":
    main(parse_args())
