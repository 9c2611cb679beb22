"""The study's hybrid, measured (issue 16): latent diffusion against the pixel DDPM, and the VAEs as codecs.

`run_hybrid_study` scores both diffusion models under docs/lab/PROTOCOL.md's "Latent diffusion against the pixel
DDPM" (one sampler, steps and precision for both, N = 10,000 against the official test digits, seed 1), reads the
side-by-side sampling benchmark (`benchmarks/ldm_sampling_speed.py`), measures every released VAE and the latent
autoencoder as a codec on the official test digits, and writes `hybrid.json`, `hybrid.md` (the report includes it)
and a plot of FID against sampling time into its output folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from hub_models.data import load_splits
from hub_models.diffusion.latent import latent_shape, load_autoencoder
from hub_models.evaluation.compression import as_rows, png_bits_per_digit, rate_distortion
from hub_models.evaluation.ddpm import Point, evaluate_point
from hub_models.evaluation.metrics import format_fid
from hub_models.figures import figure_to_pil, save_png
from hub_models.io import write_json_atomic
from hub_models.models.registry import config_class_name, model_class
from hub_models.models.unet import count_parameters

HYBRID_HEADING = "## Latent diffusion and compression (the study's hybrid)"
# docs/lab/PROTOCOL.md, "Latent diffusion against the pixel DDPM": fixed before either model was scored.
COMPARISON_POINT = Point("ddpm", 25, 10_000, ema=True, seed=1, precision="bf16")
COMPARISON_REFERENCE = "mnist-test"
# Quantisation steps of the codec table (in standard deviations of the latent): coarse to fine.
CODEC_STEPS = (1.0, 0.5, 0.25, 0.1)


def compare_diffusion(pixel_dir: str | Path, latent_dir: str | Path, output_dir: str | Path,
                      point: Point = COMPARISON_POINT, reference: str = COMPARISON_REFERENCE,
                      n_ref: int | None = None) -> dict[str, Any]:
    """The two models' FID at `point`: the latent pipeline's lands in its own evaluation.json (it is that model's
    protocol point), the pixel model's in `output_dir/pixel-ddpm/` (its own headline is its sweep's choice)."""
    return {
        "pixel": evaluate_point(pixel_dir, point, reference=reference, timing=False, n_ref=n_ref,
                                results_dir=Path(output_dir) / "pixel-ddpm"),
        "latent": evaluate_point(latent_dir, point, reference=reference, timing=False, n_ref=n_ref),
    }


def codec_table(vaes: dict[str, str | Path], autoencoder: str | Path | None, num_digits: int = 10_000,
                steps: tuple[float, ...] = CODEC_STEPS) -> dict[str, Any]:
    """Rate (bits per digit) and distortion of each model as a codec, and lossless PNG, on official test digits."""
    _, test = load_splits("official")
    images = test.images[:num_digits]
    models: dict[str, Any] = {}
    for name, folder in vaes.items():
        vae = model_class(config_class_name(folder)).from_pretrained(str(folder), use_safetensors=True)
        models[name] = {"latent_numbers": vae.config.latent_dim, "points": as_rows(rate_distortion(vae, images, steps))}
    if autoencoder is not None:
        ae = load_autoencoder(autoencoder)
        models["latent autoencoder"] = {"latent_numbers": math.prod(latent_shape(ae)),
                                        "points": as_rows(rate_distortion(ae, images, steps))}
    return {"num_digits": len(images), "split": "mnist-test", "png_bits_per_digit": png_bits_per_digit(images),
            "models": models}


def fid_vs_time_plot(rows: list[dict[str, Any]]):
    """FID against CPU seconds per 16 digits, one labelled point per model."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for row in rows:
        ax.scatter(row["cpu_per_16"], row["fid"], s=40)
        ax.annotate(row["label"], (row["cpu_per_16"], row["fid"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlabel("CPU seconds per 16 digits (bf16, 25 steps)")
    ax.set_ylabel("FID (N=10,000 vs MNIST test)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_to_pil(fig)


def _speed_row(speed: dict[str, Any] | None, precision: str, name: str) -> dict[str, float] | None:
    return (speed or {}).get(precision, {}).get(name)


def hybrid_markdown(result: dict[str, Any]) -> str:
    """The report's section body: the two tables, the plot, and the commands that produced them."""
    fids, speed, codec = result.get("fids", {}), result.get("speed"), result.get("codec")
    point = result["point"]
    lines = [f"`{result['command']}`, following docs/lab/PROTOCOL.md (\"Latent diffusion against the pixel DDPM\", "
             "fixed before the runs): both models sample with "
             f"{point['sampler']} in {point['steps']} steps, {point['precision']}, EMA weights, seed {point['seed']}; "
             "sampling time from "
             f"`{speed['command'] if speed else 'benchmarks/ldm_sampling_speed.py'}` (both models alternating in one "
             "process).", ""]
    if fids:
        lines += ["| model | parameters | FID | CPU s / 16 digits | wall s / 16 digits |", "|---|---:|---|---:|---:|"]
        for name, label in (("pixel", "pixel DDPM (1×28×28)"), ("latent", "latent DDPM (4×7×7 + decoder)")):
            fid_point, timing = fids[name], _speed_row(speed, point["precision"], name)
            lines.append(f"| {label} | {result['parameters'][name]:,} | {format_fid(fid_point['fid'])} | "
                         + (f"{timing['cpu_median']:.2f} | {timing['wall_median']:.2f} |" if timing else "— | — |"))
        pixel, latent = (_speed_row(speed, point["precision"], n) for n in ("pixel", "latent"))
        f_pixel, f_latent = fids["pixel"]["fid"]["fid"], fids["latent"]["fid"]["fid"]
        if pixel and latent:
            lines += ["", f"**Is latent diffusion faster, and at what cost?** Faster: "
                      f"{pixel['cpu_median'] / latent['cpu_median']:.1f}× less CPU per digit at the same sampler "
                      f"and steps. The cost: FID {f_latent:.2f} against {f_pixel:.2f} "
                      f"({'+' if f_latent >= f_pixel else ''}{f_latent - f_pixel:.2f}), at this one setting."]
        lines += ["", "![FID against sampling time](figures/hybrid_fid_vs_time.png)", ""]
    if codec:
        lines += [f"The VAEs and the latent autoencoder as codecs on {codec['num_digits']:,} official test digits: the "
                  "posterior mean quantised to a grid of step Δ (in standard deviations), its rate under an N(0, 1) "
                  "entropy model (the ideal an arithmetic coder approaches), the distortion of the decoded digit. "
                  f"Lossless PNG: **{codec['png_bits_per_digit']:.0f} bits per digit**.", "",
                  "| model | latent numbers | " + " | ".join(f"Δ = {s:g}: bits / PSNR dB" for s in
                                                             (p["step"] for p in next(iter(
                                                                 codec["models"].values()))["points"])) + " |",
                  "|---|---:|" + "---|" * len(next(iter(codec["models"].values()))["points"])]
        for name, model in codec["models"].items():
            cells = [f"{p['bits_per_digit']:.0f} / {p['psnr_db']:.1f}" for p in model["points"]]
            lines.append(f"| {name} | {model['latent_numbers']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def run_hybrid_study(output_dir: str | Path, *, pixel_dir: str | Path, latent_dir: str | Path,
                     vaes: dict[str, str | Path], speed_json: str | Path | None = None,
                     num_codec_digits: int = 10_000, command: str = "python scripts/hybrid_study.py",
                     point: Point = COMPARISON_POINT, n_ref: int | None = None) -> Path:
    """Measure everything (cached: re-running after an interruption resumes) and write hybrid.json + hybrid.md.
    `point` and `n_ref` are the protocol's; other values are for tests on tiny models."""
    output_dir = Path(output_dir)
    (output_dir / "figures").mkdir(parents=True, exist_ok=True)
    speed = json.loads(Path(speed_json).read_text()) if speed_json and Path(speed_json).exists() else None
    fids = compare_diffusion(pixel_dir, latent_dir, output_dir, point, n_ref=n_ref)
    latent = Path(latent_dir)
    result = {
        "command": command, "point": asdict(point) | {"reference": COMPARISON_REFERENCE},
        "parameters": {"pixel": count_parameters(model_class("UNet2DModel").from_pretrained(str(pixel_dir),
                                                                                            subfolder="unet")),
                       "latent": count_parameters(model_class("UNet2DModel").from_pretrained(str(latent),
                                                                                             subfolder="unet"))},
        "fids": fids, "speed": speed,
        "codec": codec_table(vaes, latent / "vae", num_codec_digits),
    }
    write_json_atomic(output_dir / "hybrid.json", result)
    if speed:
        rows = [{"label": name, "fid": fids[name]["fid"]["fid"],
                 "cpu_per_16": _speed_row(speed, point.precision, name)["cpu_median"]}
                for name in ("pixel", "latent")]
        save_png(fid_vs_time_plot(rows), output_dir / "figures" / "hybrid_fid_vs_time.png")
    (output_dir / "hybrid.md").write_text(hybrid_markdown(result))
    return output_dir / "hybrid.md"


__all__ = ["COMPARISON_POINT", "HYBRID_HEADING", "codec_table", "compare_diffusion", "hybrid_markdown",
           "run_hybrid_study"]
