"""Class-conditional models in the Space, across the tabs that take a digit: a conditional DDPM in Generate and
Complete (a digit, a row per digit, the guidance scale, a second DDPM by name) and a conditional VAE in Generate and
the latent explorer (and refused by the tabs that have no digit to give)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from space_fixtures import SPACE_CDDPM, SPACE_CVAE, SPACE_VAE, app_error, png, served_space


def _initial_values(client) -> dict[str, object]:
    """elem_id → the initial value of each component, from the app's /config (what a browser gets on load)."""
    return {c["props"]["elem_id"]: c["props"].get("value") for c in client.config["components"]
            if c.get("props", {}).get("elem_id")}


def _editor_file(tmp_path: Path, image: Image.Image, name: str) -> dict:
    from gradio_client import handle_file

    image.save(tmp_path / name)
    return {"background": handle_file(str(tmp_path / name)), "layers": [],
            "composite": handle_file(str(tmp_path / name))}


@pytest.fixture(scope="module")
def conditional_space(tiny_mnist_cache, space_conditional_models):
    with served_space(space_conditional_models, tiny_mnist_cache / "downloads", calibration_digits=64) as served:
        yield served


def test_a_conditional_ddpm_generates_the_chosen_digits(conditional_space):
    _, client = conditional_space
    values = _initial_values(client)
    assert "a row per digit" in values["ddpm-status"]  # the first visit: one row per digit
    assert values["ddpm-digit"] == "0–9 (a row each)"
    job = client.submit("ddpm", 4, 20, 0, "0–9 (a row each)", 2.0, api_name="/ddpm_generate")
    assert len(list(job)) >= 2  # streamed
    image, status = job.result()
    assert status.startswith("done: 20 digits, ddpm, 4 steps") and status.endswith("a row per digit, guidance 2")
    assert png(image).size == (3 * (2 * 28 + 3 * 2), 3 * (10 * 28 + 11 * 2))  # 10 rows of 2
    threes, status = client.predict("ddpm", 4, 4, 0, "3", 1.0, api_name="/ddpm_generate")
    sevens, _ = client.predict("ddpm", 4, 4, 0, "7", 1.0, api_name="/ddpm_generate")
    unguided, _ = client.predict("ddpm", 4, 4, 0, "7", 0.0, api_name="/ddpm_generate")
    assert status.endswith("digit 3, guidance 1")
    a, b, c = (np.asarray(png(x)) for x in (threes, sevens, unguided))
    assert not np.array_equal(a, b) and not np.array_equal(b, c)  # the label and the guidance both matter
    for args, message in [(("3", 11), "maximum|between"), (("3", -1), "minimum|between"),
                          (("3", "strong"), "float|number"), (("11", 1), "not in the list of choices"),
                          (("x", 1), "not in the list of choices")]:
        with pytest.raises(app_error(), match=message):
            client.predict("ddpm", 2, 2, 0, *args, api_name="/ddpm_generate")


def test_the_ddpm_model_is_chosen_by_name(conditional_space, space_conditional_models):
    """Two DDPMs: the conditional one is the default; the unconditional one is asked for by name (the last input)."""
    from hub_models.space.checks import SpaceError
    from hub_models.space.sources import load_registry

    _, client = conditional_space
    image, status = client.predict("ddpm", 2, 3, 0, "any", 1.0, "ddpm", api_name="/ddpm_generate")
    assert status.startswith("done: 3 digits") and png(image)
    with pytest.raises(app_error(), match="unconditional: it cannot be asked for a digit"):
        client.predict("ddpm", 2, 2, 0, "3", 1.0, "ddpm", api_name="/ddpm_generate")
    _, status = client.predict("ddpm", 2, 2, 0, "3", 1.0, SPACE_CDDPM, api_name="/ddpm_generate")
    assert status.endswith("digit 3, guidance 1")
    for bad in ("nope", ""):
        with pytest.raises(app_error(), match="not in the list of choices"):
            client.predict("ddpm", 2, 2, 0, "any", 1.0, bad, api_name="/ddpm_generate")
    reg = load_registry(space_conditional_models, calibration_digits=0)
    assert list(reg.ddpms) == [SPACE_CDDPM, "ddpm"] and reg.ddpm.name == SPACE_CDDPM
    assert reg.require_ddpm("ddpm").conditional is False and reg.require_ddpm(None) is reg.ddpm
    for bad in ("nope", ["ddpm"], 3):
        with pytest.raises(SpaceError, match="Unknown DDPM"):
            reg.require_ddpm(bad)


