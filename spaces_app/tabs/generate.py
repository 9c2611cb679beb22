"""The Generate tab: a β-VAE grid decoded from z ~ N(0, I) beside a DDPM grid that streams while it denoises."""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE, SAMPLERS, num_classes
from hub_models.io import compute_device
from hub_models.space import diffusion
from hub_models.space.checks import DEFAULT_COUNT, MAX_IMAGES
from hub_models.space.diffusion import (
    ANY_DIGIT,
    DEFAULT_DDPM_STEPS,
    DEFAULT_SAMPLER,
    EVERY_DIGIT,
    MAX_DDPM_STEPS,
    MAX_GUIDANCE,
    class_choices,
    ddpm_grid,
)
from hub_models.space.latent import vae_generate as vae_grid
from hub_models.space.registry import DDPMEntry, Registry
from tabs.common import ddpm_missing, gpu, user_errors, vae_choices, vae_missing


def ddpm_default_digit(entry: DDPMEntry | None) -> str:
    """A class-conditional DDPM opens on a row per digit; an unconditional one on 'any'."""
    return EVERY_DIGIT if entry is not None and entry.conditional else ANY_DIGIT


def initial_class_choices(reg: Registry) -> list:
    """The default DDPM's class picker, plus the class indices only another loaded DDPM has: the server checks API
    values against the picker it was built with, whichever model a request names."""
    choices = class_choices(reg.ddpm)
    values = {c[1] if isinstance(c, tuple) else c for c in choices}
    extra = sorted({i for e in reg.ddpms.values() if e.conditional for i in range(num_classes(e.unet))
                    if str(i) not in values})
    return choices + [(str(i), str(i)) for i in extra] if extra else choices


def first_visit(reg: Registry) -> dict[str, Any]:
    """The VAE grid and the DDPM grid with the tab's default settings (pressing Generate gives the same)."""
    out: dict[str, Any] = {}
    if reg.vaes:
        out["vae_grid"] = vae_grid(next(iter(reg.vaes.values())), DEFAULT_COUNT, 0)
    if reg.ddpm is not None:
        image, status = ddpm_grid(reg.ddpm, digit=ddpm_default_digit(reg.ddpm), guidance=reg.ddpm.default_guidance)
        out["ddpm"] = (image, f"Made at start-up: {status}. Change the seed and press **Generate** for new "
                              f"{reg.ddpm.noun}.")
    return out


def _vae_column(reg: Registry, first: dict[str, Any]) -> None:
    vae_names = list(reg.vaes)
    gr.Markdown("### β-VAE — decode z ~ N(0, I)\n" + vae_missing(reg))
    model = gr.Dropdown(vae_choices(reg), value=vae_names[0] if vae_names else None, label="model",
                        interactive=bool(vae_names))
    with gr.Row():
        n_digits = gr.Slider(1, MAX_IMAGES, value=DEFAULT_COUNT, step=1, label="digits")
        seed_box = gr.Number(0, precision=0, minimum=0, label="seed")
    button = gr.Button("Generate", variant="primary", interactive=bool(vae_names))
    out = gr.Image(first.get("vae_grid"), label="samples", format="png", type="pil", interactive=False,
                   elem_classes="pixelated", elem_id="vae-samples", buttons=["download", "fullscreen"])

    @user_errors
    def vae_generate(name: Any, count: Any, seed: Any) -> Image.Image:
        return vae_grid(reg.vae(name), count, seed)

    button.click(vae_generate, [model, n_digits, seed_box], out, api_name="vae_generate", concurrency_limit=2,
                 concurrency_id="vae")


