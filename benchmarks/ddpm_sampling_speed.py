#!/usr/bin/env python
"""Wall time to generate 16 digits per sampler and step count (hub_models.diffusion.sampling.sample_images).

    python benchmarks/ddpm_sampling_speed.py                              # 10/25/50 steps, random default UNet
    python benchmarks/ddpm_sampling_speed.py --model runs/ddpm-default --all   # 10/25/50/250/1000 steps
    python benchmarks/ddpm_sampling_speed.py --steps 25 --samplers ddim dpmsolver++
    python benchmarks/ddpm_sampling_speed.py --precision fp32 bf16     # + the bf16/fp32 speed-up, side by side
    python benchmarks/ddpm_sampling_speed.py --frontier --model release/ddpm [--student runs/ddpm-distilled]

The time depends on the UNet's size, not on its weights, so a randomly initialised UNet of the same config
gives the same figures as a trained one. Each cell is the best of --repeats runs (after one warm-up call).

--frontier prints one row per candidate path (sampler × steps × precision, and each distilled student at its own
step count): the wall time for 16 digits with the Space's thread setting (GENLAB_TORCH_THREADS, default 1, as
spaces_app/app.py sets it), next to the FID cached in the model's evaluation.json (never computed here: a path
without a cached point prints "—"). A path meets the goal when it takes ≤ --budget seconds and its FID is within
--tolerance of the best FID cached for the model at the same N and reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub_models.diffusion.distillation import STUDENT_SAMPLER, student_steps
from hub_models.diffusion.pipeline import load_ddpm, make_train_scheduler
from hub_models.diffusion.sampling import SAMPLERS, sample_images
from hub_models.evaluation.ddpm import PRECISIONS, current_points
from hub_models.models.unet import UNET_CONFIGS, count_parameters, make_unet

ALL_STEPS = (10, 25, 50, 250, 1000)
SPACE_THREADS_ENV = "GENLAB_TORCH_THREADS"  # what spaces_app/app.py reads (default 1 thread per request)


def time_call(
    unet: torch.nn.Module, config: Any, sampler: str, steps: int, num_images: int, precision: str, device: str
) -> float:
    """Seconds for one `sample_images` call."""
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    sample_images(unet, config, sampler, steps, num_images, generator=generator, autocast_dtype=PRECISIONS[precision])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def speed_table(args: argparse.Namespace) -> None:
    steps = list(ALL_STEPS) if args.all else args.steps
    if args.model:
        unet, scheduler = load_ddpm(args.model, device=args.device)
        config = scheduler.config
    else:
        torch.manual_seed(0)
        unet, config = make_unet(args.model_config).to(args.device).eval(), make_train_scheduler().config
    print(
        f"{args.num_images} images, UNet {count_parameters(unet):,} parameters on {args.device} "
        f"({torch.get_num_threads()} threads); seconds per call",
        flush=True,
    )
    for precision in args.precision:  # warm-up
        sample_images(unet, config, "ddim", 2, args.num_images, autocast_dtype=PRECISIONS[precision])
    columns = [f"{n} steps{'' if len(args.precision) == 1 else ' ' + p}" for n in steps for p in args.precision]
    if len(args.precision) == 2:
        columns += [f"{n} steps: bf16 speed-up" for n in steps]
    header = "| sampler | " + " | ".join(columns) + " |"
    rows = [header, "|---|" + "---:|" * len(columns)]
    print(header, flush=True)
    for sampler in args.samplers:
        cells, speedups = [], []
        for n in steps:
            best = dict.fromkeys(args.precision, float("inf"))
            for _ in range(args.repeats):
                for precision in args.precision:  # alternated, so machine noise hits both alike
                    seconds = time_call(unet, config, sampler, n, args.num_images, precision, args.device)
                    best[precision] = min(best[precision], seconds)
            cells += [f"{best[p]:.2f}" for p in args.precision]
            print(f"  {sampler} {n} steps: " + ", ".join(f"{p} {best[p]:.2f} s" for p in args.precision), flush=True)
            if len(args.precision) == 2:
                speedups.append(f"{best['fp32'] / best['bf16']:.2f}×")
        rows.append(f"| {sampler} | " + " | ".join(cells + speedups) + " |")
    print("\n".join(rows))


# ----------------------------------------------------------------------------------------------------------------
# --frontier
# ----------------------------------------------------------------------------------------------------------------
def cached_fids(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The model's current EMA points of plain samplers (no setting overridden), as cached in evaluation.json."""
    if not (Path(run_dir) / "evaluation.json").is_file():
        return []
    return [p for p in current_points(run_dir) if p["ema"] and not p.get("overrides") and p.get("fid")]


