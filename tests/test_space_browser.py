"""The Space in a real browser: Debian's Chromium driven by Playwright (never a browser download).

Opens the app and screenshots every tab as a first visitor sees it (each must already show a result), moves a
latent slider and sees the digit decoded in the browser, clicks the latent map and sees the sliders follow, draws
a stroke on the Sketchpad and sees a reconstruction, clicks an example, streams DDPM samples, interpolates two test
digits.
Screenshots go to $ARTIFACTS_DIR/space/ (default tests/artifacts/space/) for CI and for looking at.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from space_fixtures import (
    BROWSER_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    FIRST_LOAD,
    SPACE_CDDPM,
    SPACE_CVAE,
    SPACE_VAE,
    artifacts_path,
    open_page,
    screenshot_first_load,
    served_space,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TIMEOUT_MS = BROWSER_TIMEOUT_MS
pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    if IN_CI:
        raise RuntimeError(f"CI: {CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the browser test runs in CI",
                allow_module_level=True)


@pytest.fixture(scope="module")
def artifacts_dir() -> Path:
    return artifacts_path()


@pytest.fixture(scope="module")
def app_url(tiny_mnist_cache, space_models):
    with served_space(space_models, tiny_mnist_cache / "downloads") as (demo, _):
        yield demo.local_url


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url, artifacts_dir):
    errors: list[str] = []
    page = open_page(browser, app_url, errors)
    yield page
    (artifacts_dir / "page_errors.txt").write_text("\n".join(errors))
    page.close()


def test_first_load_shows_a_result_on_every_tab(browser, app_url):
    """A fresh visit, no click but the tabs: every tab already shows its result; one screenshot per tab
    (first_load_<tab>.png)."""
    assert len(screenshot_first_load(browser, app_url, "first_load")) == len(FIRST_LOAD) == 6


def _src(page, selector: str) -> str | None:
    img = page.locator(f"{selector} img").first
    return img.get_attribute("src") if img.count() else None


def _wait_src_change(page, selector: str, old: str | None) -> str:
    page.wait_for_function(
        """([sel, old]) => { const i = document.querySelector(sel + ' img');
                             return i && i.getAttribute('src') && i.getAttribute('src') !== old; }""",
        arg=[selector, old], timeout=TIMEOUT_MS)
    return _src(page, selector)


def _wait_data_url(page, selector: str, old: str | None) -> str:
    """The image's src once it is a PNG data URL (decoded in the page) other than `old`."""
    page.wait_for_function(
        """([sel, old]) => { const s = document.querySelector(sel + ' img')?.getAttribute('src') || '';
                             return s.startsWith('data:image/png') && s !== old; }""",
        arg=[selector, old], timeout=TIMEOUT_MS)
    return _src(page, selector)


def test_slider_decodes_live_and_map_click_moves_sliders(page, artifacts_dir):
    page.get_by_role("tab", name="Latent explorer").click()
    page.locator("#decoded-digit img").wait_for()  # decoded at load
    before = _src(page, "#decoded-digit")
    page.locator("#z1 input[type='range']").fill("2.5")
    after = _wait_src_change(page, "#decoded-digit", before)
    assert after != before
    # Decoded in the browser (hub_models.space.decoder_js): a PNG data URL, not a file the server wrote.
    assert after.startswith("data:image/png"), after[:80]
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
    page.locator("#rec-table", has_text=SPACE_VAE).wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "reconstruct_drawing.png"), full_page=True)


def test_ddpm_streams_into_the_page(page, artifacts_dir):
    page.get_by_role("tab", name="Generate").click()
    page.locator("#ddpm-generate").click()
    page.locator("#ddpm-status", has_text="done:").wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#ddpm-status").inner_text().startswith("done: 16 digits")
    page.screenshot(path=str(artifacts_dir / "generate_ddpm.png"), full_page=True)


def test_interpolate_two_test_digits(page, artifacts_dir):
    page.get_by_role("tab", name="Interpolate").click()
    before = _src(page, "#interp-lerp")  # the first visit's strip
    page.locator("#pick-A input").click()
    page.get_by_role("option", name="3", exact=True).click()  # a 3 instead of the first visit's 0
    page.get_by_role("button", name="Pick test digit as A").click()
    page.get_by_role("button", name="Pick test digit as B").click()
    assert _wait_src_change(page, "#interp-lerp", before) != before  # random test digits: a new strip
    page.locator("#interp-slerp img").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "interpolate.png"), full_page=True)


