"""The VAE-as-codec measurement: the rate is the prior mass of the code's bin, distortion falls as the rate grows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from hub_models.data import load_splits
from hub_models.evaluation.compression import code_bits, png_bits_per_digit, quantise, rate_distortion
from hub_models.models import ConvVAE

RELEASE = Path(__file__).resolve().parents[1] / "release"


def test_code_bits_is_minus_log2_of_the_bin_mass_under_the_prior() -> None:
    step = 0.5
    codes = torch.tensor([[0.0, 1.5], [-3.0, 0.5]])
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = [
        sum(-math.log2(normal.cdf(torch.tensor(c + step / 2)) - normal.cdf(torch.tensor(c - step / 2))) for c in row)
        for row in codes.tolist()
    ]
    assert code_bits(codes, step).tolist() == pytest.approx(expected, rel=1e-6)
    # A far tail bin is rare, so it costs many bits; a finer grid costs more bits for the same code.
    assert code_bits(torch.tensor([[8.0]]), step).item() > 40
    assert code_bits(torch.tensor([[0.0]]), 0.1).item() > code_bits(torch.tensor([[0.0]]), 0.5).item()


def test_quantise_rounds_to_the_grid_and_refuses_a_bad_step() -> None:
    assert quantise(torch.tensor([0.26, -0.74]), 0.5).tolist() == [0.5, -0.5]
    with pytest.raises(ValueError, match="step"):
        quantise(torch.zeros(1), 0.0)


def test_a_released_vae_trades_rate_for_distortion(full_mnist_cache: Path) -> None:
    vae = ConvVAE.from_pretrained(RELEASE / "vae-conv-z2-beta1")
    _, held_out = load_splits("study", limit=200)
    points = rate_distortion(vae, held_out.images, steps=(1.0, 0.25, 0.05))
    bits = [p.bits_per_digit for p in points]
    mse = [p.mse for p in points]
    assert bits == sorted(bits) and mse[0] > mse[-1], points
    # Two latent numbers cost a few bits to tens of bits; a lossless PNG of the same digit costs hundreds.
    assert 1 < bits[0] < bits[-1] < 60
    assert png_bits_per_digit(held_out.images[:50]) > 10 * bits[-1]


def test_the_latent_autoencoder_is_measured_on_its_unit_variance_latent(full_mnist_cache: Path) -> None:
    """AutoencoderKL: codes are the scaled 4×7×7 latents (196 numbers), decoded through the real decoder."""
    from hub_models.diffusion.latent import make_autoencoder

    torch.manual_seed(0)
    ae = make_autoencoder("tiny")
    _, held_out = load_splits("study", limit=100)
    coarse, fine = rate_distortion(ae, held_out.images[:40], steps=(1.0, 0.05))
    assert coarse.bits_per_digit < fine.bits_per_digit
    # 196 unit-variance numbers: at Δ = 1 about 196 × H(N(0, 1) binned at 1) ≈ 196 × 2.1 bits.
    assert 150 < coarse.bits_per_digit < 600 and 0 < fine.mse < 1 and math.isfinite(coarse.bce)
