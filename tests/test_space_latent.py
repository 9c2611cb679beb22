"""The Latent explorer tab (spaces_app/tabs/latent.py, `hub_models.space.latent`): the live slider decoded on the
server, the map and the grid."""

from __future__ import annotations

import numpy as np
import pytest
from space_fixtures import app_error, png


def test_decode_latent_live_slider(space):
    _, client = space
    base = ["vae-conv-z2-beta1", 0.0, 0.0] + [0.0] * 2
    img0 = png(client.predict(*base, api_name="/decode_latent"))
    assert img0.size == (112, 112)
    moved = list(base)
    moved[1] = 2.5
    img1 = png(client.predict(*moved, api_name="/decode_latent"))
    assert not np.array_equal(np.asarray(img0), np.asarray(img1))
    for bad, message in [(1e9, "between"), ("nan", "finite"), ("-inf", "finite"), ("abc", "number"),
                         (None, "number")]:
        values = list(base)
        values[1] = bad
        with pytest.raises(app_error(), match=message):
            client.predict(*values, api_name="/decode_latent")
    # The 4-D model uses all four sliders.
    four = png(client.predict("vae-conv-z4-beta20", 0.0, 0.0, 0.0, 1.5, api_name="/decode_latent"))
    four0 = png(client.predict("vae-conv-z4-beta20", 0.0, 0.0, 0.0, 0.0, api_name="/decode_latent"))
    assert not np.array_equal(np.asarray(four), np.asarray(four0))


def test_latent_explorer_views(space):
    _, client = space
    out = client.predict("vae-conv-z4-beta20", api_name="/select_vae")
    *slider_values, dim_x, dim_y, lat_class, digit, latent_map, grid = out
    assert len(slider_values) == 4 and all(v["value"] == 0 and v["visible"] for v in slider_values)
    assert lat_class["visible"] is False  # the digit selector: only for a conditional VAE
    assert (dim_x["value"], dim_y["value"], dim_x["visible"]) == ("z1", "z2", True)
    png(digit), png(latent_map)
    assert png(grid).size == (15 * 28 * 2,) * 2
    _, g13 = client.predict("vae-conv-z4-beta20", "z1", "z3", 0.5, 0.0, -0.5, 0.0, api_name="/latent_views")
    _, g12 = client.predict("vae-conv-z4-beta20", "z1", "z2", 0.5, 0.0, -0.5, 0.0, api_name="/latent_views")
    assert not np.array_equal(np.asarray(png(g13)), np.asarray(png(g12)))
    with pytest.raises(app_error(), match="two different dimensions"):
        client.predict("vae-conv-z4-beta20", "z2", "z2", 0, 0, 0, 0, api_name="/latent_views")
    reset = client.predict("vae-conv-z2-beta1", api_name="/reset_latent")
    assert png(reset[-1]).size == (112, 112)
