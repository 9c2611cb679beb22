"""The Latent explorer tab: sliders over z decoded live (in the browser when it can, else on the server), a map of
the test set to click, and a grid over two latent dimensions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr
import torch

from hub_models.space.checks import SpaceError, as_float, as_latent
from hub_models.space.decoder_js import live_decode_js
from hub_models.space.latent import browser_decoder as decoder_data
from hub_models.space.latent import check_dims, latent_grid, latent_map
from hub_models.space.latent import decode_latent as decode
from hub_models.space.registry import Registry, VAEEntry
from tabs.common import user_errors, vae_choices, vae_class_choices, vae_missing

MAX_SLIDERS = 8
DECODE_BATCH = 32  # slider requests waiting in the queue are decoded in one call (one session state per batch)


def n_sliders(reg: Registry) -> int:
    """As many sliders as the widest loaded VAE has latent dimensions (2 without any), at most `MAX_SLIDERS`."""
    return min(MAX_SLIDERS, max([e.latent_dim for e in reg.vaes.values()] or [2]))


def first_visit(reg: Registry) -> tuple | None:
    """(decoded digit, map, grid) of the first VAE at z = 0."""
    if not reg.vaes:
        return None
    first = next(iter(reg.vaes.values()))
    zero = [0.0] * first.latent_dim
    return (decode(first, zero), latent_map(first, (0, 1)).with_marker(torch.zeros(first.latent_dim)),
            latent_grid(first, zero, (0, 1)))


def _layout(reg: Registry, first_view: tuple | None) -> SimpleNamespace:
    vae_names = list(reg.vaes)
    first = reg.vaes[vae_names[0]] if vae_names else None
    n = n_sliders(reg)
    w = SimpleNamespace(n_sliders=n)
    gr.Markdown(vae_missing(reg) or "Drag the sliders: the digit is decoded live. Click the map to jump "
                "there. For 4-D models, pick the two dimensions the map and the grid show.")
    with gr.Row():
        w.model = gr.Dropdown(vae_choices(reg), value=vae_names[0] if vae_names else None, label="model",
                              interactive=bool(vae_names), elem_id="latent-model")
        dim_names = [f"z{i + 1}" for i in range(n)]
        show_dims = first is not None and first.latent_dim > 2
        w.dim_x = gr.Dropdown(dim_names, value="z1", label="map x", visible=show_dims)
        w.dim_y = gr.Dropdown(dim_names, value="z2", label="map y", visible=show_dims)
        # A conditional VAE decodes z as a chosen digit: the sliders then move the style within it.
        w.digit_class = gr.Dropdown(vae_class_choices(first), value="0", label="digit",
                                    visible=first is not None and first.conditional, elem_id="latent-class",
                                    info="conditional VAE: the sliders move the style of this digit")
    first_digit, first_map, first_grid = first_view or (None, None, None)
    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            limit = first.limit if first else 3.0
            w.sliders = [gr.Slider(-limit, limit, value=0.0, step=0.01, label=f"z{i + 1}",
                                   visible=first is not None and i < first.latent_dim, elem_id=f"z{i + 1}")
                         for i in range(n)]
            w.reset = gr.Button("Reset to 0", size="sm")
        with gr.Column(scale=1, min_width=240):
            w.digit = gr.Image(first_digit, label="decoded digit", format="png", type="pil", interactive=False,
                               height=300, elem_classes="pixelated", elem_id="decoded-digit", buttons=["download"])
            # The decoder as data for the browser (None: the server decodes), and the counter the browser bumps to
            # ask the server instead (its change runs /decode_latent).
            w.decoder = gr.JSON(decoder_data(first) if first else None, visible="hidden", elem_id="latent-decoder")
            w.fallback = gr.Number(0, precision=0, visible="hidden", elem_id="latent-fallback")
        with gr.Column(scale=2, min_width=320):
            w.map = gr.Image(first_map, label="latent map of the test set (click)", format="png", type="pil",
                             interactive=False, elem_id="latent-map", buttons=["fullscreen"])
    with gr.Accordion("Grid over the two map dimensions (others held at the sliders)", open=True):
        w.grid = gr.Image(first_grid, label="decoded grid", format="png", type="pil", interactive=False,
                          elem_classes="pixelated", buttons=["download", "fullscreen"], height=460)
    return w


def _dims(entry: VAEEntry, dx: Any, dy: Any) -> tuple[int, int]:
    if entry.latent_dim == 2:
        return (0, 1)
    return check_dims(entry, (dx or "z1", dy or "z2"))


def _split(values: Any, n: int) -> tuple[list, Any]:
    """(slider values, the digit of a conditional VAE) from `n` sliders and the optional digit after them."""
    values = list(values)
    return values[:n], (values[n] if len(values) > n else None)


def _slider_handlers(reg: Registry, n: int) -> SimpleNamespace:
    """The handlers that set the sliders or decode their values, for `n` sliders."""

    @user_errors
    def select_vae(name, digit="0"):
        entry = reg.vae(name)
        zero = [0.0] * entry.latent_dim
        digit = digit if entry.conditional else None
        slider_updates = [gr.Slider(minimum=-entry.limit, maximum=entry.limit, value=0.0,
                                    visible=i < entry.latent_dim) for i in range(n)]
        dim_choices = [f"z{i + 1}" for i in range(entry.latent_dim)]
        show = entry.latent_dim > 2
        return (*slider_updates,
                gr.Dropdown(choices=dim_choices, value="z1", visible=show),
                gr.Dropdown(choices=dim_choices, value="z2", visible=show),
                gr.Dropdown(choices=vae_class_choices(entry), visible=entry.conditional),
                decode(entry, zero, digit),
                latent_map(entry, (0, 1)).with_marker(torch.zeros(entry.latent_dim)),
                latent_grid(entry, zero, (0, 1), digit=digit))

    def browser_decoder(name):
        return decoder_data(reg.vae(name))

    @user_errors
    async def decode_latent(names, *values):
        # Batched: the requests waiting in the queue arrive together (one list per input). async on purpose:
        # a sub-millisecond decode runs on the event loop, skipping the hop to a worker thread. The last input
        # is the digit of a conditional VAE (ignored by the others).
        *zs, digits = values if len(values) > n else (*values, [None] * len(names))
        images = []
        for i, name in enumerate(names):
            try:
                images.append(decode(reg.vae(name), [z[i] for z in zs], digits[i]))
            except SpaceError:
                if len(names) == 1:  # a request alone (always, without concurrent users) gets its message
                    raise
                images.append(None)  # others in its batch still get their digit
        return (images,)

    @user_errors
    def reset_latent(name, digit=None):
        entry = reg.vae(name)
        zero = [0.0] * entry.latent_dim
        return (*[gr.Slider(value=0.0) for _ in range(n)], decode(entry, zero, digit))

    return SimpleNamespace(select_vae=select_vae, browser_decoder=browser_decoder, decode_latent=decode_latent,
                           reset_latent=reset_latent)


def _view_handlers(reg: Registry, n: int) -> SimpleNamespace:
    """The handlers of the map and the grid (and of the digit, which redraws the grid), for `n` sliders."""

    def split(values: Any) -> tuple[list, Any]:
        return _split(values, n)

    @user_errors
    def latent_views(name, dx, dy, *values):
        entry = reg.vae(name)
        dims = _dims(entry, dx, dy)
        z, digit = split(values)
        zt = as_latent(z, entry.latent_dim)
        return latent_map(entry, dims).with_marker(zt[0]), latent_grid(entry, z, dims, digit=digit)

    @user_errors
    def pick_latent(evt: gr.SelectData, name, dx, dy, *values):  # gradio fills `evt` (the click) itself
        entry = reg.vae(name)
        z, digit = split(values)
        index = getattr(evt, "index", None)
        if not isinstance(index, (list, tuple)) or len(index) != 2:
            raise SpaceError("Click a point inside the latent map.")
        dims = _dims(entry, dx, dy)
        latent = latent_map(entry, dims).to_latent(float(index[0]), float(index[1]))
        if latent is None:
            raise SpaceError("Click inside the plot area of the map.")
        values = [as_float(v, f"z{i + 1}") for i, v in enumerate(z[:entry.latent_dim])]
        values[dims[0]], values[dims[1]] = round(latent[0], 2), round(latent[1], 2)
        zt = as_latent(values, entry.latent_dim)
        updates = [gr.Slider(value=values[i]) if i < entry.latent_dim else gr.Slider() for i in range(n)]
        return (*updates, decode(entry, values, digit), latent_map(entry, dims).with_marker(zt[0]),
                latent_grid(entry, values, dims, digit=digit))

    # A new digit: the same style decoded as it (the server decodes: one request per change, not per drag).
    @user_errors
    def select_class(name, dx, dy, *values):
        entry = reg.vae(name)
        z, digit = split(values)
        return decode(entry, z, digit), latent_grid(entry, z, _dims(entry, dx, dy), digit=digit)

    return SimpleNamespace(latent_views=latent_views, pick_latent=pick_latent, select_class=select_class)


def _wire(w: SimpleNamespace, h: SimpleNamespace) -> None:
    n, sliders = w.n_sliders, w.sliders
    outputs = [*sliders, w.dim_x, w.dim_y, w.digit_class, w.digit, w.map, w.grid]
    # The digit is the last input, with a default: API callers of an unconditional VAE may omit it.
    w.model.change(h.select_vae, [w.model, w.digit_class], outputs, api_name="select_vae").success(
        h.browser_decoder, w.model, w.decoder, api_visibility="private", queue=False)
    # A slider move is decoded in the browser (`hub_models.space.decoder_js`: no server round trip). The server
    # decodes when the browser cannot (no browser decoder for the model: it bumps `fallback`) and for API clients.
    browser_inputs = [w.decoder, *sliders, w.digit, w.fallback, w.digit_class]
    gr.on([s.input for s in sliders], None, browser_inputs, [w.digit, w.fallback], js=live_decode_js(n), queue=False,
          show_progress="hidden")
    w.fallback.change(h.decode_latent, [w.model, *sliders, w.digit_class], w.digit, api_name="decode_latent",
                      trigger_mode="always_last", show_progress="hidden", preprocess=False, batch=True,
                      max_batch_size=DECODE_BATCH, concurrency_limit=1, concurrency_id="decode")
    view_inputs = [w.model, w.dim_x, w.dim_y, *sliders, w.digit_class]
    gr.on([*(s.release for s in sliders), w.dim_x.input, w.dim_y.input], h.latent_views, view_inputs,
          [w.map, w.grid], api_name="latent_views", trigger_mode="always_last", show_progress="hidden",
          preprocess=False, concurrency_limit=2, concurrency_id="views")
    w.reset.click(h.reset_latent, [w.model, w.digit_class], [*sliders, w.digit], api_name="reset_latent").then(
        h.latent_views, view_inputs, [w.map, w.grid], api_name="latent_views_reset", preprocess=False,
        api_visibility="undocumented")
    # Then the browser redecodes at the sliders' current values: a slider moved while the server was decoding
    # must not be overwritten by that (now stale) image.
    w.digit_class.input(h.select_class, view_inputs, [w.digit, w.grid], api_name="select_digit", preprocess=False,
                        trigger_mode="always_last").then(
        None, browser_inputs, [w.digit, w.fallback], js=live_decode_js(n), queue=False, show_progress="hidden")
    w.map.select(h.pick_latent, view_inputs, [*sliders, w.digit, w.map, w.grid], api_name="pick_latent",
                 api_visibility="undocumented", preprocess=False)


def build(reg: Registry, first: tuple | None) -> None:
    """The tab, its widgets and their events, in the open `gr.Blocks`."""
    with gr.Tab("Latent explorer", id="latent"):
        w = _layout(reg, first)
    n = w.n_sliders
    _wire(w, SimpleNamespace(**vars(_slider_handlers(reg, n)), **vars(_view_handlers(reg, n))))


__all__ = ["DECODE_BATCH", "MAX_SLIDERS", "build", "first_visit", "n_sliders"]
