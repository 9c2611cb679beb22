"""Tiny image datasets the tests make (issue 37): a greyscale image folder at 28×28 and an RGB one at 32×32, three
classes each, with class-dependent shapes (a bar, a square, a cross) so that a classifier can learn them.

    make_image_folder(tmp_path / "grey", size=28, mode="L")     # root/<class>/<i>.png
    tiny_dataset_dict(size=28, mode="L")                         # the same images as a `datasets.DatasetDict`
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features
from datasets import Image as ImageFeature
from PIL import Image

CLASS_NAMES = ["bar", "square", "cross"]
PER_CLASS = 8


def _pixels(label: int, i: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size) uint8 picture of class `label`, shifted by a few pixels and noisy."""
    img = rng.integers(0, 40, (size, size)).astype(np.uint8)
    s, o = size // 4, int(rng.integers(-2, 3))
    c = size // 2 + o
    if label == 0:
        img[:, max(c - 2, 0):c + 2] = 230
    elif label == 1:
        img[c - s:c + s, c - s:c + s] = 230
    else:
        img[c - 1:c + 1, :] = 230
        img[:, c - 1:c + 1] = 230
    return img


def tiny_images(size: int = 28, mode: str = "L", per_class: int = PER_CLASS,
                seed: int = 0) -> list[tuple[Image.Image, int]]:
    """(PIL image, label) pairs, `per_class` of each of CLASS_NAMES; RGB images get a class-dependent tint."""
    rng = np.random.default_rng(seed)
    out = []
    for label in range(len(CLASS_NAMES)):
        for i in range(per_class):
            grey = _pixels(label, i, size, rng)
            if mode == "RGB":
                tint = np.array([[1.0, 0.4, 0.4], [0.4, 1.0, 0.4], [0.4, 0.4, 1.0]][label])
                array = (grey[..., None] * tint).astype(np.uint8)
                out.append((Image.fromarray(array, mode="RGB"), label))
            else:
                out.append((Image.fromarray(grey, mode="L"), label))
    return out


def make_image_folder(root: Path, size: int = 28, mode: str = "L", per_class: int = PER_CLASS) -> Path:
    """An `imagefolder` tree root/<class name>/<i>.png (labels from the sub-folder names)."""
    for i, (image, label) in enumerate(tiny_images(size, mode, per_class)):
        folder = root / CLASS_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:03d}.png")
    return root


def tiny_dataset_dict(size: int = 28, mode: str = "L", per_class: int = PER_CLASS) -> DatasetDict:
    """The same kind of images as a DatasetDict with train and test splits (image + ClassLabel columns)."""
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=CLASS_NAMES)})

    def split(seed: int) -> Dataset:
        pairs = tiny_images(size, mode, per_class, seed)
        return Dataset.from_dict({"image": [p for p, _ in pairs], "label": [y for _, y in pairs]}, features=features)

    return DatasetDict({"train": split(0), "test": split(1)})
