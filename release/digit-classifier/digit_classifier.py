"""DigitClassifier of mnist-genlab 0.1.0, generated from the library's source
(hub_models.models.classifier and what it uses) when this repository was pushed: re-push rather than edit.
It imports only torch, diffusers and the standard library. Loaded with diffusers alone
(REPO: this repository's id or folder):

    from diffusers import AutoModel

    model = AutoModel.from_pretrained(REPO, trust_remote_code=True)

With mnist-genlab installed, `hub_models.hub.load(REPO)` builds the installed class and never runs this file.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3×3 convs (BatchNorm, ReLU) then a 2×2 max-pool: halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class DigitClassifier(ModelMixin, ConfigMixin):
    """CNN: two conv blocks (each halves the size: 28→14→7 on MNIST) → FC(`hidden_dim`) + ReLU (the penultimate
    features) → FC(`num_classes`).

    Args:
        channels: channels of the two conv blocks.
        hidden_dim: size of the penultimate layer (the features of the FD-classifier metric).
        dropout: dropout before the last layer (training only).
        num_classes: number of classes (10 digits).
        in_channels: channels of the images (1: greyscale, 3: RGB).
        sample_size: height = width of the images (released configs without it are MNIST's 28).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, channels: tuple[int, int] = (16, 32), hidden_dim: int = 128, dropout: float = 0.3,
                 num_classes: int = 10, in_channels: int = 1, sample_size: int = 28):
        super().__init__()
        if sample_size < 4:
            raise ValueError(f"sample_size must be ≥ 4 (two 2×2 poolings), got {sample_size}")
        c1, c2 = channels
        self.trunk = nn.Sequential(_block(in_channels, c1), _block(c1, c2), nn.Flatten())
        side = sample_size // 4  # the size after the two poolings (which round down)
        self.fc = nn.Sequential(nn.Linear(c2 * side * side, hidden_dim), nn.ReLU())
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, num_classes)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        # safetensors only, as every model of the project.
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features `(batch, hidden_dim)` of images `(batch, in_channels, sample_size, sample_size)`
        in [0, 1]."""
        return self.fc(self.trunk(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits `(batch, num_classes)` of images `(batch, in_channels, sample_size, sample_size)` in
        [0, 1]."""
        return self.head(self.drop(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(probabilities `(N, num_classes)`, features `(N, hidden_dim)`, predicted labels `(N,)`), batched, in eval
        mode."""
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


__all__ = ["DigitClassifier"]
