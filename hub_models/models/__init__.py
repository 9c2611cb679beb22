"""The models: β-VAEs (Conv, Dense), the UNet configs of the DDPM, the digit classifier, and their registry.

The lowest layer above `hub_models.io`: importing it costs no more than diffusers' own `ModelMixin` (tested). The UNet
helpers are exported lazily: diffusers' `UNet2DModel` imports scipy and its single-file loaders.
"""

from __future__ import annotations

import importlib
from typing import Any

from hub_models.models.classifier import DigitClassifier
from hub_models.models.conv_vae import ConvVAE
from hub_models.models.dense_vae import DenseVAE
from hub_models.models.latent_prior import LatentPrior
from hub_models.models.registry import MODEL_CLASSES, VAE_CLASSES, kind_of, model_class, vae_class
from hub_models.models.vae import BetaVAE, VAELoss, VAEOutput

_LAZY = {name: "hub_models.models.unet" for name in ("UNET_CONFIGS", "count_parameters", "make_unet", "unet_config")}

__all__ = [
    "MODEL_CLASSES",
    "UNET_CONFIGS",
    "VAE_CLASSES",
    "BetaVAE",
    "ConvVAE",
    "DenseVAE",
    "DigitClassifier",
    "LatentPrior",
    "VAELoss",
    "VAEOutput",
    "count_parameters",
    "kind_of",
    "make_unet",
    "model_class",
    "unet_config",
    "vae_class",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hub_models.models' has no attribute {name!r}")
