"""The Interpolate tab: two digits encoded, and the decodes along the straight line (lerp) or the great-circle arc
(slerp) between their latent means."""

from __future__ import annotations

import math
from typing import Any

import torch
from PIL import Image

from hub_models.figures import to_pil
from hub_models.space.checks import SpaceError, as_int
from hub_models.space.preprocess import fit_image
from hub_models.space.registry import VAEEntry, require_unconditional


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation between latents `a`, `b` `(latent_dim,)` at times `t` `(steps,)`:
    `(steps, latent_dim)`."""
    return a[None] + t[:, None] * (b - a)[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake; White 2016 for generative models): follows the arc between the two
    directions, which keeps a Gaussian prior's typical norm. Falls back to lerp for (anti)parallel vectors."""
    na, nb = a.norm(), b.norm()
    if na < 1e-8 or nb < 1e-8:
        return lerp(a, b, t)
    cos = torch.clamp(torch.dot(a / na, b / nb), -1.0, 1.0)
    theta = torch.arccos(cos)
    if theta < 1e-4 or math.pi - theta < 1e-4:
        return lerp(a, b, t)
    s = torch.sin(theta)
    return (torch.sin((1 - t) * theta) / s)[:, None] * a[None] + (torch.sin(t * theta) / s)[:, None] * b[None]


@torch.inference_mode()
def interpolate(entry: VAEEntry, xa: torch.Tensor, xb: torch.Tensor, steps: Any = 10,
                mode: str = "lerp") -> Image.Image:
    """A strip: input A, decodes along the path between the two latent means, input B."""
    require_unconditional(entry, "interpolating")
    n = as_int(steps, "The number of steps", 2, 32)
    if mode not in ("lerp", "slerp"):
        raise SpaceError(f"Unknown interpolation {mode!r}: use 'lerp' or 'slerp'.")
    xa, xb = (fit_image(x, entry.channels, entry.resolution) for x in (xa, xb))  # at the model's own shape
    means, _ = entry.model.encode(torch.cat([xa, xb]))
    path = (lerp if mode == "lerp" else slerp)(means[0], means[1], torch.linspace(0, 1, n))
    strip = torch.cat([xa, entry.model.decode(path), xb])
    return to_pil(strip, nrow=n + 2, scale=4)


__all__ = ["interpolate", "lerp", "slerp"]
