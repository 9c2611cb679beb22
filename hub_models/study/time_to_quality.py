"""Time to quality (issue 39, goal 2): held-out FID against training CPU-hours for the full runs of the three
diffusion recipes, and the CPU-hours each needs to reach FID ≤ 10.

docs/lab/PROTOCOL.md ("the full runs and time to quality", with its amendments) fixes what is read here, before the
runs: each run's EMA snapshot at every whole training CPU-hour (`runs/full-<name>/snapshots/cpu_hours_<k>/`, written
by `train_ddpm.py --snapshot_every_cpu_hours 1`), scored at one point (ancestral `ddpm`, 50 steps, N = 2,000, seed 0,
fp32, all 12,000 `study-test` digits); a run's time to quality is the first k whose FID ≤ 10, no interpolation, and
"> 12" for a run that ends its 12 CPU-hours without reaching it; the goal is met when the new recipe's time is ≤ ⅓
of each other recipe's.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hub_models.evaluation.ddpm.plots import _save, _subplots
from hub_models.evaluation.ddpm.point import Point
from hub_models.evaluation.schema import Evaluation
from hub_models.io import write_json_atomic

PROTOCOL_POINT = Point("ddpm", 50, 2_000, ema=True, seed=0, precision="fp32")
PROTOCOL_REFERENCE = "study-test"
FID_TARGET = 10.0
BUDGET_CPU_HOURS = 12.0
SPEED_UP_GOAL = 3.0
SNAPSHOT_PREFIX = "cpu_hours_"
# The full runs (scripts/recipe_full_runs.sh), the new recipe first.
RECIPE_LABELS = {"new": "new (v, zero-SNR, min-SNR-5, lr 2e-4)", "study": "study (ε, cosine 4,000, lr 1e-4)",
                 "diffusers": "diffusers example defaults"}


@dataclass(frozen=True)
class Snapshot:
    """One measured snapshot of a run: its whole CPU-hour, the trainer's clock and update there, its FID."""

    cpu_hours: float  # the whole CPU-hour it was written at (the folder's name)
    clock_hours: float  # the run's own train_cpu_seconds / 3600 when it was written (≥ cpu_hours)
    update: int
    fid: float
    recognisable: float | None


def _metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def measured_snapshots(run_dir: str | os.PathLike, point: Point = PROTOCOL_POINT,
                       reference: str = PROTOCOL_REFERENCE) -> list[Snapshot]:
    """The run's snapshots that have the protocol's point in their evaluation.json, by CPU-hour."""
    snapshots = []
    root = Path(run_dir) / "snapshots"
    for folder in root.glob(f"{SNAPSHOT_PREFIX}*") if root.is_dir() else ():
        evaluation = Evaluation.read(folder, "ddpm")
        scored = evaluation.points.get(point.key) if evaluation else None
        if not scored or scored.get("reference") != reference:
            continue
        clock = _metrics(folder)
        snapshots.append(Snapshot(cpu_hours=float(folder.name.removeprefix(SNAPSHOT_PREFIX)),
                                  clock_hours=clock.get("train_cpu_seconds", float("nan")) / 3600,
                                  update=int(clock.get("global_step", -1)), fid=float(scored["fid"]["fid"]),
                                  recognisable=(scored.get("classifier") or {}).get("confident_share")))
    return sorted(snapshots, key=lambda s: s.cpu_hours)


def hours_to_target(snapshots: list[Snapshot], target: float = FID_TARGET) -> float | None:
    """The CPU-hour of the first snapshot with FID ≤ `target` (no interpolation); None when none reaches it."""
    return next((s.cpu_hours for s in snapshots if s.fid <= target), None)


def run_summary(run_dir: str | os.PathLike, budget: float = BUDGET_CPU_HOURS, target: float = FID_TARGET,
                point: Point = PROTOCOL_POINT, reference: str = PROTOCOL_REFERENCE) -> dict[str, Any]:
    """One run: its measured snapshots, its time to `target`, and whether it is over (its clock reached the budget
    and every snapshot it wrote is measured), which is what makes "never reached" a result."""
    snapshots = measured_snapshots(run_dir, point, reference)
    clock = _metrics(Path(run_dir)).get("train_cpu_seconds", 0.0) / 3600
    written = list((Path(run_dir) / "snapshots").glob(f"{SNAPSHOT_PREFIX}*"))
    return {"run_dir": str(run_dir), "snapshots": [asdict(s) for s in snapshots],
            "hours": hours_to_target(snapshots, target), "measured_to": max((s.cpu_hours for s in snapshots),
                                                                             default=0.0),
            "clock_hours": clock, "started": Path(run_dir).is_dir(),
            "finished": clock >= budget and len(written) == len(snapshots)}


