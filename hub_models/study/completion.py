"""Digit completion, measured: with half of each test digit hidden, how often does the digit classifier read the
completed digit as the original label? The pixel DDPM (RePaint, `hub_models.diffusion.inpainting`) against a VAE.

The VAE baseline: the masked digit (hidden pixels set to 0, the black background, exactly what a visitor of the
Space gives it) is encoded, its posterior mean decoded, and the known pixels are pasted back from the original, so
both methods are scored on the same known half (`vae`). Also reported: the VAE's decode as it is (`vae_raw`: its
blurred version of the known half too), the masked digit alone (`masked`: what the known half tells the classifier
without any completion) and the original digits (`original`: the classifier's ceiling).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from hub_models.data import load_splits
from hub_models.diffusion.inpainting import (
    DEFAULT_COMPLETION_STEPS,
    DEFAULT_JUMP_LENGTH,
    DEFAULT_JUMP_N_SAMPLE,
    complete,
)
from hub_models.diffusion.sampling import load_ddpm
from hub_models.evaluation.completion import REGIONS, half_mask, vae_complete
from hub_models.evaluation.metrics import load_digit_classifier
from hub_models.figures import save_png, to_pil
from hub_models.io import log, write_json_atomic
from hub_models.models.classifier import DigitClassifier
from hub_models.models.registry import vae_class
from hub_models.models.vae import BetaVAE

METHODS = ("ddpm", "vae", "vae_raw", "masked", "original")


def _accuracy(classifier: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((classifier.predict(images)[2] == labels).float().mean())


def completion_figure(rows: dict[str, torch.Tensor], scale: int = 3) -> Image.Image:
    """A labelled grid: one row per entry of `rows` (e.g. masked input / DDPM / VAE / original), one column per
    digit."""
    strips = [to_pil(x, nrow=len(x), scale=scale) for x in rows.values()]
    margin = 90
    canvas = Image.new("L", (margin + max(s.width for s in strips), sum(s.height for s in strips)), 255)
    draw, y = ImageDraw.Draw(canvas), 0
    for name, strip in zip(rows, strips, strict=True):
        canvas.paste(strip, (margin, y))
        draw.text((6, y + strip.height // 2 - 6), name, fill=0)
        y += strip.height
    return canvas


def _settings(n: int, seed: int, num_inference_steps: int, jump_length: int, jump_n_sample: int,
              autocast_dtype: torch.dtype | None) -> dict[str, Any]:
    return {
        "n": n,
        "seed": seed,
        "num_inference_steps": num_inference_steps,
        "jump_length": jump_length,
        "jump_n_sample": jump_n_sample,
        "autocast": None if autocast_dtype is None else str(autocast_dtype),
        "sampler": "ddpm (ancestral, trailing spacing)",
        "vae_baseline": "decode(mean(encode(masked))), "
        "hidden pixels input as 0, known pixels pasted back ('vae'); without pasting ('vae_raw')",
        "regions": {},
    }


def _region_outputs(vae: BetaVAE, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                    ddpm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every method's digits (`METHODS`) for one hidden half."""
    vae_labels = labels if getattr(vae, "is_conditional", False) else None
    return {
        "ddpm": ddpm,
        "vae": vae_complete(vae, images, mask, vae_labels),
        "vae_raw": vae_complete(vae, images, mask, vae_labels, paste_known=False),
        "masked": images * (1 - mask),
        "original": images,
    }


