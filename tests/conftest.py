"""Shared fixtures. Tests run on a tiny real-MNIST copy (a few hundred digits) and tiny models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Nothing in the tests may reach the internet: the data loader never tries the Hub for MNIST.
os.environ.setdefault("MNIST_GENLAB_SKIP_HUB", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

# The offline Hub server and its environment (must load before anything imports huggingface_hub).
pytest_plugins = ["hub_fixtures", "space_fixtures"]  # space_fixtures: the Space's models and app

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN, TINY_TEST = 512, 256


@pytest.fixture(scope="session")
def full_mnist_cache() -> Path:
    """The full prepared copy (built once from the PyPI wheel; `.ci/run` warms it)."""
    from hub_models.data import default_cache_dir, prepare_mnist

    prepare_mnist(default_cache_dir(), try_hub=False)
    return default_cache_dir()


@pytest.fixture(scope="session")
def tiny_mnist_cache(full_mnist_cache: Path, tmp_path_factory) -> Path:
    """A prepared copy holding only the first 512 train / 256 test real digits; also exported as
    MNIST_GENLAB_CACHE so subprocesses (training scripts, the Space) use it."""
    from hub_models.data import load_mnist_arrays, save_prepared

    arrays = load_mnist_arrays(full_mnist_cache)
    tiny = {
        "train_images": arrays["train_images"][:TINY_TRAIN].numpy(),
        "train_labels": arrays["train_labels"][:TINY_TRAIN].numpy(),
        "test_images": arrays["test_images"][:TINY_TEST].numpy(),
        "test_labels": arrays["test_labels"][:TINY_TEST].numpy(),
    }
    root = tmp_path_factory.mktemp("tiny-mnist")
    save_prepared(tiny, root / "mnist")
    os.environ["MNIST_GENLAB_CACHE"] = str(root)
    return root


@pytest.fixture()
def tmp_run_dir() -> Path:
    with tempfile.TemporaryDirectory(prefix="run-") as d:
        yield Path(d)
