"""mnist-genlab — the Gradio Space: sample, explore the latent space, reconstruct, interpolate, score anomalies.

UI wiring only: every computation lives in `hub_models.space.logic` and `hub_models.space.preprocess`.

    python spaces_app/app.py                      # 127.0.0.1:7860 with the models of release/ (offline)
    GENLAB_MODELS=user/repo-a,user/repo-b python spaces_app/app.py   # any Hub repos or folders
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("hub_models") is None:  # run from a checkout: the library is one level up
    sys.path.insert(0, str(HERE.parent))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from hub_models.figures import to_pil  # noqa: E402
from hub_models.space import logic as sl  # noqa: E402
from hub_models.space.preprocess import MAX_UPLOAD_BYTES, InputImageError, prepare_digit  # noqa: E402

MODELS_CONFIG = HERE / "models.json"
TITLE = "mnist-genlab — β-VAEs and a DDPM on MNIST"
MAX_SLIDERS = 8
STUDY_SERIES = ("beta1e-3", "beta1", "beta20")  # the β comparison of the study, conv z=2
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
#decoded-digit img { width: 100%; height: 100%; object-fit: contain; }
#latent-map img { cursor: crosshair; }
"""


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
def load_models(config_file: str | os.PathLike | None = MODELS_CONFIG) -> sl.Registry:
    """Resolve the model list (env var, config file, release/ folders) and load everything once."""
    threads = int(os.environ.get("GENLAB_TORCH_THREADS", "1"))
    # One intra-op thread per request: many small requests share the 2 vCPUs without oversubscription.
    torch.set_num_threads(max(1, threads))
    return sl.load_registry(sl.resolve_model_sources(config_file))


def _repo_links() -> dict[str, str]:
    try:
        import json

        mapping = json.loads(MODELS_CONFIG.read_text())
        return dict(mapping.get("models", mapping))
    except (OSError, ValueError):
        return {}


def _default_series(reg: sl.Registry) -> list[str]:
    picks = [n for n in reg.vaes if "conv-z2" in n and n.rsplit("-", 1)[-1] in STUDY_SERIES]
    return picks or list(reg.vaes)[:3]