def completion_study(
    unet: torch.nn.Module,
    scheduler_config: Any,
    vae: BetaVAE,
    classifier: DigitClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    regions: Sequence[str] = ("top", "right"),
    num_inference_steps: int = DEFAULT_COMPLETION_STEPS,
    jump_length: int = DEFAULT_JUMP_LENGTH,
    jump_n_sample: int = DEFAULT_JUMP_N_SAMPLE,
    batch_size: int = 100,
    seed: int = 0,
    autocast_dtype: torch.dtype | None = None,
    figure_digits: int = 8,
) -> tuple[dict[str, Any], dict[str, Image.Image]]:
    """Complete `images` `(N, 1, 28, 28)` in [0, 1] with each half of `regions` hidden, by the DDPM and the VAE,
    and score each with the classifier against `labels` `(N,)`.

    Returns:
        (results, figures): `results[region]` = `{"accuracy": {method: share}, "ddpm_seconds", "n"}` for the
        methods of `METHODS` (see the module docstring), plus the settings; `figures[region]` = the grid of the first
        `figure_digits` digits (masked input / DDPM / VAE / original).
    """
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"need one label per image and at least one image, got {len(images)} and {len(labels)}")
    unet.eval(), vae.eval(), classifier.eval()
    labels = torch.as_tensor(labels).long()
    results = _settings(len(images), seed, num_inference_steps, jump_length, jump_n_sample, autocast_dtype)
    figures = {}
    for region in regions:
        mask = half_mask(region)
        generator = torch.Generator().manual_seed(seed)  # the same noise for every region
        t0 = time.perf_counter()
        ddpm = torch.cat([complete(unet, images[i : i + batch_size], mask, scheduler_config, num_inference_steps,
                                   jump_length, jump_n_sample, generator=generator,
                                   autocast_dtype=autocast_dtype).cpu()
                          for i in range(0, len(images), batch_size)])
        seconds = time.perf_counter() - t0
        outputs = _region_outputs(vae, images, labels, mask, ddpm)
        results["regions"][region] = {
            "n": len(images),
            "ddpm_seconds": round(seconds, 2),
            "accuracy": {k: _accuracy(classifier, v, labels) for k, v in outputs.items()},
        }
        k = min(figure_digits, len(images))
        figures[region] = completion_figure({f"{region} hidden": outputs["masked"][:k], "DDPM": ddpm[:k],
                                             "VAE": outputs["vae"][:k], "original": images[:k]})
    return results, figures


def load_vae(path_or_repo: str | os.PathLike, **hub_kwargs: Any) -> BetaVAE:
    """A released VAE (folder or Hub repo id) in eval mode, its class read from its config.json."""
    config = BetaVAE.load_config(str(path_or_repo), **hub_kwargs)
    return vae_class(config.get("_class_name")).from_pretrained(str(path_or_repo), **hub_kwargs).eval()


def run_completion_study(
    ddpm: str | os.PathLike,
    vae: str | os.PathLike,
    output_dir: str | os.PathLike,
    classifier: str | os.PathLike | None = None,
    num_digits: int = 1000,
    split: str = "official",
    bf16: bool = True,
    **study_kwargs: Any,
) -> dict[str, Any]:
    """Load the models (folders or repo ids), run `completion_study` on the first `num_digits` held-out digits of
    `split`, and write `completion.json` and `completion_<region>.png` into `output_dir`. Returns the results."""
    unet, scheduler = load_ddpm(ddpm)
    model, judge = load_vae(vae), load_digit_classifier(classifier)
    _, held_out = load_splits(split, limit=num_digits)
    t0 = time.perf_counter()
    results, figures = completion_study(
        unet,
        scheduler.config,
        model,
        judge,
        held_out.as_float(),
        held_out.labels,
        autocast_dtype=torch.bfloat16 if bf16 else None,
        **study_kwargs,
    )
    results.update(
        {
            "ddpm": str(ddpm),
            "vae": str(vae),
            "classifier": str(classifier or "release/digit-classifier"),
            "split": split,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "completion.json", results)
    for region, figure in figures.items():
        save_png(figure, out / f"completion_{region}.png")
    for region, r in results["regions"].items():
        log(
            "completion",
            f"{region} half hidden, N={r['n']}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in r["accuracy"].items())
            + f" (DDPM {r['ddpm_seconds']} s)",
        )
    return results


__all__ = [
    "METHODS",
    "REGIONS",
    "completion_figure",
    "completion_study",
    "load_vae",
    "run_completion_study",
]
