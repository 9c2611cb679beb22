"""mnist-genlab — the Gradio Space: sample, explore the latent space, reconstruct, interpolate, complete digits, score
anomalies.

UI wiring only: every computation lives in `hub_models.space` (`logic`, `preprocess`, `about`).

    python spaces_app/app.py                      # 127.0.0.1:7860 with the models of release/ (offline)
    GENLAB_MODELS=user/repo-a,user/repo-b python spaces_app/app.py   # any Hub repos or folders

On the Hub (`python training/publish_space.py`) this file sits next to a copy of the library, `models.json`
(name → repo id of the published models) and the report; in a checkout it finds them one folder up.
"""

from __future__ import annotations

try:  # ZeroGPU: `@spaces.GPU` attaches a GPU per call. Preinstalled on Spaces, optional elsewhere; imported
    import spaces  # before torch, as ZeroGPU requires.
except ImportError:
    spaces = None

import argparse
import functools
import importlib.util
import inspect
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# A checkout: the library, release/ and docs/ are one level up. A published Space has them next to this file.
IN_CHECKOUT = not (HERE / "hub_models").is_dir() and (HERE.parent / "hub_models").is_dir()
if IN_CHECKOUT and importlib.util.find_spec("hub_models") is None:
    sys.path.insert(0, str(HERE.parent))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE, SAMPLERS  # noqa: E402
from hub_models.figures import to_pil  # noqa: E402
from hub_models.io import log  # noqa: E402
from hub_models.space import about  # noqa: E402
from hub_models.space import logic as sl  # noqa: E402
from hub_models.space.decoder_js import live_decode_js  # noqa: E402
from hub_models.space.preprocess import (  # noqa: E402
    EMPTY_MESSAGE,
    MAX_UPLOAD_BYTES,
    InputImageError,
    prepare_canvas,
    prepare_digit,
)

