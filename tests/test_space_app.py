"""The Space as a whole (spaces_app/app.py): its public API, the first visit of every tab, the optional ZeroGPU
package, and the layout rule that each tab is one module holding its own widgets and events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from space_fixtures import REPO_ROOT, SPACE_VAE, load_app_module, png


def _initial_values(client) -> dict[str, object]:
    """elem_id → the initial value of each component, from the app's /config (what a browser gets on load)."""
    return {c["props"]["elem_id"]: c["props"].get("value") for c in client.config["components"]
            if c.get("props", {}).get("elem_id")}


def _initial_png(client, value: dict, tmp_path: Path, name: str) -> np.ndarray:
    import httpx

    data = httpx.get(value["url"], timeout=30).content
    (tmp_path / name).write_bytes(data)
    return np.asarray(png(tmp_path / name))


def test_api_lists_every_public_endpoint(space):
    _, client = space
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    expected = {"/vae_generate", "/ddpm_generate", "/select_vae", "/decode_latent", "/latent_views",
                "/reset_latent", "/reconstruct_drawing", "/reconstruct_upload", "/reconstruct_test_digit",
                "/interpolate", "/pick_test_digit_a", "/pick_test_digit_b", "/complete",
                "/pick_test_digit_complete", "/select_digit"}
    assert expected <= names, expected - names


def test_first_visit_shows_a_result_on_every_tab(space, tmp_path):
    """The Generate grids, the latent explorer, a reconstructed test digit, two digits and their interpolation, and
    the About tab are all in the page on load; the grids are what the buttons give with the default settings."""
    _, client = space
    values = _initial_values(client)
    for elem_id in ("vae-samples", "ddpm-samples", "decoded-digit", "latent-map", "prepared-input",
                    "interp-lerp", "interp-slerp"):
        assert isinstance(values.get(elem_id), dict) and values[elem_id].get("url"), elem_id
    assert "Made at start-up" in values["ddpm-status"] and "seed 0" in values["ddpm-status"]
    assert "test digit" in values["rec-label"] and "a **7**" in values["rec-label"]
    # By the models of the study's β series (Conv, z = 2) that are loaded: here only the tiny β = 1 one.
    assert len(values["reconstructions"]) == 1 and [row[0] for row in values["rec-table"]["data"]] == [SPACE_VAE]
    for side in ("interp-A", "interp-B"):
        assert values[side]["composite"]["url"], side  # a test digit in each editor
    # Same settings, same digits: the first view is what pressing Generate gives.
    vae = png(client.predict(SPACE_VAE, 16, 0, api_name="/vae_generate"))
    assert np.array_equal(np.asarray(vae), _initial_png(client, values["vae-samples"], tmp_path, "vae.png"))
    from hub_models.space.diffusion import DEFAULT_DDPM_STEPS, DEFAULT_SAMPLER

    ddpm, status = client.predict(DEFAULT_SAMPLER, DEFAULT_DDPM_STEPS, 16, 0, api_name="/ddpm_generate")
    assert "done: 16 digits" in status
    assert np.array_equal(np.asarray(png(ddpm)), _initial_png(client, values["ddpm-samples"], tmp_path, "ddpm.png"))
    # Complete: a test 2 with its top half hidden, completed by the DDPM beside the VAE.
    for elem_id in ("complete-input", "complete-ddpm", "complete-vae"):
        assert isinstance(values.get(elem_id), dict) and values[elem_id].get("url"), elem_id
    assert values["complete-editor"]["composite"]["url"]
    assert "Made at start-up" in values["complete-status"] and "a **2**" in values["complete-status"]


def test_without_the_spaces_package_the_handlers_are_plain_functions():
    """ZeroGPU's `spaces` is optional: without it, `gpu()` returns the handler unchanged (CPU)."""
    import importlib.util

    app = load_app_module()
    if importlib.util.find_spec("spaces") is None:
        assert app.spaces is None
    handler = lambda: None  # noqa: E731
    assert app.gpu(handler) is handler  # no package, or a non-ZeroGPU machine: nothing changes


# ------------------------------------------------------------------------------------------------------------
# The layout rule: a tab change touches one module of spaces_app/tabs/ (and its library module)
# ------------------------------------------------------------------------------------------------------------
TABS = ("generate", "latent", "reconstruct", "interpolate", "complete", "about")  # in page order
EVENTS = {"click", "change", "input", "select", "release", "upload", "submit", "then", "success"}
MAX_FUNCTION_LINES = 60


def _event_calls(tree) -> list[str]:
    """The event listeners a module attaches (`x.click(...)`, `gr.on(...)`, ...)."""
    import ast

    return [node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and (node.func.attr in EVENTS or (
                node.func.attr == "on" and isinstance(node.func.value, ast.Name) and node.func.value.id == "gr"))]


def test_each_tab_is_one_module_holding_its_layout_and_events():
    """app.py only loads the models, calls each tab's `build` and launches: it creates no tab and wires no event.
    Each spaces_app/tabs/<tab>.py opens its own `gr.Tab`, defines `build` (and `first_visit`, but About), and wires
    its events itself; the page has the six tabs in order."""
    import ast

    from hub_models.space.registry import Registry

    app_tree = ast.parse((REPO_ROOT / "spaces_app" / "app.py").read_text())
    assert _event_calls(app_tree) == []
    assert "gr.Tab(" not in ast.unparse(app_tree)
    for tab in TABS:
        tree = ast.parse((REPO_ROOT / "spaces_app" / "tabs" / f"{tab}.py").read_text())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "build" in defined and (tab == "about" or "first_visit" in defined), tab
        assert 'gr.Tab(' in ast.unparse(tree) and f"id='{tab}'" in ast.unparse(tree), tab
        assert tab == "about" or _event_calls(tree), f"tabs/{tab}.py wires no event"
    demo = load_app_module().build_demo(Registry())
    ids = [c["props"]["id"] for c in demo.get_config_file()["components"] if c["type"] == "tabitem"
           and c["props"].get("id") in TABS]
    assert ids == list(TABS)


def test_the_space_has_no_long_function():
    """Short functions: none in app.py, the tabs or the library modules behind them runs past 60 lines."""
    import ast

    files = [REPO_ROOT / "spaces_app" / "app.py", *sorted((REPO_ROOT / "spaces_app" / "tabs").glob("*.py")),
             *sorted((REPO_ROOT / "hub_models" / "space").glob("*.py"))]
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)" for path in files
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long
