"""The Space with models of other data (issue 37): a 32×32 RGB VAE, a 32×32 RGB class-conditional DDPM whose
training_config.json names its classes, and a conditional RGB VAE, beside MNIST models. They are drawn in colour
at their own shape, their pickers show their label names, user images are brought to their shape, and the
MNIST-only parts (digit classifier, Complete) leave them out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from space_fixtures import SPACE_VAE, app_error, load_app_module, png, served_space

LABELS = ["bar", "square", "cross"]
RGB_VAE, RGB_CVAE, RGB_DDPM = "rgb-vae", "rgb-cvae", "rgb-ddpm-conditional"


def _training_config(folder: Path, name: str = "you/tiny-rgb") -> None:
    dataset = {"name": name, "config_name": None, "channels": 3, "resolution": 32, "label_names": LABELS,
               "split": "study", "seed": 0, "held_out_from": "train"}
    (folder / "training_config.json").write_text(json.dumps({"dataset_name": name, "dataset": dataset}))


@pytest.fixture(scope="module")
def other_models(space_models, tmp_path_factory) -> dict[str, str]:
    """Tiny random models of 32×32 RGB data saved as the trainers lay them out, the RGB DDPM first (the default),
    then the MNIST ones."""
    from diffusers import UNet2DModel

    from hub_models import ConvVAE
    from hub_models.diffusion import make_train_scheduler, save_pipeline
    from hub_models.models.unet import unet_config

    root = tmp_path_factory.mktemp("space-other-data")
    torch.manual_seed(2)
    ConvVAE(latent_dim=2, in_channels=3, sample_size=32).save_pretrained(root / RGB_VAE)
    (root / RGB_VAE / "metrics.json").write_text(json.dumps({"model": "vae", "beta": 1.0}))
    _training_config(root / RGB_VAE)
    ConvVAE(latent_dim=2, num_classes=len(LABELS), in_channels=3, sample_size=32).save_pretrained(root / RGB_CVAE)
    _training_config(root / RGB_CVAE)
    unet = UNet2DModel(**{**unet_config("tiny"), "in_channels": 3, "out_channels": 3, "sample_size": 32,
                          "num_class_embeds": len(LABELS) + 1})
    save_pipeline(unet, make_train_scheduler(), root / RGB_DDPM)
    _training_config(root / RGB_DDPM)
    return {RGB_DDPM: str(root / RGB_DDPM), RGB_VAE: str(root / RGB_VAE), SPACE_VAE: space_models[SPACE_VAE],
            RGB_CVAE: str(root / RGB_CVAE), "ddpm": space_models["ddpm"],
            "digit-classifier": space_models["digit-classifier"]}


@pytest.fixture(scope="module")
def other_space(tiny_mnist_cache, other_models):
    with served_space(other_models, tiny_mnist_cache / "downloads", calibration_digits=64) as served:
        yield served


def _components(client) -> dict[str, dict]:
    return {c["props"]["elem_id"]: c["props"] for c in client.config["components"]
            if c.get("props", {}).get("elem_id")}


def _is_colour(image: Image.Image) -> bool:
    arr = np.asarray(image.convert("RGB")).astype(int)
    return image.mode == "RGB" and bool((np.abs(arr[..., 0] - arr[..., 1]) > 8).any())


def test_the_models_load_at_their_shape_with_their_label_names(other_space):
    demo, client = other_space
    reg = demo.registry
    assert not reg.errors
    vae, ddpm, mnist = reg.vaes[RGB_VAE], reg.ddpms[RGB_DDPM], reg.vaes[SPACE_VAE]
    assert (vae.shape, ddpm.shape, mnist.shape) == ((3, 32, 32), (3, 32, 32), (1, 28, 28))
    assert vae.label_names == ddpm.label_names == tuple(LABELS) and mnist.label_names is None
    assert not vae.mnist_like and not ddpm.mnist_like and mnist.mnist_like and reg.ddpms["ddpm"].mnist_like
    # The calibration digits are MNIST's: only the MNIST VAE is calibrated (anomaly percentile, latent map).
    assert mnist.means is not None and vae.means is None and vae.calibration is None
    header = next(c["props"]["value"] for c in client.config["components"]
                  if c.get("props", {}).get("elem_id") == "other-data")
    assert f"`{RGB_VAE}` (you/tiny-rgb, 32×32 RGB)" in header


def test_generate_draws_rgb_models_in_colour(other_space):
    _, client = other_space
    grid = png(client.predict(RGB_VAE, 4, 0, api_name="/vae_generate"))
    assert _is_colour(grid) and grid.size == (4 * (2 * 32 + 3 * 2), 4 * (2 * 32 + 3 * 2))
    grey = png(client.predict(SPACE_VAE, 4, 0, api_name="/vae_generate"))
    assert grey.mode == "L" and grey.size == (4 * (2 * 28 + 3 * 2),) * 2


def test_the_class_picker_shows_the_label_names(other_space):
    _, client = other_space
    picker = _components(client)["ddpm-digit"]
    assert picker["visible"] is True  # the default DDPM is the class-conditional RGB one
    assert [tuple(c) for c in picker["choices"]] == [("any", "any"), ("bar", "0"), ("square", "1"),
                                                      ("cross", "2"), ("every class (a row each)", "0–9 (a row each)")]
    first_status = _components(client)["ddpm-status"]["value"]
    assert "images" in first_status and "a row per class" in first_status and "digit" not in first_status
    image, status = client.predict("ddpm", 2, 4, 0, "1", 2.0, RGB_DDPM, api_name="/ddpm_generate")
    assert "4 images" in status and "class square, guidance 2" in status
    grid = png(image)
    assert grid.mode == "RGB" and grid.size == (3 * (2 * 32 + 3 * 2),) * 2
    with pytest.raises(app_error(), match="not in the list of choices"):  # three classes: 0, 1, 2
        client.predict("ddpm", 2, 4, 0, "3", 2.0, RGB_DDPM, api_name="/ddpm_generate")
    # The MNIST DDPM beside it still answers with digits.
    _, status = client.predict("ddpm", 2, 4, 0, "any", 1.0, "ddpm", api_name="/ddpm_generate")
    assert "4 digits" in status


def test_a_conditional_rgb_vae_picks_classes_by_name(other_space):
    _, client = other_space
    *_, lat_class, digit, _, grid = client.predict(RGB_CVAE, "1", api_name="/select_vae")
    assert lat_class["visible"] is True
    assert [tuple(c) for c in lat_class["choices"]] == [("bar", "0"), ("square", "1"), ("cross", "2")]
    assert png(digit).mode == "RGB" and png(grid).mode == "RGB"
    *_, lat_class, _, _, _ = client.predict(SPACE_VAE, "1", api_name="/select_vae")
    assert [tuple(c) for c in lat_class["choices"]][:2] == [("0", "0"), ("1", "1")]


def test_uploads_are_brought_to_the_models_shape(other_space, tmp_path):
    from gradio_client import handle_file

    _, client = other_space
    photo = np.zeros((48, 64, 3), dtype=np.uint8)
    photo[:, :32] = (200, 30, 30)  # a red left half, a blue right half
    photo[:, 32:] = (30, 30, 200)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    prepared, label, gallery, table = client.predict(handle_file(str(tmp_path / "photo.png")), [RGB_VAE],
                                                     api_name="/reconstruct_upload")
    shown = png(prepared)
    assert shown.size == (320, 320) and _is_colour(shown)  # center-cropped to 32×32, in colour, ×10
    arr = np.asarray(shown)
    assert arr[160, 20, 0] > 150 and arr[160, 300, 2] > 150  # the crop keeps red on the left, blue on the right
    assert len(gallery) == 1 and png(gallery[0]["image"]).mode == "RGB"
    assert "classifier" not in label and table["data"][0][0] == RGB_VAE and table["data"][0][4] == "n/a"
    # With an MNIST VAE beside it, each model gets the image at its own shape.
    _, label, gallery, _ = client.predict(handle_file(str(tmp_path / "photo.png")), [RGB_VAE, SPACE_VAE],
                                          api_name="/reconstruct_upload")
    assert [png(g["image"]).mode for g in gallery] == ["RGB", "L"] and "classifier" not in label
    # Interpolate between two images with the RGB VAE.
    editor = {"background": handle_file(str(tmp_path / "photo.png")), "layers": [],
              "composite": handle_file(str(tmp_path / "photo.png"))}
    lerp, _ = client.predict(editor, editor, RGB_VAE, 4, api_name="/interpolate")
    assert png(lerp).mode == "RGB" and png(lerp).height == 4 * (32 + 2 * 2)


def test_test_digits_go_only_to_models_of_mnist(other_space):
    """The test digits are MNIST's: in Reconstruct a model of other data alone refuses them with a clear line, and
    beside an MNIST VAE both get the digit; Interpolate's pickers refuse them for a model of other data."""
    _, client = other_space
    with pytest.raises(app_error(), match=r"test digits are MNIST's.*you/tiny-rgb.*upload or draw"):
        client.predict("7", [RGB_VAE], api_name="/reconstruct_test_digit")
    _, label, gallery, _ = client.predict("7", [RGB_VAE, SPACE_VAE], api_name="/reconstruct_test_digit")
    assert "a **7**" in label and len(gallery) == 2
    # Interpolate's pickers likewise, by the chosen model (tests/test_space_interpolate.py: a client that sends only
    # the digit gets it for the default model, as before the model was an input).
    with pytest.raises(app_error(), match=r"test digits are MNIST's.*you/tiny-rgb"):
        client.predict("7", RGB_VAE, api_name="/pick_test_digit_a")
    assert client.predict("7", SPACE_VAE, api_name="/pick_test_digit_b")["background"]