MODELS_CONFIG = HERE / "models.json"  # written by publish_space: {"space": repo id, "models": {name: repo id}}
LOCAL_MODELS_DIR = HERE.parent / "release" if IN_CHECKOUT else None
DOCS_DIR = HERE.parent / "docs" if IN_CHECKOUT else HERE / "docs"
EXAMPLES_DIR = HERE / "examples"
EXAMPLES = ("drawn_4.png", "photo_7.jpg", "inverted_2.png")  # a drawn 4, a photo of a 7 on paper, an inverted 2
TITLE = "mnist-genlab — β-VAEs and a DDPM on MNIST"
MAX_SLIDERS = 8
# The test digits a first visit shows.
FIRST_DIGITS = {"reconstruct": 7, "interpolate_a": 0, "interpolate_b": 6, "complete": 2}
GPU_DURATION = 120  # seconds a ZeroGPU call may hold the GPU: 64 digits × 1000 steps fit
DECODE_BATCH = 32  # slider requests waiting in the queue are decoded in one call (one session state per batch)
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
#decoded-digit img { width: 100%; height: 100%; object-fit: contain; }
#latent-map img { cursor: crosshair; }
"""


def gpu(fn):
    """`@spaces.GPU` when the `spaces` package is installed: on a ZeroGPU Space each call then runs with a GPU
    attached (the handler moves its model there, `sl.compute_device()`); elsewhere spaces returns `fn` as is."""
    return fn if spaces is None else spaces.GPU(duration=GPU_DURATION)(fn)


# ----------------------------------------------------------------------------------------------------------
# Errors: every failure reaches the user as a readable message, never as a bare "Error"
# ----------------------------------------------------------------------------------------------------------
def _to_gr_error(err: Exception) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, (sl.SpaceError, InputImageError)):
        return gr.Error(str(err), print_exception=False)
    traceback.print_exc()
    return gr.Error(f"Something went wrong on the server ({type(err).__name__}). Please try another input.")


def user_errors(fn):
    """Turn library errors into `gr.Error` for plain functions, coroutines and generators alike."""
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except Exception as err:
                raise _to_gr_error(err) from err
        return async_wrapper
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise _to_gr_error(err) from err
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _to_gr_error(err) from err
    return wrapper


def uploads_only(value: Any) -> Any:
    """Refuse any file path in an image value that is not in gradio's upload/cache folder.

    The image handlers take raw values (`preprocess=False`), and gradio does not check paths in them: an API
    call could name any file on the server (`{"path": "/etc/hostname"}`), which `prepare_digit` would read."""
    from gradio.utils import get_upload_folder, is_in_or_equal

    if isinstance(value, dict):
        for key in ("background", "composite"):
            uploads_only(value.get(key))
        layers = value.get("layers")
        for layer in layers if isinstance(layers, list) else []:
            uploads_only(layer)
        path = value.get("path")
    else:
        path = value
    if isinstance(path, (str, os.PathLike)) and not is_in_or_equal(str(path), get_upload_folder()):
        raise InputImageError("The image did not arrive as an upload; please upload or draw it again.")
    return value


# ----------------------------------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------------------------------
def space_config(config_file: str | os.PathLike | None = MODELS_CONFIG) -> dict[str, Any]:
    """models.json of a published Space ({} in a checkout, where the release list is the model list)."""
    try:
        return json.loads(Path(config_file).read_text()) if config_file else {}
    except (OSError, ValueError):
        return {}


def load_models(config_file: str | os.PathLike | None = MODELS_CONFIG) -> sl.Registry:
    """Resolve the model list (env var, models.json or the release list, release/ folders) and load it once."""
    threads = int(os.environ.get("GENLAB_TORCH_THREADS", "1"))
    # One intra-op thread per request: many small requests share the 2 vCPUs without oversubscription.
    torch.set_num_threads(max(1, threads))
    return sl.load_registry(sl.resolve_model_sources(config_file, models_dir=LOCAL_MODELS_DIR))


def report_url(config: dict[str, Any]) -> str | None:
    """The report this Space ships (docs/REPORT.md in its repo); None outside a Space."""
    space_id = os.environ.get("SPACE_ID") or config.get("space")
    return f"https://huggingface.co/spaces/{space_id}/blob/main/docs/REPORT.md" if space_id else None


def blank_canvas() -> dict[str, Any]:
    """A black 280×280 canvas: the white brush then draws like MNIST (white ink on black)."""
    black = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    return {"background": black, "layers": [], "composite": black}


def editor_value(x: torch.Tensor) -> dict[str, Any]:
    """A prepared digit `(1, 1, 28, 28)` as an ImageEditor value (280×280, white on black)."""
    im = to_pil(x, nrow=1, padding=0, scale=sl.DIGIT_SCALE).convert("RGBA")
    return {"background": im, "layers": [], "composite": im}


def reconstruction_outputs(reg: sl.Registry, x: torch.Tensor, names: Any, label: str = "") -> tuple:
    """(prepared input, label, gallery, scores table, state) of the Reconstruct tab for a prepared digit."""
    names = [n for n in (names or []) if isinstance(n, str)]
    if not names:
        raise sl.SpaceError("Choose at least one model.")
    results = [sl.reconstruct(reg.vae(n), x) for n in names]
    gallery = [(r.image, r.name.removeprefix("vae-")
                + ("" if r.percentile is None else f" · {r.percentile:.0f}th pct")) for r in results]
    table = [[r.name, round(r.bce, 2), round(r.kld, 2), round(r.neg_elbo, 2),
              "n/a" if r.percentile is None else round(r.percentile, 1)] for r in results]
    guess = sl.classify(reg, x)
    if guess is not None:
        label += f"{' · ' if label else ''}the digit classifier reads **{guess[0]}** ({guess[1]:.0%})"
    return (to_pil(x, nrow=1, padding=0, scale=sl.DIGIT_SCALE), label, gallery, table, x[0, 0].numpy().tolist())


def ddpm_default_digit(entry: sl.DDPMEntry | None) -> str:
    """A class-conditional DDPM opens on a row per digit; an unconditional one on 'any'."""
    return sl.EVERY_DIGIT if entry is not None and entry.conditional else sl.ANY_DIGIT


def first_visit(reg: sl.Registry) -> dict[str, Any]:
    """What every tab shows before a visitor clicks anything, computed once at start-up with each tab's default
    settings (so pressing the button with the same settings gives the same result)."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if reg.vaes:
        first = next(iter(reg.vaes.values()))
        zero = [0.0] * first.latent_dim
        out["vae_grid"] = sl.vae_generate(first, sl.DEFAULT_COUNT, 0)
        out["latent"] = (sl.decode_latent(first, zero), sl.latent_map(first, (0, 1)).with_marker(torch.zeros(
            first.latent_dim)), sl.latent_grid(first, zero, (0, 1)))
    if reg.ddpm is not None:
        image, status = sl.ddpm_grid(reg.ddpm, digit=ddpm_default_digit(reg.ddpm), guidance=reg.ddpm.default_guidance)
        out["ddpm"] = (image, f"Made at start-up: {status}. Change the seed and press **Generate** for new digits.")
    plain = sl.unconditional_vaes(reg)  # Reconstruct and Interpolate have no digit to give a conditional VAE
    if plain and reg.test is not None:
        x, label, idx = sl.test_digit(reg, FIRST_DIGITS["reconstruct"], 0)
        out["reconstruct"] = reconstruction_outputs(reg, x, sl.study_series(reg),
                                                    f"test digit #{idx}: a **{label}**")
        xa, *_ = sl.test_digit(reg, FIRST_DIGITS["interpolate_a"], 0)
        xb, *_ = sl.test_digit(reg, FIRST_DIGITS["interpolate_b"], 0)
        first = reg.vaes[plain[0]]
        out["interpolate"] = (editor_value(xa), editor_value(xb), sl.interpolate(first, xa, xb, 10, "lerp"),
                              sl.interpolate(first, xa, xb, 10, "slerp"))
    if reg.ddpm is not None and reg.test is not None:
        x, label, idx = sl.test_digit(reg, FIRST_DIGITS["complete"], 0)
        shown, ddpm, vae, status = sl.complete_digit(reg, x)
        out["complete"] = (editor_value(x), shown, ddpm, vae,
                           f"Made at start-up from test digit #{idx} (a **{label}**), its top half hidden: {status}")
    out["seconds"] = time.perf_counter() - t0
    log("space", f"first-visit results computed in {out['seconds']:.2f} s")
    return out


