"""The conditional VAE (`num_classes > 0`): released configs unchanged, labels in every method, clear errors, and
`train_vae.py --conditional` end to end on the tiny MNIST copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hub_models import ConvVAE, DenseVAE
from hub_models.hub import load
from hub_models.hub.cards import render_model_card
from hub_models.hub.naming import vae_run_name
from hub_models.hub.push import repo_name_for_run
from hub_models.training.vae import style_grid

REPO = Path(__file__).resolve().parents[1]
RELEASED = REPO / "release" / "vae-conv-z2-beta1"


@pytest.fixture(params=[ConvVAE, DenseVAE], ids=["conv", "dense"])
def cvae(request) -> ConvVAE | DenseVAE:
    torch.manual_seed(0)
    return request.param(latent_dim=2, num_classes=10).eval()


def test_a_released_config_loads_as_the_unconditional_model_it_was():
    config = json.loads((RELEASED / "config.json").read_text())
    assert "num_classes" not in config
    vae = ConvVAE.from_pretrained(RELEASED).eval()
    assert vae.num_classes == 0 and not vae.is_conditional and vae.num_parameters() == 59_525
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    # The unconditional path is the study's decoder on z itself: nothing concatenated, the same operations.
    assert torch.equal(vae.decode(z), torch.sigmoid(vae.decoder(vae.decoder_input(z))))
    with pytest.raises(ValueError, match="unconditional"):
        vae.sample(2, labels=3)


def test_labels_condition_the_decoder_and_the_encoder(cvae):
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    z = torch.zeros(1, 2)
    as_one, as_seven = cvae.decode(z, [1]), cvae.decode(z, torch.tensor([7]))
    assert as_one.shape == (1, 1, 28, 28) and not torch.equal(as_one, as_seven)
    assert not torch.equal(cvae.encode(x, 1)[0], cvae.encode(x, 2)[0])
    out = cvae(x, [0, 1, 2], generator=torch.Generator().manual_seed(0))
    assert out.sample.shape == (3, 1, 28, 28) and out.mean.shape == (3, 2)
    assert torch.isfinite(cvae.loss(x, labels=[0, 1, 2]).loss)
    # One label for the whole batch is repeated; sample draws the same z whatever the label.
    a = cvae.sample(4, generator=torch.Generator().manual_seed(5), labels=3)
    b = cvae.sample(4, generator=torch.Generator().manual_seed(5), labels=[3, 3, 3, 3])
    assert torch.equal(a, b) and a.shape == (4, 1, 28, 28)
    grid = style_grid(cvae, rows=2, generator=torch.Generator().manual_seed(0))
    assert grid.shape == (20, 1, 28, 28)


@pytest.mark.parametrize(
    "labels, message",
    [
        (None, "conditional .*pass labels"),
        ([0, 10, 1], r"digits 0–9, got \[10\]"),
        ([-1, 0, 0], r"got \[-1\]"),
        ([0, 1], "2 labels for a batch of 3"),
        ([0.5, 1, 2], "whole numbers"),
        ("seven", "whole numbers|digits"),
        ([[1, 2, 3]], "1-D"),
    ],
)
def test_bad_labels_are_one_clear_value_error(cvae, labels, message):
    x = torch.rand(3, 1, 28, 28)
    with pytest.raises(ValueError, match=message):
        cvae(x, labels)
    with pytest.raises(ValueError, match=message):
        cvae.decode(torch.zeros(3, 2), labels)


def test_a_bad_num_classes_is_refused():
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="num_classes"):
            ConvVAE(num_classes=bad)


def test_a_conditional_model_round_trips_and_loads_by_path(cvae, tmp_path):
    cvae.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["num_classes"] == 10
    again = load(tmp_path)
    assert type(again) is type(cvae) and again.is_conditional
    z = torch.randn(2, 2)
    assert torch.equal(again.decode(z, [4, 5]), cvae.decode(z, [4, 5]))


def test_train_vae_conditional_writes_the_class_accuracy_and_the_style_grid(tiny_mnist_cache, tmp_path, load_script):
    script = load_script("training/train_vae.py")
    out = tmp_path / "cvae"
    args = script.parse_args(
        [
            "--conditional",
            "--max_train_steps",
            "4",
            "--batch_size",
            "32",
            "--logger",
            "none",
            "--num_figure_samples",
            "10",
            "--class_accuracy_samples",
            "3",
            "--output_dir",
            str(out),
        ]
    )
    metrics = script.VAETrainer.main(args)
    assert metrics["parameters"] == ConvVAE(num_classes=10).num_parameters()
    accuracy = metrics["conditional"]
    assert accuracy["n"] == 30 and len(accuracy["accuracy_by_class"]) == 10 and 0 <= accuracy["accuracy"] <= 1
    for name in ("samples", "style_grid", "reconstructions", "latent_scatter"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert not (out / "figures" / "manifold.png").exists()
    model = ConvVAE.from_pretrained(out)
    assert model.is_conditional and json.loads((out / "training_config.json").read_text())["conditional"]
    # Its model card says so: the snippet passes labels, the class accuracy is listed, the grid is captioned.
    card = render_model_card(out, "you/mnist-genlab-vae-conv-z2-beta1-conditional")
    assert "conditional-vae" in card.data.tags and "Conditional VAE" in card.text
    assert "labels=labels" in card.text and "reads as the requested class" in card.text
    assert "Digit × style" in card.text and "Unconditional: the digit class cannot be chosen" not in card.text


def test_conditional_runs_get_their_own_repo_names(tmp_path):
    """A conditional VAE (or class-conditional DDPM) must not take the unconditional model's repo on the Hub."""
    assert vae_run_name("conv", 2, 1.0, conditional=True) == "vae-conv-z2-beta1-conditional"
    assert repo_name_for_run(REPO / "release" / "vae-conv-z2-beta1-conditional") == (
        "mnist-genlab-vae-conv-z2-beta1-conditional")
    assert repo_name_for_run(REPO / "release" / "vae-conv-z2-beta1") == "mnist-genlab-vae-conv-z2-beta1"
    (tmp_path / "unet").mkdir()
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "ClassConditionalDDPMPipeline"}))
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"num_class_embeds": 11}))
    assert repo_name_for_run(tmp_path) == "mnist-genlab-ddpm-conditional"
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"num_class_embeds": None}))
    assert repo_name_for_run(tmp_path) == "mnist-genlab-ddpm"


def test_the_space_loads_the_released_conditional_vae_as_conditional():
    """The Space's latent explorer takes a digit for a conditional VAE (tests/test_space.py drives it)."""
    from hub_models.space.sources import load_registry

    reg = load_registry({"cvae": str(REPO / "release" / "vae-conv-z2-beta1-conditional")}, calibration_digits=0)
    assert not reg.errors and reg.vaes["cvae"].model.is_conditional
