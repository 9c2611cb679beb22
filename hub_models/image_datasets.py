"""Any image dataset as in-memory uint8 tensors: a Hub dataset (`--dataset_name`, loaded with `datasets`) or a local
folder (`--train_data_dir`, the `imagefolder` builder: labels from sub-folder names, or none).

Images are resized and center-cropped as in diffusers' `train_unconditional.py`, decoded once and cached as one
safetensors file, so training slices batches from memory. MNIST itself keeps its own loader (`hub_models.data`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from safetensors import safe_open
from safetensors.torch import save_file

from hub_models.data import STUDY_SPLIT_SEED, ImageSplit, load_splits, study_split_indices
from hub_models.io import cache_dir as default_cache_dir
from hub_models.io import log, read_json

BadImagePolicy = Literal["error", "skip"]
# Modes whose pixels carry one grey value: no need to look at the pixels to know.
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


class ImageDataError(ValueError):
    """The images cannot be used as asked: the message names the file or the setting to change."""


@dataclass(frozen=True)
class ImageSource:
    """Where the images come from and the shape they get (the diffusers examples' flag names).

    Exactly one of `dataset_name` (a Hub dataset id or a local dataset folder `load_dataset` reads) and
    `train_data_dir` (a folder of images, optionally one sub-folder per class). `resolution=None` keeps the data's
    own size (then every image must be square and of one size); `channels=None` is 1 when every image is grey, else 3.
    """

    dataset_name: str | None = None
    dataset_config_name: str | None = None
    train_data_dir: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    resolution: int | None = None
    channels: int | None = None
    on_bad_image: BadImagePolicy = "error"
    cache_dir: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.dataset_name is None) == (self.train_data_dir is None):
            raise ImageDataError("give exactly one of --dataset_name and --train_data_dir")
        if self.resolution is not None and self.resolution < 1:
            raise ImageDataError(f"--resolution must be ≥ 1, got {self.resolution}")
        if self.channels not in (None, 1, 3):
            raise ImageDataError(f"--num_channels must be 1 (greyscale) or 3 (RGB), got {self.channels}")
        if self.on_bad_image not in ("error", "skip"):
            raise ImageDataError(f"--on_bad_image must be 'error' or 'skip', got {self.on_bad_image!r}")

    @property
    def name(self) -> str:
        """The dataset's identity as a card or config names it: the Hub id, or the folder as given."""
        return self.dataset_name if self.dataset_name is not None else str(self.train_data_dir)


@dataclass(frozen=True)
class ImageDatasetInfo:
    """What a model trained on these images must record to be rebuilt and described (config / card)."""

    name: str
    config_name: str | None
    channels: int
    resolution: int
    label_names: list[str] | None
    split: str
    seed: int
    held_out_from: str  # "test" (the dataset's own split) or "train" (a seeded 80/20 split of it)
    source: str = "hub"  # "hub" (a Hub dataset id) or "folder" (--train_data_dir or a local dataset folder)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Decoded:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64, -1 where the data has no labels
    label_names: list[str] | None


def _load_dataset_dict(source: ImageSource):
    from datasets import DatasetDict, load_dataset

    if source.train_data_dir is not None:
        folder = Path(source.train_data_dir).expanduser()
        if not folder.is_dir():
            raise ImageDataError(f"--train_data_dir {folder}: no such folder")
        if not any(p.is_file() for p in folder.rglob("*")):
            raise ImageDataError(f"--train_data_dir {folder}: the folder holds no files")
        try:
            dataset = load_dataset("imagefolder", data_dir=str(folder), cache_dir=source.cache_dir)
        except (FileNotFoundError, ValueError) as err:
            raise ImageDataError(f"--train_data_dir {folder}: no images found ({err})") from None
    else:
        dataset = load_dataset(source.dataset_name, source.dataset_config_name, cache_dir=source.cache_dir)
    if not isinstance(dataset, DatasetDict) or not len(dataset):
        raise ImageDataError(f"{source.name}: expected a dataset with splits, got {type(dataset).__name__}")
    return dataset


def _image_column(features, wanted: str | None) -> str:
    from datasets import Image as ImageFeature

    columns = [name for name, feature in features.items() if isinstance(feature, ImageFeature)]
    if wanted is not None:
        if wanted not in features:
            raise ImageDataError(f"--image_column {wanted!r} is not a column (columns: {', '.join(features)})")
        return wanted
    if not columns:
        raise ImageDataError(f"no image column (columns: {', '.join(features)}); pass --image_column")
    return columns[0]


def _label_column(features, wanted: str | None) -> str | None:
    if wanted is not None:
        if wanted not in features:
            raise ImageDataError(f"--label_column {wanted!r} is not a column (columns: {', '.join(features)})")
        return wanted
    return "label" if "label" in features else None


def _open(record: dict[str, Any]) -> Image.Image:
    """One undecoded `datasets.Image` record → a fully read PIL image (truncated files fail here, not later)."""
    image = Image.open(io.BytesIO(record["bytes"]) if record.get("bytes") else record["path"])
    image.load()
    return image


def _fit(image: Image.Image, resolution: int | None) -> Image.Image:
    if resolution is None:
        return image
    from torchvision import transforms

    resize = transforms.Compose([transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BILINEAR),
                                 transforms.CenterCrop(resolution)])
    return resize(image)