def build_demo(reg: sl.Registry, config: dict[str, Any] | None = None) -> gr.Blocks:
    config = config or {}
    vae_names = list(reg.vaes)
    first = reg.vaes[vae_names[0]] if vae_names else None
    n_sliders = min(MAX_SLIDERS, max([e.latent_dim for e in reg.vaes.values()] or [2]))
    vae_missing = "" if vae_names else f"**No VAE could be loaded.** {reg.describe_errors('vae')}"
    ddpm_missing = "" if reg.ddpm else f"**The DDPM is not loaded.** {reg.describe_errors('ddpm')}"
    shown = first_visit(reg)
    series = sl.study_series(reg)

    plain = sl.unconditional_vaes(reg)

    def choices(unconditional: bool = False) -> list[tuple[str, str]]:
        """Every VAE (Generate, the latent explorer), or those that need no digit (Reconstruct, Interpolate)."""
        return [(e.label, e.name) for e in reg.vaes.values() if not (unconditional and e.conditional)]

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nβ-VAEs (conv / dense, z = 2 / 4, β = 1e-3 / 1 / 20) and a DDPM trained on "
                    "MNIST, reproducing a study of how β trades reconstruction against latent structure "
                    "(its verdicts are in **About**).")
        if reg.errors:
            with gr.Accordion("Some models are not available", open=False):
                gr.Markdown("\n".join(f"- `{k}`: {v}" for k, v in reg.errors.items()))

        # ---------------------------------------------------------------------------------------- Generate
        with gr.Tab("Generate", id="generate"):
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### β-VAE — decode z ~ N(0, I)\n" + vae_missing)
                    gen_model = gr.Dropdown(choices(), value=vae_names[0] if vae_names else None,
                                            label="model", interactive=bool(vae_names))
                    with gr.Row():
                        gen_count = gr.Slider(1, sl.MAX_IMAGES, value=sl.DEFAULT_COUNT, step=1, label="digits")
                        gen_seed = gr.Number(0, precision=0, minimum=0, label="seed")
                    gen_btn = gr.Button("Generate", variant="primary", interactive=bool(vae_names))
                    gen_out = gr.Image(shown.get("vae_grid"), label="samples", format="png", type="pil",
                                       interactive=False, elem_classes="pixelated", elem_id="vae-samples",
                                       buttons=["download", "fullscreen"])
                with gr.Column():
                    gr.Markdown("### DDPM — progressive denoising\n" + ddpm_missing)
                    ddpm_model = gr.Dropdown(list(reg.ddpms), value=reg.ddpm.name if reg.ddpm else None,
                                             label="model", visible=len(reg.ddpms) > 1, elem_id="ddpm-model",
                                             info="the unconditional DDPM, or the class-conditional one")
                    with gr.Row():
                        ddpm_sampler = gr.Dropdown(list(SAMPLERS), value=sl.DEFAULT_SAMPLER, label="sampler")
                        ddpm_steps = gr.Slider(1, sl.MAX_DDPM_STEPS, value=sl.DEFAULT_DDPM_STEPS, step=1,
                                               label="denoising steps",
                                               info="10–25 steps; DDPM (ancestral) gives this model's best digits")
                    with gr.Row():
                        ddpm_count = gr.Slider(1, sl.MAX_IMAGES, value=sl.DEFAULT_COUNT, step=1, label="digits")
                        ddpm_seed = gr.Number(0, precision=0, minimum=0, label="seed")
                    conditional = reg.ddpm is not None and reg.ddpm.conditional
                    with gr.Row():  # a class-conditional DDPM: which digit, how strongly
                        ddpm_digit = gr.Dropdown(list(sl.DIGIT_CHOICES), value=ddpm_default_digit(reg.ddpm),
                                                 label="digit", elem_id="ddpm-digit", visible=conditional,
                                                 info="one digit, a row per digit, or any (unconditional)")
                        w0 = reg.ddpm.default_guidance if reg.ddpm is not None else DEFAULT_GUIDANCE_SCALE
                        ddpm_guidance = gr.Slider(0, sl.MAX_GUIDANCE, value=w0, step=0.5,
                                                  label="guidance", elem_id="ddpm-guidance", visible=conditional,
                                                  info="classifier-free guidance: 0 ignores the digit, 1 = as trained")
                    with gr.Row():
                        ddpm_btn = gr.Button("Generate", variant="primary", interactive=reg.ddpm is not None,
                                             elem_id="ddpm-generate")
                        ddpm_stop = gr.Button("Stop", variant="stop", interactive=reg.ddpm is not None)
                    ddpm_first, ddpm_first_status = shown.get("ddpm", (None, ""))
                    ddpm_out = gr.Image(ddpm_first, label="samples (streams while denoising)", format="png",
                                        type="pil", interactive=False, elem_classes="pixelated",
                                        elem_id="ddpm-samples", buttons=["download", "fullscreen"])
                    ddpm_status = gr.Markdown(ddpm_first_status, elem_id="ddpm-status")

        # ------------------------------------------------------------------------------- Latent explorer
        with gr.Tab("Latent explorer", id="latent"):
            gr.Markdown(vae_missing or "Drag the sliders: the digit is decoded live. Click the map to jump "
                        "there. For 4-D models, pick the two dimensions the map and the grid show.")
            with gr.Row():
                lat_model = gr.Dropdown(choices(), value=vae_names[0] if vae_names else None, label="model",
                                        interactive=bool(vae_names), elem_id="latent-model")
                dim_names = [f"z{i + 1}" for i in range(n_sliders)]
                show_dims = first is not None and first.latent_dim > 2
                dim_x = gr.Dropdown(dim_names, value="z1", label="map x", visible=show_dims)
                dim_y = gr.Dropdown(dim_names, value="z2", label="map y", visible=show_dims)
                # A conditional VAE decodes z as a chosen digit: the sliders then move the style within it.
                lat_class = gr.Dropdown([str(d) for d in range(10)], value="0", label="digit",
                                        visible=first is not None and first.conditional, elem_id="latent-class",
                                        info="conditional VAE: the sliders move the style of this digit")
            first_digit, first_map, first_grid = shown.get("latent", (None, None, None))
            with gr.Row():
                with gr.Column(scale=1, min_width=220):
                    limit = first.limit if first else 3.0
                    sliders = [gr.Slider(-limit, limit, value=0.0, step=0.01, label=f"z{i + 1}",
                                         visible=first is not None and i < first.latent_dim,
                                         elem_id=f"z{i + 1}")
                               for i in range(n_sliders)]
                    lat_reset = gr.Button("Reset to 0", size="sm")
                with gr.Column(scale=1, min_width=240):
                    lat_digit = gr.Image(first_digit, label="decoded digit", format="png", type="pil",
                                         interactive=False, height=300, elem_classes="pixelated",
                                         elem_id="decoded-digit", buttons=["download"])
                    # The decoder as data for the browser (None: the server decodes), and the counter the browser
                    # bumps to ask the server instead (its change runs /decode_latent).
                    lat_decoder = gr.JSON(sl.browser_decoder(first) if first else None, visible="hidden",
                                          elem_id="latent-decoder")
                    lat_fallback = gr.Number(0, precision=0, visible="hidden", elem_id="latent-fallback")
                with gr.Column(scale=2, min_width=320):
                    lat_map = gr.Image(first_map, label="latent map of the test set (click)", format="png",
                                       type="pil", interactive=False, elem_id="latent-map", buttons=["fullscreen"])
            with gr.Accordion("Grid over the two map dimensions (others held at the sliders)", open=True):
                lat_grid = gr.Image(first_grid, label="decoded grid", format="png", type="pil", interactive=False,
                                    elem_classes="pixelated", buttons=["download", "fullscreen"], height=460)

        # ----------------------------------------------------------------------------------- Reconstruct
        with gr.Tab("Reconstruct", id="reconstruct"):
            gr.Markdown(vae_missing or "Draw a digit (white on black, like MNIST), upload any image, or pick a "
                        "test digit. It is prepared like MNIST (fit in 20×20, centred by mass in 28×28), then "
                        "reconstructed by each chosen model, with an anomaly score calibrated on the test set.")
            rec_first = shown.get("reconstruct", (None, "", None, None, None))
            with gr.Row():
                with gr.Column(scale=1):
                    with gr.Tab("Draw"):
                        sketch = gr.Sketchpad(
                            label="draw a digit", type="filepath", canvas_size=(280, 280), fixed_canvas=True,
                            brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed",
                                           default_size=18),
                            layers=False, image_mode="RGBA", elem_id="sketchpad", height=340, format="png",
                            value=blank_canvas())
                    with gr.Tab("Upload"):
                        upload = gr.Image(label="upload an image (any size or mode, ≤ 10 MB)", type="filepath",
                                          image_mode=None, sources=["upload", "clipboard"], format="png",
                                          elem_id="upload")
                    with gr.Tab("Test set"):
                        with gr.Row():
                            pick_digit = gr.Dropdown(["any"] + [str(d) for d in range(10)], value="any",
                                                     label="digit")
                            pick_btn = gr.Button("Random test digit", interactive=reg.test is not None)
                    examples = [str(EXAMPLES_DIR / name) for name in EXAMPLES if (EXAMPLES_DIR / name).is_file()]
                    if examples and vae_names:  # click one: it goes into the Upload tab and is reconstructed
                        gr.Examples(examples, inputs=upload, label="examples: a drawn 4, a photo of a 7 on paper, "
                                    "an inverted 2", cache_examples=False, elem_id="rec-examples")
                    rec_models = gr.CheckboxGroup(choices(unconditional=True), value=series, label="models")
                with gr.Column(scale=2):
                    with gr.Row():
                        rec_input = gr.Image(rec_first[0], label="prepared input (28×28)", format="png", type="pil",
                                             interactive=False, height=220, elem_classes="pixelated",
                                             elem_id="prepared-input")
                        rec_label = gr.Markdown(rec_first[1], elem_id="rec-label")
                    rec_gallery = gr.Gallery(rec_first[2], label="reconstructions", format="png", columns=3,
                                             height=300, object_fit="contain", allow_preview=False, preview=False,
                                             fit_columns=False, elem_classes="pixelated", elem_id="reconstructions")
                    rec_table = gr.Dataframe(rec_first[3],
                                             headers=["model", "BCE", "KLD", "−ELBO", "anomaly percentile"],
                                             label="scores (nats; percentile among test digits)",
                                             interactive=False, elem_id="rec-table")
            rec_state = gr.State(rec_first[4])

        # ----------------------------------------------------------------------------------- Interpolate
        with gr.Tab("Interpolate", id="interpolate"):
            gr.Markdown(vae_missing or "Two digits — drawn, uploaded, or picked from the test set — are encoded; "
                        "the strips decode points along the straight line (lerp) and the great-circle arc "
                        "(slerp) between their latent means.")
            int_first = shown.get("interpolate", (blank_canvas(), blank_canvas(), None, None))
            editors, picks, pick_btns = [], [], []
            with gr.Row():
                for k, side in enumerate("AB"):
                    with gr.Column():
                        editors.append(gr.ImageEditor(
                            int_first[k], label=f"digit {side}", type="filepath", canvas_size=(280, 280),
                            fixed_canvas=True, sources=["upload", "clipboard"], image_mode="RGBA", layers=False,
                            brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed",
                                           default_size=18),
                            elem_id=f"interp-{side}", height=340, format="png"))
                        with gr.Row():
                            first_digit = FIRST_DIGITS[f"interpolate_{side.lower()}"]
                            picks.append(gr.Dropdown([str(d) for d in range(10)], value=str(first_digit),
                                                     label="test digit", elem_id=f"pick-{side}"))
                            pick_btns.append(gr.Button(f"Pick test digit as {side}",
                                                       interactive=reg.test is not None))
            with gr.Row():
                int_model = gr.Dropdown(choices(unconditional=True), value=plain[0] if plain else None,
                                        label="model")
                int_steps = gr.Slider(2, 32, value=10, step=1, label="steps")
                int_btn = gr.Button("Interpolate", variant="primary", interactive=bool(vae_names))
            int_lerp = gr.Image(int_first[2], label="lerp: A, straight line, B", format="png", type="pil",
                                interactive=False, elem_classes="pixelated", elem_id="interp-lerp")
            int_slerp = gr.Image(int_first[3], label="slerp: A, arc, B", format="png", type="pil",
                                 interactive=False, elem_classes="pixelated", elem_id="interp-slerp")

        # ----------------------------------------------------------------------------------------- Complete
        with gr.Tab("Complete", id="complete"):
            gr.Markdown(ddpm_missing or "Hide part of a digit — a half, or paint it with the **red** brush — and "
                        "the DDPM fills it in (RePaint: the known pixels are re-noised at every step so the "
                        "generated part fits them). Beside it, a VAE decodes the same masked digit. **denoise** "
                        "adds noise instead (a share of the T diffusion steps) and removes it from that step.")
            comp_first = shown.get("complete", (blank_canvas(), None, None, None, ""))
            with gr.Row():
                with gr.Column(scale=1):
                    comp_editor = gr.ImageEditor(
                        comp_first[0], label="digit (white: ink · red: the part to complete)", type="filepath",
                        canvas_size=(280, 280), fixed_canvas=True, sources=["upload", "clipboard"],
                        image_mode="RGBA", layers=False,
                        brush=gr.Brush(colors=["#ff0000", "#ffffff"], default_color="#ff0000", color_mode="fixed",
                                       default_size=24),
                        elem_id="complete-editor", height=340, format="png")
                    with gr.Row():
                        comp_pick = gr.Dropdown([str(d) for d in range(10)], value=str(FIRST_DIGITS["complete"]),
                                                label="test digit", elem_id="complete-pick")
                        comp_pick_btn = gr.Button("Pick test digit", interactive=reg.test is not None)
                    with gr.Row():
                        comp_hide = gr.Dropdown(list(sl.HIDE_CHOICES), value=sl.DEFAULT_HIDE, label="hide",
                                                elem_id="complete-hide")
                        comp_mode = gr.Radio(list(sl.COMPLETE_MODES), value="complete", label="mode",
                                             elem_id="complete-mode")
                    comp_level = gr.Slider(0, 1, value=sl.DEFAULT_NOISE_LEVEL, step=0.05, label="noise level",
                                           info="denoise: the share of the T diffusion steps of noise added")
                    with gr.Row():
                        comp_vae = gr.Dropdown(choices(unconditional=True), value=plain[0] if plain else None,
                                               label="VAE to compare")
                        comp_seed = gr.Number(0, precision=0, minimum=0, label="seed")
                    comp_digit = gr.Dropdown([sl.ANY_DIGIT, *map(str, range(10))], value=sl.ANY_DIGIT,
                                             label="guide to digit", visible=conditional, elem_id="complete-digit",
                                             info="a class-conditional DDPM: complete towards this digit")
                    comp_btn = gr.Button("Complete", variant="primary", interactive=reg.ddpm is not None,
                                         elem_id="complete-run")
                with gr.Column(scale=2):
                    with gr.Row():
                        comp_input = gr.Image(comp_first[1], label="input (hidden part in red)", format="png",
                                              type="pil", interactive=False, height=260, elem_classes="pixelated",
                                              elem_id="complete-input")
                        comp_ddpm = gr.Image(comp_first[2], label="DDPM", format="png", type="pil",
                                             interactive=False, height=260, elem_classes="pixelated",
                                             elem_id="complete-ddpm")
                        comp_vae_out = gr.Image(comp_first[3], label="VAE", format="png", type="pil",
                                                interactive=False, height=260, elem_classes="pixelated",
                                                elem_id="complete-vae")
                    comp_status = gr.Markdown(comp_first[4], elem_id="complete-status")

        # ----------------------------------------------------------------------------------------- About
        with gr.Tab("About", id="about"):
            report = DOCS_DIR / "REPORT.md"
            gr.Markdown(about.INTRO + "\n\n## The study's claims, checked\n\n"
                        + about.claims_markdown(about.report_claims(report), report_url(config)),
                        elem_id="about-claims")
            rate_distortion = DOCS_DIR / "figures" / "rate_distortion.png"
            if rate_distortion.is_file():
                gr.Image(str(rate_distortion), label="rate–distortion: every β-VAE of the study", height=520,
                         interactive=False, elem_id="about-rate-distortion", buttons=["fullscreen"])
            beta_figure = about.beta_side_by_side(DOCS_DIR / "figures")
            if beta_figure is not None:
                gr.Image(beta_figure, label="Conv VAE, z = 2: β side by side", format="png", type="pil",
                         height=760, interactive=False, elem_id="about-beta", buttons=["fullscreen"])
            gr.Markdown(about.models_markdown(reg, dict(config.get("models") or {})), elem_id="about-models")

        # ======================================================================================= events
        @user_errors
        def vae_generate(name, count, seed):
            return sl.vae_generate(reg.vae(name), count, seed)

        gen_btn.click(vae_generate, [gen_model, gen_count, gen_seed], gen_out, api_name="vae_generate",
                      concurrency_limit=2, concurrency_id="vae")

        @gpu
        @user_errors
        def ddpm_generate(sampler, steps, count, seed, digit=sl.ANY_DIGIT, guidance=DEFAULT_GUIDANCE_SCALE,
                          model=None):
            entry = reg.require_ddpm(model)
            for image, status in sl.ddpm_stream(entry, sampler, steps, count, seed, digit, guidance,
                                                device=sl.compute_device()):
                yield (gr.skip() if image is None else image), status

        # digit, guidance and model are the last inputs, with defaults: API callers of the default (unconditional)
        # model may omit them.
        ddpm_event = ddpm_btn.click(ddpm_generate, [ddpm_sampler, ddpm_steps, ddpm_count, ddpm_seed, ddpm_digit,
                                                    ddpm_guidance, ddpm_model],
                                    [ddpm_out, ddpm_status], api_name="ddpm_generate", concurrency_limit=1,
                                    concurrency_id="ddpm", show_progress="minimal")
        ddpm_stop.click(None, None, None, cancels=[ddpm_event], api_name="ddpm_stop", api_visibility="private")

        @user_errors
        def select_ddpm(name):
            entry = reg.require_ddpm(name)
            return (gr.Dropdown(value=ddpm_default_digit(entry), visible=entry.conditional),
                    gr.Slider(value=entry.default_guidance, visible=entry.conditional))

        ddpm_model.change(select_ddpm, ddpm_model, [ddpm_digit, ddpm_guidance], api_visibility="private")

        # Latent explorer -----------------------------------------------------------------------------
        def _dims(entry: sl.VAEEntry, dx, dy) -> tuple[int, int]:
            if entry.latent_dim == 2:
                return (0, 1)
            return sl.check_dims(entry, (dx or "z1", dy or "z2"))

        @user_errors
        def select_vae(name, digit="0"):
            entry = reg.vae(name)
            zero = [0.0] * entry.latent_dim
            digit = digit if entry.conditional else None
            slider_updates = [gr.Slider(minimum=-entry.limit, maximum=entry.limit, value=0.0,
                                        visible=i < entry.latent_dim) for i in range(n_sliders)]
            dim_choices = [f"z{i + 1}" for i in range(entry.latent_dim)]
            show = entry.latent_dim > 2
            return (*slider_updates,
                    gr.Dropdown(choices=dim_choices, value="z1", visible=show),
                    gr.Dropdown(choices=dim_choices, value="z2", visible=show),
                    gr.Dropdown(visible=entry.conditional),
                    sl.decode_latent(entry, zero, digit),
                    sl.latent_map(entry, (0, 1)).with_marker(torch.zeros(entry.latent_dim)),
                    sl.latent_grid(entry, zero, (0, 1), digit=digit))

        lat_outputs = [*sliders, dim_x, dim_y, lat_class, lat_digit, lat_map, lat_grid]

        def browser_decoder(name):
            return sl.browser_decoder(reg.vae(name))

        # The digit is the last input, with a default: API callers of an unconditional VAE may omit it.
        lat_model.change(select_vae, [lat_model, lat_class], lat_outputs, api_name="select_vae").success(
            browser_decoder, lat_model, lat_decoder, api_visibility="private", queue=False)

        # A slider move is decoded in the browser (`hub_models.space.decoder_js`: no server round trip). The server
        # decodes when the browser cannot (no browser decoder for the model: it bumps `lat_fallback`) and for API
        # clients.
        gr.on([s.input for s in sliders], None, [lat_decoder, *sliders, lat_digit, lat_fallback, lat_class],
              [lat_digit, lat_fallback], js=live_decode_js(n_sliders), queue=False, show_progress="hidden")

        @user_errors
        async def decode_latent(names, *values):
            # Batched: the requests waiting in the queue arrive together (one list per input). async on purpose:
            # a sub-millisecond decode runs on the event loop, skipping the hop to a worker thread. The last input
            # is the digit of a conditional VAE (ignored by the others).
            *zs, digits = values if len(values) > n_sliders else (*values, [None] * len(names))
            images = []
            for i, name in enumerate(names):
                try:
                    images.append(sl.decode_latent(reg.vae(name), [z[i] for z in zs], digits[i]))
                except sl.SpaceError:
                    if len(names) == 1:  # a request alone (always, without concurrent users) gets its message
                        raise
                    images.append(None)  # others in its batch still get their digit
            return (images,)

        lat_fallback.change(decode_latent, [lat_model, *sliders, lat_class], lat_digit, api_name="decode_latent",
                            trigger_mode="always_last", show_progress="hidden", preprocess=False, batch=True,
                            max_batch_size=DECODE_BATCH, concurrency_limit=1, concurrency_id="decode")

        def _split(values) -> tuple[list, Any]:
            """(slider values, the digit of a conditional VAE) from the sliders and the optional digit after them."""
            values = list(values)
            return values[:n_sliders], (values[n_sliders] if len(values) > n_sliders else None)

        @user_errors
        def latent_views(name, dx, dy, *values):
            entry = reg.vae(name)
            dims = _dims(entry, dx, dy)
            z, digit = _split(values)
            zt = sl.as_latent(z, entry.latent_dim)
            return sl.latent_map(entry, dims).with_marker(zt[0]), sl.latent_grid(entry, z, dims, digit=digit)

        gr.on([*(s.release for s in sliders), dim_x.input, dim_y.input], latent_views,
              [lat_model, dim_x, dim_y, *sliders, lat_class], [lat_map, lat_grid], api_name="latent_views",
              trigger_mode="always_last", show_progress="hidden", preprocess=False,
              concurrency_limit=2, concurrency_id="views")

        @user_errors
        def reset_latent(name, digit=None):
            entry = reg.vae(name)
            zero = [0.0] * entry.latent_dim
            return (*[gr.Slider(value=0.0) for _ in sliders], sl.decode_latent(entry, zero, digit))

        lat_reset.click(reset_latent, [lat_model, lat_class], [*sliders, lat_digit], api_name="reset_latent").then(
            latent_views, [lat_model, dim_x, dim_y, *sliders, lat_class], [lat_map, lat_grid],
            api_name="latent_views_reset",
            preprocess=False, api_visibility="undocumented")

        @user_errors
        def pick_latent(evt: gr.SelectData, name, dx, dy, *values):  # gradio fills `evt` (the click) itself
            entry = reg.vae(name)
            z, digit = _split(values)
            index = getattr(evt, "index", None)
            if not isinstance(index, (list, tuple)) or len(index) != 2:
                raise sl.SpaceError("Click a point inside the latent map.")
            dims = _dims(entry, dx, dy)
            latent = sl.latent_map(entry, dims).to_latent(float(index[0]), float(index[1]))
            if latent is None:
                raise sl.SpaceError("Click inside the plot area of the map.")
            values = [sl.as_float(v, f"z{i + 1}") for i, v in enumerate(z[:entry.latent_dim])]
            values[dims[0]], values[dims[1]] = round(latent[0], 2), round(latent[1], 2)
            zt = sl.as_latent(values, entry.latent_dim)
            updates = [gr.Slider(value=values[i]) if i < entry.latent_dim else gr.Slider()
                       for i in range(n_sliders)]
            return (*updates, sl.decode_latent(entry, values, digit), sl.latent_map(entry, dims).with_marker(zt[0]),
                    sl.latent_grid(entry, values, dims, digit=digit))

        # A new digit: the same style decoded as it (the server decodes: one request per change, not per drag).
        @user_errors
        def select_class(name, dx, dy, *values):
            entry = reg.vae(name)
            z, digit = _split(values)
            return sl.decode_latent(entry, z, digit), sl.latent_grid(entry, z, _dims(entry, dx, dy), digit=digit)

        # Then the browser redecodes at the sliders' current values: a slider moved while the server was decoding
        # must not be overwritten by that (now stale) image.
        lat_class.input(select_class, [lat_model, dim_x, dim_y, *sliders, lat_class], [lat_digit, lat_grid],
                        api_name="select_digit", preprocess=False, trigger_mode="always_last").then(
            None, [lat_decoder, *sliders, lat_digit, lat_fallback, lat_class], [lat_digit, lat_fallback],
            js=live_decode_js(n_sliders), queue=False, show_progress="hidden")

        lat_map.select(pick_latent, [lat_model, dim_x, dim_y, *sliders, lat_class],
                       [*sliders, lat_digit, lat_map, lat_grid],
                       api_name="pick_latent", api_visibility="undocumented", preprocess=False)

        # Reconstruct ---------------------------------------------------------------------------------
        nothing = (gr.skip(),) * 5

        @user_errors
        def reconstruct_drawing(value, names):
            try:
                x = prepare_digit(uploads_only(value))
            except InputImageError as err:
                if str(err) == EMPTY_MESSAGE:
                    # The Sketchpad reports its blank canvas too (on load, after clearing): nothing was drawn,
                    # so nothing changes (the last result stays, and a first visit keeps its example).
                    return nothing
                raise
            return reconstruction_outputs(reg, x, names)

        @user_errors
        def reconstruct_upload(value, names):
            if value is None:  # the upload was cleared
                return nothing
            return reconstruction_outputs(reg, prepare_digit(uploads_only(value)), names)

        @user_errors
        def reconstruct_test_digit(digit, names, seed=None):
            reg.vae(next(iter(reg.vaes), None))  # no VAE at all: say that first
            x, label, idx = sl.test_digit(reg, digit, seed)
            return reconstruction_outputs(reg, x, names, f"test digit #{idx}: a **{label}**")

        @user_errors
        def reconstruct_again(state, names):
            if state is None:
                return gr.skip()
            x = torch.tensor(np.asarray(state, dtype=np.float32))[None, None]
            return reconstruction_outputs(reg, x, names)

        rec_outputs = [rec_input, rec_label, rec_gallery, rec_table, rec_state]
        # The Sketchpad reports strokes through `input` (its `change` does not fire on drawing).
        # No progress overlay: the Sketchpad also fires this on page load (its blank canvas), which changes nothing.
        sketch.input(reconstruct_drawing, [sketch, rec_models], rec_outputs, api_name="reconstruct_drawing",
                      trigger_mode="always_last", show_progress="hidden", preprocess=False,
                      concurrency_limit=2, concurrency_id="vae")
        # `change`, not `upload`: an example put into the component by gr.Examples is reconstructed too.
        upload.change(reconstruct_upload, [upload, rec_models], rec_outputs, api_name="reconstruct_upload",
                      preprocess=False, concurrency_limit=2, concurrency_id="vae")
        pick_btn.click(reconstruct_test_digit, [pick_digit, rec_models], rec_outputs,
                       api_name="reconstruct_test_digit", concurrency_limit=2, concurrency_id="vae")
        rec_models.input(reconstruct_again, [rec_state, rec_models], rec_outputs, api_name="reconstruct_again",
                         api_visibility="undocumented", trigger_mode="always_last")

        # Interpolate ---------------------------------------------------------------------------------
        @user_errors
        def interpolate(a, b, name, steps):
            entry = reg.vae(name)
            xa, xb = prepare_digit(uploads_only(a)), prepare_digit(uploads_only(b))
            return (sl.interpolate(entry, xa, xb, steps, "lerp"), sl.interpolate(entry, xa, xb, steps, "slerp"))

        @user_errors
        def interpolate_if_ready(a, b, name, steps):
            """After a pick: interpolate once both sides hold a digit, silently wait otherwise."""
            try:
                xa, xb = prepare_digit(uploads_only(a)), prepare_digit(uploads_only(b))
            except InputImageError:
                return gr.skip(), gr.skip()
            entry = reg.vae(name)
            return (sl.interpolate(entry, xa, xb, steps, "lerp"), sl.interpolate(entry, xa, xb, steps, "slerp"))

        int_btn.click(interpolate, [*editors, int_model, int_steps], [int_lerp, int_slerp], api_name="interpolate",
                      preprocess=False, concurrency_limit=2, concurrency_id="vae")

        for editor, pick, btn, side in zip(editors, picks, pick_btns, "AB", strict=True):
            @user_errors
            def pick_test(digit):
                x, _, _ = sl.test_digit(reg, digit)
                return editor_value(x)

            btn.click(pick_test, pick, editor, api_name=f"pick_test_digit_{side.lower()}").then(
                interpolate_if_ready, [*editors, int_model, int_steps], [int_lerp, int_slerp],
                api_name=f"interpolate_after_pick_{side.lower()}", api_visibility="undocumented",
                preprocess=False)

        # Complete ------------------------------------------------------------------------------------
        @gpu
        @user_errors
        def complete_digit(value, hide, mode, level, vae_name, seed, digit=sl.ANY_DIGIT):
            x, painted = prepare_canvas(uploads_only(value))
            return sl.complete_digit(reg, x, painted, hide, mode, level, vae_name, digit, seed,
                                     device=sl.compute_device())

        comp_inputs = [comp_editor, comp_hide, comp_mode, comp_level, comp_vae, comp_seed, comp_digit]
        comp_outputs = [comp_input, comp_ddpm, comp_vae_out, comp_status]
        # digit is the last input, with a default: API callers of an unconditional model may omit it.
        comp_btn.click(complete_digit, comp_inputs, comp_outputs, api_name="complete", preprocess=False,
                       concurrency_limit=1, concurrency_id="ddpm")

        @user_errors
        def pick_complete(digit):
            x, _, _ = sl.test_digit(reg, digit)
            return editor_value(x)

        comp_pick_btn.click(pick_complete, comp_pick, comp_editor, api_name="pick_test_digit_complete").then(
            complete_digit, comp_inputs, comp_outputs, api_name="complete_after_pick",
            api_visibility="undocumented", preprocess=False, concurrency_limit=1, concurrency_id="ddpm")

    demo.first_visit_seconds = shown["seconds"]
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
    p.add_argument("--models", default=None,
                   help="comma-separated 'name=folder_or_repo' list; overrides $GENLAB_MODELS and models.json")
    p.add_argument("--config", default=str(MODELS_CONFIG),
                   help="models.json of a published Space ({'models': {name: repo id}}); default: the release list")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    if args.models:
        os.environ[sl.MODELS_ENV] = args.models
    t0 = time.perf_counter()
    zero_gpu = "on" if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true") else "off"
    gpu_state = "not installed (CPU)" if spaces is None else f"installed, ZeroGPU {zero_gpu}"
    log("space", f"library: {Path(sl.__file__).parents[1]}; spaces: {gpu_state}")
    demo = create_demo(args.config)
    log("space", f"ready in {time.perf_counter() - t0:.1f} s after the imports")
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main(parse_args())
