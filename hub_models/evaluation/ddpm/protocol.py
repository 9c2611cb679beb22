"""docs/lab/PROTOCOL.md's sweep and guidance table: which points are planned, missing, re-run and selected."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from hub_models.evaluation.ddpm.point import Point
from hub_models.evaluation.ddpm.scoring import current_points

SWEEP_STEPS = (5, 10, 25, 50, 100, 250, 1000)

# The sweep docs/lab/PROTOCOL.md fixes for the full-recipe model, in its order: every point in bf16; the ODE
# solvers stop at 250 steps (a 1,000-step point is ~1 CPU-hour here). Nothing is selected until all of it is measured.
PROTOCOL_SWEEP: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("ddpm", SWEEP_STEPS), ("dpmsolver++", SWEEP_STEPS[:-1]), ("unipc", SWEEP_STEPS[:-1]), ("ddim", SWEEP_STEPS[:-1]))
PROTOCOL_SWEEP_PRECISION = "bf16"
PROTOCOL_RERUNS = 3  # the bf16 points with the lowest FIDs, re-run in fp32
PROTOCOL_TIE = 0.05  # FIDs within 5 % of the lowest are tied: fewest U-Net passes, then bf16, wins
# The class-conditional model's guidance table (docs/lab/PROTOCOL.md): these w at N = 2,000; ties go to class accuracy.
PROTOCOL_GUIDANCE = (0.0, 1.0, 2.0, 3.0, 5.0)

def guidance_group(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The guidance table of a class-conditional run: its EMA points where several guidance scales were scored
    with the same N, sampler, steps, precision, seed and reference (`evaluate_ddpm.py --guidance_sweep`), by w."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for p in points:
        if p["ema"] and p.get("guidance_scale") is not None:
            key = (p["num_samples"], p["sampler"], p["steps"], p.get("precision", "fp32"), p["seed"], p["reference"])
            groups.setdefault(key, []).append(p)
    scales = {key: {p["guidance_scale"] for p in group} for key, group in groups.items()}
    multi = [key for key in groups if len(scales[key]) > 1]
    if not multi:
        return []
    key = max(multi, key=lambda k: (len(scales[k]), k[0]))
    return sorted(groups[key], key=lambda p: p["guidance_scale"])


def select_guidance(table: list[dict[str, Any]], scales: Iterable[float] = PROTOCOL_GUIDANCE
                    ) -> dict[str, Any] | None:
    """docs/lab/PROTOCOL.md's guidance choice from a guidance table (`guidance_group`): the lowest FID; the w's within
    `PROTOCOL_TIE` of it tie, and the one whose digits the classifier reads as the requested digit most often wins.
    None until every w of `scales` is in the table (nothing is chosen from a partial table)."""
    if not table or not set(scales) <= {p["guidance_scale"] for p in table}:
        return None
    best = min(map(_fid, table))
    tied = [p for p in table if _fid(p) <= best * (1 + PROTOCOL_TIE)]
    # Without class metrics (other data, no classifier of it given) the lowest FID of the tied ones wins.
    return max(tied, key=lambda p: (p["classifier"].get("class_accuracy", 0.0), -_fid(p)))

def sweep_points(samplers: Iterable[str], steps: Iterable[int], num_samples: int = 1000, seed: int = 0,
                 precision: str = "fp32", guidance_scale: float | None = None) -> list[Point]:
    """Every sampler × step count, cheapest first (so a short session still fills the low end of the plot)."""
    return sorted((Point(s, k, num_samples, True, seed, precision, guidance_scale=guidance_scale)
                   for s in samplers for k in steps), key=lambda p: p.steps)

def missing_sweep_points(sweep: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The (sampler, steps) of `PROTOCOL_SWEEP` that `sweep` lacks in its precision, in the protocol's order."""
    done = {(p["sampler"], p["steps"]) for p in sweep
            if p.get("precision", "fp32") == PROTOCOL_SWEEP_PRECISION and not p.get("overrides")}
    return [(sampler, k) for sampler, steps in PROTOCOL_SWEEP for k in steps if (sampler, k) not in done]


def _plan_points(sweep: list[dict[str, Any]], precision: str) -> list[dict[str, Any]]:
    plan = {(sampler, k) for sampler, steps in PROTOCOL_SWEEP for k in steps}
    return [p for p in sweep if (p["sampler"], p["steps"]) in plan and p.get("precision", "fp32") == precision
            and p.get("guidance_scale") is None and not p.get("overrides")]


def _how(point: Mapping[str, Any]) -> tuple[str, int, str]:
    return point["sampler"], point["steps"], point.get("precision", "fp32")


def _fid(point: dict[str, Any]) -> float:
    return point["fid"]["fid"]


def protocol_reruns(sweep: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The (sampler, steps) the protocol re-runs in fp32: the `PROTOCOL_RERUNS` lowest-FID points of a complete
    bf16 sweep ([] while any is missing: nothing is chosen from a partial sweep)."""
    if missing_sweep_points(sweep):
        return []
    ranked = sorted(_plan_points(sweep, PROTOCOL_SWEEP_PRECISION), key=_fid)
    return [(p["sampler"], p["steps"]) for p in ranked[:PROTOCOL_RERUNS]]


def select_point(sweep: list[dict[str, Any]]) -> dict[str, Any] | None:
    """docs/lab/PROTOCOL.md's choice from the sweep (points of one N, seed and reference): among every bf16 point and
    the fp32 re-runs, the lowest FID; the points within `PROTOCOL_TIE` of it tie, and the one with the fewest U-Net
    passes (steps), then bf16, wins. None until the sweep and its fp32 re-runs are all measured."""
    reruns = protocol_reruns(sweep)
    fp32 = [p for p in _plan_points(sweep, "fp32") if (p["sampler"], p["steps"]) in reruns]
    if not reruns or len(fp32) < len(reruns):
        return None
    candidates = [*_plan_points(sweep, PROTOCOL_SWEEP_PRECISION), *fp32]
    best = min(map(_fid, candidates))
    tied = [p for p in candidates if _fid(p) <= best * (1 + PROTOCOL_TIE)]
    return min(tied, key=lambda p: (p["steps"], p.get("precision", "fp32") != "bf16", _fid(p)))


def _sweep_group(point: Mapping[str, Any]) -> tuple[int, int, str]:
    return point["num_samples"], point["seed"], point.get("reference", "mnist-test")


def sweep_results(run_dir: str | os.PathLike, num_samples: int, guidance_scale: float | None = None, *,
                  seed: int | None = None, reference: str | None = None) -> list[dict[str, Any]]:
    """The current EMA points of one N (and, for a class-conditional model, one guidance w; if given, one seed and
    reference) that have a timing: the sweep as measured so far. Points of other w (the guidance table) are another
    axis, never on this one."""
    return sorted((p for p in current_points(run_dir)
                   if p["num_samples"] == num_samples and p["ema"] and p.get("seconds_per_16") is not None
                   and p.get("guidance_scale") == guidance_scale and not p.get("overrides")
                   and seed in (None, p["seed"]) and reference in (None, p.get("reference", "mnist-test"))),
                  key=_how)
