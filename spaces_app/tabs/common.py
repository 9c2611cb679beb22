"""What every tab shares: library errors turned into messages, the check that image paths are uploads, the ZeroGPU
decorator, the editors' values and the model choices."""

from __future__ import annotations

try:  # ZeroGPU: `@spaces.GPU` attaches a GPU per call. Preinstalled on Spaces, optional elsewhere; app.py imports
    import spaces  # it before torch, as ZeroGPU requires.
except ImportError:
    spaces = None

import functools
import inspect
import os
import traceback
from collections.abc import Callable
from typing import Any

import gradio as gr
import torch
from PIL import Image

from hub_models.figures import to_pil
from hub_models.space.checks import SpaceError
from hub_models.space.preprocess import InputImageError
from hub_models.space.reconstruct import DIGIT_SCALE
from hub_models.space.registry import Registry, VAEEntry

GPU_DURATION = 120  # seconds a ZeroGPU call may hold the GPU: 64 digits × 1000 steps fit
DIGITS = [str(d) for d in range(10)]


def gpu(fn: Callable) -> Callable:
    """`@spaces.GPU` when the `spaces` package is installed: on a ZeroGPU Space each call then runs with a GPU
    attached (the handler moves its model there, `compute_device()`); elsewhere spaces returns `fn` as is."""
    return fn if spaces is None else spaces.GPU(duration=GPU_DURATION)(fn)


def white_brush() -> gr.Brush:
    """The brush that draws like MNIST: white ink on the black canvas."""
    return gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed", default_size=18)


def _to_gr_error(err: Exception) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, (SpaceError, InputImageError)):
        return gr.Error(str(err), print_exception=False)
    traceback.print_exc()
    return gr.Error(f"Something went wrong on the server ({type(err).__name__}). Please try another input.")


def user_errors(fn: Callable) -> Callable:
    """Turn library errors into `gr.Error` (a readable message, never a bare "Error") for plain functions,
    coroutines and generators alike."""
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


def blank_canvas() -> dict[str, Any]:
    """A black 280×280 canvas: the white brush then draws like MNIST (white ink on black)."""
    black = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    return {"background": black, "layers": [], "composite": black}


def editor_value(x: torch.Tensor) -> dict[str, Any]:
    """A prepared digit `(1, 1, 28, 28)` as an ImageEditor value (280×280, white on black)."""
    im = to_pil(x, nrow=1, padding=0, scale=DIGIT_SCALE).convert("RGBA")
    return {"background": im, "layers": [], "composite": im}


def vae_class_choices(entry: VAEEntry | None) -> list[str] | list[tuple[str, str]]:
    """A conditional VAE's class picker: MNIST's digits, or the label names of its data as (name, index) pairs."""
    if entry is None or not entry.conditional or entry.mnist_like:
        return DIGITS
    return [(name, str(i)) for i, name in enumerate(entry.class_names(entry.model.num_classes))]


def vae_choices(reg: Registry, unconditional: bool = False) -> list[tuple[str, str]]:
    """Every VAE (Generate, the latent explorer), or those that need no digit (Reconstruct, Interpolate)."""
    return [(e.label, e.name) for e in reg.vaes.values() if not (unconditional and e.conditional)]


def vae_missing(reg: Registry) -> str:
    """The message a VAE tab shows in place of its help when no VAE loaded ("" when one did)."""
    return "" if reg.vaes else f"**No VAE could be loaded.** {reg.describe_errors('vae')}"


def ddpm_missing(reg: Registry) -> str:
    """The message a DDPM tab shows in place of its help when no DDPM loaded ("" when one did)."""
    return "" if reg.ddpm else f"**The DDPM is not loaded.** {reg.describe_errors('ddpm')}"


__all__ = ["DIGITS", "GPU_DURATION", "blank_canvas", "ddpm_missing", "editor_value", "gpu",
           "uploads_only", "user_errors", "vae_choices", "vae_class_choices", "vae_missing",
           "white_brush"]
