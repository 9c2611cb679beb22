"""A VAE as a lossy codec (the study names compression as a use): rate of the quantised latent code vs distortion.

The code of a digit is its posterior mean μ quantised to a grid of step Δ (in units of the N(0, I) prior). Its rate is
what an entropy coder driven by the prior spends on it: −log₂ P(bin) summed over the latent dimensions, the mass of
the bin under N(0, 1) (an arithmetic coder gets within ~2 bits of this per digit; we report the ideal). Distortion is
measured on the decoded bins. PNG, lossless, is the baseline a reader knows.

Latent diffusion's `AutoencoderKL` is measured the same way on its 4×7×7 latent multiplied by `scaling_factor`
(unit variance, so Δ is in the same units): its KL weight is small, so N(0, 1) is only a rough entropy model for it
and its rate is an upper bound of what a learned entropy model would spend.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image

from hub_models.diffusion.latent import decode_latents, encode_latents, latent_shape
from hub_models.models.vae import BetaVAE, bernoulli_bce

DEFAULT_STEPS = (1.0, 0.5, 0.25, 0.1, 0.05)


@dataclass
class RatePoint:
    """One quantisation step: mean bits per digit and the distortion of the decoded digits."""

    step: float
    bits_per_digit: float
    mse: float  # per pixel, pixels in [0, 1]
    psnr_db: float
    bce: float  # nats per digit, the study's reconstruction term on the quantised code


def quantise(mean: torch.Tensor, step: float) -> torch.Tensor:
    """μ rounded to the nearest multiple of `step`."""
    if not step > 0:
        raise ValueError(f"the quantisation step must be > 0, got {step}")
    return torch.round(mean / step) * step


def code_bits(codes: torch.Tensor, step: float) -> torch.Tensor:
    """Bits per digit of quantised codes `(batch, latent_dim)` under the N(0, I) prior: −Σ log₂ P(bin)."""
    normal = torch.distributions.Normal(0.0, 1.0)
    codes = codes.double()
    # The bin's mass, computed on the side of the tail where it is not a difference of two numbers close to 1.
    upper, lower = codes.abs() + step / 2, codes.abs() - step / 2
    mass = normal.cdf(-lower) - normal.cdf(-upper)
    return -(mass.clamp_min(1e-300).log() / math.log(2)).sum(1)


@torch.no_grad()
def rate_distortion(model: BetaVAE | AutoencoderKL, images: torch.Tensor, steps: tuple[float, ...] = DEFAULT_STEPS,
                    batch_size: int = 1000) -> list[RatePoint]:
    """Rate (bits per digit) and distortion of `model` as a codec, for each quantisation step.

    Args:
        model: a trained BetaVAE, or latent diffusion's AutoencoderKL.
        images: uint8 digits `(batch, 28, 28)` or floats in [0, 1] `(batch, 1, 28, 28)`.
    """
    x = images.float().div(255).unsqueeze(1) if images.dtype == torch.uint8 else images.float()
    model.eval()
    if isinstance(model, AutoencoderKL):
        means = encode_latents(model, x, batch_size).flatten(1)
    else:
        means = torch.cat([model.encode(chunk)[0] for chunk in x.split(batch_size)])
    points = []
    for step in steps:
        codes = quantise(means, step)
        logits = torch.cat([_decode_logits(model, chunk) for chunk in codes.split(batch_size)])
        mse = (torch.sigmoid(logits) - x).pow(2).mean().item()
        points.append(RatePoint(
            step=step,
            bits_per_digit=code_bits(codes, step).mean().item(),
            mse=mse,
            psnr_db=10 * math.log10(1.0 / mse) if mse > 0 else math.inf,
            bce=bernoulli_bce(logits, x).mean().item(),
        ))
    return points


def _decode_logits(model: BetaVAE | AutoencoderKL, codes: torch.Tensor) -> torch.Tensor:
    """Pixel logits of flat codes: a VAE's decoder logits; for the autoencoder, the logit of its [0, 1] output
    (clamped to [1e-6, 1 − 1e-6]: its decoder is not a Bernoulli model, so BCE on it is only indicative)."""
    if not isinstance(model, AutoencoderKL):
        return model.decode_logits(codes)
    probs = decode_latents(model, codes.view(len(codes), *latent_shape(model))).clamp(1e-6, 1 - 1e-6)
    return torch.logit(probs)


def png_bits_per_digit(images: torch.Tensor) -> float:
    """Mean size of each uint8 digit `(batch, 28, 28)` as an optimised greyscale PNG, in bits (lossless)."""
    sizes = []
    for digit in images.numpy().astype(np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(digit, mode="L").save(buffer, format="PNG", optimize=True)
        sizes.append(buffer.tell() * 8)
    return float(np.mean(sizes))


def as_rows(points: list[RatePoint]) -> list[dict[str, float]]:
    return [asdict(p) for p in points]


__all__ = ["DEFAULT_STEPS", "RatePoint", "as_rows", "code_bits", "png_bits_per_digit", "quantise", "rate_distortion"]
