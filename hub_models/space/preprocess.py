"""Any user image → a 28×28 digit prepared like MNIST, with a readable error for anything that is not a digit.

MNIST's recipe (LeCun et al.): the digit's bounding box is scaled, keeping its aspect ratio, to fit a 20×20
box (anti-aliased, hence grey levels), then placed in a 28×28 frame so that its centre of mass sits at the
centre. Ink is bright on a black background.

`decode_image` accepts what a Gradio app can hand over — a path, bytes, a PIL image, an array, a Gradio file
dict (`{"path": ...}`) or an ImageEditor/Sketchpad value (`{"background", "layers", "composite"}`) — and
turns it into an ink map; `to_mnist` normalises that ink map. Both raise `InputImageError` with a message
meant for a user.

A model of other images (issue 37) gets them as its training data got them instead (`prepare_image`: converted
to its channels, resized and center-cropped to its resolution, as in diffusers' `train_unconditional.py`), and
`fit_image` brings an already prepared image to another model's shape.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # 10 MB: enough for any photo of a digit
MAX_PIXELS = 20_000_000  # 20 megapixels (a 16 MP phone photo passes, a 5000×5000 image does not)
WORK_SIDE = 512  # larger images are reduced to this side before any float work (speed, memory)
MNIST_BOX, MNIST_SIDE, MNIST_CENTRE = 20, 28, 14.0
EMPTY_MESSAGE = "The image looks empty: no digit found. Draw a digit or upload a clearer image."
INK_THRESHOLD = 0.05  # ink below this is background when looking for the digit's bounding box


class InputImageError(ValueError):
    """The input cannot be read as a digit; the message says why and what to do, in words for a user."""


# ------------------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------------------
def _open_pil(data: bytes | str | os.PathLike) -> Image.Image:
    """Open an encoded image with size limits checked from the header, before any pixel is decoded."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise InputImageError("The uploaded file is not on the server any more; please upload it again.")
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise InputImageError(f"The file is too large ({size / 2**20:.1f} MB); the limit is "
                                  f"{MAX_UPLOAD_BYTES // 2**20} MB.")
        data = path.read_bytes()
    if len(data) == 0:
        raise InputImageError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputImageError(f"The file is too large ({len(data) / 2**20:.1f} MB); the limit is "
                              f"{MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputImageError(f"The image declares too many pixels (a decompression bomb?); the limit is "
                              f"{MAX_PIXELS / 1e6:.0f} megapixels.") from None
    except UnidentifiedImageError:
        raise InputImageError("This file is not an image that can be read (use PNG, JPEG, WebP, GIF, BMP or "
                              "TIFF).") from None
    except Exception as err:  # truncated headers and other decoder failures
        raise InputImageError(f"This image could not be read ({type(err).__name__}).") from None
    _check_pixels(im.width, im.height)
    try:
        im.seek(0)  # first frame of an animation
        im.load()
    except Exception as err:  # truncated data, broken chunks, PNG text bombs (ValueError), ...
        raise InputImageError(f"This image is damaged or truncated and could not be decoded "
                              f"({type(err).__name__}).") from None
    return im


def _check_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise InputImageError("The image has no pixels.")
    if width * height > MAX_PIXELS:
        raise InputImageError(f"The image is too large ({width}×{height} pixels); the limit is "
                              f"{MAX_PIXELS / 1e6:.0f} megapixels. Please crop or resize it.")


def _reduce(im: Image.Image) -> Image.Image:
    """Shrink so the longer side is at most WORK_SIDE (box filter; integer reduce first, which is cheap)."""
    factor = max(im.size) // WORK_SIDE
    if factor >= 2 and im.mode in ("L", "LA", "RGB", "RGBA", "F", "I", "CMYK"):
        im = im.reduce(factor)
    if max(im.size) > WORK_SIDE:
        scale = WORK_SIDE / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BOX)
    return im


