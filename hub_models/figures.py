"""Figures shared by training, the report and the Space: crisp PNG grids and latent plots."""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from PIL import Image
from torchvision.utils import make_grid

DIGIT_CMAP = "tab10"


def to_pil(images: torch.Tensor, nrow: int = 8, scale: int = 1, padding: int = 2,
           pad_value: float = 0.5) -> Image.Image:
    """Images `(batch, 1, H, W)` or `(batch, 3, H, W)` in [0, 1] → one PIL grid (grey "L" or "RGB"), upscaled
    `scale`× with nearest-neighbour."""
    images = torch.nan_to_num(images.detach().float().cpu(), nan=0.0).clamp(0, 1)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"to_pil draws grey or RGB images (batch, 1 or 3, H, W), got {tuple(images.shape)}")
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)  # grey is repeated to 3 channels
    if images.shape[1] == 1:
        pil = Image.fromarray((grid[0].numpy() * 255).round().astype(np.uint8), mode="L")
    else:
        pil = Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), mode="RGB")
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST) if scale > 1 else pil


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.fspath(path)) or ".", f".{os.path.basename(path)}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)  # a kill mid-write never leaves half a PNG


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, scale: int = 3) -> Image.Image:
    """Test digits (top row of each pair) over their reconstructions (row below)."""
    n = originals.shape[0]
    per_row = min(n, 16)
    rows = []
    for start in range(0, n, per_row):
        rows += [originals[start:start + per_row], reconstructions[start:start + per_row]]
    return to_pil(torch.cat(rows), nrow=per_row, scale=scale)


@torch.no_grad()
def manifold_grid(decode, n: int = 20, limit: float = 3.0, scale: int = 2,
                  fixed: torch.Tensor | None = None, dims: tuple[int, int] = (0, 1)) -> Image.Image:
    """Decode an n×n grid of z over [-limit, limit]² in `dims` (other dims held at `fixed`, default 0)."""
    grid = torch.linspace(-limit, limit, n)
    latent_dim = fixed.numel() if fixed is not None else 2
    base = fixed.flatten().float() if fixed is not None else torch.zeros(latent_dim)
    z = base.repeat(n * n, 1)
    ys, xs = torch.meshgrid(grid.flip(0), grid, indexing="ij")  # y up, like a plot
    z[:, dims[0]], z[:, dims[1]] = xs.flatten(), ys.flatten()
    return to_pil(decode(z), nrow=n, padding=0, scale=scale)


def latent_scatter(points: np.ndarray, labels: np.ndarray, title: str = "",
                   xlabel: str = "z₁", ylabel: str = "z₂", label_names: list[str] | None = None) -> Image.Image:
    """2-D points coloured by digit, with a legend: a PNG-ready PIL image.

    `label_names`: the classes of other data (labels index them; -1 = unlabelled, drawn in one colour with no
    legend when every point is); None = MNIST's ten digits, as the study drew them.
    """
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    labels = np.asarray(labels)
    if label_names is None:
        sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=DIGIT_CMAP, s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
        cbar = fig.colorbar(sc, ax=ax, ticks=range(10))
        cbar.set_label("digit")
    elif not len(label_names) or (labels < 0).all():
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.7)
    else:
        k = len(label_names)
        # One colour per class: the first k of tab10 / tab20, else k steps of viridis.
        base = matplotlib.colormaps[DIGIT_CMAP if k <= 10 else "tab20" if k <= 20 else "viridis"]
        cmap = ListedColormap(base.colors[:k]) if k <= 20 else base.resampled(k)
        sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, s=3, alpha=0.7, vmin=-0.5, vmax=k - 0.5)
        ticks = range(k) if k <= 20 else np.linspace(0, k - 1, 11).round().astype(int)
        cbar = fig.colorbar(sc, ax=ax, ticks=ticks)
        cbar.ax.set_yticklabels([label_names[t] for t in ticks])
        cbar.set_label("class")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    return figure_to_pil(fig)


def figure_to_pil(fig) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project onto the two principal axes: (projected (N, 2), explained variance ratio (2,))."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(points)
    return pca.transform(points), pca.explained_variance_ratio_