def _about_markdown(reg: sl.Registry) -> str:
    links = _repo_links()
    lines = [
        "## The question",
        "How does **β** trade reconstruction against regularisation in a VAE on MNIST? The study compares "
        "β ∈ {1e-3, 1, 20}, a convolutional against a dense architecture, and latent dimension 2 against 4; "
        "then introduces a DDPM (3.3M-parameter U-Net, 4000 timesteps, cosine schedule).",
        "",
        "## The trained models loaded here",
        "",
        "| model | architecture | z | β | parameters | test BCE | test KLD | test −ELBO |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def num(x: Any, fmt: str = ".2f") -> str:
        return format(x, fmt) if isinstance(x, (int, float)) else "—"

    for e in reg.vaes.values():
        test = e.metrics.get("test", {}) if isinstance(e.metrics.get("test"), dict) else {}
        elbo = test.get("elbo")
        params = e.metrics.get("parameters") or sum(p.numel() for p in e.model.parameters())
        lines.append(f"| {e.name} | {e.arch} | {e.latent_dim} | {'—' if e.beta is None else f'{e.beta:g}'} | "
                     f"{params:,} | {num(test.get('bce'))} | {num(test.get('kld'))} | "
                     f"{num(-elbo if isinstance(elbo, (int, float)) else None)} |")
    if reg.ddpm is not None:
        m = reg.ddpm.metrics
        params = m.get("parameters") or sum(p.numel() for p in reg.ddpm.unet.parameters())
        lines += ["", "| DDPM | parameters | train loss | test loss | FID |", "|---|---|---|---|---|",
                  f"| {reg.ddpm.name} | {params:,} | {num(m.get('train_loss'), '.4f')} | "
                  f"{num(m.get('test_loss'), '.4f')} | {num(m.get('fid'))} |"]
    lines += ["", "## Model repositories", ""]
    for name, source in reg.sources.items():
        repo = links.get(name) or (source if not Path(source).exists() else None)
        where = f"[{repo}](https://huggingface.co/{repo})" if repo else "—"
        status = "loaded" if name not in reg.errors else f"**not loaded**: {reg.errors[name]}"
        local = " (served from a local folder)" if Path(source).exists() else ""
        lines.append(f"- `{name}` — {where}{local} — {status}")
    n_cal = 0 if reg.test is None else len(reg.test.labels)
    lines += ["", "## How the anomaly score works",
              f"Each VAE scores an input by its negative ELBO (BCE + KLD at the posterior mean, in nats). The "
              f"score is its percentile among {n_cal} digits of the official MNIST test set: 50 is a typical "
              "digit, 99+ means the model finds the input stranger than 99 % of real test digits."]
    return "\n".join(lines)


def blank_canvas() -> dict[str, Any]:
    """A black 280×280 canvas: the white brush then draws like MNIST (white ink on black)."""
    black = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    return {"background": black, "layers": [], "composite": black}


def build_demo(reg: sl.Registry) -> gr.Blocks:
    vae_names = list(reg.vaes)
    first = reg.vaes[vae_names[0]] if vae_names else None
    n_sliders = min(MAX_SLIDERS, max([e.latent_dim for e in reg.vaes.values()] or [2]))
    vae_missing = "" if vae_names else f"**No VAE could be loaded.** {reg.describe_errors('vae')}"
    ddpm_missing = "" if reg.ddpm else f"**The DDPM is not loaded.** {reg.describe_errors('ddpm')}"

    def choices() -> list[tuple[str, str]]:
        return [(e.label, e.name) for e in reg.vaes.values()]

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nβ-VAEs (conv / dense, z = 2 / 4, β = 1e-3 / 1 / 20) and a DDPM trained on "
                    "MNIST, reproducing a study of how β trades reconstruction against latent structure. "
                    "Everything runs on CPU.")
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
                        gen_count = gr.Slider(1, sl.MAX_IMAGES, value=16, step=1, label="digits")
                        gen_seed = gr.Number(0, precision=0, minimum=0, label="seed")
                    gen_btn = gr.Button("Generate", variant="primary", interactive=bool(vae_names))
                    gen_out = gr.Image(label="samples", format="png", type="pil", interactive=False,
                                       elem_classes="pixelated", buttons=["download", "fullscreen"])
                with gr.Column():
                    gr.Markdown("### DDPM — progressive denoising\n" + ddpm_missing)
                    from hub_models.diffusion.sampling import SAMPLERS

                    with gr.Row():
                        ddpm_sampler = gr.Dropdown(list(SAMPLERS), value=sl.DEFAULT_SAMPLER, label="sampler")
                        ddpm_steps = gr.Slider(1, sl.MAX_DDPM_STEPS, value=sl.DEFAULT_DDPM_STEPS, step=1,
                                               label="denoising steps",
                                               info="10–25 steps; DDPM (ancestral) gives this model's best digits")
                    with gr.Row():
                        ddpm_count = gr.Slider(1, sl.MAX_IMAGES, value=16, step=1, label="digits")
                        ddpm_seed = gr.Number(0, precision=0, minimum=0, label="seed")
                    with gr.Row():
                        ddpm_btn = gr.Button("Generate", variant="primary", interactive=reg.ddpm is not None,
                                             elem_id="ddpm-generate")
                        ddpm_stop = gr.Button("Stop", variant="stop", interactive=reg.ddpm is not None)
                    ddpm_out = gr.Image(label="samples (streams while denoising)", format="png", type="pil",
                                        interactive=False, elem_classes="pixelated",
                                        buttons=["download", "fullscreen"])
                    ddpm_status = gr.Markdown("", elem_id="ddpm-status")

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
            with gr.Row():
                with gr.Column(scale=1, min_width=220):
                    limit = first.limit if first else 3.0
                    sliders = [gr.Slider(-limit, limit, value=0.0, step=0.01, label=f"z{i + 1}",
                                         visible=first is not None and i < first.latent_dim,
                                         elem_id=f"z{i + 1}")
                               for i in range(n_sliders)]
                    lat_reset = gr.Button("Reset to 0", size="sm")
                with gr.Column(scale=1, min_width=240):
                    lat_digit = gr.Image(label="decoded digit", format="png", type="pil", interactive=False,
                                         height=300, elem_classes="pixelated", elem_id="decoded-digit",
                                         buttons=["download"])
                with gr.Column(scale=2, min_width=320):
                    lat_map = gr.Image(label="latent map of the test set (click)", format="png", type="pil",
                                       interactive=False, elem_id="latent-map", buttons=["fullscreen"])
            with gr.Accordion("Grid over the two map dimensions (others held at the sliders)", open=True):
                lat_grid = gr.Image(label="decoded grid", format="png", type="pil", interactive=False,
                                    elem_classes="pixelated", buttons=["download", "fullscreen"], height=460)

        # ----------------------------------------------------------------------------------- Reconstruct
        with gr.Tab("Reconstruct", id="reconstruct"):
            gr.Markdown(vae_missing or "Draw a digit (white on black, like MNIST), upload any image, or pick a "
                        "test digit. It is prepared like MNIST (fit in 20×20, centred by mass in 28×28), then "
                        "reconstructed by each chosen model, with an anomaly score calibrated on the test set.")
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
                    rec_models = gr.CheckboxGroup(choices(), value=_default_series(reg), label="models")
                with gr.Column(scale=2):
                    with gr.Row():
                        rec_input = gr.Image(label="prepared input (28×28)", format="png", type="pil",
                                             interactive=False, height=220, elem_classes="pixelated",
                                             elem_id="prepared-input")
                        rec_label = gr.Markdown("")
                    rec_gallery = gr.Gallery(label="reconstructions", format="png", columns=3, height=300,
                                             object_fit="contain", allow_preview=False, preview=False,
                                             fit_columns=False,
                                             elem_classes="pixelated", elem_id="reconstructions")
                    rec_table = gr.Dataframe(headers=["model", "BCE", "KLD", "−ELBO", "anomaly percentile"],
                                             label="scores (nats; percentile among test digits)",
                                             interactive=False, elem_id="rec-table")
            rec_state = gr.State(None)

        # ----------------------------------------------------------------------------------- Interpolate
        with gr.Tab("Interpolate", id="interpolate"):
            gr.Markdown(vae_missing or "Two digits — drawn, uploaded, or picked from the test set — are encoded; "
                        "the strips decode points along the straight line (lerp) and the great-circle arc "
                        "(slerp) between their latent means.")
            editors, picks, pick_btns = [], [], []
            with gr.Row():
                for side in ("A", "B"):
                    with gr.Column():
                        editors.append(gr.ImageEditor(
                            label=f"digit {side}", type="filepath", canvas_size=(280, 280), fixed_canvas=True,
                            sources=["upload", "clipboard"], image_mode="RGBA", layers=False,
                            brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed",
                                           default_size=18),
                            elem_id=f"interp-{side}", height=340, value=blank_canvas(), format="png"))
                        with gr.Row():
                            picks.append(gr.Dropdown([str(d) for d in range(10)], value="0" if side == "A"
                                                     else "6", label="test digit"))
                            pick_btns.append(gr.Button(f"Pick test digit as {side}",
                                                       interactive=reg.test is not None))
            with gr.Row():
                int_model = gr.Dropdown(choices(), value=vae_names[0] if vae_names else None, label="model")
                int_steps = gr.Slider(2, 32, value=10, step=1, label="steps")
                int_btn = gr.Button("Interpolate", variant="primary", interactive=bool(vae_names))
            int_lerp = gr.Image(label="lerp: A, straight line, B", format="png", type="pil", interactive=False,
                                elem_classes="pixelated", elem_id="interp-lerp")
            int_slerp = gr.Image(label="slerp: A, arc, B", format="png", type="pil", interactive=False,
                                 elem_classes="pixelated", elem_id="interp-slerp")

        # ----------------------------------------------------------------------------------------- About
        with gr.Tab("About", id="about"):
            gr.Markdown(_about_markdown(reg))

        # ======================================================================================= events
        @user_errors
        def vae_generate(name, count, seed):
            return sl.vae_generate(reg.vae(name), count, seed)

        gen_btn.click(vae_generate, [gen_model, gen_count, gen_seed], gen_out, api_name="vae_generate",
                      concurrency_limit=2, concurrency_id="vae")

        @user_errors
        def ddpm_generate(sampler, steps, count, seed):
            entry = reg.require_ddpm()
            for image, status in sl.ddpm_stream(entry, sampler, steps, count, seed):
                yield (gr.skip() if image is None else image), status

        ddpm_event = ddpm_btn.click(ddpm_generate, [ddpm_sampler, ddpm_steps, ddpm_count, ddpm_seed],
                                    [ddpm_out, ddpm_status], api_name="ddpm_generate", concurrency_limit=1,
                                    concurrency_id="ddpm", show_progress="minimal")
        ddpm_stop.click(None, None, None, cancels=[ddpm_event], api_name="ddpm_stop", api_visibility="private")

        # Latent explorer -----------------------------------------------------------------------------
        def _dims(entry: sl.VAEEntry, dx, dy) -> tuple[int, int]:
            if entry.latent_dim == 2:
                return (0, 1)
            return sl.check_dims(entry, (dx or "z1", dy or "z2"))

        @user_errors
        def select_vae(name):
            entry = reg.vae(name)
            zero = [0.0] * entry.latent_dim
            slider_updates = [gr.Slider(minimum=-entry.limit, maximum=entry.limit, value=0.0,
                                        visible=i < entry.latent_dim) for i in range(n_sliders)]
            dim_choices = [f"z{i + 1}" for i in range(entry.latent_dim)]
            show = entry.latent_dim > 2
            return (*slider_updates,
                    gr.Dropdown(choices=dim_choices, value="z1", visible=show),
                    gr.Dropdown(choices=dim_choices, value="z2", visible=show),
                    sl.decode_latent(entry, zero),
                    sl.latent_map(entry, (0, 1)).with_marker(torch.zeros(entry.latent_dim)),
                    sl.latent_grid(entry, zero, (0, 1)))

        lat_outputs = [*sliders, dim_x, dim_y, lat_digit, lat_map, lat_grid]
        lat_model.change(select_vae, lat_model, lat_outputs, api_name="select_vae")
        if vae_names:
            demo.load(select_vae, lat_model, lat_outputs, api_name="init_latent_explorer",
                      api_visibility="undocumented")

        @user_errors
        async def decode_latent(name, *z):
            # async on purpose: a sub-millisecond decode runs on the event loop, skipping the hop to a worker
            # thread that costs more than the decode itself.
            return sl.decode_latent(reg.vae(name), list(z))

        gr.on([s.input for s in sliders], decode_latent, [lat_model, *sliders], lat_digit,
              api_name="decode_latent", trigger_mode="always_last", show_progress="hidden",
              preprocess=False, concurrency_limit=4, concurrency_id="decode")

        @user_errors
        def latent_views(name, dx, dy, *z):
            entry = reg.vae(name)
            dims = _dims(entry, dx, dy)
            zt = sl.as_latent(list(z), entry.latent_dim)
            return sl.latent_map(entry, dims).with_marker(zt[0]), sl.latent_grid(entry, list(z), dims)

        gr.on([*(s.release for s in sliders), dim_x.input, dim_y.input], latent_views,
              [lat_model, dim_x, dim_y, *sliders], [lat_map, lat_grid], api_name="latent_views",
              trigger_mode="always_last", show_progress="hidden", preprocess=False,
              concurrency_limit=2, concurrency_id="views")

        @user_errors
        def reset_latent(name):
            entry = reg.vae(name)
            zero = [0.0] * entry.latent_dim
            return (*[gr.Slider(value=0.0) for _ in sliders], sl.decode_latent(entry, zero))

        lat_reset.click(reset_latent, lat_model, [*sliders, lat_digit], api_name="reset_latent").then(
            latent_views, [lat_model, dim_x, dim_y, *sliders], [lat_map, lat_grid], api_name="latent_views_reset",
            preprocess=False, api_visibility="undocumented")

        @user_errors
        def pick_latent(evt: gr.SelectData, name, dx, dy, *z):  # gradio fills `evt` (the click) itself
            entry = reg.vae(name)
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
            return (*updates, sl.decode_latent(entry, values), sl.latent_map(entry, dims).with_marker(zt[0]),
                    sl.latent_grid(entry, values, dims))

        lat_map.select(pick_latent, [lat_model, dim_x, dim_y, *sliders], [*sliders, lat_digit, lat_map, lat_grid],
                       api_name="pick_latent", api_visibility="undocumented", preprocess=False)

        # Reconstruct ---------------------------------------------------------------------------------
        def _reconstruct(x: torch.Tensor, names, label: str = ""):
            names = [n for n in (names or []) if isinstance(n, str)]
            if not names:
                raise sl.SpaceError("Choose at least one model.")
            results = [sl.reconstruct(reg.vae(n), x) for n in names]
            gallery = [(r.image, r.name.removeprefix("vae-")
                        + ("" if r.percentile is None else f" · {r.percentile:.0f}th pct"))
                       for r in results]
            table = [[r.name, round(r.bce, 2), round(r.kld, 2), round(r.neg_elbo, 2),
                      "n/a" if r.percentile is None else round(r.percentile, 1)] for r in results]
            guess = sl.classify(reg, x)
            if guess is not None:
                label += f"{' · ' if label else ''}the digit classifier reads **{guess[0]}** ({guess[1]:.0%})"
            return (to_pil(x, nrow=1, padding=0, scale=sl.DIGIT_SCALE), label, gallery, table,
                    x[0, 0].numpy().tolist())

        @user_errors
        def reconstruct_drawing(value, names):
            try:
                x = prepare_digit(uploads_only(value))
            except InputImageError as err:
                # The Sketchpad also reports its blank canvas (on load, after clearing): say so in place,
                # without a pop-up and without wiping the last result.
                return gr.skip(), f"*{err}*", gr.skip(), gr.skip(), gr.skip()
            return _reconstruct(x, names)

        @user_errors
        def reconstruct_upload(value, names):
            return _reconstruct(prepare_digit(uploads_only(value)), names)

        @user_errors
        def reconstruct_test_digit(digit, names, seed=None):
            reg.vae(next(iter(reg.vaes), None))  # no VAE at all: say that first
            x, label, idx = sl.test_digit(reg, digit, seed)
            return _reconstruct(x, names, f"test digit #{idx}: a **{label}**")

        @user_errors
        def reconstruct_again(state, names):
            if state is None:
                return gr.skip()
            x = torch.tensor(np.asarray(state, dtype=np.float32))[None, None]
            return _reconstruct(x, names)

        rec_outputs = [rec_input, rec_label, rec_gallery, rec_table, rec_state]
        # The Sketchpad reports strokes through `input` (its `change` does not fire on drawing).
        sketch.input(reconstruct_drawing, [sketch, rec_models], rec_outputs, api_name="reconstruct_drawing",
                      trigger_mode="always_last", show_progress="minimal", preprocess=False,
                      concurrency_limit=2, concurrency_id="vae")
        upload.upload(reconstruct_upload, [upload, rec_models], rec_outputs, api_name="reconstruct_upload",
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
                im = to_pil(x, nrow=1, padding=0, scale=sl.DIGIT_SCALE).convert("RGBA")
                return {"background": im, "layers": [], "composite": im}

            btn.click(pick_test, pick, editor, api_name=f"pick_test_digit_{side.lower()}").then(
                interpolate_if_ready, [*editors, int_model, int_steps], [int_lerp, int_slerp],
                api_name=f"interpolate_after_pick_{side.lower()}", api_visibility="undocumented",
                preprocess=False)

    return demo


def launch_kwargs() -> dict[str, Any]:
    """Everything `launch()` needs besides host/port (Gradio 6: theme and css go here)."""
    return {"theme": gr.themes.Soft(primary_hue="indigo"), "css": CSS, "max_file_size": MAX_UPLOAD_BYTES,
            "footer_links": ["api", "gradio"], "show_error": True}


def create_demo(config_file: str | os.PathLike | None = MODELS_CONFIG) -> gr.Blocks:
    """Load the models and build the queued app (what tests and the Space both use)."""
    reg = load_models(config_file)
    demo = build_demo(reg)
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
    p.add_argument("--config", default=str(MODELS_CONFIG), help="JSON file mapping model names to Hub repo ids")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    if args.models:
        os.environ[sl.MODELS_ENV] = args.models
    demo = create_demo(args.config)
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main(parse_args())