def _decode_split(split, source: ImageSource) -> _Decoded:
    """Decode every image of one split once: (N, C, H, W) uint8, with labels and their names."""
    from datasets import ClassLabel
    from datasets import Image as ImageFeature

    image_col, label_col = _image_column(split.features, source.image_column), _label_column(
        split.features, source.label_column)
    split = split.cast_column(image_col, ImageFeature(decode=False))
    label_feature = split.features[label_col] if label_col else None
    pixels, labels, all_grey, sizes, upscaled = [], [], True, set(), 0
    for i, row in enumerate(split):
        record = row[image_col]
        try:
            image = _open(record)
            upscaled += source.resolution is not None and min(image.size) < source.resolution
            image = _fit(image, source.resolution)
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
            where = record.get("path") or f"row {i}"
            if source.on_bad_image == "error":
                raise ImageDataError(f"{where}: cannot be read as an image ({err}); fix or remove it, or pass "
                                     "--on_bad_image skip") from None
            log("data", f"skipping {where}: cannot be read as an image ({err})")
            continue
        all_grey &= image.mode in GREY_MODES
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        sizes.add(rgb.shape[:2])
        pixels.append(rgb)
        labels.append(row[label_col] if label_col else -1)
    if not pixels:
        raise ImageDataError(f"{source.name}: no readable image in the split")
    if upscaled:
        log("data", f"warning: {upscaled:,} of {len(pixels):,} images are smaller than --resolution "
                    f"{source.resolution} and were upscaled")
    if len(sizes) > 1 or next(iter(sizes))[0] != next(iter(sizes))[1]:
        raise ImageDataError(f"{source.name}: images of sizes {sorted(sizes)[:3]} (height, width); pass --resolution "
                             "to resize and center-crop them to one square size")
    stack = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    grey = all_grey or bool((stack[:, :1] == stack[:, 1:]).all())
    channels = source.channels or (1 if grey else 3)
    images = stack[:, :1].contiguous() if channels == 1 else stack
    names, label_ids = _label_ids(labels, label_feature if isinstance(label_feature, ClassLabel) else None)
    return _Decoded(images, label_ids, names)


def _label_ids(labels: list, class_label) -> tuple[list[str] | None, torch.Tensor]:
    if all(label == -1 for label in labels):
        return None, torch.full((len(labels),), -1, dtype=torch.int64)
    if class_label is not None:
        return list(class_label.names), torch.tensor(labels, dtype=torch.int64)
    names = sorted({str(label) for label in labels})
    index = {name: i for i, name in enumerate(names)}
    return names, torch.tensor([index[str(label)] for label in labels], dtype=torch.int64)


