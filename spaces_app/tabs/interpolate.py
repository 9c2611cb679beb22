"""The Interpolate tab: two digits (drawn, uploaded or picked from the test set) encoded, and the decodes along the
straight line (lerp) and the great-circle arc (slerp) between their latent means."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr
import torch
from PIL import Image

from hub_models.space.interpolate import interpolate
from hub_models.space.preprocess import InputImageError
from hub_models.space.reconstruct import prepare_for
from hub_models.space.registry import Registry, VAEEntry, require_mnist_model, test_digit, unconditional_vaes
from tabs.common import (
    DIGITS,
    blank_canvas,
    editor_value,
    uploads_only,
    user_errors,
    vae_choices,
    vae_missing,
    white_brush,
)

FIRST_DIGITS = {"A": 0, "B": 6}  # the test digits a first visit shows
DEFAULT_STEPS = 10


def first_visit(reg: Registry) -> tuple | None:
    """(editor A, editor B, lerp strip, slerp strip): a test 0 and 6 through the first unconditional VAE."""
    plain = unconditional_vaes(reg)
    if not plain or reg.test is None:
        return None
    xa, *_ = test_digit(reg, FIRST_DIGITS["A"], 0)
    xb, *_ = test_digit(reg, FIRST_DIGITS["B"], 0)
    entry = reg.vaes[plain[0]]
    return (editor_value(xa), editor_value(xb), interpolate(entry, xa, xb, DEFAULT_STEPS, "lerp"),
            interpolate(entry, xa, xb, DEFAULT_STEPS, "slerp"))


def _side(reg: Registry, w: SimpleNamespace, side: str, value: Any) -> None:
    w.editors.append(gr.ImageEditor(
        value, label=f"digit {side}", type="filepath", canvas_size=(280, 280), fixed_canvas=True,
        sources=["upload", "clipboard"], image_mode="RGBA", layers=False, brush=white_brush(),
        elem_id=f"interp-{side}", height=340, format="png"))
    with gr.Row():
        w.picks.append(gr.Dropdown(DIGITS, value=str(FIRST_DIGITS[side]), label="test digit",
                                   elem_id=f"pick-{side}"))
        w.pick_btns.append(gr.Button(f"Pick test digit as {side}", interactive=reg.test is not None))


def _layout(reg: Registry, first: tuple | None) -> SimpleNamespace:
    gr.Markdown(vae_missing(reg) or "Two digits — drawn, uploaded, or picked from the test set — are encoded; "
                "the strips decode points along the straight line (lerp) and the great-circle arc "
                "(slerp) between their latent means.")
    first = first or (blank_canvas(), blank_canvas(), None, None)
    plain = unconditional_vaes(reg)
    w = SimpleNamespace(editors=[], picks=[], pick_btns=[])
    with gr.Row():
        for k, side in enumerate("AB"):
            with gr.Column():
                _side(reg, w, side, first[k])
    with gr.Row():
        w.model = gr.Dropdown(vae_choices(reg, unconditional=True), value=plain[0] if plain else None, label="model")
        w.steps = gr.Slider(2, 32, value=DEFAULT_STEPS, step=1, label="steps")
        w.button = gr.Button("Interpolate", variant="primary", interactive=bool(reg.vaes))
    w.lerp = gr.Image(first[2], label="lerp: A, straight line, B", format="png", type="pil", interactive=False,
                      elem_classes="pixelated", elem_id="interp-lerp")
    w.slerp = gr.Image(first[3], label="slerp: A, arc, B", format="png", type="pil", interactive=False,
                       elem_classes="pixelated", elem_id="interp-slerp")
    return w


def _wire(reg: Registry, w: SimpleNamespace) -> None:
    def strips(entry: VAEEntry, xa: torch.Tensor, xb: torch.Tensor, steps: Any) -> tuple[Image.Image, Image.Image]:
        return interpolate(entry, xa, xb, steps, "lerp"), interpolate(entry, xa, xb, steps, "slerp")

    @user_errors
    def interpolate_digits(a, b, name, steps):
        entry = reg.vae(name)
        return strips(entry, prepare_for([entry], uploads_only(a)), prepare_for([entry], uploads_only(b)), steps)

    @user_errors
    def interpolate_if_ready(a, b, name, steps):
        """After a pick: interpolate once both sides hold a digit, silently wait otherwise."""
        entry = reg.vae(name)
        try:
            xa, xb = prepare_for([entry], uploads_only(a)), prepare_for([entry], uploads_only(b))
        except InputImageError:
            return gr.skip(), gr.skip()
        return strips(entry, xa, xb, steps)

    @user_errors
    def pick_test(digit, name=None):
        if name:  # the test digits are MNIST's: refused for a model of other data
            require_mnist_model([reg.vae(name)])
        x, _, _ = test_digit(reg, digit)
        return editor_value(x)

    inputs, outputs = [*w.editors, w.model, w.steps], [w.lerp, w.slerp]
    w.button.click(interpolate_digits, inputs, outputs, api_name="interpolate", preprocess=False,
                   concurrency_limit=2, concurrency_id="vae")
    for editor, pick, btn, side in zip(w.editors, w.picks, w.pick_btns, "ab", strict=True):
        btn.click(pick_test, [pick, w.model], editor, api_name=f"pick_test_digit_{side}").then(
            interpolate_if_ready, inputs, outputs, api_name=f"interpolate_after_pick_{side}",
            api_visibility="undocumented", preprocess=False)


def build(reg: Registry, first: tuple | None) -> None:
    """The tab, its widgets and their events, in the open `gr.Blocks`."""
    with gr.Tab("Interpolate", id="interpolate"):
        w = _layout(reg, first)
    _wire(reg, w)


__all__ = ["DEFAULT_STEPS", "FIRST_DIGITS", "build", "first_visit"]