def fid_setting(points: list[dict[str, Any]], fid_n: int | None, reference: str | None) -> tuple[int | None, str]:
    """(N, reference) the FIDs are compared at: the given ones, else the most common among the points."""
    if fid_n is None:
        sizes = Counter(p["fid"]["n_gen"] for p in points)
        fid_n = sizes.most_common(1)[0][0] if sizes else None
    if reference is None:
        refs = Counter(p["reference"] for p in points if p["fid"]["n_gen"] == fid_n)
        reference = refs.most_common(1)[0][0] if refs else "mnist-test"
    return fid_n, reference


def fid_lookup(points: list[dict[str, Any]], fid_n: int | None, reference: str) -> dict[tuple[str, int, str], float]:
    """{(sampler, steps, precision): FID} of the points at N = fid_n against `reference`."""
    return {
        (p["sampler"], p["steps"], p.get("precision", "fp32")): p["fid"]["fid"]
        for p in points
        if p["fid"]["n_gen"] == fid_n and p["reference"] == reference
    }


def frontier(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every candidate path and print the table; returns its rows."""
    if not args.model:
        raise SystemExit("error: --frontier needs --model (a DDPM run folder with its evaluation.json)")
    threads = int(os.environ.get(SPACE_THREADS_ENV, "1"))
    torch.set_num_threads(max(1, threads))
    precisions = args.precision if args.precision_given else ["fp32", "bf16"]

    teacher_points = cached_fids(args.model)
    fid_n, reference = fid_setting(teacher_points, args.fid_n, args.reference)
    fids = fid_lookup(teacher_points, fid_n, reference)
    best = min(fids.values()) if fids else None
    steps = args.steps if args.steps_given else sorted({s for _, s, _ in fids if s <= args.max_steps} or {10, 25})

    # (label, folder, sampler, steps, fid table)
    candidates = [("model", args.model, s, n, fids) for s in args.samplers for n in steps]
    for folder in args.student or []:
        n = student_steps(folder)
        if n is None:
            raise SystemExit(
                f"error: {folder} is not a distilled student (no distillation.student_steps in its metrics.json)"
            )
        student_points = cached_fids(folder)
        candidates.append(
            (f"student {Path(folder).name}", folder, STUDENT_SAMPLER, n, fid_lookup(student_points, fid_n, reference))
        )

    loaded: dict[str, tuple[torch.nn.Module, Any]] = {}
    for _, folder, *_ in candidates:
        if folder not in loaded:
            unet, scheduler = load_ddpm(folder, device=args.device)
            loaded[folder] = (unet, scheduler.config)
            for precision in precisions:  # warm-up
                time_call(unet, scheduler.config, "ddim", 1, args.num_images, precision, args.device)

    unet0 = loaded[args.model][0]
    n_text = f"N={fid_n:,}, {reference}" if fid_n else "no cached FID"
    print(
        f"{args.num_images} digits, UNet {count_parameters(unet0):,} parameters on {args.device}, "
        f"{torch.get_num_threads()} thread(s) ({SPACE_THREADS_ENV}={threads}, as the Space); best of "
        f"{args.repeats}; FID from the cached evaluation.json ({n_text}); best FID "
        f"{'—' if best is None else f'{best:.2f}'}; goal: ≤ {args.budget:g} s and FID ≤ "
        f"{1 + args.tolerance:g} × best",
        flush=True,
    )
    rows = []
    for label, folder, sampler, n, table in candidates:
        unet, config = loaded[folder]
        for precision in precisions:
            seconds = min(
                time_call(unet, config, sampler, n, args.num_images, precision, args.device)
                for _ in range(args.repeats)
            )
            fid_value = table.get((sampler, n, precision))
            fast = seconds <= args.budget
            good = fid_value is not None and best is not None and fid_value <= (1 + args.tolerance) * best
            rows.append(
                {
                    "path": label,
                    "sampler": sampler,
                    "steps": n,
                    "precision": precision,
                    "seconds": seconds,
                    "fid": fid_value,
                    "fast": fast,
                    "good": good,
                    "meets": fast and good,
                }
            )
            print(
                f"  {label} {sampler} {n} steps {precision}: {seconds:.2f} s, FID "
                f"{'—' if fid_value is None else f'{fid_value:.2f}'}",
                flush=True,
            )

    header = (
        f"| path | sampler | steps | precision | s / {args.num_images} digits | FID ({n_text}) | "
        f"≤ {args.budget:g} s | FID ≤ {1 + args.tolerance:g} × best | meets goal |"
    )
    lines = [header, "|---|---|---:|---|---:|---:|:---:|:---:|:---:|"]
    for row in sorted(rows, key=lambda r: r["seconds"]):
        fid_text = "—" if row["fid"] is None else f"{row['fid']:.2f}"
        lines.append(
            f"| {row['path']} | {row['sampler']} | {row['steps']} | {row['precision']} | "
            f"{row['seconds']:.2f} | {fid_text} | {'✓' if row['fast'] else ''} | "
            f"{'✓' if row['good'] else ''} | {'**✓**' if row['meets'] else ''} |"
        )
    print("\n".join(lines))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="A DDPM run folder; default: a random UNet of --model_config.")
    parser.add_argument(
        "--model_config", default="default", help=f"UNet config when no --model: {sorted(UNET_CONFIGS)}."
    )
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS), help="Samplers to time.")
    parser.add_argument(
        "--steps",
        nargs="+",
        type=int,
        default=None,
        help="Step counts to time (default: 10 25 50; --frontier: the cached ones ≤ --max_steps).",
    )
    parser.add_argument("--all", action="store_true", help=f"Time every step count of the issue: {ALL_STEPS}.")
    parser.add_argument("--num_images", type=int, default=16, help="Digits per call.")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=["fp32", "bf16"],
        default=None,
        help="UNet dtype(s) while sampling; with both, each cell alternates them and prints the ratio "
        "(default: fp32; --frontier: both).",
    )
    parser.add_argument("--repeats", type=int, default=1, help="Runs per cell (the best is kept).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="Device.")
    frontier_flags = parser.add_argument_group("--frontier")
    frontier_flags.add_argument(
        "--frontier",
        action="store_true",
        help="Time × cached FID of every candidate path, goal met or not (needs --model).",
    )
    frontier_flags.add_argument(
        "--student",
        nargs="+",
        default=None,
        help="Distilled student folders (training/distill_ddpm.py), each at its step count.",
    )
    frontier_flags.add_argument("--budget", type=float, default=1.0, help="Seconds for 16 digits (default: 1.0).")
    frontier_flags.add_argument(
        "--tolerance", type=float, default=0.10, help="FID within this share of the best cached FID (default: 0.10)."
    )
    frontier_flags.add_argument(
        "--max_steps", type=int, default=100, help="Default step counts: the cached ones up to this (default: 100)."
    )
    frontier_flags.add_argument(
        "--fid_n",
        type=int,
        default=None,
        help="Compare FIDs at this N (default: the most common N cached for --model).",
    )
    frontier_flags.add_argument(
        "--reference",
        default=None,
        help="Compare FIDs against this reference set (default: the most common at that N).",
    )
    args = parser.parse_args(argv)
    args.steps_given, args.precision_given = args.steps is not None, args.precision is not None
    args.steps = args.steps if args.steps_given else [10, 25, 50]
    args.precision = args.precision if args.precision_given else ["fp32"]
    if args.frontier:
        frontier(args)
    else:
        speed_table(args)


if __name__ == "__main__":
    main()
