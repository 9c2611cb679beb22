"""The digit classifier: the model class, the training script on tiny data, and the shipped release model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

RELEASE = REPO_ROOT / "release" / "digit-classifier"


def test_model_shapes_and_safetensors_round_trip(tmp_path):
    from hub_models.models.classifier import DigitClassifier

    model = DigitClassifier(channels=(4, 8), hidden_dim=16).eval()
    x = torch.rand(3, 1, 28, 28)
    assert model.logits(x).shape == (3, 10) and model.features(x).shape == (3, 16)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    loaded = DigitClassifier.from_pretrained(tmp_path)
    assert not loaded.training
    assert torch.allclose(loaded.logits(x), model.logits(x))
    probs, _, labels = loaded.predict(x, batch_size=2)
    assert torch.allclose(probs.sum(1), torch.ones(3)) and torch.equal(labels, probs.argmax(1))


@pytest.mark.slow
def test_train_script_writes_a_loadable_run_folder(tiny_mnist_cache, tmp_run_dir, run_script):
    from hub_models.models.classifier import DigitClassifier

    run_script("training/train_classifier.py", "--output_dir", str(tmp_run_dir), "--epochs", "4", "--batch_size", "64",
               "--channels", "8", "16", "--hidden_dim", "32", "--checkpointing_steps", "none")
    metrics = json.loads((tmp_run_dir / "metrics.json").read_text())
    assert metrics["model"] == "digit-classifier" and len(metrics["history"]) == 4
    assert metrics["train_size"] == 512 and metrics["test_size"] == 256
    # 4 epochs on 512 digits (BatchNorm statistics still settling): well above chance (0.1).
    assert metrics["test_accuracy"] > 0.4 and metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    model = DigitClassifier.from_pretrained(tmp_run_dir)
    assert model.config.hidden_dim == 32
    card = (tmp_run_dir / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "mit" and meta["datasets"] == ["ylecun/mnist"]
    result = meta["model-index"][0]["results"][0]
    assert result["metrics"][0]["type"] == "accuracy"
    assert result["metrics"][0]["value"] == pytest.approx(metrics["test_accuracy"], abs=1e-4)


def test_release_classifier_is_small_and_accurate(tiny_mnist_cache):
    from hub_models.data import load_splits
    from hub_models.evaluation.metrics import load_digit_classifier

    metrics = json.loads((RELEASE / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.99 and metrics["test_size"] == 10_000
    size = sum(p.stat().st_size for p in RELEASE.iterdir() if p.is_file())
    assert size < 2_000_000
    meta = yaml.safe_load((RELEASE / "README.md").read_text().split("---")[1])
    assert meta["library_name"] and meta["model-index"][0]["results"][0]["metrics"][0]["value"] >= 0.99

    clf = load_digit_classifier()
    _, test = load_splits("official")  # the tiny copy: 256 real test digits
    labels = clf.predict(test.as_float())[2]
    assert (labels == test.labels).float().mean() >= 0.97
