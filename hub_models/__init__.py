"""mnist-genlab's library, in layers that import only downwards (docs/ARCHITECTURE.md):

    io → models → diffusion → data → evaluation → hub → study / space / training

`import hub_models` is light: the names below are imported on first use (PEP 562), so `from hub_models import
ConvVAE` costs what `hub_models.models` costs and nothing of the evaluation, data or UI stacks.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BetaVAE": "hub_models.models",
    "ConvVAE": "hub_models.models",
    "DenseVAE": "hub_models.models",
    "DigitClassifier": "hub_models.models",
    "VAELoss": "hub_models.models",
    "VAEOutput": "hub_models.models",
    "VAE_CLASSES": "hub_models.models",
    "make_unet": "hub_models.models.unet",
    "SAMPLERS": "hub_models.diffusion",
    "sample_images": "hub_models.diffusion",
    "load_ddpm": "hub_models.diffusion",
    "ClassConditionalDDPMPipeline": "hub_models.diffusion",
    "ImageSplit": "hub_models.data",
    "load_mnist": "hub_models.data",
    "load_mnist_arrays": "hub_models.data",
    "load_splits": "hub_models.data",
    "load": "hub_models.hub",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hub_models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
