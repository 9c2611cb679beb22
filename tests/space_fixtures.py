"""The Space's fixtures (a pytest plugin loaded by conftest.py): tiny models saved the way the training scripts lay
them out, the app module, and the app launched in-process on 127.0.0.1 with a `gradio_client.Client`.

`space` is module-scoped: each test module that uses it gets its own app instance (its own queue and memory).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_FILE = REPO_ROOT / "spaces_app" / "app.py"
SPACE_VAE = "vae-conv-z2-beta1"  # the tiny models' names: the first is the app's default VAE
SPACE_VAE4 = "vae-conv-z4-beta20"
SPACE_CVAE = "vae-conv-z2-beta1-conditional"  # a conditional VAE (with the conditional DDPM)
SPACE_CDDPM = "ddpm-conditional"  # a class-conditional DDPM (with the unconditional one after it)


def load_app_module() -> ModuleType:
    """spaces_app/app.py imported as a module (a fresh one each call)."""
    spec = importlib.util.spec_from_file_location("space_app", APP_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_space(app: ModuleType, monkeypatch, sources: dict[str, str], calibration_digits: int = 256):
    """The app with these models, launched in-process on a free port (prevent_thread_lock)."""
    monkeypatch.setenv("GENLAB_MODELS", ",".join(f"{k}={v}" for k, v in sources.items()))
    monkeypatch.setenv("GENLAB_CALIBRATION_DIGITS", str(calibration_digits))
    demo = app.create_demo(config_file=None)
    for attempt in range(3):
        try:
            demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                        **app.launch_kwargs())
            return demo
        except ValueError as err:  # gradio's 3-second probe of its own page timed out (a busy 2-core machine)
            if "localhost is not accessible" not in str(err) or attempt == 2:
                raise
            demo.close()
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def space_models(tmp_path_factory) -> dict[str, str]:
    """Random-init tiny models saved exactly as the training scripts lay them out: two Conv VAEs (z = 2 and 4), a
    tiny DDPM with the study's scheduler and an `evaluation.json` for its weights, and a small classifier."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    from hub_models import ConvVAE
    from hub_models.evaluation import Evaluation
    from hub_models.evaluation.ddpm import weights_digest
    from hub_models.evaluation.schema import vae_point
    from hub_models.models.classifier import DigitClassifier
    from hub_models.models.unet import unet_config

    root = tmp_path_factory.mktemp("space-models")
    torch.manual_seed(0)
    ConvVAE(latent_dim=2).save_pretrained(root / SPACE_VAE)
    (root / SPACE_VAE / "metrics.json").write_text(json.dumps(
        {"model": "vae", "beta": 1.0, "test": {"bce": 150.0, "kld": 6.0, "elbo": -156.0}}))
    Evaluation(kind="vae", points={"prior": vae_point(1000, 0, {"fid": 123.4, "n_gen": 1000}, {}, None)}).write(
        root / SPACE_VAE)
    ConvVAE(latent_dim=4).save_pretrained(root / SPACE_VAE4)
    unet = UNet2DModel(**unet_config("tiny"))
    scheduler = DDPMScheduler(num_train_timesteps=4000, beta_schedule="squaredcos_cap_v2")
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(root / "ddpm")
    (root / "ddpm" / "metrics.json").write_text(json.dumps({"model": "ddpm", "train_loss": 0.05, "test_loss": 0.051}))
    point = {"sampler": "ddpm", "steps": 25, "num_samples": 1000, "ema": True, "seed": 0,
             "weights": weights_digest(root / "ddpm"), "reference": "mnist-test",
             "fid": {"fid": 12.34, "n_gen": 1000, "n_ref": 10000, "reference": "mnist-test", "floor": 7.9},
             "classifier": {"confident_share": 0.5}}
    Evaluation(kind="ddpm", points={"ddpm-25steps-ema-n1000-seed0": point}).write(root / "ddpm")
    DigitClassifier(channels=(4, 8), hidden_dim=16).save_pretrained(root / "digit-classifier")
    return {name: str(root / name) for name in (SPACE_VAE, SPACE_VAE4, "ddpm", "digit-classifier")}


@pytest.fixture(scope="session")
def space_conditional_models(space_models, tmp_path_factory) -> dict[str, str]:
    """The tiny models with a tiny class-conditional DDPM (ten digits + the null class) before the unconditional one
    (the order of the release: the conditional one is the default), and a tiny conditional VAE (Conv, z = 2, ten
    digits) after the unconditional one."""
    import torch
    from diffusers import UNet2DModel

    from hub_models import ConvVAE
    from hub_models.diffusion import make_train_scheduler, save_pipeline
    from hub_models.models.unet import unet_config

    root = tmp_path_factory.mktemp("space-conditional")
    torch.manual_seed(1)
    save_pipeline(UNet2DModel(**{**unet_config("tiny"), "num_class_embeds": 11}), make_train_scheduler(),
                  root / SPACE_CDDPM)
    ConvVAE(latent_dim=2, num_classes=10).save_pretrained(root / SPACE_CVAE)
    return {SPACE_VAE: space_models[SPACE_VAE], SPACE_CVAE: str(root / SPACE_CVAE),
            SPACE_CDDPM: str(root / SPACE_CDDPM), "ddpm": space_models["ddpm"]}