def _renumber(split: _Decoded, names: list[str], dataset: str) -> torch.Tensor:
    """Labels of a split whose label names differ from the train split's, as indices into the train split's names."""
    unknown = sorted(set(split.label_names) - set(names))
    if unknown:
        raise ImageDataError(f"{dataset}: the test split has labels the train split lacks: {unknown[:5]}")
    index = torch.tensor([names.index(name) for name in split.label_names])
    return index[split.labels]


def _cache_path(source: ImageSource, split_name: str, fingerprint: str) -> Path:
    key = json.dumps({**asdict(source), "cache_dir": None, "split": split_name, "fingerprint": fingerprint},
                     sort_keys=True)
    root = Path(source.cache_dir) if source.cache_dir else default_cache_dir()
    return root / "images" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"


def decoded_split(dataset, split_name: str, source: ImageSource) -> _Decoded:
    """One split decoded, from the cache when this source, shape and data were decoded before."""
    path = _cache_path(source, split_name, dataset[split_name]._fingerprint)
    if path.is_file():
        with safe_open(str(path), framework="pt") as f:
            names = json.loads(f.metadata()["label_names"])
            return _Decoded(f.get_tensor("images"), f.get_tensor("labels"), names)
    decoded = _decode_split(dataset[split_name], source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"images": decoded.images, "labels": decoded.labels}, str(tmp),
              metadata={"label_names": json.dumps(decoded.label_names)})
    os.replace(tmp, path)  # a crash never leaves half a cache file
    return decoded


def load_image_splits(source: ImageSource, split: str = "study", *, seed: int = 0, limit: int | None = None
                      ) -> tuple[ImageSplit, ImageSplit, ImageDatasetInfo]:
    """(train, held-out, info) as `hub_models.data.load_splits` gives them for MNIST, images (N, C, H, W) uint8.

    `split="study"`: a seeded 80/20 split of the dataset's train split; `"official"`: its own test split where it has
    one (else the same seeded split, said in the log).
    """
    if split not in ("study", "official"):
        raise ImageDataError(f"unknown split {split!r}: use 'study' or 'official'")
    dataset = _load_dataset_dict(source)
    train_name = "train" if "train" in dataset else next(iter(dataset))
    train = decoded_split(dataset, train_name, source)
    if split == "official" and "test" in dataset:
        held = decoded_split(dataset, "test", source)
        held_out_from = "test"
    else:
        if split == "official":
            log("data", f"{source.name} has no test split: holding out a seeded 20 % of {train_name!r} instead")
        tr, te = study_split_indices(len(train.labels), seed)
        held = _Decoded(train.images[te], train.labels[te], train.label_names)
        train = _Decoded(train.images[tr], train.labels[tr], train.label_names)
        held_out_from = "train"
    if held.label_names != train.label_names and held.label_names and train.label_names:
        held = _Decoded(held.images, _renumber(held, train.label_names, source.name), train.label_names)
    if held.images.shape[1:] != train.images.shape[1:]:
        raise ImageDataError(f"{source.name}: test images {tuple(held.images.shape[1:])} differ from train images "
                             f"{tuple(train.images.shape[1:])}; pass --resolution and --num_channels")
    local = source.train_data_dir is not None or Path(source.dataset_name).expanduser().exists()
    info = ImageDatasetInfo(source.name, source.dataset_config_name, int(train.images.shape[1]),
                            int(train.images.shape[-1]), train.label_names, split, seed, held_out_from,
                            "folder" if local else "hub")
    splits = (ImageSplit(train.images, train.labels), ImageSplit(held.images, held.labels))
    return splits[0].subset(limit), splits[1].subset(limit), info


