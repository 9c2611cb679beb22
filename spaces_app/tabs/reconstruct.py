"""The Reconstruct tab: a drawn, uploaded or test digit, prepared like MNIST and reconstructed by each chosen VAE,
with its scores and an anomaly percentile calibrated on the test set."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np
import torch

from hub_models.figures import to_pil
from hub_models.space.checks import SpaceError
from hub_models.space.preprocess import EMPTY_MESSAGE, InputImageError
from hub_models.space.reconstruct import DIGIT_SCALE, prepare_for, reconstruct
from hub_models.space.registry import (
    Registry,
    classify,
    require_mnist_model,
    study_series,
    test_digit,
    unconditional_vaes,
)
from tabs.common import DIGITS, blank_canvas, uploads_only, user_errors, vae_choices, vae_missing, white_brush

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = ("drawn_4.png", "photo_7.jpg", "inverted_2.png")  # a drawn 4, a photo of a 7 on paper, an inverted 2
FIRST_DIGIT = 7  # the test digit a first visit shows


def chosen_vaes(reg: Registry, names: Any) -> list[str]:
    """The chosen model names (strings only), or a SpaceError when there are none or one is unknown."""
    names = [n for n in (names or []) if isinstance(n, str)]
    if not names:
        raise SpaceError("Choose at least one model.")
    for name in names:
        reg.vae(name)
    return names


def _state(x: torch.Tensor) -> list:
    """The prepared input as the tab keeps it: (28, 28) for a grey digit (as always), (C, H, W) otherwise."""
    return x[0, 0].numpy().tolist() if x.shape[1] == 1 else x[0].numpy().tolist()


def reconstruction_outputs(reg: Registry, x: torch.Tensor, names: Any, label: str = "") -> tuple:
    """(prepared input, label, gallery, scores table, state) of the tab for a prepared digit (or image: each
    model gets it at its own shape)."""
    names = chosen_vaes(reg, names)
    results = [reconstruct(reg.vae(n), x) for n in names]
    gallery = [(r.image, r.name.removeprefix("vae-")
                + ("" if r.percentile is None else f" · {r.percentile:.0f}th pct")) for r in results]
    table = [[r.name, round(r.bce, 2), round(r.kld, 2), round(r.neg_elbo, 2),
              "n/a" if r.percentile is None else round(r.percentile, 1)] for r in results]
    # the digit classifier reads MNIST digits only: not shown for models of other data
    mnist = all(reg.vae(n).mnist_like for n in names) and tuple(x.shape[1:]) == (1, 28, 28)
    guess = classify(reg, x) if mnist else None
    if guess is not None:
        label += f"{' · ' if label else ''}the digit classifier reads **{guess[0]}** ({guess[1]:.0%})"
    return (to_pil(x, nrow=1, padding=0, scale=DIGIT_SCALE), label, gallery, table, _state(x))


def first_visit(reg: Registry) -> tuple | None:
    """A test 7 reconstructed by the study's β series (Reconstruct has no digit to give a conditional VAE)."""
    if not unconditional_vaes(reg) or reg.test is None:
        return None
    x, label, idx = test_digit(reg, FIRST_DIGIT, 0)
    return reconstruction_outputs(reg, x, study_series(reg), f"test digit #{idx}: a **{label}**")


def _inputs(reg: Registry, w: SimpleNamespace) -> None:
    with gr.Tab("Draw"):
        w.sketch = gr.Sketchpad(
            label="draw a digit", type="filepath", canvas_size=(280, 280), fixed_canvas=True, brush=white_brush(),
            layers=False, image_mode="RGBA", elem_id="sketchpad", height=340, format="png", value=blank_canvas())
    with gr.Tab("Upload"):
        w.upload = gr.Image(label="upload an image (any size or mode, ≤ 10 MB)", type="filepath", image_mode=None,
                            sources=["upload", "clipboard"], format="png", elem_id="upload")
    with gr.Tab("Test set"):
        with gr.Row():
            w.pick_digit = gr.Dropdown(["any", *DIGITS], value="any", label="digit")
            w.pick_btn = gr.Button("Random test digit", interactive=reg.test is not None)
    examples = [str(EXAMPLES_DIR / name) for name in EXAMPLES if (EXAMPLES_DIR / name).is_file()]
    if examples and reg.vaes:  # click one: it goes into the Upload tab and is reconstructed
        gr.Examples(examples, inputs=w.upload, label="examples: a drawn 4, a photo of a 7 on paper, "
                    "an inverted 2", cache_examples=False, elem_id="rec-examples")
    w.models = gr.CheckboxGroup(vae_choices(reg, unconditional=True), value=study_series(reg), label="models")


