"""The Complete tab (spaces_app/tabs/complete.py, `hub_models.space.completion`): RePaint completion of a hidden
half or painted part, denoising from a chosen level, and the messages of bad values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from space_fixtures import SPACE_VAE, app_error, png


def _editor_file(tmp_path: Path, image: Image.Image, name: str) -> dict:
    from gradio_client import handle_file

    image.save(tmp_path / name)
    return {"background": handle_file(str(tmp_path / name)), "layers": [],
            "composite": handle_file(str(tmp_path / name))}


def test_complete_and_denoise_endpoints(space, test_digits, tmp_path):
    _, client = space
    digit = test_digits.images[1].numpy()
    big = Image.fromarray(digit).resize((280, 280), Image.NEAREST).convert("RGBA")
    editor = _editor_file(tmp_path, big, "digit.png")
    shown, ddpm, vae, status = client.predict(editor, "top half", "complete", 0.5, SPACE_VAE, 0, api_name="/complete")
    assert "completed 392 hidden pixels" in status and SPACE_VAE in status
    out, original = np.asarray(png(ddpm)), np.asarray(big.convert("L"))
    assert out.shape == (280, 280) and png(vae).size == (280, 280)
    assert np.abs(out[140:].astype(int) - original[140:]).max() <= 1  # the known half, kept
    assert np.abs(out[:140].astype(int) - original[:140]).mean() > 5  # the hidden half, generated
    assert np.asarray(png(shown).convert("RGB"))[0, 0].tolist() == [115, 20, 20]  # hidden: shown in red
    # Red paint only: the painted corner is completed, everything else kept.
    painted = big.copy()
    painted.paste((255, 0, 0, 255), (0, 0, 140, 140))
    _, ddpm, _, status = client.predict(_editor_file(tmp_path, painted, "painted.png"), "red paint only",
                                        "complete", 0.5, SPACE_VAE, 0, api_name="/complete")
    out = np.asarray(png(ddpm)).astype(int)
    assert "completed 196 hidden pixels" in status
    assert np.abs(out[140:] - original[140:]).max() <= 1 and np.abs(out[:140, 140:] - original[:140, 140:]).max() <= 1
    # Denoise: level 0 gives the digit back; a level adds noise and takes it away again.
    _, ddpm, _, status = client.predict(editor, "top half", "denoise", 0, SPACE_VAE, 0, api_name="/complete")
    assert np.abs(np.asarray(png(ddpm)).astype(int) - original).max() <= 1 and "noised for 0 of 4000" in status
    noisy, ddpm, vae, status = client.predict(editor, "top half", "denoise", 0.3, SPACE_VAE, 0, api_name="/complete")
    assert "noised for 1200 of 4000 steps" in status
    assert np.abs(np.asarray(png(noisy)).astype(int) - original).mean() > 5
    # A test digit picked into the editor.
    picked = client.predict("5", api_name="/pick_test_digit_complete")
    assert picked["composite"]


def test_complete_refuses_bad_values_with_a_message(space, tmp_path):
    _, client = space
    blank = _editor_file(tmp_path, Image.new("RGBA", (280, 280), (0, 0, 0, 255)), "blank.png")
    for args, message in [(("middle", "complete", 0.5, SPACE_VAE, 0), "Unknown part to hide"),
                          (("red paint only", "complete", 0.5, SPACE_VAE, 0), "Nothing to complete"),
                          (("top half", "inpaint", 0.5, SPACE_VAE, 0), "Unknown mode"),
                          (("top half", "denoise", 1.5, SPACE_VAE, 0), "between 0 and 1"),
                          (("top half", "complete", 0.5, "nope", 0), "Unknown VAE"),
                          (("top half", "complete", 0.5, SPACE_VAE, 0, "3"), "unconditional")]:
        with pytest.raises(app_error(), match=message):
            client.predict(blank, *args, api_name="/complete")
    # An empty canvas with a hidden half is fine: the DDPM draws the half from nothing.
    *_, status = client.predict(blank, "top half", "complete", 0.5, SPACE_VAE, 0, api_name="/complete")
    assert "completed 392" in status


def test_a_v_prediction_model_completes_and_denoises_with_its_own_parameterisation(space_v_models, test_digits):
    """The Complete tab's RePaint and denoising step with the model's own scheduler (issue 39's v-prediction and
    zero terminal SNR): finite digits, and not those of the same UNet read as an ε-model."""

    from hub_models.space.completion import complete_digit
    from hub_models.space.sources import load_registry

    x = test_digits.images[0].float().div(255).reshape(1, 1, 28, 28)
    registries = {name: load_registry({name: folder}, calibration_digits=0) for name, folder in space_v_models.items()}
    for mode in ("complete", "denoise"):
        results = {name: np.asarray(complete_digit(reg, x, mode=mode, seed=1)[1]) for name, reg in registries.items()}
        assert all(np.isfinite(r).all() and r.std() > 0 for r in results.values()), mode
        assert not np.array_equal(results["v"], results["eps"]), mode