def test_a_conditional_ddpm_completes_towards_a_digit(conditional_space, tmp_path):
    _, client = conditional_space
    blank = _editor_file(tmp_path, Image.new("RGBA", (280, 280), (0, 0, 0, 255)), "blank.png")
    threes = client.predict(blank, "top half", "complete", 0.5, SPACE_VAE, 0, "3", api_name="/complete")
    sevens = client.predict(blank, "top half", "complete", 0.5, SPACE_VAE, 0, "7", api_name="/complete")
    assert "guided to 3" in threes[3] and "guided to 7" in sevens[3]
    assert not np.array_equal(np.asarray(png(threes[1])), np.asarray(png(sevens[1])))


def test_a_conditional_vae_in_generate_and_the_latent_explorer(conditional_space):
    from hub_models.space.checks import SpaceError
    from hub_models.space.interpolate import interpolate
    from hub_models.space.reconstruct import reconstruct

    demo, client = conditional_space
    model = demo.registry.vaes[SPACE_CVAE].model
    # Generate: a row per digit (16 digits asked: 2 per row, 10 rows).
    grid = png(client.predict(SPACE_CVAE, 16, 0, api_name="/vae_generate"))
    assert grid.size == (4 * (2 * 28 + 3 * 2), 4 * (10 * 28 + 11 * 2))
    # The explorer: the digit selector appears; the same style decodes as each chosen digit.
    *_, lat_class, digit, latent_map, grid = client.predict(SPACE_CVAE, "3", api_name="/select_vae")
    assert lat_class["visible"] is True and png(latent_map) and png(grid)
    threes = np.asarray(png(client.predict(SPACE_CVAE, 0.5, -0.5, "3", api_name="/decode_latent")))
    eights = np.asarray(png(client.predict(SPACE_CVAE, 0.5, -0.5, "8", api_name="/decode_latent")))
    assert not np.array_equal(threes, eights)
    with torch.inference_mode():
        want = model.decode(torch.tensor([[0.5, -0.5]]), torch.tensor([8]))[0, 0].numpy()
    assert np.abs(eights[::4, ::4] / 255 - want).max() <= 1 / 255 + 1e-6  # the digit the Python decoder gives
    digit, grid = client.predict(SPACE_CVAE, "z1", "z2", 0.5, -0.5, "8", api_name="/select_digit")
    assert np.array_equal(np.asarray(png(digit)), eights) and png(grid)
    _, grid = client.predict(SPACE_CVAE, "z1", "z2", 0.5, -0.5, "8", api_name="/latent_views")
    assert png(grid)
    for digit, message in [("11", "not in the list of choices|between 0 and 9"), ("x", "choices|number")]:
        with pytest.raises(app_error(), match=message):
            client.predict(SPACE_CVAE, 0.5, -0.5, digit, api_name="/decode_latent")
    # Switching back to an unconditional VAE hides the selector; its decodes ignore the digit.
    *_, lat_class, _, _, _ = client.predict(SPACE_VAE, "3", api_name="/select_vae")
    assert lat_class["visible"] is False
    # Reconstruct and Interpolate (which have no digit to give) list only unconditional VAEs and refuse it by name.
    values = {c["props"].get("label"): c["props"] for c in client.config["components"] if "props" in c}
    assert [name for _, name in values["models"]["choices"]] == [SPACE_VAE]
    with pytest.raises(app_error(), match="not in the list of choices"):
        client.predict(1, [SPACE_CVAE], api_name="/reconstruct_test_digit")
    x = torch.zeros(1, 1, 28, 28)
    for call in (lambda e: reconstruct(e, x), lambda e: interpolate(e, x, x)):
        with pytest.raises(SpaceError, match="is a conditional VAE"):
            call(demo.registry.vaes[SPACE_CVAE])
