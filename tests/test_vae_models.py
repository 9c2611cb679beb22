"""The study's two VAEs as Hub-ready models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from hub_models import ConvVAE, DenseVAE
from hub_models.models.vae import bernoulli_bce, kl_to_standard_normal

EXACT_PARAMETERS = {(ConvVAE, 2): 59_525, (ConvVAE, 4): 78_345, (DenseVAE, 2): 1_068_820, (DenseVAE, 4): 1_070_360}


@pytest.mark.parametrize(("cls", "latent_dim"), list(EXACT_PARAMETERS))
def test_exact_parameter_counts(cls, latent_dim):
    model = cls(latent_dim=latent_dim)
    assert sum(p.numel() for p in model.parameters()) == EXACT_PARAMETERS[(cls, latent_dim)]


@pytest.mark.parametrize("cls", [ConvVAE, DenseVAE])
@pytest.mark.parametrize("latent_dim", [2, 4, 7])
def test_shapes_and_ranges(cls, latent_dim):
    model = cls(latent_dim=latent_dim).eval()
    x = torch.rand(5, 1, 28, 28)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (5, latent_dim)
    out = model(x)
    assert out.sample.shape == (5, 1, 28, 28) and 0 <= out.sample.min() and out.sample.max() <= 1
    samples = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 1, 28, 28)
    assert torch.equal(samples, model.sample(3, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(model.reconstruct(x), model.decode(mean))


def test_loss_is_the_studys_bce_sum_plus_beta_kld():
    torch.manual_seed(0)
    model = ConvVAE()
    x = (torch.rand(4, 1, 28, 28) > 0.5).float()
    out = model(x)
    manual_bce = torch.nn.functional.binary_cross_entropy(out.sample, x, reduction="sum") / 4
    manual_kld = (-0.5 * torch.sum(1 + out.logvar - out.mean**2 - out.logvar.exp())) / 4
    terms = model.loss(x, beta=20.0, output=out)
    assert torch.allclose(terms.bce, manual_bce, rtol=1e-4)
    assert torch.allclose(terms.kld, manual_kld, rtol=1e-4)
    assert torch.allclose(terms.loss, manual_bce + 20.0 * manual_kld, rtol=1e-4)
    assert kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0
    assert bernoulli_bce(torch.zeros(1, 1, 28, 28), torch.ones(1, 1, 28, 28)).item() == pytest.approx(
        784 * torch.log(torch.tensor(2.0)).item(), rel=1e-5)


@pytest.mark.parametrize("cls", [ConvVAE, DenseVAE])
def test_save_and_load_round_trip_is_identical(cls, tmp_path):
    torch.manual_seed(1)
    model = cls(latent_dim=4).eval()
    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["config.json", "diffusion_pytorch_model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == cls.__name__ and config["latent_dim"] == 4
    loaded = cls.from_pretrained(tmp_path).eval()
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))


def test_mismatched_checkpoint_is_an_error(tmp_path):
    ConvVAE(latent_dim=2).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["latent_dim"] = 4
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises((ValueError, RuntimeError)):
        ConvVAE.from_pretrained(tmp_path)


def test_missing_weights_are_an_error_not_a_partial_load(tmp_path):
    ConvVAE(latent_dim=2).save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state.pop("fc_mean.weight")
    save_file(state, weights)
    with pytest.raises((ValueError, RuntimeError), match="fc_mean"):
        ConvVAE.from_pretrained(tmp_path)


def test_pickled_weights_are_never_loaded(tmp_path):
    model = ConvVAE()
    model.save_pretrained(tmp_path)
    (tmp_path / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(OSError):
        ConvVAE.from_pretrained(tmp_path)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_latent_dim(bad):
    with pytest.raises(ValueError, match="latent_dim"):
        ConvVAE(latent_dim=bad)
