"""Digit completion (RePaint) and denoising with our DDPM loop (hub_models.diffusion.inpainting), on tiny UNets."""

from __future__ import annotations

import itertools

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from hub_models.diffusion import make_scheduler, make_train_scheduler
from hub_models.diffusion.inpainting import complete, denoise, denoise_timesteps, repaint_schedule
from hub_models.models.unet import unet_config


@pytest.fixture(scope="module")
def unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(**unet_config("tiny")).eval()


@pytest.fixture(scope="module")
def cond_unet() -> UNet2DModel:
    torch.manual_seed(1)
    return UNet2DModel(**{**unet_config("tiny"), "num_class_embeds": 11}).eval()


@pytest.fixture(scope="module")
def config():
    return make_train_scheduler().config


def digits(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(3))


def top_half() -> torch.Tensor:
    mask = torch.zeros(28, 28)
    mask[:14] = 1
    return mask


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_repaint_schedule_walks_down_with_jumps_back_up():
    walk = repaint_schedule(10, jump_length=5, jump_n_sample=2)
    assert walk[0] == 9 and walk[-1] == -1
    assert all(abs(b - a) == 1 for a, b in itertools.pairwise(walk))  # one step at a time
    denoising_steps = sum(b < a for a, b in itertools.pairwise(walk))
    assert denoising_steps == 10 + 5  # one jump point (state 0), 5 states back up and down again
    assert repaint_schedule(6, 1, 1) == [5, 4, 3, 2, 1, 0, -1]  # r = 1: no resampling
    calls = sum(b < a for a, b in itertools.pairwise(repaint_schedule(25, 5, 2)))
    assert calls == 45  # the documented default cost
    with pytest.raises(ValueError, match="jump_length"):
        repaint_schedule(10, 0, 2)


def test_complete_keeps_known_pixels_exactly_and_fills_the_rest(unet, config):
    x, mask = digits(), top_half()
    out = complete(unet, x, mask, config, num_inference_steps=4, jump_length=2, jump_n_sample=2, generator=gen())
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[:, :, 14:], x[:, :, 14:])  # known: the input, bit for bit
    assert (out[:, :, :14] - x[:, :, :14]).abs().mean() > 0.05  # unknown: generated, not copied
    again = complete(unet, x, mask, config, num_inference_steps=4, jump_length=2, jump_n_sample=2, generator=gen())
    assert torch.equal(out, again)  # seeded
    # One mask per image, bf16 autocast, a single (28, 28) digit.
    masks = torch.stack([top_half(), top_half().T])[:, None]
    out = complete(unet, x, masks, config, num_inference_steps=3, jump_n_sample=1, autocast_dtype=torch.bfloat16)
    assert torch.equal(out[1, :, :, 14:], x[1, :, :, 14:])
    assert complete(unet, x[0, 0], mask, config, num_inference_steps=2).shape == (1, 1, 28, 28)


def test_full_mask_is_a_plain_sample(unet, config):
    out = complete(unet, digits(1), torch.ones(28, 28), config, num_inference_steps=3, generator=gen())
    assert out.shape == (1, 1, 28, 28)


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.zeros(28, 28), "no pixel to complete"),
        (torch.full((28, 28), 0.5), "only 0"),
        (torch.ones(14, 28), "shape"),
        (torch.ones(3, 1, 28, 28), "shape"),
        (torch.full((28, 28), float("nan")), "only 0"),
        ("top", "mask must be"),
    ],
)
def test_bad_masks_raise(unet, config, mask, match):
    with pytest.raises(ValueError, match=match):
        complete(unet, digits(), mask, config, num_inference_steps=2)


def test_bad_images_and_settings_raise(unet, cond_unet, config):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        complete(unet, digits() * 3, top_half(), config)
    with pytest.raises(ValueError, match="shape"):
        complete(unet, torch.rand(2, 3, 28, 28), top_half(), config)
    with pytest.raises(ValueError, match="NaN"):
        complete(unet, torch.full((28, 28), float("nan")), top_half(), config)
    with pytest.raises(ValueError, match="DDPMScheduler"):
        complete(unet, digits(), top_half(), config, sampler=make_scheduler("ddim", config))
    assert not isinstance(make_scheduler("ddpm", config), DDIMScheduler)
    with pytest.raises(ValueError, match="unconditional"):
        complete(unet, digits(), top_half(), config, class_labels=3)
    with pytest.raises(ValueError, match="timestep"):
        denoise(unet, digits(), 4001, config)
    with pytest.raises(ValueError, match="digits 0"):
        complete(cond_unet, digits(), top_half(), config, class_labels=[3, 12])


def test_conditional_completion_with_guidance(cond_unet, config):
    x = digits()
    out = complete(
        cond_unet,
        x,
        top_half(),
        config,
        num_inference_steps=3,
        jump_n_sample=1,
        class_labels=[1, 7],
        guidance_scale=2.0,
        generator=gen(),
    )
    assert torch.equal(out[:, :, 14:], x[:, :, 14:])
    unguided = complete(cond_unet, x, top_half(), config, num_inference_steps=3, jump_n_sample=1, generator=gen())
    assert not torch.equal(out, unguided)


def test_denoise_from_zero_returns_the_input_and_from_t_denoises(unet, config):
    x = digits()
    noisy, clean = denoise(unet, x, 0, config)
    assert torch.equal(noisy, x) and torch.equal(clean, x)
    noisy, clean = denoise(unet, x, 800, config, num_inference_steps=4, generator=gen())
    assert noisy.shape == clean.shape == x.shape
    assert (noisy - x).abs().mean() > 0.05 and not torch.equal(clean, noisy)
    assert denoise_timesteps(4000, 10) == list(range(3999, 0, -400))  # trailing: starts at the last timestep
    assert denoise_timesteps(3, 10) == [2, 1, 0]  # never more steps than the noise took
