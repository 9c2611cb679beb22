"""Checking the values that arrive from the UI or the API: each bad one becomes a `SpaceError` with a message to
show the user as is. Also the grid sizes every tab shares."""

from __future__ import annotations

import math
from typing import Any

import torch

MAX_LATENT_ABS = 50.0  # beyond this a decoder only extrapolates; API values are clamped to it
MAX_IMAGES = 64
DEFAULT_COUNT = 16  # digits per grid, VAE and DDPM alike
MAX_PER_DIGIT = 6  # a row per digit: about `count` digits in all, 1–6 per row


class SpaceError(ValueError):
    """A problem to show to the user as is (bad value, missing model, ...)."""


def as_float(value: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SpaceError(f"{what} must be a number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(x):
        raise SpaceError(f"{what} must be a finite number, got {x}.")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise SpaceError(f"{what} must be between {lo:g} and {hi:g}, got {x:g}.")
    return x


def as_int(value: Any, what: str, lo: int, hi: int) -> int:
    x = as_float(value, what, lo, hi)
    if x != int(x):
        raise SpaceError(f"{what} must be a whole number, got {x:g}.")
    return int(x)


def as_seed(value: Any) -> int:
    if value is None or value == "":
        return 0
    return as_int(value, "The seed", 0, 2**63 - 1)


def as_latent(values: list[Any], latent_dim: int) -> torch.Tensor:
    """The first `latent_dim` slider values as a `(1, latent_dim)` tensor; missing ones are 0."""
    z = [as_float(v, f"z{i + 1}", -MAX_LATENT_ABS, MAX_LATENT_ABS) for i, v in enumerate(list(values)[:latent_dim])]
    z += [0.0] * (latent_dim - len(z))
    return torch.tensor([z], dtype=torch.float32)


def grid_columns(n: int) -> int:
    return max(1, min(8, math.ceil(math.sqrt(n))))


def shown(value: Any) -> str:
    """`repr(value)`, cut to 60 characters: an error message never echoes a huge value."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


__all__ = ["DEFAULT_COUNT", "MAX_IMAGES", "MAX_LATENT_ABS", "MAX_PER_DIGIT", "SpaceError", "as_float", "as_int",
           "as_latent", "as_seed", "grid_columns", "shown"]