def _pil_to_ink(im: Image.Image) -> np.ndarray:
    """A PIL image of any mode → float ink map (H, W) in [0, 1], bright ink on a dark background."""
    try:
        im = ImageOps.exif_transpose(im)  # phone photos carry their rotation in EXIF
    except Exception:  # broken EXIF must not block the image itself
        pass
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("1",):
        im = im.convert("L")
    elif im.mode in ("LAB", "HSV", "YCbCr", "CMYK", "RGBX", "RGBa", "La", "PA"):
        im = im.convert("RGBA" if im.mode in ("RGBa", "La", "PA") else "RGB")
    im = _reduce(im)

    if im.mode in ("RGBA", "LA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        if alpha.min() < 0.98:  # transparency: the opaque part is the digit (white brush or black ink)
            if alpha.max() < 1e-3:
                raise InputImageError("The image is fully transparent: draw or upload a digit.")
            return alpha
        im = im.convert("L")

    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit integers or floats: scale by the observed range
        grey = np.asarray(im, dtype=np.float64)
        if not np.isfinite(grey).all():
            raise InputImageError("The image contains NaN or infinite values.")
        lo, hi = float(grey.min()), float(grey.max())
        grey = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
        grey = grey.astype(np.float32)
    else:
        if im.mode != "L":
            im = im.convert("L")
        grey = np.asarray(im, dtype=np.float32) / 255.0
    return _polarity(grey)


def _polarity(grey: np.ndarray) -> np.ndarray:
    """Make the ink bright: MNIST is white on black, paper photos are dark on light (judged by the border)."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    return 1.0 - grey if background > 0.5 else grey


def _array_to_ink(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == object or arr.size == 0:
        raise InputImageError("The image is empty.")
    if arr.dtype.kind not in "uifb":
        raise InputImageError(f"Unsupported pixel type {arr.dtype}.")
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels-first
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4)):
        raise InputImageError(f"Expected an image of shape (H, W) or (H, W, C), got {arr.shape}.")
    _check_pixels(arr.shape[1], arr.shape[0])
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputImageError("The image contains NaN or infinite values.")
    if arr.max() > 1.0:  # 0..255 or 0..65535
        arr = arr / (65535.0 if arr.max() > 255 else 255.0)
    arr = np.clip(arr, 0.0, 1.0)
    channels = arr.shape[-1] if arr.ndim == 3 else 1
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    u8 = (arr * 255).round().astype(np.uint8)
    return _pil_to_ink(Image.fromarray(u8[..., 0] if u8.ndim == 3 and channels == 1 else u8, mode=mode))


def _editor_to_ink(value: dict[str, Any]) -> np.ndarray | None:
    """A Sketchpad/ImageEditor value: the strokes' layers if any, else the composite, else the background."""
    layers = [layer for layer in (value.get("layers") or []) if layer is not None]
    inks = []
    for layer in layers:
        ink = decode_image(layer, allow_empty=True)
        if ink is not None:
            inks.append(ink)
    if inks and any(ink.max() > INK_THRESHOLD for ink in inks):
        shape = inks[0].shape
        inks = [ink for ink in inks if ink.shape == shape]
        return np.maximum.reduce(inks)
    for key in ("composite", "background"):
        if value.get(key) is not None:
            return decode_image(value[key], allow_empty=True)
    return None


def decode_image(source: Any, *, allow_empty: bool = False) -> np.ndarray | None:
    """Decode any input into an ink map `(H, W)` float32 in [0, 1] (bright ink, dark background).

    Args:
        source: a path, bytes, PIL image, array, Gradio file dict or Sketchpad/ImageEditor dict.
        allow_empty: return None (instead of raising) when there is nothing to read.

    Raises:
        InputImageError: with a message for the user (too large, not an image, damaged, NaN, ...).
    """
    if source is None:
        if allow_empty:
            return None
        raise InputImageError("No image: draw a digit or upload an image first.")
    if isinstance(source, dict):
        if any(k in source for k in ("layers", "composite", "background")):
            ink = _editor_to_ink(source)
        elif source.get("path"):
            ink = _pil_to_ink(_open_pil(source["path"]))
        else:
            raise InputImageError("The image did not arrive (no file in the request).")
        if ink is None and not allow_empty:
            raise InputImageError("No image: draw a digit or upload an image first.")
        return ink
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height)
        return _pil_to_ink(source)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if isinstance(source, np.ndarray):
        return _array_to_ink(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _pil_to_ink(_open_pil(bytes(source)))
    if isinstance(source, (str, os.PathLike)):
        return _pil_to_ink(_open_pil(source))
    raise InputImageError(f"Unsupported input of type {type(source).__name__}.")


# ------------------------------------------------------------------------------------------------------------
# MNIST normalisation
# ------------------------------------------------------------------------------------------------------------
def _clean(ink: np.ndarray) -> np.ndarray:
    """Stretch the ink to [0, 1] and remove the background level and its noise (paper texture, JPEG)."""
    ink = np.nan_to_num(ink.astype(np.float32), nan=0.0)
    border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    floor = float(np.median(border))
    noise = 3.0 * float(np.median(np.abs(border - floor)))
    peak = float(np.percentile(ink, 99.9)) if ink.size > 1000 else float(ink.max())
    level = floor + noise
    if peak - level < 0.05:
        raise InputImageError(EMPTY_MESSAGE)
    return np.clip((ink - level) / (peak - level), 0.0, 1.0)


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """Ink map (H, W) → 28×28 float32 in [0, 1] like MNIST: the bounding box fit into 20×20 keeping the aspect
    ratio, pasted into 28×28 with its centre of mass at the centre."""
    ink = _clean(ink)
    rows, cols = np.nonzero(ink > INK_THRESHOLD)
    if rows.size == 0:
        raise InputImageError(EMPTY_MESSAGE)
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    scale = MNIST_BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    box = np.asarray(Image.fromarray(crop, mode="F").resize((new_w, new_h), Image.LANCZOS if scale < 1
                                                             else Image.BILINEAR), dtype=np.float32)
    box = np.clip(box, 0.0, 1.0)
    if 0 < box.max() < 0.6:  # thin strokes fade when shrunk: restore MNIST-like contrast
        box = np.clip(box / box.max(), 0.0, 1.0)
    # Centre of mass → pixel (14, 14), where MNIST puts it (measured: 13.99 ± 0.29, 14.00 ± 0.29 on the test
    # set); integer shift, kept inside the frame.
    total = box.sum()
    cy = (box.sum(1) * np.arange(new_h)).sum() / total
    cx = (box.sum(0) * np.arange(new_w)).sum() / total
    top = int(np.clip(round(MNIST_CENTRE - cy), 0, MNIST_SIDE - new_h))
    left = int(np.clip(round(MNIST_CENTRE - cx), 0, MNIST_SIDE - new_w))
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    out[top:top + new_h, left:left + new_w] = box
    return out


def _canvas_image(source: Any) -> Image.Image:
    """The picture of an ImageEditor value (its composite, else its background) or of any other image input."""
    if isinstance(source, dict) and any(k in source for k in ("layers", "composite", "background")):
        source = source.get("composite") if source.get("composite") is not None else source.get("background")
    if source is None:
        raise InputImageError("No image: pick a test digit or draw one first.")
    if isinstance(source, dict):
        if not source.get("path"):
            raise InputImageError("The image did not arrive (no file in the request).")
        source = source["path"]
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height)
        return source
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return _open_pil(source if isinstance(source, (str, os.PathLike)) else bytes(source))
    if isinstance(source, (np.ndarray, torch.Tensor)):
        arr = np.asarray(source.detach().cpu() if isinstance(source, torch.Tensor) else source)
        if arr.dtype.kind not in "uif" or arr.ndim not in (2, 3) or arr.size == 0:
            raise InputImageError(f"Expected an image of shape (H, W) or (H, W, C), got {arr.shape}.")
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise InputImageError("The image contains NaN or infinite values.")
        arr = np.clip(arr / (255.0 if arr.max() > 1 else 1.0), 0, 1)
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4):
            raise InputImageError(f"Expected an image of shape (H, W) or (H, W, C), got {arr.shape}.")
        u8 = (arr * 255).round().astype(np.uint8)
        return Image.fromarray(u8[..., 0] if u8.ndim == 3 and u8.shape[-1] == 1 else u8)
    raise InputImageError(f"Unsupported input of type {type(source).__name__}.")