def test_complete_keeps_to_mnist_models(other_space, test_digits, tmp_path):
    from gradio_client import handle_file

    _, client = other_space
    vae_picker = next(c["props"] for c in client.config["components"]
                      if c.get("props", {}).get("label") == "VAE to compare")
    assert [name for _, name in vae_picker["choices"]] == [SPACE_VAE]
    big = Image.fromarray(test_digits.images[1].numpy()).resize((280, 280), Image.NEAREST).convert("RGBA")
    big.save(tmp_path / "digit.png")
    editor = {"background": handle_file(str(tmp_path / "digit.png")), "layers": [],
              "composite": handle_file(str(tmp_path / "digit.png"))}
    _, ddpm, _, status = client.predict(editor, "top half", "complete", 0.5, SPACE_VAE, 0, api_name="/complete")
    assert "completed 392 hidden pixels" in status and png(ddpm).size == (280, 280)
    with pytest.raises(app_error(), match=r"not in the list of choices|MNIST's 28×28 digits"):
        client.predict(editor, "top half", "complete", 0.5, RGB_VAE, 0, api_name="/complete")


def test_the_command_line_takes_repo_ids(monkeypatch):
    from hub_models.space.sources import MODELS_ENV, resolve_model_sources

    app = load_app_module()
    args = app.parse_args(["--models", "you/fashion-vae", "you/my-ddpm"])
    assert args.models == ["you/fashion-vae", "you/my-ddpm"]
    monkeypatch.setenv(MODELS_ENV, ",".join(args.models))  # what main() exports
    assert resolve_model_sources(None) == {"fashion-vae": "you/fashion-vae", "my-ddpm": "you/my-ddpm"}
    assert app.parse_args(["--models", "a=x/y,b=z/w"]).models == ["a=x/y,b=z/w"]  # the old form still works