def _layout(reg: Registry, first: tuple | None) -> SimpleNamespace:
    w = SimpleNamespace()
    gr.Markdown(vae_missing(reg) or "Draw a digit (white on black, like MNIST), upload any image, or pick a "
                "test digit. It is prepared like MNIST (fit in 20×20, centred by mass in 28×28), then "
                "reconstructed by each chosen model, with an anomaly score calibrated on the test set.")
    first = first or (None, "", None, None, None)
    with gr.Row():
        with gr.Column(scale=1):
            _inputs(reg, w)
        with gr.Column(scale=2):
            with gr.Row():
                w.input = gr.Image(first[0], label="prepared input (28×28)", format="png", type="pil",
                                   interactive=False, height=220, elem_classes="pixelated", elem_id="prepared-input")
                w.label = gr.Markdown(first[1], elem_id="rec-label")
            w.gallery = gr.Gallery(first[2], label="reconstructions", format="png", columns=3, height=300,
                                   object_fit="contain", allow_preview=False, preview=False, fit_columns=False,
                                   elem_classes="pixelated", elem_id="reconstructions")
            w.table = gr.Dataframe(first[3], headers=["model", "BCE", "KLD", "−ELBO", "anomaly percentile"],
                                   label="scores (nats; percentile among test digits)", interactive=False,
                                   elem_id="rec-table")
    w.state = gr.State(first[4])
    return w


def _wire(reg: Registry, w: SimpleNamespace) -> None:
    nothing = (gr.skip(),) * 5

    def prepare(value, names) -> torch.Tensor:
        """The input prepared for the chosen models (MNIST's recipe for MNIST models, else their shape); the
        names are checked after, as before, so that a blank canvas still changes nothing."""
        entries = [reg.vaes[n] for n in (names or []) if isinstance(n, str) and n in reg.vaes]
        return prepare_for(entries, uploads_only(value))

    @user_errors
    def reconstruct_drawing(value, names):
        try:
            x = prepare(value, names)
        except InputImageError as err:
            if str(err) == EMPTY_MESSAGE:
                # The Sketchpad reports its blank canvas too (on load, after clearing): nothing was drawn, so
                # nothing changes (the last result stays, and a first visit keeps its example).
                return nothing
            raise
        if float(x.max()) < 0.05:  # a blank canvas prepared for a model of other images: nothing drawn either
            return nothing
        return reconstruction_outputs(reg, x, names)

    @user_errors
    def reconstruct_upload(value, names):
        if value is None:  # the upload was cleared
            return nothing
        return reconstruction_outputs(reg, prepare(value, names), names)

    @user_errors
    def reconstruct_test_digit(digit, names, seed=None):
        reg.vae(next(iter(reg.vaes), None))  # no VAE at all: say that first
        entries = [reg.vae(n) for n in chosen_vaes(reg, names)]
        require_mnist_model(entries)
        x, label, idx = test_digit(reg, digit, seed)
        return reconstruction_outputs(reg, x, names, f"test digit #{idx}: a **{label}**")

    @user_errors
    def reconstruct_again(state, names):
        if state is None:
            return gr.skip()
        x = torch.tensor(np.asarray(state, dtype=np.float32))
        return reconstruction_outputs(reg, x[None, None] if x.ndim == 2 else x[None], names)

    outputs = [w.input, w.label, w.gallery, w.table, w.state]
    # The Sketchpad reports strokes through `input` (its `change` does not fire on drawing).
    # No progress overlay: the Sketchpad also fires this on page load (its blank canvas), which changes nothing.
    w.sketch.input(reconstruct_drawing, [w.sketch, w.models], outputs, api_name="reconstruct_drawing",
                   trigger_mode="always_last", show_progress="hidden", preprocess=False, concurrency_limit=2,
                   concurrency_id="vae")
    # `change`, not `upload`: an example put into the component by gr.Examples is reconstructed too.
    w.upload.change(reconstruct_upload, [w.upload, w.models], outputs, api_name="reconstruct_upload",
                    preprocess=False, concurrency_limit=2, concurrency_id="vae")
    w.pick_btn.click(reconstruct_test_digit, [w.pick_digit, w.models], outputs, api_name="reconstruct_test_digit",
                     concurrency_limit=2, concurrency_id="vae")
    w.models.input(reconstruct_again, [w.state, w.models], outputs, api_name="reconstruct_again",
                   api_visibility="undocumented", trigger_mode="always_last")


def build(reg: Registry, first: tuple | None) -> None:
    """The tab, its widgets and their events, in the open `gr.Blocks`."""
    with gr.Tab("Reconstruct", id="reconstruct"):
        w = _layout(reg, first)
    _wire(reg, w)


__all__ = ["EXAMPLES", "EXAMPLES_DIR", "FIRST_DIGIT", "build", "first_visit", "reconstruction_outputs"]