@pytest.fixture(scope="session")
def space_v_models(tmp_path_factory) -> dict[str, str]:
    """One random-init tiny UNet saved twice: with issue 39's schedule (v-prediction, zero terminal SNR) and with the
    study's (ε). Only the scheduler differs, so whatever differs between the two folders' results is the Space
    honouring the model's `prediction_type`."""
    import torch
    from diffusers import UNet2DModel

    from hub_models.diffusion import make_train_scheduler, save_pipeline
    from hub_models.models.unet import unet_config

    root = tmp_path_factory.mktemp("space-v")
    torch.manual_seed(2)
    unet = UNet2DModel(**unet_config("tiny"))
    save_pipeline(unet, make_train_scheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True), root / "v")
    save_pipeline(unet, make_train_scheduler(), root / "eps")
    return {name: str(root / name) for name in ("v", "eps")}


@pytest.fixture(scope="module")
def space_test_digits(tiny_mnist_cache):
    """The first 64 digits of the official test set (what the Space calibrates on comes from the same set)."""
    from hub_models.data import load_splits

    _, held_out = load_splits("official", limit=64)
    return held_out


@contextlib.contextmanager
def served_space(sources: dict[str, str], downloads: Path, calibration_digits: int = 256) -> Iterator[tuple]:
    """(demo, client): a fresh app module with these models, launched in-process, and a gradio_client on it that
    saves its files under `downloads`; closed, and its environment restored, on exit."""
    from gradio_client import Client

    mp = pytest.MonkeyPatch()
    demo = launch_space(load_app_module(), mp, sources, calibration_digits)
    try:
        yield demo, Client(demo.local_url, verbose=False, download_files=str(downloads))
    finally:
        demo.close()
        mp.undo()


@pytest.fixture(scope="module")
def space(tiny_mnist_cache, space_models):
    """(demo, client): the app with the tiny models, in-process, and a gradio_client on it."""
    with served_space(space_models, tiny_mnist_cache / "downloads") as served:
        yield served


# ------------------------------------------------------------------------------------------------------------
# The first visit in a browser (Debian's Chromium through Playwright; never a browser download)
# ------------------------------------------------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
BROWSER_TIMEOUT_MS = 60_000
# Each tab and what shows that it greets a first visitor with a result (not an empty image or an error).
FIRST_LOAD = {
    "Generate": ["#vae-samples img", "#ddpm-samples img"],
    "Latent explorer": ["#decoded-digit img", "#latent-map img"],
    "Reconstruct": ["#prepared-input img", "#reconstructions img", "#rec-examples"],
    "Interpolate": ["#interp-lerp img", "#interp-slerp img"],
    "Complete": ["#complete-input img", "#complete-ddpm img", "#complete-vae img"],
    "About": ["#about-claims table", "#about-rate-distortion img", "#about-beta img"],
}


def artifacts_path() -> Path:
    """$ARTIFACTS_DIR/space (default tests/artifacts/space): screenshots for CI and for looking at."""
    import os

    path = Path(os.environ.get("ARTIFACTS_DIR") or Path(__file__).parent / "artifacts") / "space"
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_page(browser, url: str, errors: list[str]):
    """A fresh tab on the app, its JavaScript errors collected in `errors`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url)
    page.get_by_role("tab", name="Latent explorer").wait_for()
    return page


def screenshot_first_load(browser, url: str, prefix: str) -> list[Path]:
    """Open the app as a first visitor, click through every tab without touching anything else, check each shows
    its result (and never "looks empty"), and save one full-page screenshot per tab."""
    errors: list[str] = []
    page = open_page(browser, url, errors)
    shots = []
    try:
        for tab, selectors in FIRST_LOAD.items():
            page.get_by_role("tab", name=tab, exact=True).click()
            for selector in selectors:
                element = page.locator(selector).first
                element.wait_for(state="attached", timeout=BROWSER_TIMEOUT_MS)
                element.evaluate("e => e.scrollIntoView()")  # images load lazily: bring each into the viewport
                element.wait_for(state="visible", timeout=BROWSER_TIMEOUT_MS)
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_function(  # every visible image of the tab fetched and decoded
                "() => [...document.querySelectorAll('img')].filter(i => i.offsetParent !== null)"
                ".every(i => i.complete && i.naturalWidth > 0)", timeout=BROWSER_TIMEOUT_MS)
            shot = artifacts_path() / f"{prefix}_{tab.lower().replace(' ', '_')}.png"
            page.screenshot(path=str(shot), full_page=True)
            shots.append(shot)
            assert "looks empty" not in page.locator("body").inner_text(), tab
        assert not errors, errors
    finally:
        page.close()
    return shots


@pytest.fixture(scope="module")
def test_digits(space_test_digits):
    """The held-out digits every tab's tests draw from."""
    return space_test_digits


def digit_png(tmp_path: Path, image: np.ndarray, name: str = "digit.png", scale: int = 1, mode: str = "L",
              invert: bool = False) -> Path:
    """A 28×28 uint8 digit saved as an upload would come: optionally inverted, upscaled (bilinear) and converted."""
    from PIL import Image

    im = Image.fromarray((255 - image if invert else image).astype(np.uint8), mode="L")
    if scale > 1:
        im = im.resize((28 * scale, 28 * scale), Image.BILINEAR)
    path = tmp_path / name
    im.convert(mode).save(path)
    return path


def png(path):
    """An output image, checked to be a lossless PNG."""
    from PIL import Image

    im = Image.open(path)
    assert im.format == "PNG", f"{path} is {im.format}, not a lossless PNG"
    return im


def app_error():
    """gradio_client's error class for a request the app refused (imported late: the client is slow to import)."""
    from gradio_client.exceptions import AppError

    return AppError