def _ddpm_column(reg: Registry, first: dict[str, Any]) -> None:
    gr.Markdown("### DDPM — progressive denoising\n" + ddpm_missing(reg))
    model = gr.Dropdown(list(reg.ddpms), value=reg.ddpm.name if reg.ddpm else None, label="model",
                        visible=len(reg.ddpms) > 1, elem_id="ddpm-model",
                        info="the unconditional DDPM, or the class-conditional one")
    with gr.Row():
        sampler = gr.Dropdown(list(SAMPLERS), value=DEFAULT_SAMPLER, label="sampler")
        steps = gr.Slider(1, MAX_DDPM_STEPS, value=DEFAULT_DDPM_STEPS, step=1, label="denoising steps",
                          info="10–25 steps; DDPM (ancestral) gives this model's best digits")
    with gr.Row():
        count = gr.Slider(1, MAX_IMAGES, value=DEFAULT_COUNT, step=1, label="digits")
        seed = gr.Number(0, precision=0, minimum=0, label="seed")
    conditional = reg.ddpm is not None and reg.ddpm.conditional
    with gr.Row():  # a class-conditional DDPM: which digit, how strongly
        # MNIST's digits, or the label names of the model's data (training_config.json)
        digit = gr.Dropdown(initial_class_choices(reg), value=ddpm_default_digit(reg.ddpm), label="digit",
                            elem_id="ddpm-digit", visible=conditional,
                            info="one digit, a row per digit, or any (unconditional)")
        w0 = reg.ddpm.default_guidance if reg.ddpm is not None else DEFAULT_GUIDANCE_SCALE
        guidance = gr.Slider(0, MAX_GUIDANCE, value=w0, step=0.5, label="guidance", elem_id="ddpm-guidance",
                             visible=conditional, info="classifier-free guidance: 0 ignores the digit, 1 = as trained")
    with gr.Row():
        button = gr.Button("Generate", variant="primary", interactive=reg.ddpm is not None, elem_id="ddpm-generate")
        stop = gr.Button("Stop", variant="stop", interactive=reg.ddpm is not None)
    first_image, first_status = first.get("ddpm", (None, ""))
    out = gr.Image(first_image, label="samples (streams while denoising)", format="png", type="pil",
                   interactive=False, elem_classes="pixelated", elem_id="ddpm-samples",
                   buttons=["download", "fullscreen"])
    status = gr.Markdown(first_status, elem_id="ddpm-status")

    @gpu
    @user_errors
    def ddpm_generate(sampler, steps, count, seed, digit=ANY_DIGIT, guidance=DEFAULT_GUIDANCE_SCALE, model=None):
        entry = reg.require_ddpm(model)
        # Looked up at call time: benchmarks/space_load.py wraps `diffusion.ddpm_stream` to log each request.
        stream = diffusion.ddpm_stream(entry, sampler, steps, count, seed, digit, guidance, device=compute_device())
        for image, text in stream:
            yield (gr.skip() if image is None else image), text

    # digit, guidance and model are the last inputs, with defaults: API callers of the default (unconditional)
    # model may omit them.
    event = button.click(ddpm_generate, [sampler, steps, count, seed, digit, guidance, model], [out, status],
                         api_name="ddpm_generate", concurrency_limit=1, concurrency_id="ddpm",
                         show_progress="minimal")
    stop.click(None, None, None, cancels=[event], api_name="ddpm_stop", api_visibility="private")

    @user_errors
    def select_ddpm(name):
        entry = reg.require_ddpm(name)
        return (gr.Dropdown(choices=class_choices(entry), value=ddpm_default_digit(entry), visible=entry.conditional,
                            label="digit" if entry.mnist_like else "class"),
                gr.Slider(value=entry.default_guidance, visible=entry.conditional))

    model.change(select_ddpm, model, [digit, guidance], api_visibility="private")


def build(reg: Registry, first: dict[str, Any]) -> None:
    """The tab, its widgets and their events, in the open `gr.Blocks`."""
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            with gr.Column():
                _vae_column(reg, first)
            with gr.Column():
                _ddpm_column(reg, first)


__all__ = ["build", "ddpm_default_digit", "first_visit", "initial_class_choices"]
