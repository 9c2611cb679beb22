#!/usr/bin/env python
"""Why the ODE samplers stall on a trained DDPM: one FID per candidate cause, and the ε-error by timestep.

    nice -n 10 python scripts/ddpm_sampler_study.py --model release/ddpm --output_dir runs/sampler-study

Every point is DPM-Solver++ at 25 steps with the library's settings and the UNet in bf16 (the sweep's protocol)
with ONE thing changed; ancestral DDPM and UniPC under the same protocol are the references. All points draw the
same initial noise (seed), so their differences are paired. Points run in the order of `CAUSES` and stop before
the CPU budget would be exceeded; each finished point is cached (`<output_dir>/evaluation.json`), so a rerun
resumes. The protocol and the results: docs/lab/DDPM.md#why-the-ode-samplers-stall.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from hub_models.data import load_splits
from hub_models.diffusion import load_ddpm, make_scheduler
from hub_models.evaluation import REFERENCE_SETS
from hub_models.evaluation.ddpm import Point, epsilon_error_by_timestep, evaluate_point
from hub_models.io import write_json_atomic
from hub_models.training import positive_int

# (name, what changes from the baseline, how the point differs: sampler, precision, scheduler overrides)
CAUSES: list[tuple[str, str, dict]] = [
    ("baseline", "DPM-Solver++ (2M), library settings, UNet bf16", {}),
    ("ancestral", "ancestral DDPM instead (the reference the ODE solvers should approach)", {"sampler": "ddpm"}),
    ("sde-dpmsolver++", "the same solver made stochastic (SDE-DPM-Solver++): ODE vs SDE with one code path",
     {"overrides": (("algorithm_type", "sde-dpmsolver++"),)}),
    ("no-thresholding", "x0 thresholding (clip to [-1, 1]) off", {"overrides": (("thresholding", False),)}),
    ("fp32", "UNet in fp32 instead of bf16", {"precision": "fp32"}),
    ("euler-at-final", "first-order (Euler) last step", {"overrides": (("euler_at_final", True),)}),
    # The 9-epoch study ran the opposite row (clip on by default then, off: −6.6 FID), which made the library drop it.
    ("lambda-clip", "lambda_min_clipped = −5.1, diffusers' suggestion for the cosine schedule (starts at t ≈ 3975)",
     {"overrides": (("lambda_min_clipped", -5.1),)}),
    ("raw", "raw (non-EMA) weights instead of EMA", {"ema": False}),
    ("linspace", "timestep_spacing linspace instead of trailing", {"overrides": (("timestep_spacing", "linspace"),)}),
    ("final-sigma-min", "final_sigmas_type sigma_min (stop at σ_min, not 0)",
     {"overrides": (("final_sigmas_type", "sigma_min"),)}),
    ("unipc", "UniPC (2nd order, library settings) instead", {"sampler": "unipc"}),
    ("karras", "Karras σ spacing", {"overrides": (("use_karras_sigmas", True),)}),
    # DDIM worsened with more steps on the full-recipe model (docs/DDPM.md): diffusers' step clips x0 but keeps the
    # raw ε. These two rows made the library's DDIM re-derive ε from the clipped x0 (2026-12-02).
    ("ddim", "DDIM with diffusers' default step (raw ε, `use_clipped_model_output=False`) instead",
     {"sampler": "ddim", "overrides": (("use_clipped_model_output", False),)}),
    ("ddim-clipped-eps", "DDIM with ε re-derived from the clipped x0 (`use_clipped_model_output=True`)",
     {"sampler": "ddim", "overrides": (("use_clipped_model_output", True),)}),
]
CAUSE_NAMES = [name for name, _, _ in CAUSES]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="release/ddpm", help="A DDPM pipeline folder (EMA weights in unet/).")
    p.add_argument("--output_dir", default="runs/sampler-study",
                   help="Where the model is copied and every cache and result goes (keeps the model folder clean).")
    p.add_argument("--causes", nargs="+", choices=CAUSE_NAMES, default=CAUSE_NAMES, help="Points to run, in order.")
    p.add_argument("--num_samples", type=positive_int, default=1000, help="Generated digits per FID (N).")
    p.add_argument("--steps", type=positive_int, default=25, help="Denoising steps of every point.")
    p.add_argument("--reference", choices=sorted(REFERENCE_SETS), default="study-test",
                   help="Real reference set (selection happens on the study's held-out split).")
    p.add_argument("--n_ref", type=positive_int, default=1000, help="Reference digits (first of its seeded order).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the initial noise (the same for every point).")
    p.add_argument("--batch_size", type=positive_int, default=250, help="Digits generated per chunk.")
    p.add_argument("--eps_digits", type=int, default=512, help="Held-out digits for the ε-error curve (0: skip).")
    p.add_argument("--eps_timesteps", type=positive_int, default=20, help="Timesteps on the ε-error curve.")
    p.add_argument("--figure", default="docs/figures/ddpm/epsilon_error_by_timestep.png",
                   help="Where the ε-error plot goes.")
    p.add_argument("--cpu_budget_minutes", type=float, default=60.0,
                   help="Stop before a point would take the CPU time of this process past this.")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (1: on a shared, loaded CPU two threads spin-wait for each other).")
    return p.parse_args(argv)


def copy_model(src: Path, dst: Path) -> None:
    for part in ("model_index.json", "unet", "unet_non_ema", "scheduler"):
        if (src / part).exists() and not (dst / part).exists():
            dst.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (src / part).is_dir() else shutil.copy2)(src / part, dst / part)


def point_for(spec: dict, args: argparse.Namespace) -> Point:
    return Point(spec.get("sampler", "dpmsolver++"), args.steps, args.num_samples, spec.get("ema", True), args.seed,
                 spec.get("precision", "bf16"), spec.get("overrides", ()))


def epsilon_curves(args: argparse.Namespace, out: Path) -> dict:
    unet, scheduler = load_ddpm(out)
    T = scheduler.config.num_train_timesteps
    step = T // args.eps_timesteps
    timesteps = list(range(step // 2, T, step))
    _, held_out = load_splits("study")
    images = held_out.images[: args.eps_digits]
    curves = {}
    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        t0 = time.process_time()
        curves[precision] = epsilon_error_by_timestep(unet, scheduler.config, images, timesteps, seed=args.seed,
                                                      autocast_dtype=dtype)
        print(f"[eps] {precision}: {time.process_time() - t0:.0f} s CPU", flush=True)
    alphas = make_scheduler("ddpm", scheduler.config).alphas_cumprod
    return {"digits": len(images), "split": "study held-out (first digits)", "seed": args.seed,
            "timesteps": timesteps, "alphas_cumprod": [alphas[t].item() for t in timesteps], "mse": curves}


def plot_epsilon(eps: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts, abar = eps["timesteps"], torch.tensor(eps["alphas_cumprod"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for precision, curve in eps["mse"].items():
        mse = torch.tensor([curve[str(t)] if str(t) in curve else curve[t] for t in ts])
        ax1.plot(ts, mse, marker="o", ms=3, label=f"UNet {precision}")
        ax2.plot(ts, mse * (1 - abar) / abar, marker="o", ms=3, label=f"UNet {precision}")
    ax1.set(xlabel="timestep t (0 = clean, 3999 = pure noise)", ylabel="E‖ε̂ − ε‖² per pixel",
            title=f"ε-error on {eps['digits']} held-out digits")
    ax2.set(xlabel="timestep t", ylabel="implied x0 error (1−ᾱ)/ᾱ · ε-MSE", yscale="log",
            title="what the data-prediction solvers see")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    out = Path(args.output_dir)
    copy_model(Path(args.model), out)
    summary_path = out / "sampler_study.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["protocol"] = {"model": args.model, "num_samples": args.num_samples, "reference": args.reference,
                           "n_ref": args.n_ref, "seed": args.seed, "steps": args.steps, "ema": True,
                           "fid": "standard Inception-v3 pool3, TF1 bilinear resize"}
    budget = args.cpu_budget_minutes * 60
    if args.eps_digits and "epsilon_error" not in summary:
        summary["epsilon_error"] = epsilon_curves(args, out)
        write_json_atomic(summary_path, summary)
    if "epsilon_error" in summary:
        plot_epsilon(summary["epsilon_error"], Path(args.figure))
    rows = summary.setdefault("rows", {})
    specs = {name: (what, spec) for name, what, spec in CAUSES}
    last_cost = 0.0
    for name in args.causes:
        what, spec = specs[name]
        point = point_for(spec, args)
        if name in rows and rows[name]["key"] == point.key:
            continue
        if time.process_time() + last_cost > budget:
            print(f"[study] CPU budget ({args.cpu_budget_minutes:.0f} min) reached: {name} and later skipped")
            break
        t0 = time.process_time()
        result = evaluate_point(out, point, reference=args.reference, n_ref=args.n_ref, timing=False,
                                batch_size=args.batch_size)
        last_cost = time.process_time() - t0
        rows[name] = {"what": what, "key": point.key, "fid": result["fid"]["fid"], "floor": result["fid"]["floor"],
                      "n_ref": result["fid"]["n_ref"], "recognisable": result["classifier"]["confident_share"],
                      "cpu_seconds": round(last_cost), "load_average": os.getloadavg()[0]}
        write_json_atomic(summary_path, summary)
        print(f"[study] {name}: FID {rows[name]['fid']:.2f} ({last_cost / 60:.1f} CPU min)", flush=True)
    base = rows.get("baseline", {}).get("fid")
    for name, row in rows.items():
        delta = f"{row['fid'] - base:+.2f}" if base is not None else ""
        print(f"{name:16s} FID {row['fid']:6.2f} {delta:>7s}  {row['recognisable']:.1%}  {row['what']}")
    print(f"total CPU of this process: {time.process_time() / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
