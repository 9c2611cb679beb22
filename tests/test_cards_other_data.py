"""Cards of runs on other data (issue 37): the card names the dataset the run's training_config.json records
(`datasets:` metadata, `model-index` dataset and split, the text), MNIST where it records none or MNIST itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from hub_server import validate_card_yaml

from hub_models.hub.cards import render_model_card
from hub_models.image_datasets import mnist_info

LABELS = ["bar", "square", "cross"]
HUB_DATASET = {"name": "you/tiny-rgb", "config_name": None, "channels": 3, "resolution": 32, "label_names": LABELS,
               "split": "official", "seed": 0, "held_out_from": "test"}
# Where a card may still say MNIST on other data: the project's own description, not the data's.
PROJECT_LINES = ("a study of β-VAEs and DDPMs on MNIST", "beta-VAEs and DDPMs on MNIST, reproduced",
                 "the study is on MNIST", "DDPMs on MNIST and goes beyond it", "(on MNIST)")


def _front_matter(card: str) -> dict:
    return yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", card, re.DOTALL).group(1))


def _write_run(folder: Path, train_cfg: dict, *, num_class_embeds: int | None = None) -> Path:
    """A pixel DDPM run folder at 32×32 RGB: a tiny real UNet2DModel, its scheduler, metrics and training config."""
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=num_class_embeds)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(folder)
    (folder / "training_config.json").write_text(json.dumps({"seed": 1, "num_epochs": 1, **train_cfg}))
    (folder / "metrics.json").write_text(json.dumps({"train_samples": 24, "test_samples": 24, "test_loss": 0.5,
                                                     "train_loss": 0.6, "global_step": 3, "split": "official"}))
    return folder


def _model_index_datasets(meta: dict) -> list[dict]:
    return [r["dataset"] for m in meta["model-index"] for r in m["results"]]


def _assert_no_mnist_data_words(card: str) -> None:
    body = card.split("\n---\n", 1)[1]
    offending = [line for line in body.splitlines()
                 if re.search(r"\bdigits?\b|MNIST", line) and not any(p in line for p in PROJECT_LINES)]
    assert not offending, offending


def test_ddpm_card_names_the_hub_dataset(tmp_path):
    run = _write_run(tmp_path / "run", {"dataset_name": "you/tiny-rgb", "dataset": HUB_DATASET})
    card = str(render_model_card(run, "you/rgb-ddpm"))
    meta = _front_matter(card)
    assert validate_card_yaml(card, "model") == ([], [])
    assert meta["datasets"] == ["you/tiny-rgb"] and "mnist" not in meta["tags"]
    found = _model_index_datasets(meta)
    assert {(d["type"], d["name"]) for d in found} == {("you/tiny-rgb", "you/tiny-rgb")}
    assert {d["split"] for d in found} == {"train", "test"}  # train loss on train, held-out loss on its test split
    assert "generates 32×32 RGB images like those of you/tiny-rgb" in card
    assert "3 channels in and out" in card
    assert "on the train / test splits of you/tiny-rgb (24 / 24 images)" in card
    assert "- Trained on you/tiny-rgb only: 32×32 RGB images; unconditional (the class cannot be chosen)." in card
    assert "| `--dataset_name` | you/tiny-rgb |" in card and "`--dataset`" not in card
    _assert_no_mnist_data_words(card)


def test_ddpm_card_of_a_local_folder_names_no_dataset(tmp_path):
    folder = tmp_path / "my images"
    dataset = {**HUB_DATASET, "name": str(folder), "split": "study", "held_out_from": "train"}
    run = _write_run(tmp_path / "run", {"train_data_dir": str(folder), "dataset": dataset})
    card = str(render_model_card(run, "you/folder-ddpm"))
    meta = _front_matter(card)
    assert validate_card_yaml(card, "model") == ([], [])
    assert "datasets" not in meta
    found = _model_index_datasets(meta)
    assert {(d["type"], d["name"]) for d in found} == {
        ("imagefolder", "a local image folder (a seeded 80/20 split of its train split)")}
    assert {d["split"] for d in found} == {"study-train", "study-test"}
    assert "a seeded 80/20 split of the train split of a local image folder (24 / 24 images)" in card
    assert "Trained on a local image folder only" in card
    assert str(folder) not in card and "train_data_dir" not in card  # no local path is published
    _assert_no_mnist_data_words(card)


def test_conditional_ddpm_card_uses_the_label_names(tmp_path):
    run = _write_run(tmp_path / "run", {"dataset_name": "you/tiny-rgb", "dataset": HUB_DATASET,
                                        "class_conditional": True}, num_class_embeds=len(LABELS) + 1)
    card = str(render_model_card(run, "you/rgb-ddpm-conditional"))
    assert "class_labels=[d for d in range(3) for _ in range(2)],  # two of each class" in card
    assert "generates the 32×32 RGB image of you/tiny-rgb you ask" in card
    assert "- Trained on you/tiny-rgb only: 32×32 RGB images; only the class can be chosen" in card
    _assert_no_mnist_data_words(card)


def test_a_run_that_records_mnist_gets_the_mnist_card(tmp_path):
    """New MNIST runs record `dataset` (the released ones do not): both give MNIST's card, the same text."""
    without = _write_run(tmp_path / "without", {})
    with_info = _write_run(tmp_path / "with", {"dataset": mnist_info("official").to_dict()})
    cards = [str(render_model_card(run, "you/ddpm")) for run in (without, with_info)]
    assert cards[0] == cards[1]
    meta = _front_matter(cards[0])
    assert meta["datasets"] == ["ylecun/mnist"] and "mnist" in meta["tags"]
    assert {d["type"] for d in _model_index_datasets(meta)} == {"ylecun/mnist"}
    assert "Trained on MNIST only: 28×28 grey handwritten digits" in cards[0]


@pytest.fixture()
def vae_run_on_hub_data(vae_run: Path) -> Path:
    """The session's Conv VAE copy, re-labelled as trained on a greyscale Hub dataset of three classes."""
    cfg = json.loads((vae_run / "training_config.json").read_text())
    dataset = {**HUB_DATASET, "name": "you/tiny-grey", "channels": 1, "resolution": 28, "split": "study",
               "held_out_from": "train"}
    cfg.update(dataset_name="you/tiny-grey", dataset=dataset)
    (vae_run / "training_config.json").write_text(json.dumps(cfg))
    return vae_run


def test_vae_card_names_the_hub_dataset(vae_run_on_hub_data):
    card = str(render_model_card(vae_run_on_hub_data, "you/grey-vae"))
    meta = _front_matter(card)
    assert validate_card_yaml(card, "model") == ([], [])
    assert meta["datasets"] == ["you/tiny-grey"] and "mnist" not in meta["tags"]
    types = {d["type"] for d in _model_index_datasets(meta)}
    assert types == {"you/tiny-grey"}
    assert {d["split"] for d in _model_index_datasets(meta)} == {"study-test"}
    assert "β-VAE trained on you/tiny-grey with" in card
    assert "It encodes a 28×28 grey image into" in card and "generates new images." in card
    assert "- Trained on you/tiny-grey only: 28×28 grey images." in card
    _assert_no_mnist_data_words(card)
