"""The Complete tab: hide part of a digit (a half, or paint it red) and the DDPM fills it in (RePaint) beside a VAE;
or noise the digit for a share of the T steps and denoise it from there."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr

from hub_models.io import compute_device
from hub_models.space.completion import (
    COMPLETE_MODES,
    DEFAULT_HIDE,
    DEFAULT_NOISE_LEVEL,
    HIDE_CHOICES,
    complete_digit,
)
from hub_models.space.diffusion import ANY_DIGIT
from hub_models.space.preprocess import prepare_canvas
from hub_models.space.registry import Registry, mnist_ddpm, mnist_vaes, test_digit
from tabs.common import DIGITS, blank_canvas, ddpm_missing, editor_value, gpu, uploads_only, user_errors, vae_choices

FIRST_DIGIT = 2  # the test digit a first visit shows, its top half hidden


def first_visit(reg: Registry) -> tuple | None:
    """(editor value, input as the DDPM sees it, DDPM result, VAE result, status) with the tab's defaults."""
    if mnist_ddpm(reg) is None or reg.test is None:  # the canvas and the test digits are MNIST's
        return None
    x, label, idx = test_digit(reg, FIRST_DIGIT, 0)
    shown, ddpm, vae, status = complete_digit(reg, x)
    return (editor_value(x), shown, ddpm, vae,
            f"Made at start-up from test digit #{idx} (a **{label}**), its top half hidden: {status}")


def _controls(reg: Registry, w: SimpleNamespace, editor_value_: Any) -> None:
    plain = mnist_vaes(reg)
    w.editor = gr.ImageEditor(
        editor_value_, label="digit (white: ink · red: the part to complete)", type="filepath",
        canvas_size=(280, 280), fixed_canvas=True, sources=["upload", "clipboard"], image_mode="RGBA", layers=False,
        brush=gr.Brush(colors=["#ff0000", "#ffffff"], default_color="#ff0000", color_mode="fixed", default_size=24),
        elem_id="complete-editor", height=340, format="png")
    with gr.Row():
        w.pick = gr.Dropdown(DIGITS, value=str(FIRST_DIGIT), label="test digit", elem_id="complete-pick")
        w.pick_btn = gr.Button("Pick test digit", interactive=reg.test is not None)
    with gr.Row():
        w.hide = gr.Dropdown(list(HIDE_CHOICES), value=DEFAULT_HIDE, label="hide", elem_id="complete-hide")
        w.mode = gr.Radio(list(COMPLETE_MODES), value="complete", label="mode", elem_id="complete-mode")
    w.level = gr.Slider(0, 1, value=DEFAULT_NOISE_LEVEL, step=0.05, label="noise level",
                        info="denoise: the share of the T diffusion steps of noise added")
    with gr.Row():
        w.vae = gr.Dropdown([c for c in vae_choices(reg, unconditional=True) if c[1] in plain],
                            value=plain[0] if plain else None,
                            label="VAE to compare")
        w.seed = gr.Number(0, precision=0, minimum=0, label="seed")
    ddpm = mnist_ddpm(reg) or reg.ddpm  # the DDPM that completes (hub_models.space.completion.completion_ddpm)
    conditional = ddpm is not None and ddpm.conditional
    w.digit = gr.Dropdown([ANY_DIGIT, *DIGITS], value=ANY_DIGIT, label="guide to digit", visible=conditional,
                          elem_id="complete-digit", info="a class-conditional DDPM: complete towards this digit")
    w.button = gr.Button("Complete", variant="primary", interactive=reg.ddpm is not None, elem_id="complete-run")


def _layout(reg: Registry, first: tuple | None) -> SimpleNamespace:
    gr.Markdown(ddpm_missing(reg) or "Hide part of a digit — a half, or paint it with the **red** brush — and "
                "the DDPM fills it in (RePaint: the known pixels are re-noised at every step so the "
                "generated part fits them). Beside it, a VAE decodes the same masked digit. **denoise** "
                "adds noise instead (a share of the T diffusion steps) and removes it from that step.")
    first = first or (blank_canvas(), None, None, None, "")
    w = SimpleNamespace()
    image = {"format": "png", "type": "pil", "interactive": False, "height": 260, "elem_classes": "pixelated"}
    with gr.Row():
        with gr.Column(scale=1):
            _controls(reg, w, first[0])
        with gr.Column(scale=2):
            with gr.Row():
                w.input = gr.Image(first[1], label="input (hidden part in red)", elem_id="complete-input", **image)
                w.ddpm = gr.Image(first[2], label="DDPM", elem_id="complete-ddpm", **image)
                w.vae_out = gr.Image(first[3], label="VAE", elem_id="complete-vae", **image)
            w.status = gr.Markdown(first[4], elem_id="complete-status")
    return w


def _wire(reg: Registry, w: SimpleNamespace) -> None:
    @gpu
    @user_errors
    def complete(value, hide, mode, level, vae_name, seed, digit=ANY_DIGIT):
        x, painted = prepare_canvas(uploads_only(value))
        return complete_digit(reg, x, painted, hide, mode, level, vae_name, digit, seed, device=compute_device())

    @user_errors
    def pick_complete(digit):
        x, _, _ = test_digit(reg, digit)
        return editor_value(x)

    inputs = [w.editor, w.hide, w.mode, w.level, w.vae, w.seed, w.digit]
    outputs = [w.input, w.ddpm, w.vae_out, w.status]
    # digit is the last input, with a default: API callers of an unconditional model may omit it.
    w.button.click(complete, inputs, outputs, api_name="complete", preprocess=False, concurrency_limit=1,
                   concurrency_id="ddpm")
    w.pick_btn.click(pick_complete, w.pick, w.editor, api_name="pick_test_digit_complete").then(
        complete, inputs, outputs, api_name="complete_after_pick", api_visibility="undocumented", preprocess=False,
        concurrency_limit=1, concurrency_id="ddpm")


def build(reg: Registry, first: tuple | None) -> None:
    """The tab, its widgets and their events, in the open `gr.Blocks`."""
    with gr.Tab("Complete", id="complete"):
        w = _layout(reg, first)
    _wire(reg, w)


__all__ = ["FIRST_DIGIT", "build", "first_visit"]
