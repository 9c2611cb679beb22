"""The Interpolate tab (spaces_app/tabs/interpolate.py, `hub_models.space.interpolate`): lerp and slerp, and the
endpoint."""

from __future__ import annotations

import pytest
import torch
from space_fixtures import app_error, digit_png, png


def test_lerp_and_slerp():
    from hub_models.space.interpolate import lerp, slerp

    a, b, t = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0]), torch.linspace(0, 1, 5)
    for path in (lerp(a, b, t), slerp(a, b, t)):
        assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    assert torch.allclose(slerp(a, b, t).norm(dim=1), torch.full((5,), 3.0), atol=1e-5)  # on the arc
    assert lerp(a, b, t)[2].norm() < 3.0  # the chord cuts inside
    assert torch.allclose(slerp(a, 2 * a, t), lerp(a, 2 * a, t))  # parallel → lerp


def test_interpolate(space, test_digits, tmp_path):
    from gradio_client import handle_file

    _, client = space
    a = digit_png(tmp_path, test_digits.images[0].numpy(), "a.png", scale=10)
    b = digit_png(tmp_path, test_digits.images[1].numpy(), "b.png", scale=10)
    ed = [{"background": handle_file(str(p)), "layers": [], "composite": handle_file(str(p))} for p in (a, b)]
    lerp_strip, slerp_strip = client.predict(*ed, "vae-conv-z2-beta1", 6, api_name="/interpolate")
    width = 4 * (8 * 28 + 9 * 2)  # A + 6 steps + B, 4× upscale
    assert png(lerp_strip).size[0] == width and png(slerp_strip).size[0] == width
    picked = client.predict("7", api_name="/pick_test_digit_a")
    assert png(picked["composite"]).size == (280, 280)
    with pytest.raises(app_error(), match="steps"):
        client.predict(*ed, "vae-conv-z2-beta1", 1000, api_name="/interpolate")
