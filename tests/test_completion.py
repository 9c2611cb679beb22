"""The completion study (hub_models.study.completion, its blocks in hub_models.evaluation.completion,
scripts/completion_study.py) at tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image

from hub_models.diffusion import make_train_scheduler, save_pipeline
from hub_models.evaluation.completion import REGIONS, half_mask, vae_complete
from hub_models.models import ConvVAE, DigitClassifier
from hub_models.models.unet import unet_config

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "completion_study.py"


def test_half_masks_hide_one_half():
    for region in REGIONS:
        mask = half_mask(region)
        assert mask.shape == (28, 28) and mask.sum() == 28 * 14
    assert half_mask("top")[:14].all() and not half_mask("top")[14:].any()
    assert half_mask("right")[:, 14:].all() and not half_mask("right")[:, :14].any()
    with pytest.raises(ValueError, match="region"):
        half_mask("middle")


def test_vae_baseline_encodes_the_masked_digit_and_keeps_the_known_half():
    torch.manual_seed(0)
    vae, x, mask = ConvVAE(latent_dim=2).eval(), torch.rand(3, 1, 28, 28), half_mask("top")
    pasted, raw = vae_complete(vae, x, mask), vae_complete(vae, x, mask, paste_known=False)
    assert torch.equal(pasted[:, :, 14:], x[:, :, 14:])
    assert torch.equal(pasted[:, :, :14], raw[:, :, :14])
    assert torch.allclose(raw, vae.decode(vae.encode(x * (1 - mask))[0]))


@pytest.fixture
def tiny_models(tmp_path) -> dict[str, Path]:
    torch.manual_seed(0)
    save_pipeline(UNet2DModel(**unet_config("tiny")), make_train_scheduler(), tmp_path / "ddpm")
    ConvVAE(latent_dim=2).save_pretrained(tmp_path / "vae")
    DigitClassifier(channels=(4, 8), hidden_dim=16).save_pretrained(tmp_path / "classifier")
    return {name: tmp_path / name for name in ("ddpm", "vae", "classifier")}


def test_completion_study_script_end_to_end(tiny_mnist_cache, tiny_models, tmp_path, load_script):
    script = load_script("scripts/completion_study.py")
    out = tmp_path / "out"
    args = script.parse_args(
        [
            "--output_dir",
            str(out),
            "--ddpm",
            str(tiny_models["ddpm"]),
            "--vae",
            str(tiny_models["vae"]),
            "--classifier",
            str(tiny_models["classifier"]),
            "--num_digits",
            "4",
            "--num_inference_steps",
            "2",
            "--jump_length",
            "1",
            "--jump_n_sample",
            "2",
            "--batch_size",
            "3",
        ]
    )
    script.main(args)
    results = json.loads((out / "completion.json").read_text())
    assert results["n"] == 4 and results["jump_n_sample"] == 2 and results["split"] == "official"
    assert set(results["regions"]) == {"top", "right"}
    for region, r in results["regions"].items():
        assert set(r["accuracy"]) == {"ddpm", "vae", "vae_raw", "masked", "original"}
        assert all(0 <= v <= 1 for v in r["accuracy"].values())
        figure = Image.open(out / f"completion_{region}.png")
        assert figure.height == 4 * (28 + 4) * 3  # four rows: masked / DDPM / VAE / original
    with pytest.raises(SystemExit):
        script.parse_args(["--num_digits", "0"])
