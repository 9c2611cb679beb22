"""The report's DDPM, anomaly and hybrid sections, each from its own run or study folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hub_models.evaluation.ddpm import (
    describe_point,
    evaluation_summary,
    missing_sweep_points,
    sweep_plot,
    timed_at_fp32_speed,
)
from hub_models.evaluation.metrics import is_standard_fid
from hub_models.study.hybrid import HYBRID_HEADING
from hub_models.study.report.claims import _held_out_loss_text
from hub_models.study.report.runs import FP32_SPEED_MARK, LEGACY_MARK

ANOMALY_HEADING = "## Anomaly detection"


def _ddpm_summary(ddpm_dir: Path, figures_dir: Path) -> dict[str, Any]:

    metrics = json.loads((ddpm_dir / "metrics.json").read_text())
    history = metrics.get("history", [])
    summary = {"train_loss": metrics.get("train_loss"), "test_loss": metrics.get("test_loss"),
               "epochs_done": len(history), "history": history, "parameters": metrics.get("parameters"),
               "test_loss_samples": metrics.get("test_loss_samples"), "test_samples": metrics.get("test_samples")}
    (figures_dir / "ddpm").mkdir(parents=True, exist_ok=True)
    for key, png in (("grid", "samples.png"), ("loss_curve", "loss_curve.png")):
        if (ddpm_dir / "figures" / png).exists():
            shutil.copy2(ddpm_dir / "figures" / png, figures_dir / "ddpm" / png)
            summary[key] = f"figures/ddpm/{png}"
    evaluation = evaluation_summary(ddpm_dir)  # evaluated on the weights the folder holds now
    if evaluation["main"]:
        summary["fid_point"], summary["fid"] = evaluation["main"], evaluation["main"]["fid"]
    summary["raw_point"], summary["other_points"] = evaluation["raw"], evaluation["others"]
    if evaluation["sweep"]:
        summary["sweep"] = evaluation["sweep"]
        sweep_plot(evaluation["sweep"], figures_dir / "ddpm" / "sampler_sweep.png")
        summary["sweep_plot"] = "figures/ddpm/sampler_sweep.png"
    return summary


def _ddpm_section(ddpm: dict[str, Any]) -> list[str]:

    lines = ["## DDPM", "",
             f"UNet2DModel, {ddpm['parameters']:,} parameters, cosine schedule over 4000 steps, ε-prediction, "
             "EMA weights. Loss per epoch next to the study's final train 0.0278 / test 0.0280 "
             f"({_held_out_loss_text(ddpm)}):", "",
             "| epoch | train loss | held-out loss |", "|---:|---:|---:|"]
    lines += [f"| {h['epoch']} | {h['train_loss']:.4f} | {h['test_loss']:.4f} |" for h in ddpm["history"]]
    if ddpm.get("grid") or ddpm.get("loss_curve"):
        lines += ["", " ".join(f"![DDPM {k}]({ddpm[k]})" for k in ("grid", "loss_curve") if ddpm.get(k))]
    points = [ddpm[k] for k in ("fid_point", "raw_point") if ddpm.get(k)] + ddpm.get("other_points", [])
    if points:
        lines += ["", "FID (`python scripts/evaluate_ddpm.py`; the protocol is in [PROTOCOL.md](PROTOCOL.md)). The "
                      "study's 28.11 names no N, reference set, Inception code or sampler, so it is not comparable "
                      "with these:", ""]
        lines += [f"- {describe_point(p)}" for p in points]
    if ddpm.get("sweep"):
        sweep = ddpm["sweep"]
        lines += ["", f"### Sampler sweep: FID vs CPU time (N = {sweep[0]['num_samples']:,} per point, "
                      f"floor {sweep[0]['fid']['floor']:.2f})", "",
                  f"![sampler sweep]({ddpm['sweep_plot']})", "",
                  "| sampler | steps | U-Net | FID | recognisable | s per 16 digits |", "|---|---:|---|---:|---:|---:|"]
        lines += [f"| {p['sampler']} | {p['steps']} | {p.get('precision', 'fp32')} | {p['fid']['fid']:.2f}"
                  f"{'' if is_standard_fid(p['fid']) else LEGACY_MARK} | "
                  f"{p['classifier']['confident_share']:.1%} | {p['seconds_per_16']:.2f}"
                  f"{FP32_SPEED_MARK if timed_at_fp32_speed(p) else ''} |" for p in sweep]
        if any(not is_standard_fid(p["fid"]) for p in sweep):
            lines += ["", f"{LEGACY_MARK} measured with the old torch-bilinear resize, pending re-measurement."]
        missing = missing_sweep_points(sweep)
        if missing:
            lines += ["", f"Not measured yet ({len(missing)} of the points [PROTOCOL.md](PROTOCOL.md) fixes, in its "
                          "order): " + ", ".join(f"{s} {k}" for s, k in missing) + ". Nothing is selected from a "
                          "partial sweep: the report FID at N = 10,000 waits for the last point."]
        cpus = sorted({p["timed_cpu"] for p in sweep if p.get("timed_cpu")})
        loads = [p["load_average"] for p in sweep if p.get("load_average") is not None]
        where = f"on {' and '.join(cpus)}" if cpus else "on this machine's CPU"
        load = f"load average {min(loads):.1f}–{max(loads):.1f} while timing" if loads else \
            "other jobs may have shared it"
        lines += ["", f"Seconds: wall time for 16 digits with {sweep[0]['torch_threads']} torch thread(s) {where} "
                      f"({load}; per point in evaluation.json), the UNet in the precision of its row."]
        if any(map(timed_at_fp32_speed, sweep)):
            lines += ["", f"{FP32_SPEED_MARK} sampled and timed on a CPU without native bf16, its bf16 convolutions "
                          "computed in fp32 ([PROTOCOL.md](PROTOCOL.md)): these seconds are fp32-speed seconds of "
                          "another CPU, not comparable with the rest."]
    return [*lines, ""]


def _anomaly_section(anomaly_dir: str | Path | None, figures_dir: Path) -> list[str]:
    """`scripts/anomaly_study.py`'s table and plot: the study's application, measured ([] if not run)."""
    if not anomaly_dir or not Path(anomaly_dir, "anomaly.md").exists():
        return []
    anomaly_dir = Path(anomaly_dir)
    lines = [f"{ANOMALY_HEADING} (the study's application)", "",
             f"`python scripts/anomaly_study.py --output_dir {anomaly_dir}`: a VAE trained on every digit but one "
             "scores each test digit by reconstruction error and by −ELBO; AUROC of finding the held-out digit. ",
             "", anomaly_dir.joinpath("anomaly.md").read_text().strip(), ""]
    plot = anomaly_dir / "figures" / "anomaly_auroc.png"
    if plot.exists():
        figures_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plot, figures_dir / "anomaly_auroc.png")
        lines += ["![anomaly AUROC](figures/anomaly_auroc.png)", ""]
    return lines


def _hybrid_section(hybrid_dir: str | Path | None, figures_dir: Path) -> list[str]:
    """`scripts/hybrid_study.py`'s tables and plot ([] if not run)."""
    if not hybrid_dir or not Path(hybrid_dir, "hybrid.md").exists():
        return []
    plot = Path(hybrid_dir) / "figures" / "hybrid_fid_vs_time.png"
    if plot.exists():
        figures_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plot, figures_dir / plot.name)
    return [HYBRID_HEADING, "", Path(hybrid_dir, "hybrid.md").read_text().strip(), ""]


def _application_sections(anomaly_dir: str | Path | None, hybrid_dir: str | Path | None, figures_dir: Path,
                          old_blocks: list[list[str]]) -> list[str]:
    """The anomaly and hybrid sections from their studies' folders; a section whose study is not here is kept
    from the old report."""
    def old(heading: str) -> list[str]:
        return [line for b in old_blocks if b[0].startswith(heading) for line in b]

    return (_anomaly_section(anomaly_dir, figures_dir) or old(ANOMALY_HEADING)) + (
        _hybrid_section(hybrid_dir, figures_dir) or old(HYBRID_HEADING))
