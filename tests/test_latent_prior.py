"""The latent diffusion prior (two-stage VAE): the MLP denoiser, its schedule and samplers, its folder, and
`train_latent_prior.py` end to end on a tiny VAE and the tiny MNIST copy."""

from __future__ import annotations

import json

import pytest
import torch

from hub_models import ConvVAE
from hub_models.diffusion.latent_prior import (
    latent_prior_loss,
    load_latent_prior,
    make_latent_train_scheduler,
    sample_latents,
    save_latent_prior,
)
from hub_models.models import LatentPrior
from hub_models.models.registry import kind_of, model_class


def tiny_prior(latent_dim: int = 2) -> LatentPrior:
    torch.manual_seed(0)
    return LatentPrior(latent_dim=latent_dim, hidden_dim=16, num_blocks=1, time_embed_dim=8)


def test_the_denoiser_takes_scalar_and_batched_timesteps():
    prior = tiny_prior(4)
    x = torch.randn(5, 4)
    a = prior(x, 10).sample
    b = prior(x, torch.full((5,), 10)).sample
    assert a.shape == (5, 4) and torch.equal(a, b)
    assert model_class("LatentPrior") is LatentPrior and kind_of("LatentPrior") == "latent-prior"
    with pytest.raises(ValueError, match="latent_dim"):
        LatentPrior(latent_dim=0)


def _fit(prediction_type: str) -> tuple[LatentPrior, object]:
    """300 updates of a tiny prior on latents N((3, -2), diag(0.25, 4))."""
    prior = tiny_prior()
    target = torch.randn(4096, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.5, 2.0])
    target = target + torch.tensor([3.0, -2.0])
    prior.set_latent_stats(target)
    scheduler = make_latent_train_scheduler(100, prediction_type)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        batch = target[torch.randint(0, len(target), (256,), generator=generator)]
        loss = latent_prior_loss(prior, scheduler, batch, generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return prior, scheduler


def _close_to_target(z: torch.Tensor) -> bool:
    return bool(
        torch.allclose(z.mean(0), torch.tensor([3.0, -2.0]), atol=0.3)
        and torch.allclose(z.std(0), torch.tensor([0.5, 2.0]), rtol=0.3)
    )


def test_a_v_prior_fits_a_shifted_latent_distribution_with_every_sampler():
    """The samples land on the training latents (standardisation undone), deterministic for a seed."""
    prior, scheduler = _fit("v_prediction")
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2" and not scheduler.config.clip_sample
    for sampler in ("ddpm", "ddim", "dpmsolver++", "unipc"):
        z = sample_latents(prior, scheduler, sampler, 20, 2000, torch.Generator().manual_seed(0))
        assert z.shape == (2000, 2) and torch.isfinite(z).all()
        assert _close_to_target(z), (sampler, z.mean(0), z.std(0))
    a = sample_latents(prior, scheduler, "ddpm", 20, 100, torch.Generator().manual_seed(0))
    assert torch.equal(a, sample_latents(prior, scheduler, "ddpm", 20, 100, torch.Generator().manual_seed(0)))


def test_an_epsilon_prior_needs_its_x0_clipping():
    """ε-prediction divides its error by √ᾱ_t near t = T: the DDPM sampler works only with x0 clipped (±5σ)."""
    prior, scheduler = _fit("epsilon")
    assert scheduler.config.clip_sample and scheduler.config.clip_sample_range == 5.0
    assert _close_to_target(sample_latents(prior, scheduler, "ddpm", 20, 2000, torch.Generator().manual_seed(0)))
    unclipped = {**scheduler.config, "clip_sample": False}
    z = sample_latents(prior, unclipped, "ddpm", 20, 2000, torch.Generator().manual_seed(0))
    assert z.std(0).max() > 10  # what v-prediction avoids
    with pytest.raises(ValueError, match="prediction_type"):
        make_latent_train_scheduler(100, "sample")


def test_a_prior_folder_round_trips_with_its_statistics_and_scheduler(tmp_path):
    prior = tiny_prior(4)
    prior.set_latent_stats(torch.randn(100, 4) * 3 + 1)
    save_latent_prior(prior, make_latent_train_scheduler(), tmp_path)
    loaded, scheduler = load_latent_prior(tmp_path)
    assert torch.equal(loaded.latent_mean, prior.latent_mean) and torch.equal(loaded.latent_std, prior.latent_std)
    assert scheduler.config.num_train_timesteps == 1000
    assert (tmp_path / "scheduler" / "scheduler_config.json").is_file()
    x = torch.randn(3, 4)
    assert torch.equal(loaded(x, 5).sample, prior.eval()(x, 5).sample)
    assert LatentPrior.from_pretrained(tmp_path).config.latent_dim == 4


def test_train_latent_prior_writes_a_loadable_prior(tiny_mnist_cache, tmp_path, load_script):
    vae_dir = tmp_path / "vae"
    torch.manual_seed(0)
    ConvVAE(latent_dim=2, hidden_channels=(4, 8)).save_pretrained(vae_dir)
    script = load_script("training/train_latent_prior.py")
    out = tmp_path / "prior"
    args = script.parse_args(
        [
            "--vae_name_or_path",
            str(vae_dir),
            "--hidden_dim",
            "16",
            "--num_blocks",
            "1",
            "--max_train_steps",
            "3",
            "--batch_size",
            "64",
            "--logger",
            "none",
            "--sample_steps",
            "4",
            "--num_figure_samples",
            "8",
            "--classifier_samples",
            "8",
            "--fid_reference_n",
            "50",
            "--output_dir",
            str(out),
        ]
    )
    metrics = script.LatentPriorTrainer.main(args)
    assert metrics["global_step"] == 3 and metrics["vae"] == str(vae_dir) and "prior_samples" not in metrics
    standard, learned = metrics["prior_samples_classifier"]  # the same N, seed and reference; no Inception
    assert (standard["prior"], learned["prior"], learned["sampler"], learned["steps"]) == (
        "N(0, I)",
        "learned",
        "ddpm",
        4,
    )
    assert standard["classifier"]["n"] == learned["classifier"]["n"] == 8 and "fid" not in learned
    assert json.loads((out / "metrics.json").read_text())["test_loss"] == pytest.approx(metrics["test_loss"])
    prior, _ = load_latent_prior(out)
    assert prior.config.vae_name_or_path == str(vae_dir) and prior.config.latent_dim == 2
    for name in ("samples", "samples_standard_normal", "prior_samples_latent"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0


def test_a_conditional_vae_is_refused_with_one_line(tiny_mnist_cache, tmp_path, load_script):
    vae_dir = tmp_path / "cvae"
    ConvVAE(latent_dim=2, hidden_channels=(4, 8), num_classes=10).save_pretrained(vae_dir)
    script = load_script("training/train_latent_prior.py")
    args = script.parse_args(
        [
            "--vae_name_or_path",
            str(vae_dir),
            "--max_train_steps",
            "1",
            "--logger",
            "none",
            "--output_dir",
            str(tmp_path / "prior"),
        ]
    )
    with pytest.raises(ValueError, match="conditional VAE"):
        script.LatentPriorTrainer.main(args)