def prepare_canvas(source: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A digit to complete: (digit `(1, 1, 28, 28)` in [0, 1], painted mask `(28, 28)` of 0/1).

    Unlike `prepare_digit` nothing is re-centred or re-scaled (the hidden part must stay where it was drawn): the
    picture is reduced to 28×28 with a box filter. Red paint (the editor's red brush) marks pixels to complete;
    everything else is ink, bright on dark (a dark-on-light picture is inverted, judged by its border)."""
    im = _canvas_image(source)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF must not block the image itself
        pass
    im = _reduce(im.convert("RGBA") if im.mode in ("RGBA", "LA", "PA", "P", "RGBa", "La") else im.convert("RGB"))
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if im.mode == "RGBA":  # transparent parts are background (black)
        rgb = rgb * (np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0)[..., None]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = ((r > 0.5) & (g < 0.35) & (b < 0.35)).astype(np.float32)
    grey = _polarity(np.where(red > 0, 0.0, rgb.mean(-1)).astype(np.float32))
    grey = np.where(red > 0, 0.0, grey).astype(np.float32)

    def to28(a: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(a, mode="F").resize((MNIST_SIDE, MNIST_SIDE), Image.BOX), dtype=np.float32)

    digit = np.clip(to28(grey), 0.0, 1.0)
    mask = (to28(red) > 0.3).astype(np.float32)
    return torch.from_numpy(digit)[None, None], torch.from_numpy(mask)


def prepare_digit(source: Any) -> torch.Tensor:
    """Any input → a `(1, 1, 28, 28)` float tensor in [0, 1] ready for the models (raises InputImageError)."""
    return torch.from_numpy(to_mnist(decode_image(source)))[None, None]


def prepare_image(source: Any, channels: int, resolution: int) -> torch.Tensor:
    """Any input → `(1, channels, resolution, resolution)` in [0, 1] for a model of other images: converted to grey
    or RGB, resized (shorter side) and center-cropped like its training data; a drawing's transparent parts are
    black, as on the canvas."""
    if channels not in (1, 3):
        raise InputImageError(f"The model takes {channels} channels; the Space draws 1 (grey) or 3 (RGB).")
    im = _canvas_image(source)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF must not block the image itself
        pass
    im = _reduce(im)
    if im.mode in ("RGBA", "LA", "PA", "P", "RGBa", "La"):
        rgba = im.convert("RGBA")
        im = Image.new("RGB", rgba.size, (0, 0, 0))
        im.paste(rgba, mask=rgba.getchannel("A"))
    im = im.convert("L" if channels == 1 else "RGB")
    scale = resolution / min(im.size)
    im = im.resize((max(resolution, round(im.width * scale)), max(resolution, round(im.height * scale))),
                   Image.BILINEAR)
    left, top = (im.width - resolution) // 2, (im.height - resolution) // 2
    im = im.crop((left, top, left + resolution, top + resolution))
    arr = np.asarray(im, dtype=np.float32) / 255.0
    x = torch.from_numpy(arr[None] if channels == 1 else arr.transpose(2, 0, 1).copy())
    return x[None]


def fit_image(x: torch.Tensor, channels: int, resolution: int) -> torch.Tensor:
    """A prepared image `(N, C, H, W)` in [0, 1] at another model's shape: grey repeated to RGB or RGB averaged to
    grey, then resized (bilinear, antialiased). Unchanged when it already has that shape."""
    if x.shape[1] != channels:
        x = x.repeat(1, channels, 1, 1) if x.shape[1] == 1 else x.mean(1, keepdim=True).repeat(1, channels, 1, 1)
    if x.shape[-2:] != (resolution, resolution):
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True,
                                            align_corners=False).clamp(0, 1)
    return x


__all__ = [
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "InputImageError",
    "decode_image",
    "fit_image",
    "prepare_canvas",
    "prepare_digit",
    "prepare_image",
    "to_mnist",
]
