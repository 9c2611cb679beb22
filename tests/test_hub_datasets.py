"""Hub dataset repos on the offline Hub (issue 37): `datasets.load_dataset("<user>/tiny")` runs for real through
HF_ENDPOINT against a parquet dataset repo made with the real client, and so do the project's loaders on top of it
(`load_image_splits`, `training_data` with `--dataset_name`)."""

from __future__ import annotations

import argparse

import datasets
import numpy as np
import pytest
import torch
from datasets.exceptions import DatasetNotFoundError
from hub_server import USER
from huggingface_hub import HfApi
from image_fixtures import CLASS_NAMES, PER_CLASS, tiny_dataset_dict

from hub_models.data import study_split_indices
from hub_models.image_datasets import ImageSource, load_image_splits, training_data
from hub_models.training.args import add_data_args

TINY = f"{USER}/tiny"


@pytest.fixture()
def online_datasets(monkeypatch) -> None:
    """`datasets` talks to HF_ENDPOINT (the offline Hub), whatever offline setting the test session came with."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False, raising=False)


@pytest.fixture()
def tiny_repo(hub, online_datasets) -> datasets.DatasetDict:
    """`<user>/tiny` pushed with `DatasetDict.push_to_hub`: 28×28 greyscale, train + test, 3 classes."""
    dd = tiny_dataset_dict(28, "L")
    dd.push_to_hub(TINY)
    return dd


def _pixels(split) -> np.ndarray:
    return np.stack([np.asarray(image) for image in split["image"]])


def test_push_to_hub_then_load_dataset(hub, tiny_repo, tmp_path):
    files = hub.head_files(TINY, "dataset")
    assert {"data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet", "README.md"} <= set(files)
    assert files["data/train-00000-of-00001.parquet"][:4] == b"PAR1"

    loaded = datasets.load_dataset(TINY, cache_dir=str(tmp_path))
    assert set(loaded) == {"train", "test"}
    for name in ("train", "test"):
        assert loaded[name].num_rows == len(CLASS_NAMES) * PER_CLASS
        assert loaded[name]["label"] == tiny_repo[name]["label"]
        np.testing.assert_array_equal(_pixels(loaded[name]), _pixels(tiny_repo[name]))
    assert loaded["train"].features["label"].names == CLASS_NAMES
    # The parquet shards came from LFS storage (the other origin), like the Hub's CDN.
    assert any(origin.startswith("lfs:/objects/") for _, origin in hub.requests)


def test_upload_folder_of_parquet_files(hub, online_datasets, tmp_path):
    """A repo made with create_repo(repo_type="dataset") + upload_folder, no README: `datasets` finds the splits
    from the file names, as on the Hub."""
    folder = tmp_path / "repo" / "data"
    folder.mkdir(parents=True)
    dd = tiny_dataset_dict(28, "L", per_class=2)
    for name, split in dd.items():
        split.to_parquet(str(folder / f"{name}-00000-of-00001.parquet"))
    api = HfApi()
    api.create_repo(f"{USER}/folder-upload", repo_type="dataset")
    api.upload_folder(repo_id=f"{USER}/folder-upload", repo_type="dataset", folder_path=tmp_path / "repo")

    loaded = datasets.load_dataset(f"{USER}/folder-upload", cache_dir=str(tmp_path / "cache"))
    assert {name: s.num_rows for name, s in loaded.items()} == {"train": 6, "test": 6}
    np.testing.assert_array_equal(_pixels(loaded["test"]), _pixels(dd["test"]))


def test_missing_and_gated_datasets_give_the_datasets_error(hub, tiny_repo, tmp_path):
    for missing in (f"{USER}/no-such-dataset", "nobody/tiny"):
        with pytest.raises(DatasetNotFoundError, match="doesn't exist on the Hub"):
            datasets.load_dataset(missing, cache_dir=str(tmp_path))
    # A model repo of that name is not a dataset.
    HfApi().create_repo(f"{USER}/a-model")
    with pytest.raises(DatasetNotFoundError):
        datasets.load_dataset(f"{USER}/a-model", cache_dir=str(tmp_path))

    # A gated one (a repo name of its own: the session's Hub cache would serve an earlier test's README of TINY,
    # as the client falls back to cached files when the Hub refuses).
    gated = f"{USER}/gated-tiny"
    tiny_repo.push_to_hub(gated)
    hub.gate(gated, "dataset")
    with pytest.raises(DatasetNotFoundError, match=r"gated dataset on the Hub\..*ask for access"):
        datasets.load_dataset(gated, cache_dir=str(tmp_path / "gated"))
    with pytest.raises(DatasetNotFoundError, match="gated"):
        load_image_splits(ImageSource(dataset_name=gated, cache_dir=str(tmp_path / "gated-2")))


def test_load_image_splits_from_a_hub_dataset(tiny_repo, tmp_path):
    source = ImageSource(dataset_name=TINY, cache_dir=str(tmp_path))
    train, held, info = load_image_splits(source, "official")
    n = len(CLASS_NAMES) * PER_CLASS
    assert train.images.shape == (n, 1, 28, 28) and held.images.shape == (n, 1, 28, 28)
    np.testing.assert_array_equal(held.images[:, 0].numpy(), _pixels(tiny_repo["test"]))
    assert held.labels.tolist() == tiny_repo["test"]["label"]
    assert info.to_dict() == {"name": TINY, "config_name": None, "channels": 1, "resolution": 28,
                              "label_names": CLASS_NAMES, "split": "official", "seed": 0, "held_out_from": "test",
                              "source": "hub"}

    # The study split holds out a seeded 20 % of the train split, leaving the test split alone.
    train, held, info = load_image_splits(source, "study")
    tr, te = study_split_indices(n, 0)
    np.testing.assert_array_equal(held.images[:, 0].numpy(), _pixels(tiny_repo["train"])[te.numpy()])
    assert (len(train), len(held), info.held_out_from) == (len(tr), len(te), "train")


def test_training_data_with_dataset_name(tiny_repo, tmp_path):
    parser = argparse.ArgumentParser()
    add_data_args(parser)
    parser.add_argument("--split", default="study")
    args = parser.parse_args(["--dataset_name", TINY, "--resolution", "16", "--num_channels", "3",
                              "--cache_dir", str(tmp_path), "--split", "official"])
    train, held, info = training_data(args)
    assert train.images.shape == (24, 3, 16, 16) and held.images.shape == (24, 3, 16, 16)
    assert train.images.dtype == held.images.dtype == torch.uint8
    assert (info.name, info.channels, info.resolution, info.held_out_from) == (TINY, 3, 16, "test")
    assert info.label_names == CLASS_NAMES and sorted(set(held.labels.tolist())) == [0, 1, 2]
