"""Any image dataset (issue 37's data layer): folders and `datasets` folders, shapes from the data, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

from hub_models.data import uint8_to_unit
from hub_models.image_datasets import ImageDataError, ImageSource, load_image_splits


def _write(folder, name: str, size=(20, 20), mode="L", value=128):
    folder.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), value, dtype=np.uint8)
    if mode == "RGB":
        array[..., 0] = 255  # red: not grey
    Image.fromarray(array, mode=mode).save(folder / name)
    return folder / name


@pytest.fixture
def class_folder(tmp_path):
    """Ten grey images in two class folders, values that say which image is which."""
    root = tmp_path / "images"
    for i in range(10):
        _write(root / ("cat" if i % 2 else "dog"), f"{i}.png", value=10 * i)
    return root


def test_folder_with_class_subfolders_gives_labels_names_and_grey_channel(class_folder, tmp_path):
    source = ImageSource(train_data_dir=str(class_folder), cache_dir=str(tmp_path / "cache"))
    train, held, info = load_image_splits(source)
    assert (len(train), len(held)) == (8, 2)
    assert train.images.shape[1:] == (1, 20, 20) and train.images.dtype == torch.uint8
    assert info.label_names == ["cat", "dog"] and info.channels == 1 and info.resolution == 20
    assert info.held_out_from == "train" and info.name == str(class_folder) and info.source == "folder"
    # Each image's label is its folder: odd values (10·i, i odd) are cats.
    values = torch.cat([train.images, held.images])[:, 0, 0, 0].tolist()
    labels = torch.cat([train.labels, held.labels]).tolist()
    assert sorted(values) == [10 * i for i in range(10)]
    assert all((v // 10) % 2 == (label == 0) for v, label in zip(values, labels, strict=True))
    assert uint8_to_unit(train.images).shape == (8, 1, 20, 20)


def test_resolution_resizes_and_crops_and_rgb_is_detected(tmp_path):
    root = tmp_path / "rgb"
    for i in range(5):
        _write(root, f"{i}.png", size=(40, 30), mode="RGB")
    train, _, info = load_image_splits(ImageSource(train_data_dir=str(root), resolution=16,
                                                      cache_dir=str(tmp_path / "c")))
    assert train.images.shape[1:] == (3, 16, 16) and info.channels == 3 and info.resolution == 16
    assert info.label_names is None and (train.labels == -1).all()
    forced = load_image_splits(ImageSource(train_data_dir=str(root), resolution=16, channels=1,
                                           cache_dir=str(tmp_path / "c")))
    assert forced[0].images.shape[1:] == (1, 16, 16)


def test_mixed_sizes_without_resolution_is_a_clear_error(tmp_path):
    root = tmp_path / "mixed"
    _write(root, "a.png", size=(20, 20))
    _write(root, "b.png", size=(24, 24))
    with pytest.raises(ImageDataError, match="--resolution"):
        load_image_splits(ImageSource(train_data_dir=str(root), cache_dir=str(tmp_path / "c")))


def test_truncated_file_is_named_or_skipped(class_folder, tmp_path):
    bad = class_folder / "cat" / "broken.png"
    noise = np.random.default_rng(0).integers(0, 256, (20, 20), dtype=np.uint8)
    Image.fromarray(noise).save(bad)
    bad.write_bytes(bad.read_bytes()[:200])  # cut inside the pixel data
    with pytest.raises(ImageDataError, match=r"broken\.png"):
        load_image_splits(ImageSource(train_data_dir=str(class_folder), cache_dir=str(tmp_path / "c")))
    train, held, _ = load_image_splits(ImageSource(train_data_dir=str(class_folder), on_bad_image="skip",
                                                   cache_dir=str(tmp_path / "c")))
    assert len(train) + len(held) == 10


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no files"),
])
def test_unusable_folders_are_clear_errors(tmp_path, make, message):
    with pytest.raises(ImageDataError, match=message):
        load_image_splits(ImageSource(train_data_dir=str(make(tmp_path))))


def test_bad_settings_are_refused():
    with pytest.raises(ImageDataError, match="exactly one"):
        ImageSource()
    with pytest.raises(ImageDataError, match="exactly one"):
        ImageSource(dataset_name="a", train_data_dir="b")
    with pytest.raises(ImageDataError, match="--num_channels"):
        ImageSource(train_data_dir="x", channels=2)
    with pytest.raises(ImageDataError, match="--resolution"):
        ImageSource(train_data_dir="x", resolution=0)


def _saved_dataset(tmp_path, with_test: bool):
    features = Features({"img": ImageFeature(), "y": ClassLabel(names=["a", "b", "c"])})
    images = [Image.fromarray(np.full((8, 8), 20 * i, dtype=np.uint8)) for i in range(10)]
    splits = {"train": Dataset.from_dict({"img": images, "y": [i % 3 for i in range(10)]}, features=features)}
    if with_test:
        splits["test"] = Dataset.from_dict({"img": images[:4], "y": [0, 1, 2, 0]}, features=features)
    path = tmp_path / ("with_test" if with_test else "train_only")
    for name, split in splits.items():
        split.to_parquet(str(path / f"{name}.parquet"))
    return path


def test_dataset_name_official_uses_its_test_split_and_named_columns(tmp_path):
    path = _saved_dataset(tmp_path, with_test=True)
    source = ImageSource(dataset_name=str(path), image_column="img", label_column="y", cache_dir=str(tmp_path / "c"))
    train, held, info = load_image_splits(source, split="official")
    assert (len(train), len(held), info.held_out_from) == (10, 4, "test")
    assert info.label_names == ["a", "b", "c"] and held.labels.tolist() == [0, 1, 2, 0]
    study = load_image_splits(source, split="study")
    assert (len(study[0]), len(study[1]), study[2].held_out_from) == (8, 2, "train")
    with pytest.raises(ImageDataError, match="--image_column 'image'"):
        load_image_splits(ImageSource(dataset_name=str(path), image_column="image"))


def test_official_without_test_split_falls_back_to_the_seeded_split(tmp_path):
    path = _saved_dataset(tmp_path, with_test=False)
    _, held, info = load_image_splits(ImageSource(dataset_name=str(path), cache_dir=str(tmp_path / "c")),
                                      split="official")
    assert info.held_out_from == "train" and len(held) == 2


def test_decoded_images_are_cached_and_a_changed_shape_decodes_anew(class_folder, tmp_path):
    cache = tmp_path / "cache"
    load_image_splits(ImageSource(train_data_dir=str(class_folder), cache_dir=str(cache)))
    files = sorted((cache / "images").glob("*.safetensors"))
    assert len(files) == 1
    again = load_image_splits(ImageSource(train_data_dir=str(class_folder), cache_dir=str(cache)))
    assert sorted((cache / "images").glob("*.safetensors")) == files and len(again[0]) == 8
    load_image_splits(ImageSource(train_data_dir=str(class_folder), resolution=8, cache_dir=str(cache)))
    assert len(list((cache / "images").glob("*.safetensors"))) == 2

