"""Digit completion's building blocks, shared by the completion study (`hub_models.study.completion`) and the
Space: the half masks and the VAE baseline (encode the masked digit, decode its posterior mean, paste the known
pixels back).
"""

from __future__ import annotations

import torch

from hub_models.models.vae import BetaVAE

REGIONS = ("top", "right", "bottom", "left")


def half_mask(region: str, size: int = 28) -> torch.Tensor:
    """A `(size, size)` mask with 1 (to complete) on the `region` half of the digit: top, right, bottom or left."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}: choose one of {', '.join(REGIONS)}")
    m = torch.zeros(size, size)
    half = size // 2
    {"top": m[:half], "bottom": m[half:], "left": m[:, :half], "right": m[:, half:]}[region].fill_(1)
    return m


@torch.no_grad()
def vae_complete(
    vae: BetaVAE, images: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None = None, paste_known: bool = True
) -> torch.Tensor:
    """The VAE baseline: decode(μ(masked input)), hidden pixels given as 0; with `paste_known` the known pixels
    are the original's. `labels` for a conditional VAE (its decode needs the digit)."""
    masked = images * (1 - mask)
    kwargs = {"labels": labels} if getattr(vae, "is_conditional", False) else {}
    mean, _ = vae.encode(masked, **kwargs)
    decoded = vae.decode(mean, **kwargs)
    return mask * decoded + (1 - mask) * images if paste_known else decoded


__all__ = ["REGIONS", "half_mask", "vae_complete"]
