#!/usr/bin/env python
"""Regenerate `release/` — the models the Space shows by default — from a study folder and a DDPM run.

    python scripts/make_release.py                                 # studies/vae-grid + runs/ddpm-default → release/
    python scripts/make_release.py --study_dir runs/study --ddpm_dir release/ddpm --ldm_dir runs/ldm \
        --latent_prior_dir runs/latent-prior                        # what built the current release/
    python scripts/make_release.py --refresh                       # re-render release/ from itself (cards, schema)
    python scripts/make_release.py --refresh --conditional_ddpm_dir runs/ddpm-conditional   # add one finished run
    python scripts/publish_study.py --study_dir release --namespace <you>   # then push it to the Hub

Each release folder holds exactly what a Hub push publishes (`hub_models.hub.push.stage_run`: model config +
safetensors, metrics.json, evaluation.json, training_config.json, figures, a DDPM's scheduler set to its card's
sampler) plus its model card as README.md. Checkpoints, logs and optimizer state never go in. `--refresh` copies
the weights byte for byte: it only re-renders what is derived from them. A run that has not trained all its planned
epochs is skipped, and a folder's git-ignored `evaluation/` cache (hours of sampling) survives its re-render.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.hub.naming import published_repo_ids
from hub_models.hub.push import stage_run
from hub_models.io import read_json
from hub_models.reference import (
    CLASSIFIER_RUN,
    PUBLISHED,
    RELEASE_DDPMS,
    RELEASE_LATENT_PRIORS,
    RELEASE_LDMS,
    RELEASE_VAES,
)

MAX_RELEASE_MB = 50  # 13 models; each pixel DDPM is 13 MB of fp32 weights
CACHE = "evaluation"  # evaluate_ddpm.py's sample chunks: git-ignored, never published, kept across re-renders


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study_dir", default="studies/vae-grid", help="Folder of VAE runs (run_study.py).")
    parser.add_argument("--ddpm_dir", default="runs/ddpm-default", help="The DDPM run to release.")
    parser.add_argument("--conditional_ddpm_dir", default="runs/ddpm-conditional",
                        help="The class-conditional DDPM run (train_ddpm.py --class_conditional); with --refresh "
                             "it is added when the release does not have it yet.")
    parser.add_argument("--ldm_dir", default="runs/ldm", help="The latent diffusion pipeline (train_ldm.py).")
    parser.add_argument("--latent_prior_dir", default="runs/latent-prior",
                        help="Folder of learned latent priors, one per VAE, named like conv-z4-beta1 "
                             "(train_latent_prior.py).")
    parser.add_argument("--release_dir", default="release", help="Where the release is written.")
    parser.add_argument("--classifier_dir", default=f"release/{CLASSIFIER_RUN}",
                        help="The digit classifier to release (train_classifier.py's output).")
    parser.add_argument("--namespace", default="mnist-genlab", help="Hub namespace the cards' snippets name.")
    parser.add_argument("--source_url", default=None,
                        help="Where the project's source is published (a git URL), for the cards' `pip install` "
                             "line; default: the installed package's homepage, else no install line.")
    parser.add_argument("--refresh", action="store_true",
                        help="Re-render every folder of --release_dir from itself (cards, evaluation schema, DDPM "
                             "scheduler); the weights are not touched. A DDPM the release lacks comes from its "
                             "run folder.")
    return parser.parse_args(argv)


def release_run(run_dir: Path, dest: Path, repo_id: str, source_url: str | None = None) -> None:
    """Stage what a push of `run_dir` publishes (with its model card, `source_url` its install line) and swap it
    in as `dest` (`run_dir` may be `dest` itself: it is read completely before `dest` is replaced)."""
    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stage_run(run_dir, repo_id, tmp, source_url)
    if (dest / CACHE).is_dir() and not (tmp / CACHE).exists():
        (dest / CACHE).rename(tmp / CACHE)
    old = dest.with_name(f".old-{dest.name}")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def unfinished(run_dir: Path) -> str | None:
    """Why `run_dir` is not a finished run (None: it is): no metrics, or fewer epochs than it planned."""
    if not (run_dir / "metrics.json").exists():
        return f"no finished run in {run_dir}"
    metrics = read_json(run_dir / "metrics.json")
    done, planned = metrics.get("epochs"), metrics.get("epochs_planned")
    if isinstance(done, int) and isinstance(planned, int) and done < planned:
        return f"{run_dir} has trained {done} of its {planned} epochs"
    return None


def main(args: argparse.Namespace) -> None:
    release = Path(args.release_dir)
    release.mkdir(parents=True, exist_ok=True)
    ddpm_dirs = {"ddpm": Path(args.ddpm_dir), "ddpm-conditional": Path(args.conditional_ddpm_dir)}
    if args.refresh:
        sources = {name: release / name for name in PUBLISHED}
        sources.update({name: ddpm_dirs[name] for name in RELEASE_DDPMS if not (release / name).exists()})
    else:
        sources = {name: Path(args.study_dir) / name for name in RELEASE_VAES}
        sources.update({name: ddpm_dirs[name] for name in RELEASE_DDPMS})
        sources.update({name: Path(args.ldm_dir) for name in RELEASE_LDMS})
        sources.update({name: Path(args.latent_prior_dir) / name.removeprefix("latent-prior-")
                        for name in RELEASE_LATENT_PRIORS})
        sources[CLASSIFIER_RUN] = Path(args.classifier_dir)
    repo_ids = published_repo_ids(args.namespace)
    for name, run_dir in sources.items():
        if why := unfinished(run_dir):
            print(f"[release] {name}: {why}, skipped")
            continue
        release_run(run_dir, release / name, repo_ids[name], args.source_url)
        print(f"[release] {name}: from {run_dir} as {repo_ids[name]}")
    total = sum(p.stat().st_size for name in PUBLISHED for p in (release / name).rglob("*")
                if p.is_file() and CACHE not in p.relative_to(release / name).parts[:1]) / 2**20
    print(f"[release] {release}: {total:.1f} MB")
    if total > MAX_RELEASE_MB:
        raise SystemExit(f"error: the release is {total:.1f} MB, over the {MAX_RELEASE_MB} MB budget")


if __name__ == "__main__":
    main(parse_args())