def test_complete_denoises_a_test_digit(page, artifacts_dir):
    page.get_by_role("tab", name="Complete").click()
    page.locator("#complete-status", has_text="Made at start-up").wait_for(timeout=TIMEOUT_MS)  # the first visit
    before = _src(page, "#complete-ddpm")
    page.locator("#complete-mode label", has_text="denoise").click()
    page.locator("#complete-run").click()
    page.locator("#complete-status", has_text="noised for 2000 of 4000 steps").wait_for(timeout=TIMEOUT_MS)
    assert _wait_src_change(page, "#complete-ddpm", before) != before
    page.locator("#complete-vae img").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "complete_denoise.png"), full_page=True)


def test_clicking_an_example_reconstructs_it(page, artifacts_dir):
    page.get_by_role("tab", name="Reconstruct").click()
    before = _src(page, "#prepared-input")
    page.locator("#rec-examples").get_by_role("button").nth(1).click()  # the photo of a 7 on paper
    after = _wait_src_change(page, "#prepared-input", before)
    assert after != before
    page.locator("#rec-label", has_text="digit classifier reads").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "reconstruct_example.png"), full_page=True)


@pytest.fixture(scope="module")
def conditional_url(tiny_mnist_cache, space_conditional_models):
    with served_space(space_conditional_models, tiny_mnist_cache / "downloads", calibration_digits=64) as (demo, _):
        yield demo.local_url


def test_a_conditional_ddpm_takes_a_digit_and_a_guidance(browser, conditional_url, artifacts_dir):
    """With a class-conditional DDPM the Generate tab shows the digit and guidance controls; it opens on a row per
    digit; choosing a 3 and a guidance of 3 streams 3s."""
    errors: list[str] = []
    page = open_page(browser, conditional_url, errors)
    try:
        page.get_by_role("tab", name="Generate").click()
        page.locator("#ddpm-status", has_text="a row per digit").wait_for(timeout=TIMEOUT_MS)
        page.screenshot(path=str(artifacts_dir / "conditional_first_load.png"), full_page=True)
        page.locator("#ddpm-digit input").click()
        page.get_by_role("option", name="3", exact=True).click()
        page.locator("#ddpm-guidance input[type='number']").fill("3")
        page.locator("#ddpm-guidance input[type='number']").press("Enter")
        page.locator("#ddpm-generate").click()
        page.locator("#ddpm-status", has_text="done:").wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#ddpm-status").inner_text().endswith("digit 3, guidance 3")
        page.screenshot(path=str(artifacts_dir / "conditional_digit_3.png"), full_page=True)

        # The unconditional DDPM by name: the digit and guidance controls go away, and come back with the other.
        page.locator("#ddpm-model input").click()
        page.get_by_role("option", name="ddpm", exact=True).click()
        page.locator("#ddpm-digit").wait_for(state="hidden", timeout=TIMEOUT_MS)
        assert not page.locator("#ddpm-guidance").is_visible()
        page.locator("#ddpm-generate").click()
        page.wait_for_function("() => { const t = document.querySelector('#ddpm-status').innerText;"
                               " return t.startsWith('done:') && !t.includes('guidance'); }", timeout=TIMEOUT_MS)
        page.locator("#ddpm-model input").click()
        page.get_by_role("option", name=SPACE_CDDPM, exact=True).click()
        page.locator("#ddpm-digit").wait_for(state="visible", timeout=TIMEOUT_MS)

        # The conditional VAE in the latent explorer: a digit selector; the slider decodes in the browser with it.
        page.get_by_role("tab", name="Latent explorer").click()
        assert not page.locator("#latent-class").is_visible()
        page.locator("#latent-model input").click()
        page.get_by_role("option", name=re.compile(SPACE_CVAE)).click()
        page.locator("#latent-class").wait_for(state="visible", timeout=TIMEOUT_MS)
        page.locator("#latent-class input").click()
        page.get_by_role("option", name="7", exact=True).click()
        # The server decodes the same style as a 7, then the page redecodes it at the sliders (a data URL).
        seven = _wait_data_url(page, "#decoded-digit", None)
        page.locator("#z1 input[type='range']").fill("1.5")
        moved = _wait_data_url(page, "#decoded-digit", seven)  # decoded in the browser, with the digit
        # Whatever the server still sends for the digit change, the page ends on the sliders' digit.
        page.wait_for_timeout(1500)
        assert _src(page, "#decoded-digit") == moved
        page.screenshot(path=str(artifacts_dir / "conditional_vae_explorer.png"), full_page=True)
        assert not errors, errors
    finally:
        page.close()
