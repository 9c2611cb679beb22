"""The Complete tab: the hidden part of a digit filled in by the DDPM (RePaint) and by a VAE, or a noised digit
denoised from a chosen step."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from hub_models.diffusion.inpainting import (
    DEFAULT_COMPLETION_STEPS,
    DEFAULT_DENOISE_STEPS,
    DEFAULT_JUMP_LENGTH,
    DEFAULT_JUMP_N_SAMPLE,
    complete,
    denoise,
)
from hub_models.diffusion.sampling import num_classes
from hub_models.evaluation.completion import half_mask, vae_complete
from hub_models.figures import to_pil
from hub_models.space.checks import SpaceError, as_float, as_int, as_seed, shown
from hub_models.space.diffusion import ANY_DIGIT, on_device
from hub_models.space.reconstruct import DIGIT_SCALE
from hub_models.space.registry import DDPMEntry, Registry, VAEEntry, classify, mnist_ddpm, mnist_vaes

HIDE_CHOICES = ("top half", "right half", "bottom half", "left half", "red paint only")
DEFAULT_HIDE = "top half"
COMPLETE_MODES = ("complete", "denoise")
DEFAULT_NOISE_LEVEL = 0.5  # a share of the T forward steps


def completion_mask(hide: Any, painted: torch.Tensor | None = None) -> torch.Tensor:
    """The pixels to complete `(28, 28)`: the chosen half (unless "red paint only") and the painted ones."""
    if not isinstance(hide, str) or hide not in HIDE_CHOICES:
        raise SpaceError(f"Unknown part to hide {shown(hide)}: choose one of {', '.join(HIDE_CHOICES)}.")
    mask = torch.zeros(28, 28) if hide == "red paint only" else half_mask(hide.split()[0])
    if painted is not None:
        mask = torch.maximum(mask, painted)
    if not mask.any():
        raise SpaceError("Nothing to complete: paint the part to complete in red, or choose a half to hide.")
    return mask


def _masked_view(x: torch.Tensor, mask: torch.Tensor) -> Image.Image:
    """The input as the DDPM sees it: the hidden pixels in dark red."""
    grey = x[0, 0].clamp(0, 1)
    rgb = torch.stack([grey, grey, grey], -1)
    rgb[mask.bool()] = torch.tensor([0.45, 0.08, 0.08])
    im = Image.fromarray((rgb.numpy() * 255).round().astype(np.uint8), mode="RGB")
    return im.resize((28 * DIGIT_SCALE, 28 * DIGIT_SCALE), Image.NEAREST)


def _digit_image(x: torch.Tensor) -> Image.Image:
    return to_pil(x, nrow=1, padding=0, scale=DIGIT_SCALE)


def _guide_labels(entry: DDPMEntry, digit: Any) -> list[int] | None:
    """The class label a class-conditional DDPM is guided to (`[d]`), or None for "any"."""
    if digit is None or (isinstance(digit, str) and digit.strip().lower() in ("", ANY_DIGIT)):
        return None
    if not entry.conditional:
        raise SpaceError("This DDPM is unconditional: it cannot be guided towards a digit (choose 'any').")
    if isinstance(digit, bool):
        raise SpaceError("The digit must be a whole number 0–9 or 'any'.")
    return [as_int(digit, "The digit", 0, num_classes(entry.unet) - 1)]


def _compare_vae(reg: Registry, vae_name: Any) -> VAEEntry | None:
    """The VAE shown beside the DDPM: the one named (unconditional, of MNIST's digits), else the first such one."""
    vaes = mnist_vaes(reg)
    if vae_name in (None, ""):
        return reg.vaes[vaes[0]] if vaes else None
    vae = reg.vae(vae_name)
    if vae.conditional:
        raise SpaceError(f"{vae.name} is a conditional VAE: choose one of {', '.join(vaes)} to compare with.")
    if not vae.mnist_like:
        raise SpaceError(f"{vae.name} draws {vae.resolution}×{vae.resolution} images of other data: Complete works "
                         f"on MNIST's 28×28 digits (choose one of {', '.join(vaes) or 'no loaded VAE'}).")
    return vae


def completion_ddpm(reg: Registry) -> DDPMEntry:
    """The DDPM that completes: the default one, or the first of MNIST's digits when the default draws other
    images (the canvas, halves and test digits are MNIST's)."""
    entry = reg.require_ddpm()
    if entry.mnist_like:
        return entry
    found = mnist_ddpm(reg)
    if found is None:
        raise SpaceError("Complete works on MNIST's 28×28 digits: none of the loaded DDPMs draws them.")
    return found


def complete_digit(reg: Registry, x: torch.Tensor, painted: torch.Tensor | None = None, hide: Any = DEFAULT_HIDE,
                   mode: Any = "complete", level: Any = DEFAULT_NOISE_LEVEL, vae_name: Any = None,
                   digit: Any = ANY_DIGIT, seed: Any = 0, device: torch.device | str | None = None
                   ) -> tuple[Image.Image, Image.Image, Image.Image | None, str]:
    """(input as the DDPM sees it, DDPM result, VAE result, status) for a prepared digit `(1, 1, 28, 28)`.

    `mode` "complete": the hidden pixels (`hide` and the red `painted` mask) are filled in by the DDPM (RePaint)
    and by the VAE (decode of the masked digit's posterior mean, known pixels pasted back). "denoise": the digit is
    noised for `level`·T forward steps, then the DDPM denoises it from there; the VAE reconstructs the noisy digit.
    `digit` guides a class-conditional DDPM (classifier-free guidance at the default scale)."""
    entry = completion_ddpm(reg)
    if not isinstance(mode, str) or mode not in COMPLETE_MODES:
        raise SpaceError(f"Unknown mode {str(mode)[:40]!r}: choose 'complete' or 'denoise'.")
    if not torch.isfinite(x).all():
        raise SpaceError("The digit contains NaN values.")
    seed = as_seed(seed)
    labels = _guide_labels(entry, digit)
    vae = _compare_vae(reg, vae_name)
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    if mode == "complete":
        mask = completion_mask(hide, painted)
        with on_device(entry, device) as unet:
            out = complete(unet, x, mask, entry.scheduler_config, DEFAULT_COMPLETION_STEPS, DEFAULT_JUMP_LENGTH,
                           DEFAULT_JUMP_N_SAMPLE, generator=generator, class_labels=labels).cpu()
        view = _masked_view(x, mask)
        with torch.inference_mode():
            vae_out = None if vae is None else vae_complete(vae.model, x, mask)
        what = (f"completed {int(mask.sum())} hidden pixels: RePaint, {DEFAULT_COMPLETION_STEPS} DDPM steps, "
                f"jumps of {DEFAULT_JUMP_LENGTH} × {DEFAULT_JUMP_N_SAMPLE}")
    else:
        total = int(entry.scheduler_config.get("num_train_timesteps", 1000))
        t = round(as_float(level, "The noise level", 0, 1) * total)
        with on_device(entry, device) as unet:
            noisy, out = denoise(unet, x, t, entry.scheduler_config, DEFAULT_DENOISE_STEPS, generator=generator,
                                 class_labels=labels)
        noisy, out = noisy.cpu(), out.cpu()
        view = _digit_image(noisy)
        with torch.inference_mode():
            vae_out = None if vae is None else vae.model.decode(vae.model.encode(noisy)[0])
        what = f"noised for {t} of {total} steps, then denoised from there ({min(t, DEFAULT_DENOISE_STEPS)} steps)"
    guess = classify(reg, out)
    read = "" if guess is None else f" · the classifier reads the DDPM's digit as **{guess[0]}** ({guess[1]:.0%})"
    status = f"{what}, seed {seed}{'' if labels is None else f', guided to {labels[0]}'} " \
             f"({time.perf_counter() - t0:.2f} s){read}"
    if vae is not None:
        status += f" · VAE: {vae.name}"
    return view, _digit_image(out), None if vae_out is None else _digit_image(vae_out), status


__all__ = ["COMPLETE_MODES", "DEFAULT_HIDE", "DEFAULT_NOISE_LEVEL", "HIDE_CHOICES", "complete_digit",
           "completion_ddpm", "completion_mask"]
