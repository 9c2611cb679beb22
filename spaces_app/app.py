"""mnist-genlab — the Gradio Space: sample, explore the latent space, reconstruct, interpolate, complete digits, score
anomalies.

UI wiring only: every computation lives in `hub_models.space`. Each tab is one module of `tabs/` (its layout, its
events and its first-visit view); this file loads the models, asks each tab to build itself and launches.

    python spaces_app/app.py                      # 127.0.0.1:7860 with the models of release/ (offline)
    python spaces_app/app.py --models you/fashion-vae you/my-ddpm      # any compatible Hub repos or folders
    GENLAB_MODELS=user/repo-a,user/repo-b python spaces_app/app.py   # the same, from the environment

A model of other images (issue 37) is shown at its own shape and colours (config.json's `in_channels` /
`sample_size`); its class names come from its training_config.json, and the MNIST-only parts (test digits, the
digit classifier, Complete) leave it out.

On the Hub (`python scripts/publish_space.py`) this file sits next to `tabs/`, a copy of the library, `models.json`
(name → repo id of the published models) and the report; in a checkout it finds them one folder up.
"""

from __future__ import annotations

try:  # ZeroGPU: `@spaces.GPU` attaches a GPU per call. Preinstalled on Spaces, optional elsewhere; imported
    import spaces  # before torch, as ZeroGPU requires.
except ImportError:
    spaces = None

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# A checkout: the library, release/ and docs/ are one level up. A published Space has them next to this file.
IN_CHECKOUT = not (HERE / "hub_models").is_dir() and (HERE.parent / "hub_models").is_dir()
if IN_CHECKOUT and importlib.util.find_spec("hub_models") is None:
    sys.path.insert(0, str(HERE.parent))
if str(HERE) not in sys.path:  # the tabs/ package next to this file
    sys.path.insert(0, str(HERE))

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from tabs import about, complete, generate, interpolate, latent, reconstruct  # noqa: E402
from tabs.common import gpu  # noqa: E402, F401  (the ZeroGPU decorator, as the tests and the Space see it)
from tabs.reconstruct import EXAMPLES  # noqa: E402, F401

from hub_models.io import log  # noqa: E402
from hub_models.space.preprocess import MAX_UPLOAD_BYTES  # noqa: E402
from hub_models.space.registry import Registry  # noqa: E402
from hub_models.space.sources import MODELS_ENV, load_registry, resolve_model_sources  # noqa: E402

MODELS_CONFIG = HERE / "models.json"  # written by publish_space: {"space": repo id, "models": {name: repo id}}
LOCAL_MODELS_DIR = HERE.parent / "release" if IN_CHECKOUT else None
DOCS_DIR = HERE.parent / "docs" if IN_CHECKOUT else HERE / "docs"
TITLE = "mnist-genlab — β-VAEs and a DDPM on MNIST"
# The tabs with a first-visit view, in page order (About, last, has none).
TABS = (generate, latent, reconstruct, interpolate, complete)
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
#decoded-digit img { width: 100%; height: 100%; object-fit: contain; }
#latent-map img { cursor: crosshair; }
"""


def space_config(config_file: str | os.PathLike | None = MODELS_CONFIG) -> dict[str, Any]:
    """models.json of a published Space ({} in a checkout, where the release list is the model list)."""
    try:
        return json.loads(Path(config_file).read_text()) if config_file else {}
    except (OSError, ValueError):
        return {}


def load_models(config_file: str | os.PathLike | None = MODELS_CONFIG) -> Registry:
    """Resolve the model list (env var, models.json or the release list, release/ folders) and load it once."""
    threads = int(os.environ.get("GENLAB_TORCH_THREADS", "1"))
    # One intra-op thread per request: many small requests share the 2 vCPUs without oversubscription.
    torch.set_num_threads(max(1, threads))
    return load_registry(resolve_model_sources(config_file, models_dir=LOCAL_MODELS_DIR))


def first_visit(reg: Registry) -> tuple[dict[str, Any], float]:
    """What every tab shows before a visitor clicks anything (tab module → its view), computed once at start-up
    with each tab's default settings, and the seconds it took."""
    t0 = time.perf_counter()
    views = {tab: tab.first_visit(reg) for tab in TABS}
    seconds = time.perf_counter() - t0
    log("space", f"first-visit results computed in {seconds:.2f} s")
    return views, seconds


def _header(reg: Registry) -> None:
    gr.Markdown(f"# {TITLE}\nβ-VAEs (conv / dense, z = 2 / 4, β = 1e-3 / 1 / 20) and a DDPM trained on "
                "MNIST, reproducing a study of how β trades reconstruction against latent structure "
                "(its verdicts are in **About**).")
    other = [e for e in (*reg.vaes.values(), *reg.ddpms.values()) if not e.mnist_like]
    if other:  # models of other data: say what each draws
        gr.Markdown("Models of other data: " + "; ".join(
            f"`{e.name}` ({e.data_title}, {e.resolution}×{e.resolution} "
            f"{'grey' if e.channels == 1 else 'RGB'})" for e in other) + ".", elem_id="other-data")
    if reg.errors:
        with gr.Accordion("Some models are not available", open=False):
            gr.Markdown("\n".join(f"- `{k}`: {v}" for k, v in reg.errors.items()))


def build_demo(reg: Registry, config: dict[str, Any] | None = None) -> gr.Blocks:
    """The page: a header, then each tab, which lays out its widgets and wires its own events."""
    views, seconds = first_visit(reg)
    with gr.Blocks(title=TITLE) as demo:
        _header(reg)
        for tab in TABS:
            tab.build(reg, views[tab])
        about.build(reg, config or {}, DOCS_DIR)
    demo.first_visit_seconds = seconds
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Everything `launch()` needs besides host/port (Gradio 6: theme and css go here)."""
    return {"theme": gr.themes.Soft(primary_hue="indigo"), "css": CSS, "max_file_size": MAX_UPLOAD_BYTES,
            "footer_links": ["api", "gradio"], "show_error": True}


def create_demo(config_file: str | os.PathLike | None = MODELS_CONFIG) -> gr.Blocks:
    """Load the models and build the queued app (what tests and the Space both use)."""
    reg = load_models(config_file)
    demo = build_demo(reg, space_config(config_file))
    demo.queue(default_concurrency_limit=2, max_size=128)
    demo.registry = reg  # for tests and benchmarks
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="interface to listen on (a Space sets GRADIO_SERVER_NAME=0.0.0.0)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                   help="port to listen on")
    p.add_argument("--models", nargs="+", default=None,
                   help="Hub repo ids or folders (space- or comma-separated, each optionally 'name=source'); "
                        "overrides $GENLAB_MODELS and models.json")
    p.add_argument("--config", default=str(MODELS_CONFIG),
                   help="models.json of a published Space ({'models': {name: repo id}}); default: the release list")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    if args.models:
        os.environ[MODELS_ENV] = ",".join(args.models)
    t0 = time.perf_counter()
    zero_gpu = "on" if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true") else "off"
    gpu_state = "not installed (CPU)" if spaces is None else f"installed, ZeroGPU {zero_gpu}"
    log("space", f"library: {Path(sys.modules[Registry.__module__].__file__).parents[1]}; spaces: {gpu_state}")
    demo = create_demo(args.config)
    log("space", f"ready in {time.perf_counter() - t0:.1f} s after the imports")
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main(parse_args())
