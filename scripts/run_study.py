#!/usr/bin/env python
"""Reproduce the study: the 12-run β-VAE grid (arch × β × latent dim) plus β-annealing runs, then the report.

    python scripts/run_study.py                        # every run missing under studies/vae-grid, then docs/REPORT.md
    python scripts/run_study.py --only vae-conv-z2-beta1 --epochs 1

Runs already complete (their metrics.json exists) are skipped, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.hub.naming import vae_run_name
from hub_models.reference import RELEASE_VAES, STUDY_ARCHS, STUDY_BETAS, STUDY_LATENT_DIMS

TRAIN_VAE = Path(__file__).resolve().parents[1] / "training" / "train_vae.py"
# The release models first, so a short session still produces what the Space shows.
PRIORITY = list(RELEASE_VAES)


def study_runs(include_warmup: bool = True) -> list[dict]:
    runs = [dict(arch=a, latent_dim=z, beta=b, beta_schedule="constant")
            for a, b, z in itertools.product(STUDY_ARCHS, STUDY_BETAS, STUDY_LATENT_DIMS)]
    if include_warmup:  # β-annealing (the study's future work) on the two β where it should matter
        runs += [dict(arch="conv", latent_dim=2, beta=b, beta_schedule="linear-warmup") for b in (1.0, 20.0)]
    for run in runs:
        run["name"] = vae_run_name(run["arch"], run["latent_dim"], run["beta"], run["beta_schedule"])
    return sorted(runs, key=lambda r: PRIORITY.index(r["name"]) if r["name"] in PRIORITY else len(PRIORITY))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study_dir", default="studies/vae-grid", help="One run folder per configuration.")
    parser.add_argument("--only", nargs="*", default=None, help="Run only these run names.")
    parser.add_argument("--no_warmup", action="store_true", help="Skip the β-annealing runs.")
    parser.add_argument("--epochs", type=int, default=20, help="Epochs per run (the study: 20).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every run.")
    parser.add_argument("--report_only", action="store_true", help="Train nothing; (re)write the report.")
    parser.add_argument("--no_report", action="store_true", help="Train only; write no report.")
    parser.add_argument("--update_ddpm_and_anomaly", action="store_true",
                        help="Train nothing; in the existing report re-render the DDPM claims and the DDPM and "
                             "anomaly sections (for a machine that holds those results but not the VAE runs). With "
                             "--rescore_dir also every claim and the rows of the runs found there.")
    parser.add_argument("--rescore_dir", default=None,
                        help="With --update_ddpm_and_anomaly: a folder of VAE runs to (re-)evaluate and re-render, "
                             "e.g. release/ (it holds the five runs every VAE claim needs).")
    parser.add_argument("--speed_benchmark", default=None,
                        help="JSON of a side-by-side Conv vs Dense benchmark ({conv_images_per_s, "
                             "dense_images_per_s, side_by_side, command}); without it the speed claim is 'not "
                             "measured'.")
    parser.add_argument("--no_evaluate", action="store_true",
                        help="Report from cached evaluations only (no FID/NLL computation).")
    parser.add_argument("--ddpm_dir", default="runs/ddpm-default", help="The DDPM run shown in the report.")
    parser.add_argument("--anomaly_dir", default="runs/anomaly",
                        help="scripts/anomaly_study.py's output folder, shown in the report if present.")
    parser.add_argument("--hybrid_dir", default="runs/hybrid",
                        help="scripts/hybrid_study.py's output folder, shown in the report if present.")
    parser.add_argument("--docs_dir", default="docs", help="Where REPORT.md and figures/ are written.")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="Further flags passed to train_vae.py (e.g. --limit_train_samples 512).")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    study_dir = Path(args.study_dir)
    if args.update_ddpm_and_anomaly:
        from hub_models.study.report import update_report

        try:
            report = update_report(args.docs_dir, ddpm_dir=args.ddpm_dir, anomaly_dir=args.anomaly_dir,
                                   hybrid_dir=args.hybrid_dir, study_dir=args.rescore_dir,
                                   evaluate=not args.no_evaluate, speed=read_speed(args.speed_benchmark))
        except FileNotFoundError as err:
            raise SystemExit(f"error: {err}") from None
        print(f"[study] DDPM and anomaly parts of {report} re-rendered")
        return
    if not args.report_only:
        train_missing(args, study_dir)
    if not args.no_report:
        from hub_models.study.report import write_report

        report = write_report(study_dir, args.docs_dir, ddpm_dir=args.ddpm_dir, anomaly_dir=args.anomaly_dir,
                              hybrid_dir=args.hybrid_dir, evaluate=not args.no_evaluate,
                              speed=read_speed(args.speed_benchmark))
        print(f"[study] report written to {report}")


def read_speed(path: str | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path else None


def train_missing(args: argparse.Namespace, study_dir: Path) -> None:
    for run in study_runs(include_warmup=not args.no_warmup):
        if args.only is not None and run["name"] not in args.only:
            continue
        out = study_dir / run["name"]
        if (out / "metrics.json").exists():
            print(f"[study] {run['name']}: complete, skipped")
            continue
        cmd = [sys.executable, str(TRAIN_VAE), "--arch", run["arch"], "--latent_dim", str(run["latent_dim"]),
               "--beta", str(run["beta"]), "--kl_schedule", run["beta_schedule"], "--epochs", str(args.epochs),
               "--seed", str(args.seed), "--output_dir", str(out), "--resume_from_checkpoint", "latest",
               *args.extra]
        print(f"[study] {run['name']}: training", flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"[study] {run['name']}: done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(parse_args())
