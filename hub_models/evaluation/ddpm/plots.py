"""The sweep (FID vs time) and the guidance table (FID and class accuracy vs w) as figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hub_models.evaluation.ddpm.chunks import timed_at_fp32_speed


def _subplots(figsize: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib  # only when a plot is drawn: loading a model never imports matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=110)


def _save(fig: Any, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _mark_points(ax: Any, points: list[dict[str, Any]], xs: list[float], ys: list[float], color: str) -> None:
    """Label each point with its step count; hollow markers for seconds timed without native bf16."""
    for p, x, y in zip(points, xs, ys, strict=True):
        if timed_at_fp32_speed(p):
            ax.plot(x, y, marker="o", color=color, mfc="white", ls="none")
        ax.annotate(str(p["steps"]), (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)


def sweep_plot(points: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """FID vs seconds per 16 digits, one line per sampler and U-Net precision (a sampler's colour, fp32 dashed when
    the sweep has both), step counts labelled, the real-vs-real floor drawn."""

    fig, ax = _subplots(figsize=(9, 4.8))
    precisions = sorted({p.get("precision", "fp32") for p in points})
    for sampler in sorted({p["sampler"] for p in points}):
        color = None
        for precision in precisions:
            ps = sorted((p for p in points if p["sampler"] == sampler and p.get("precision", "fp32") == precision),
                        key=lambda p: p["steps"])
            if not ps:
                continue
            xs, ys = [p["seconds_per_16"] for p in ps], [p["fid"]["fid"] for p in ps]
            label = sampler if len(precisions) == 1 else f"{sampler} ({precision})"
            (line,) = ax.plot(xs, ys, marker="o", label=label, color=color,
                              ls="--" if precision == "fp32" and len(precisions) > 1 else "-")
            color = line.get_color()
            _mark_points(ax, ps, xs, ys, color)
    floors = [p["fid"]["floor"] for p in points if p["fid"].get("floor") is not None]
    if floors:
        ax.axhline(floors[0], color="grey", ls="--", lw=1, label=f"real-vs-real floor ({floors[0]:.1f})")
    if any(map(timed_at_fp32_speed, points)):
        ax.plot([], [], marker="o", mfc="white", mec="grey", ls="none", label="timed without native bf16 (fp32 speed)")
    n = points[0]["fid"]["n_gen"] if points else 0
    ax.set(xscale="log", yscale="log", xlabel="CPU seconds per 16 digits (log)", ylabel=f"FID, N={n:,} (log)",
           title="DDPM samplers: quality vs time (labels: steps)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # off the points
    return _save(fig, path)


def guidance_plot(points: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """FID (left axis, with its floor) and the share read as the requested digit (right axis) against the
    guidance scale w: the guidance table as a figure."""

    ws = [p["guidance_scale"] for p in points]
    fig, ax = _subplots(figsize=(7, 4.2))
    ax.plot(ws, [p["fid"]["fid"] for p in points], marker="o", color="C0", label="FID")
    if points and points[0]["fid"].get("floor") is not None:
        ax.axhline(points[0]["fid"]["floor"], color="C0", ls="--", lw=1,
                   label=f"real-vs-real floor ({points[0]['fid']['floor']:.1f})")
    n = points[0]["fid"]["n_gen"] if points else 0
    ax.set(xlabel="guidance scale w (0 = unconditional, 1 = conditional)", ylabel=f"FID, N={n:,} (lower is better)",
           title="Classifier-free guidance: quality and class control")
    right = ax.twinx()
    right.plot(ws, [100 * p["classifier"].get("class_accuracy", float("nan")) for p in points], marker="s",
               color="C1", label="read as the requested digit")
    right.set_ylabel("read as the requested digit (%)", color="C1")
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    ax.grid(alpha=0.3)
    return _save(fig, path)
