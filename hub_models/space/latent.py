"""The Generate tab's VAE grid and the latent explorer: decoding slider values (on the server, or as data for the
browser's own decoder), the scatter map of the test set with its pixel ↔ latent mapping, and the decoded grid."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageDraw

from hub_models.figures import DIGIT_CMAP, figure_to_pil, manifold_grid, to_pil
from hub_models.models import ConvVAE, DenseVAE
from hub_models.space.checks import MAX_IMAGES, MAX_PER_DIGIT, SpaceError, as_int, as_latent, as_seed, grid_columns
from hub_models.space.registry import VAEEntry, vae_digit

LIVE_SCALE = 4  # the live slider digit: 112 px (encoding 280 px as PNG is slower); CSS upscales it
# The browser decodes the live slider itself (`decoder_js.DECODER_JS`) for decoders up to this size: the Conv VAEs
# fit; a Dense VAE's decoder is too big to send and stays on the server.
MAX_BROWSER_WEIGHTS = 100_000


@torch.inference_mode()
def vae_generate(entry: VAEEntry, count: Any, seed: Any) -> Image.Image:
    """`count` digits decoded from z ~ N(0, I) with a seeded generator. A conditional VAE draws a row per digit
    (about `count` digits in all, 1–6 per row)."""
    n = as_int(count, "The number of digits", 1, MAX_IMAGES)
    generator = torch.Generator().manual_seed(as_seed(seed))
    if entry.conditional:
        classes = entry.model.num_classes
        per = max(1, min(MAX_PER_DIGIT, round(n / classes)))
        labels = torch.arange(classes).repeat_interleave(per)
        return to_pil(entry.model.sample(len(labels), generator=generator, labels=labels), nrow=per, scale=4)
    images = entry.model.sample(n, generator=generator)
    return to_pil(images, nrow=grid_columns(n), scale=4)


@torch.inference_mode()
def decode_latent(entry: VAEEntry, values: list[Any], digit: Any = None) -> Image.Image:
    """One digit decoded from slider values, 112×112 crisp pixels (the live-slider path: well under 1 ms); a
    conditional VAE decodes the style `values` as the digit `digit`."""
    z = as_latent(values, entry.latent_dim)
    return to_pil(entry.model.decode(z, vae_digit(entry, digit)), nrow=1, padding=0, scale=LIVE_SCALE)


def _b64(t: torch.Tensor) -> str:
    """A tensor as base64 of its little-endian float32 bytes (what JavaScript's Float32Array reads)."""
    return base64.b64encode(t.detach().cpu().float().contiguous().numpy().astype("<f4").tobytes()).decode()


def browser_decoder(entry: VAEEntry, max_weights: int = MAX_BROWSER_WEIGHTS) -> dict[str, Any] | None:
    """The decoder as data for `hub_models.space.decoder_js` (the live slider decoded in the browser), or None when
    the browser cannot run it (a layer the JavaScript lacks, over `max_weights` weights): the slider then decodes on
    the server, through `/decode_latent`. A conditional VAE's first layer takes z and the one-hot digit
    (`num_classes` > 0): the browser appends the one-hot of the chosen digit to the sliders' values.

    Returns `{"name", "latent_dim", "num_classes", "weights", "layers": [...]}`; each layer is `{"type": "linear", "in",
    "out", "weight", "bias"}`, `{"type": "relu"}`, `{"type": "reshape", "shape"}` or `{"type":
    "conv_transpose2d", "in", "out", "kernel", "stride", "padding", "output_padding", "weight", "bias"}` with
    weights as base64 float32 in PyTorch's layout; a sigmoid on the last layer gives the pixels."""
    model = entry.model
    if entry.shape != (1, 28, 28):  # the browser's decoder draws 28×28 grey pixels
        return None
    if isinstance(model, ConvVAE):
        modules = [model.decoder_input, *model.decoder]
    elif isinstance(model, DenseVAE):
        modules = list(model.decoder)
    else:
        return None
    layers: list[dict[str, Any]] = []
    for m in modules:
        if isinstance(m, torch.nn.Linear) and m.bias is not None:
            layers.append({"type": "linear", "in": m.in_features, "out": m.out_features,
                           "weight": _b64(m.weight), "bias": _b64(m.bias)})
        elif isinstance(m, torch.nn.ReLU):
            layers.append({"type": "relu"})
        elif isinstance(m, torch.nn.Unflatten) and m.dim == 1:
            layers.append({"type": "reshape", "shape": list(m.unflattened_size)})
        elif (isinstance(m, torch.nn.ConvTranspose2d) and m.bias is not None and m.groups == 1
              and m.dilation == (1, 1) and m.kernel_size[0] == m.kernel_size[1] and m.stride[0] == m.stride[1]
              and m.padding[0] == m.padding[1] and m.output_padding[0] == m.output_padding[1]):
            layers.append({"type": "conv_transpose2d", "in": m.in_channels, "out": m.out_channels,
                           "kernel": m.kernel_size[0], "stride": m.stride[0], "padding": m.padding[0],
                           "output_padding": m.output_padding[0], "weight": _b64(m.weight), "bias": _b64(m.bias)})
        else:
            return None  # a layer the JavaScript does not implement: the server decodes
    weights = sum(p.numel() for m in modules for p in m.parameters())
    if weights > max_weights:
        return None
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if not layers or layers[0]["type"] != "linear" or layers[0]["in"] != entry.latent_dim + num_classes:
        return None  # the label enters elsewhere than the first layer: the server decodes
    return {"name": entry.name, "latent_dim": entry.latent_dim, "num_classes": num_classes, "weights": weights,
            "layers": layers}


@dataclass
class LatentMap:
    """A scatter of the test digits' means over two latent dims, with the pixel ↔ latent mapping."""

    image: np.ndarray  # (H, W, 3) uint8
    box: tuple[float, float, float, float]  # axes in image pixels: left, top, right, bottom
    limit: float
    dims: tuple[int, int]

    def to_latent(self, px: float, py: float) -> tuple[float, float] | None:
        left, top, right, bottom = self.box
        if not (left <= px <= right and top <= py <= bottom):
            return None
        u = -self.limit + (px - left) / (right - left) * 2 * self.limit
        v = self.limit - (py - top) / (bottom - top) * 2 * self.limit
        return u, v

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        left, top, right, bottom = self.box
        u, v = np.clip([u, v], -self.limit, self.limit)
        return left + (u + self.limit) / (2 * self.limit) * (right - left), \
            top + (self.limit - v) / (2 * self.limit) * (bottom - top)

    def with_marker(self, z: torch.Tensor | None) -> Image.Image:
        im = Image.fromarray(self.image)
        if z is not None:
            z = z.flatten()
            x, y = self.to_pixel(float(z[self.dims[0]]), float(z[self.dims[1]]))
            draw = ImageDraw.Draw(im)
            draw.ellipse((x - 7, y - 7, x + 7, y + 7), outline=(0, 0, 0), width=3)
            draw.ellipse((x - 5, y - 5, x + 5, y + 5), outline=(255, 255, 255), width=2)
        return im


def _render_map(entry: VAEEntry, dims: tuple[int, int]) -> LatentMap:
    fig = plt.figure(figsize=(4.8, 4.4), dpi=100)
    ax = fig.add_axes((0.12, 0.11, 0.70, 0.80))
    limit = entry.limit
    if entry.means is not None and entry.labels is not None:
        pts = entry.means[:, list(dims)]
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=entry.labels, cmap=DIGIT_CMAP, s=4, alpha=0.75,
                        vmin=-0.5, vmax=9.5, linewidths=0)
        cax = fig.add_axes((0.85, 0.11, 0.03, 0.80))
        fig.colorbar(sc, cax=cax, ticks=range(10)).set_label("digit")
    else:
        # the Space's test digits are MNIST's: a VAE of other images has none to map
        ax.text(0, 0, "no test digits available" if entry.mnist_like else "no held-out images of this model's data",
                ha="center", va="center")
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel=f"z{dims[0] + 1}", ylabel=f"z{dims[1] + 1}")
    ax.grid(alpha=0.2)
    fig.canvas.draw()
    bbox = ax.get_window_extent()  # display pixels, origin bottom-left
    height = fig.canvas.get_width_height()[1]
    box = (bbox.x0, height - bbox.y1, bbox.x1, height - bbox.y0)
    image = np.asarray(figure_to_pil(fig))
    return LatentMap(image=image, box=box, limit=limit, dims=dims)


