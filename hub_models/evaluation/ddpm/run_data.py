"""The data a DDPM run was trained on, as its evaluation needs it: the FID reference and the classifier of its class
metrics.

A run on MNIST (no `dataset` in training_config.json, or MNIST's) is scored as always: against MNIST's named
reference sets, with the shipped digit classifier. A run on other data (`--dataset_name`, `--train_data_dir`) is
scored against its own held-out images (`RUN_REFERENCE`), rebuilt from the flags its training_config.json recorded,
with the real-vs-real floor drawn from its own train images; its class metrics need a classifier trained on the same
data (`training/train_classifier.py`, passed as `classifier_dir`) and are left out without one — never computed with
the MNIST classifier.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from hub_models.data import ImageSplit
from hub_models.evaluation.metrics import REFERENCE_SETS, ReferenceSet, load_digit_classifier
from hub_models.image_datasets import TRAINING_CONFIG, ImageDatasetInfo, mnist_info, run_training_data
from hub_models.image_datasets import recorded_dataset as run_dataset
from hub_models.io import read_json
from hub_models.models.classifier import DigitClassifier

# The reference of a run on other data than MNIST: its own held-out images (what training held out, as recorded).
RUN_REFERENCE = "held-out"
# MNIST's (selection, report) reference sets (docs/lab/PROTOCOL.md): the study's held-out split, the official test set.
MNIST_REFERENCES = ("study-test", "mnist-test")
CLASSIFIER_WEIGHTS = "diffusion_pytorch_model.safetensors"


def references(run_dir: str | os.PathLike) -> tuple[str, str]:
    """(selection, report) reference names of a run: MNIST's two sets, or its own held-out images for both."""
    return MNIST_REFERENCES if run_dataset(run_dir) is None else (RUN_REFERENCE, RUN_REFERENCE)


def check_reference(run_dir: str | os.PathLike, reference: str) -> None:
    """ValueError (one line) unless `reference` is one a run can be scored against: MNIST's named sets for a run on
    MNIST, `RUN_REFERENCE` for a run on other data."""
    dataset = run_dataset(run_dir)
    if dataset is None and reference not in REFERENCE_SETS:
        raise ValueError(f"{run_dir} was trained on MNIST: score it against {' or '.join(sorted(REFERENCE_SETS))}, "
                         f"not {reference!r}")
    if dataset is not None and reference != RUN_REFERENCE:
        raise ValueError(f"{run_dir} was trained on {dataset['name']}, not MNIST: its FID reference is its own "
                         f"held-out images ({RUN_REFERENCE!r}), not {reference!r}")


_rebuilt = lru_cache(maxsize=4)(run_training_data)  # one rebuild per run folder in a process


def run_data(run_dir: str | os.PathLike) -> tuple[ImageSplit, ImageSplit, ImageDatasetInfo]:
    """(train, held-out, info) of a run on other data (`hub_models.image_datasets.run_training_data`; decoded
    images are cached, and so is the rebuild within a process)."""
    return _rebuilt(str(Path(run_dir).resolve()))


def scoring_reference(run_dir: str | os.PathLike, reference: str) -> str | ReferenceSet:
    """What `hub_models.evaluation.metrics.fid` scores a run's images against: an MNIST set's name as it is, or for
    `RUN_REFERENCE` the run's held-out images with its train images as the floor pool, identified by its dataset."""
    check_reference(run_dir, reference)
    if reference != RUN_REFERENCE:
        return reference
    return ReferenceSet.held_out_of(RUN_REFERENCE, *run_data(run_dir))


def run_label_names(run_dir: str | os.PathLike) -> list[str] | None:
    """The class names of the run's data (MNIST's ten digits for a run on MNIST)."""
    dataset = run_dataset(run_dir)
    return mnist_info().label_names if dataset is None else dataset.get("label_names")


def classifier_digest(classifier_dir: str | os.PathLike | None) -> str | None:
    """sha256 (16 hex digits) of a classifier's weights, kept with each point it scored (None: the default one)."""
    if classifier_dir is None:
        return None
    return hashlib.sha256((Path(classifier_dir) / CLASSIFIER_WEIGHTS).read_bytes()).hexdigest()[:16]


def _image_shape(run_dir: Path) -> tuple[int, int]:
    """(channels, size) of the images a run generates: its data's (a latent run's UNet works on latents)."""
    dataset = run_dataset(run_dir)
    return (1, 28) if dataset is None else (dataset["channels"], dataset["resolution"])


def run_classifier(run_dir: str | os.PathLike, classifier_dir: str | os.PathLike | None = None,
                   num_classes: int | None = None) -> DigitClassifier | None:
    """The classifier of a run's class metrics ("recognisable", class accuracy): `classifier_dir` (a folder of
    `training/train_classifier.py`, trained on the run's data), else for a run on MNIST the shipped digit
    classifier; None for a run on other data without one (its class metrics are left out).

    Raises:
        ValueError: a classifier that does not fit the run: another input shape, other classes (by its
            training_config.json's label names, or `num_classes` for a class-conditional run).
    """
    run_dir = Path(run_dir)
    if classifier_dir is None:
        return load_digit_classifier() if run_dataset(run_dir) is None else None
    folder = Path(classifier_dir)
    if not (folder / "config.json").is_file() or not (folder / CLASSIFIER_WEIGHTS).is_file():
        raise ValueError(f"--classifier_dir {folder}: no classifier there (config.json + {CLASSIFIER_WEIGHTS}); "
                         "train one with `training/train_classifier.py` on the run's data")
    classifier = DigitClassifier.from_pretrained(folder).eval()
    config = classifier.config
    shape, wanted = (config.in_channels, config.sample_size), _image_shape(run_dir)
    if shape != wanted:
        raise ValueError(f"--classifier_dir {folder} takes {shape[0]}×{shape[1]}×{shape[1]} images, the run makes "
                         f"{wanted[0]}×{wanted[1]}×{wanted[1]}: train it on the run's data")
    trained_on = folder / TRAINING_CONFIG
    names = (read_json(trained_on).get("dataset") or {}).get("label_names") if trained_on.is_file() else None
    if names is not None and run_label_names(run_dir) is not None and names != run_label_names(run_dir):
        raise ValueError(f"--classifier_dir {folder} tells apart {names}, the run's data has "
                         f"{run_label_names(run_dir)}: train it on the run's data")
    if num_classes is not None and config.num_classes != num_classes:
        raise ValueError(f"--classifier_dir {folder} has {config.num_classes} classes, the run generates "
                         f"{num_classes}")
    return classifier


__all__ = [
    "MNIST_REFERENCES",
    "RUN_REFERENCE",
    "check_reference",
    "classifier_digest",
    "references",
    "run_classifier",
    "run_data",
    "run_dataset",
    "run_label_names",
    "scoring_reference",
]
