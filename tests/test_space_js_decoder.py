"""The live slider's browser decoder (`hub_models.space.decoder_js`) against the Python decoder it stands in for.

`hub_models.space.latent.browser_decoder` exports a VAE's decoder as data (a conditional VAE's with its number of
classes: the browser appends the one-hot digit to z); node runs the JavaScript on it. The
pixel probabilities must match `model.decode(z)` within 1e-5 (JavaScript computes in float64 from the float32
weights, PyTorch in float32: the differences seen are ~6e-8). The PNG drawing needs a browser's canvas: the
browser test (`tests/test_space_browser.py`) checks the slider shows a data-URL PNG.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from hub_models import ConvVAE, DenseVAE
from hub_models.space.decoder_js import DECODER_JS, live_decode_js
from hub_models.space.latent import MAX_BROWSER_WEIGHTS, browser_decoder
from hub_models.space.registry import VAEEntry

NODE = shutil.which("node")
TOLERANCE = 1e-5  # on pixel probabilities in [0, 1]; a 1/255 grey level is 4e-3

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")

# Reads {"spec", "zs", "labels"?} on stdin, prints the decoded pixels as JSON.
RUNNER = """
const a = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(a.zs.map((z, i) => Array.from(genlabDecode(a.spec, z, (a.labels || [])[i])))));
"""


def _node(script: str, payload: dict):
    done = subprocess.run([NODE, "-e", script], input=json.dumps(payload), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _entry(model) -> VAEEntry:
    return VAEEntry(name="vae", source="memory", model=model.eval(), beta=1.0, metrics={})


@pytest.mark.parametrize("make", [lambda: ConvVAE(latent_dim=2), lambda: ConvVAE(latent_dim=4),
                                  lambda: DenseVAE(latent_dim=2, hidden_sizes=(64, 32))],
                         ids=["conv-z2", "conv-z4", "dense-z2"])
def test_browser_decoder_matches_the_python_decoder(make):
    torch.manual_seed(0)
    entry = _entry(make())
    spec = browser_decoder(entry)
    assert spec is not None and spec["latent_dim"] == entry.latent_dim
    zs = [[0.0] * entry.latent_dim, [2.5, -2.5, 0.7, -1.2][:entry.latent_dim], [-0.3, 1.9, -2.8, 0.1][
        :entry.latent_dim]]
    got = torch.tensor(_node(DECODER_JS + RUNNER, {"spec": spec, "zs": zs}), dtype=torch.float64)
    with torch.inference_mode():
        want = entry.model.decode(torch.tensor(zs)).reshape(len(zs), -1).double()
    assert got.shape == want.shape == (3, 784)
    assert (got - want).abs().max().item() < TOLERANCE
    assert not torch.allclose(got[0], got[1])  # the latents matter


@pytest.mark.parametrize("make", [lambda: ConvVAE(latent_dim=2, num_classes=10),
                                  lambda: DenseVAE(latent_dim=2, hidden_sizes=(64, 32), num_classes=10)],
                         ids=["conv-z2-conditional", "dense-z2-conditional"])
def test_browser_decoder_of_a_conditional_vae_takes_the_digit(make):
    """A conditional VAE: the browser appends the one-hot of the chosen digit to z, as the Python decoder does."""
    torch.manual_seed(0)
    entry = _entry(make())
    spec = browser_decoder(entry)
    assert spec is not None and spec["num_classes"] == 10 and spec["layers"][0]["in"] == 12
    zs, labels = [[0.0, 0.0], [0.0, 0.0], [1.5, -0.8], [1.5, -0.8]], [3, 8, 0, 9]
    got = torch.tensor(_node(DECODER_JS + RUNNER, {"spec": spec, "zs": zs, "labels": labels}), dtype=torch.float64)
    with torch.inference_mode():
        want = entry.model.decode(torch.tensor(zs), torch.tensor(labels)).reshape(len(zs), -1).double()
    assert (got - want).abs().max().item() < TOLERANCE
    assert not torch.allclose(got[0], got[1])  # the digit matters
    event = "const f = " + live_decode_js(2) + """;
const a = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(f(...a)));
"""
    digit = {"url": "gradio_api/file=old.png"}
    image, tick = _node(event, [spec, 0.5, -0.5, digit, 0, "12"])
    assert (image, tick) == (digit, 1)  # not a digit of this model: the server answers (with its message)


def test_models_the_browser_cannot_run_stay_on_the_server():
    torch.manual_seed(0)
    assert browser_decoder(_entry(DenseVAE(latent_dim=2))) is None  # 535k weights: over the cap
    conv = _entry(ConvVAE(latent_dim=2))
    assert browser_decoder(conv)["weights"] <= MAX_BROWSER_WEIGHTS
    assert browser_decoder(conv, max_weights=1000) is None


def test_live_decode_falls_back_to_the_server():
    """The app's `js=` function (as the page gets it): with no browser decoder, or a value that is not a latent,
    the image stays and the fallback counter goes up by one, which makes the app decode on the server."""
    event = "const f = " + live_decode_js(2) + """;
const a = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(f(...a)));
"""
    digit = {"url": "gradio_api/file=old.png"}
    assert _node(event, [None, 0.5, -0.5, digit, 3]) == [digit, 4]
    torch.manual_seed(0)
    spec = browser_decoder(_entry(ConvVAE(latent_dim=2)))
    assert _node(event, [spec, "nan", 0.0, digit, 0]) == [digit, 1]