MNIST_INFO_NAME = "ylecun/mnist"


def mnist_info(split: str = "study", seed: int = 0) -> ImageDatasetInfo:
    """The default data's description, as a run on another dataset records its own."""
    return ImageDatasetInfo(MNIST_INFO_NAME, None, 1, 28, [str(d) for d in range(10)], split, seed,
                            "test" if split == "official" else "train")


def source_from_args(args: Any) -> ImageSource | None:
    """The `ImageSource` the data flags of `hub_models.training.args.add_data_args` describe, or None (MNIST)."""
    if getattr(args, "dataset_name", None) is None and getattr(args, "train_data_dir", None) is None:
        if getattr(args, "resolution", None) not in (None, 28) or getattr(args, "num_channels", None) not in (None, 1):
            raise ImageDataError("--resolution and --num_channels apply to --dataset_name / --train_data_dir; MNIST "
                                 "is 28×28 greyscale")
        return None
    return ImageSource(
        dataset_name=args.dataset_name, dataset_config_name=getattr(args, "dataset_config_name", None),
        train_data_dir=args.train_data_dir, image_column=getattr(args, "image_column", None),
        label_column=getattr(args, "label_column", None), resolution=getattr(args, "resolution", None),
        channels=getattr(args, "num_channels", None), on_bad_image=getattr(args, "on_bad_image", "error"),
        cache_dir=getattr(args, "cache_dir", None))


def training_data(args: Any) -> tuple[ImageSplit, ImageSplit, ImageDatasetInfo]:
    """(train, held-out, info) for a training script's flags: MNIST (images (N, 28, 28), as always) by default,
    else the images the data flags name ((N, C, H, W)). `--split`, `--seed` of the split and `--limit_train_samples`
    apply to both."""
    split, limit = getattr(args, "split", "study"), getattr(args, "limit_train_samples", None)
    source = source_from_args(args)
    if source is None:
        train, held_out = load_splits(split, limit=limit)
        return train, held_out, mnist_info(split, STUDY_SPLIT_SEED)
    return load_image_splits(source, split, seed=STUDY_SPLIT_SEED, limit=limit)


TRAINING_CONFIG = "training_config.json"  # where a trainer records its flags and `dataset` (ImageDatasetInfo)


def recorded_dataset(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """training_config.json's `dataset` (`ImageDatasetInfo.to_dict()`) of a run trained on other data than MNIST;
    None for MNIST, also for runs and releases that predate the field or carry no training_config.json."""
    path = Path(run_dir) / TRAINING_CONFIG
    dataset = read_json(path).get("dataset") if path.is_file() else None
    return None if not dataset or dataset.get("name") == MNIST_INFO_NAME else dataset


def run_training_data(run_dir: str | os.PathLike) -> tuple[ImageSplit, ImageSplit, ImageDatasetInfo]:
    """(train, held-out, info) of a run on other data, rebuilt from the data flags its training_config.json
    recorded: the whole train split, whatever `--limit_train_samples` was (the FID floor's pool).

    Raises:
        ValueError: the data the flags name now is not what the run recorded (a changed folder or dataset).
    """
    flags = read_json(Path(run_dir) / TRAINING_CONFIG)
    train, held_out, info = training_data(argparse.Namespace(**{**flags, "limit_train_samples": None}))
    recorded = flags.get("dataset")
    if recorded is not None and info.to_dict() != recorded:
        raise ValueError(f"the data of {run_dir} is not what it was trained on: now {info.to_dict()}, recorded "
                         f"{recorded} (was the folder or dataset changed?)")
    return train, held_out, info


__all__ = [
    "MNIST_INFO_NAME",
    "TRAINING_CONFIG",
    "ImageDataError",
    "ImageDatasetInfo",
    "ImageSource",
    "load_image_splits",
    "mnist_info",
    "recorded_dataset",
    "run_training_data",
    "source_from_args",
    "training_data",
]