_MAP_LOCK = threading.Lock()  # matplotlib is not thread-safe; maps are drawn once per (model, dims)


def latent_map(entry: VAEEntry, dims: Any = (0, 1)) -> LatentMap:
    """The (cached) scatter of the test set over `dims`."""
    dims = check_dims(entry, dims)
    with _MAP_LOCK:
        if dims not in entry.maps:
            entry.maps[dims] = _render_map(entry, dims)
        return entry.maps[dims]


def check_dims(entry: VAEEntry, dims: Any) -> tuple[int, int]:
    try:
        i, j = (int(str(d).lstrip("z")) - 1 if isinstance(d, str) else int(d) for d in dims)
    except (TypeError, ValueError):
        raise SpaceError(f"Choose two latent dimensions, got {dims!r}.") from None
    if not (0 <= i < entry.latent_dim and 0 <= j < entry.latent_dim) or i == j:
        raise SpaceError(f"Choose two different dimensions among z1…z{entry.latent_dim}.")
    return i, j


@torch.inference_mode()
def latent_grid(entry: VAEEntry, values: list[Any], dims: Any = (0, 1), n: int = 15, digit: Any = None
                ) -> Image.Image:
    """An n×n grid of decodes over `dims` in [−limit, limit]² (y up), the other dims held at the sliders; a
    conditional VAE decodes every point as the digit `digit` (its styles)."""
    dims = check_dims(entry, dims)
    z = as_latent(values, entry.latent_dim)
    label = vae_digit(entry, digit)
    return manifold_grid(lambda zs: entry.model.decode(zs, label), n=n, limit=entry.limit, scale=2, fixed=z[0],
                         dims=dims)


__all__ = ["LIVE_SCALE", "MAX_BROWSER_WEIGHTS", "LatentMap", "browser_decoder", "check_dims", "decode_latent",
           "latent_grid", "latent_map", "vae_generate"]
