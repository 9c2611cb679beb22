"""A small MNIST digit classifier: the judge of generated digits (recognisability, mode coverage, FD-classifier).

It is trained once (`training/train_classifier.py`) and shipped in `release/digit-classifier/`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLASSIFIER_DIR = REPO_ROOT / "release" / "digit-classifier"


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3×3 convs (BatchNorm, ReLU) then a 2×2 max-pool: halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class DigitClassifier(ModelMixin, ConfigMixin):
    """CNN: two conv blocks (28→14→7) → FC(`hidden_dim`) + ReLU (the penultimate features) → FC(10).

    Args:
        channels: channels of the two conv blocks.
        hidden_dim: size of the penultimate layer (the features of the FD-classifier metric).
        dropout: dropout before the last layer (training only).
        num_classes: number of classes (10 digits).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, channels: tuple[int, int] = (16, 32), hidden_dim: int = 128, dropout: float = 0.3,
                 num_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.trunk = nn.Sequential(_block(1, c1), _block(c1, c2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(c2 * 7 * 7, hidden_dim), nn.ReLU())
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, num_classes)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        # safetensors only, as every model of the project.
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features `(batch, hidden_dim)` of images `(batch, 1, 28, 28)` in [0, 1]."""
        return self.fc(self.trunk(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits `(batch, num_classes)` of images `(batch, 1, 28, 28)` in [0, 1]."""
        return self.head(self.drop(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(probabilities `(N, 10)`, features `(N, hidden_dim)`, predicted labels `(N,)`), batched, in eval mode."""
        was_training = self.training
        self.eval()
        probs, feats = [], []
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size].to(self.device, self.dtype)
            f = self.features(batch)
            feats.append(f.float().cpu())
            probs.append(torch.softmax(self.head(f).float(), dim=1).cpu())
        self.train(was_training)
        p = torch.cat(probs) if probs else torch.empty(0, self.config.num_classes)
        f = torch.cat(feats) if feats else torch.empty(0, self.config.hidden_dim)
        return p, f, p.argmax(1)


def load_digit_classifier(path: str | os.PathLike | None = None) -> DigitClassifier:
    """The shipped classifier (`release/digit-classifier/`, or `$MNIST_GENLAB_CLASSIFIER`), in eval mode."""
    path = Path(path or os.environ.get("MNIST_GENLAB_CLASSIFIER") or DEFAULT_CLASSIFIER_DIR)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"no digit classifier in {path}: train one with `python training/train_classifier.py --output_dir "
            f"{DEFAULT_CLASSIFIER_DIR}` (a few minutes on CPU) or pass its folder."
        )
    return DigitClassifier.from_pretrained(path).eval()


def classifier_model_card(metrics: dict[str, Any], repo_id: str = "mnist-genlab-digit-classifier"):
    """The model card (README.md) of a trained classifier, with validated `model-index` metadata."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    accuracy = metrics["test_accuracy"]
    test_split = "test" if metrics.get("split", "official") == "official" else "train (study 20 % held-out)"
    data = ModelCardData(
        library_name="diffusers",
        license="mit",
        tags=["mnist", "image-classification", "evaluation", "mnist-genlab"],
        datasets=["ylecun/mnist"],
        metrics=["accuracy"],
        pipeline_tag="image-classification",
        model_name=repo_id.split("/")[-1],
        eval_results=[EvalResult(
            task_type="image-classification", task_name="Digit classification",
            dataset_type="ylecun/mnist", dataset_name="MNIST", dataset_split=test_split,
            metric_type="accuracy", metric_name="Test accuracy", metric_value=round(accuracy, 4),
        )],
    )
    cfg = metrics.get("config", {})
    note = f" ({metrics['train_note']})" if metrics.get("train_note") else ""
    split_text = "official MNIST" if metrics.get("split", "official") == "official" else "the study's 80/20"
    content = f"""---
{data.to_yaml()}
---

# MNIST digit classifier (mnist-genlab)

A small CNN ({metrics["parameters"]:,} parameters) that judges generated digits in the mnist-genlab
project (β-VAEs and DDPMs on MNIST): it is the classifier behind the *recognisable share*
(confidence > 0.9), the *class histogram / KL to uniform* (mode coverage) and the **FD-classifier**
(a Fréchet distance on its {cfg.get("hidden_dim", 128)}-d penultimate features — MNIST-specific, not an FID).

| | |
|---|---|
| test accuracy ({split_text} test set, {metrics["test_size"]:,} digits) | **{accuracy:.2%}** |
| test loss (cross-entropy) | {metrics["test_loss"]:.4f} |
| training data | {split_text} train set ({metrics["train_size"]:,} digits) |
| epochs / batch | {metrics["epochs"]} / {metrics["batch_size"]} |
| optimiser | AdamW, one-cycle schedule, peak lr {metrics["learning_rate"]} |
| training time | {metrics["train_seconds"]:.0f} s wall, CPU, {metrics.get("torch_threads", "?")} threads{note} |

Architecture: 2 × [conv3×3–BN–ReLU, conv3×3–BN–ReLU, max-pool] with channels {cfg.get("channels")} →
FC({cfg.get("hidden_dim")}) + ReLU (penultimate features) → dropout → FC(10).

## Use

```python
from hub_models.digit_classifier import DigitClassifier

clf = DigitClassifier.from_pretrained("<user>/{repo_id}")  # or a local folder
probs, features, labels = clf.predict(images)  # images (N, 1, 28, 28) in [0, 1]
```

Input convention: grey digits in [0, 1] (pixel / 255), white digit on black, as MNIST.
Trained with `training/train_classifier.py --seed {metrics["seed"]}`.
"""
    return ModelCard(content)


__all__ = ["DEFAULT_CLASSIFIER_DIR", "DigitClassifier", "classifier_model_card", "load_digit_classifier"]