def speed_up(new: dict[str, Any], other: dict[str, Any], goal: float = SPEED_UP_GOAL) -> dict[str, Any]:
    """How many times less CPU the new recipe needed than `other`, as far as the measurements say so far.

    `ratio` is exact when both reached the target; `at_least` is a lower bound when only the new recipe did (the
    other's time is beyond its last measured hour); `met` is True or False once decided, None while it is not."""
    if new["hours"] is None:
        met = False if new["finished"] else None
        return {"ratio": None, "at_least": None, "met": met}
    if other["hours"] is not None:
        ratio = other["hours"] / new["hours"]
        return {"ratio": ratio, "at_least": None, "met": ratio >= goal}
    bound = other["measured_to"] / new["hours"]  # the other is past its last measured hour
    return {"ratio": None, "at_least": bound, "met": True if bound >= goal else None}


def time_to_quality(runs: dict[str, str | os.PathLike], new: str = "new") -> dict[str, Any]:
    """Every run's summary and the new recipe's speed-up over each other run, at the protocol's point."""
    summaries = {name: run_summary(folder) for name, folder in runs.items()}
    speed_ups = {name: speed_up(summaries[new], s) for name, s in summaries.items() if name != new}
    return {"point": asdict(PROTOCOL_POINT) | {"reference": PROTOCOL_REFERENCE}, "target": FID_TARGET,
            "budget_cpu_hours": BUDGET_CPU_HOURS, "runs": summaries, "speed_up": speed_ups}


def _hours(summary: dict[str, Any]) -> str:
    if summary["hours"] is not None:
        return f"{summary['hours']:g}"
    if summary["finished"]:
        return f"> {BUDGET_CPU_HOURS:g}"
    if not summary["started"]:
        return "not started"
    return f"> {summary['measured_to']:g} so far (running)"


def time_to_quality_markdown(result: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    """The FID-by-CPU-hour table, each run's time to quality and the speed-ups, as docs print them."""
    labels = labels or {}
    runs = result["runs"]
    hours = sorted({s["cpu_hours"] for r in runs.values() for s in r["snapshots"]})
    lines = ["| CPU-hours | " + " | ".join(labels.get(n, n) for n in runs) + " |",
             "|---:|" + "---:|" * len(runs)]
    for h in hours:
        cells = []
        for run in runs.values():
            s = next((s for s in run["snapshots"] if s["cpu_hours"] == h), None)
            cells.append("—" if s is None else f"{s['fid']:.2f}" + (" ✓" if s["fid"] <= result["target"] else ""))
        lines.append(f"| {h:g} | " + " | ".join(cells) + " |")
    lines += ["", f"| recipe | CPU-hours to FID ≤ {result['target']:g} | speed-up of the new recipe |",
              "|---|---:|---|"]
    for name, run in runs.items():
        up = result["speed_up"].get(name)
        if up is None:
            text = "—"
        elif up["ratio"] is not None:
            text = f"{up['ratio']:.2f}×"
        elif up["at_least"] is not None:
            text = f"≥ {up['at_least']:.2f}×"
        else:
            text = "not yet known"
        verdict = {True: " (goal met)", False: " (goal missed)", None: ""}[up["met"]] if up else ""
        lines.append(f"| {labels.get(name, name)} | {_hours(run)} | {text}{verdict} |")
    return "\n".join(lines)


def time_to_quality_plot(result: dict[str, Any], path: str | os.PathLike,
                         labels: dict[str, str] | None = None) -> Path:
    """FID (log) against training CPU-hours, one line per recipe, the target dashed."""
    labels = labels or {}
    fig, ax = _subplots((5.6, 3.6))
    for name, run in result["runs"].items():
        xs = [s["cpu_hours"] for s in run["snapshots"]]
        ax.plot(xs, [s["fid"] for s in run["snapshots"]], marker="o", label=labels.get(name, name))
    ax.axhline(result["target"], color="grey", ls="--", lw=1)
    ax.annotate(f"FID {result['target']:g}", (0, result["target"]), xycoords=("axes fraction", "data"),
                textcoords="offset points", xytext=(4, 3), fontsize=7, color="grey")
    ax.set(yscale="log", xlabel="training CPU-hours (one thread)", xlim=(0, result["budget_cpu_hours"] + 0.5),
           ylabel="held-out FID (N=2,000, ancestral 50)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_time_to_quality(runs: dict[str, str | os.PathLike], output_dir: str | os.PathLike,
                          labels: dict[str, str] = RECIPE_LABELS) -> dict[str, Any]:
    """`time_to_quality(runs)` as `output_dir/time_to_quality.json`, its table as `.md`, its plot as `.png`."""
    output_dir = Path(output_dir)
    result = time_to_quality(runs, new=next(iter(runs)))
    write_json_atomic(output_dir / "time_to_quality.json", result)
    (output_dir / "time_to_quality.md").write_text(time_to_quality_markdown(result, labels) + "\n")
    time_to_quality_plot(result, output_dir / "time_to_quality.png", labels)
    return result


__all__ = ["FID_TARGET", "PROTOCOL_POINT", "RECIPE_LABELS", "Snapshot", "hours_to_target", "measured_snapshots",
           "run_summary", "speed_up", "time_to_quality", "time_to_quality_markdown", "time_to_quality_plot",
           "write_time_to_quality"]
