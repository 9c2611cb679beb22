"""The Space in a real browser: Debian's Chromium driven by Playwright (never a browser download).

Opens the app, moves a latent slider and sees the decoded digit change, clicks the latent map and sees the
sliders follow, draws a stroke on the Sketchpad and sees a reconstruction, streams DDPM samples, interpolates
two test digits. Screenshots go to $ARTIFACTS_DIR (default tests/artifacts/) for CI and for looking at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_space import _launch, _load_app_module, space_models  # noqa: F401 (space_models is a fixture)

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 60_000

if not CHROMIUM.exists():
    if IN_CI:
        raise RuntimeError(f"CI: {CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the browser test runs in CI",
                allow_module_level=True)


@pytest.fixture(scope="module")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("ARTIFACTS_DIR") or Path(__file__).parent / "artifacts") / "space"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def app_url(tiny_mnist_cache, space_models):  # noqa: F811
    app = _load_app_module()
    mp = pytest.MonkeyPatch()
    demo = _launch(app, mp, space_models)
    try:
        yield demo.local_url
    finally:
        demo.close()
        mp.undo()


@pytest.fixture(scope="module")
def page(app_url, artifacts_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(app_url)
        page.get_by_role("tab", name="Latent explorer").wait_for()
        yield page
        (artifacts_dir / "page_errors.txt").write_text("\n".join(errors))
        browser.close()


def _src(page, selector: str) -> str | None:
    img = page.locator(f"{selector} img").first
    return img.get_attribute("src") if img.count() else None


def _wait_src_change(page, selector: str, old: str | None) -> str:
    page.wait_for_function(
        """([sel, old]) => { const i = document.querySelector(sel + ' img');
                             return i && i.getAttribute('src') && i.getAttribute('src') !== old; }""",
        arg=[selector, old], timeout=TIMEOUT_MS)
    return _src(page, selector)


def test_slider_decodes_live_and_map_click_moves_sliders(page, artifacts_dir):
    page.get_by_role("tab", name="Latent explorer").click()
    page.locator("#decoded-digit img").wait_for()  # decoded at load
    before = _src(page, "#decoded-digit")
    page.locator("#z1 input[type='range']").fill("2.5")
    after = _wait_src_change(page, "#decoded-digit", before)
    assert after != before
    page.screenshot(path=str(artifacts_dir / "latent_slider.png"), full_page=True)

    # Clicking the map sets the sliders to that point.
    box = page.locator("#latent-map img").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.30, box["y"] + box["height"] * 0.30)
    page.wait_for_function(
        """() => { const v = parseFloat(document.querySelector("#z2 input[type='number']").value);
                   return v > 0.5; }""", timeout=TIMEOUT_MS)
    z1 = float(page.locator("#z1 input[type='number']").input_value())
    assert z1 < 0  # left half of the map → negative z1, upper half → positive z2
    page.screenshot(path=str(artifacts_dir / "latent_map_click.png"), full_page=True)


def test_drawing_a_stroke_gives_a_reconstruction(page, artifacts_dir):
    page.get_by_role("tab", name="Reconstruct").click()
    canvas = page.locator("#sketchpad canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 25):  # a "7": a bar, then a diagonal
        dx, dy = (i * 4, 0) if i < 10 else (36 - (i - 10) * 4, (i - 10) * 14)
        page.mouse.move(x - 20 + dx, y + dy, steps=2)
    page.mouse.up()
    page.locator("#reconstructions img").first.wait_for(timeout=TIMEOUT_MS)
    page.locator("#prepared-input img").wait_for()
    assert page.locator("#reconstructions img").count() >= 1
    page.locator("#rec-table", has_text="vae-conv-z2-beta1").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "reconstruct_drawing.png"), full_page=True)


def test_ddpm_streams_into_the_page(page, artifacts_dir):
    page.get_by_role("tab", name="Generate").click()
    page.locator("#ddpm-generate").click()
    page.locator("#ddpm-status", has_text="done:").wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#ddpm-status").inner_text().startswith("done: 16 digits")
    page.screenshot(path=str(artifacts_dir / "generate_ddpm.png"), full_page=True)


def test_interpolate_two_test_digits(page, artifacts_dir):
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("button", name="Pick test digit as A").click()
    page.get_by_role("button", name="Pick test digit as B").click()
    page.locator("#interp-lerp img").wait_for(timeout=TIMEOUT_MS)
    page.locator("#interp-slerp img").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "interpolate.png"), full_page=True)
