"""The one map of the project's model classes: architecture name ↔ class ↔ kind of run.

Everything that turns a `config.json`'s `_class_name` into a class (loading from the Hub, cards, the Space, the
`evaluate` modules) asks here, so an unknown class is refused in one place. What is done with each kind (its loader,
card, repo name, push extras, Space handler) is the table `hub_models.hub.kinds.KINDS`, a layer up: a new model is
its class here and one entry there.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from diffusers.models.modeling_utils import ModelMixin

from hub_models.models.classifier import DigitClassifier
from hub_models.models.conv_vae import ConvVAE
from hub_models.models.dense_vae import DenseVAE
from hub_models.models.latent_prior import LatentPrior
from hub_models.models.vae import BetaVAE

#: the VAE architectures, by the name the scripts and run names use (`--arch conv`, `vae-conv-z2-beta1`)
VAE_CLASSES: dict[str, type[BetaVAE]] = {"conv": ConvVAE, "dense": DenseVAE}
#: every class a `config.json` may name: the project's own, and diffusers' UNet by its module (importing diffusers'
#: UNet pulls in scipy through its loaders, so it is resolved on first use and `hub_models.models` stays light)
MODEL_CLASSES: dict[str, type[ModelMixin] | str] = {
    "ConvVAE": ConvVAE,
    "DenseVAE": DenseVAE,
    "DigitClassifier": DigitClassifier,
    "LatentPrior": LatentPrior,
    "UNet2DModel": "diffusers.models.unets.unet_2d",
    "AutoencoderKL": "diffusers.models.autoencoders.autoencoder_kl",  # latent diffusion's autoencoder
}
#: the kind of a run whose `config.json` (or `unet/config.json`) names the class; each is a `hub_models.hub.kinds` entry
KINDS: dict[str, str] = {"ConvVAE": "vae", "DenseVAE": "vae", "DigitClassifier": "classifier", "UNet2DModel": "ddpm",
                        "LatentPrior": "latent-prior", "AutoencoderKL": "autoencoder"}
VAE_CLASS_NAMES: tuple[str, ...] = tuple(cls.__name__ for cls in VAE_CLASSES.values())


class UnknownModelClassError(ValueError):
    """A config names a class the project does not load (it never runs repo code)."""


def model_class(class_name: str | None) -> type[ModelMixin]:
    """The class a `config.json`'s `_class_name` names; a clear error for anything else."""
    found = MODEL_CLASSES.get(class_name or "")
    if found is None:
        raise UnknownModelClassError(
            f"unknown model class {class_name!r}: mnist-genlab loads {', '.join(MODEL_CLASSES)}"
        )
    return getattr(importlib.import_module(found), class_name) if isinstance(found, str) else found


def vae_class(class_name_or_arch: str | None) -> type[BetaVAE]:
    """`"conv"`/`"ConvVAE"` → ConvVAE, `"dense"`/`"DenseVAE"` → DenseVAE."""
    by_name = {cls.__name__: cls for cls in VAE_CLASSES.values()}
    cls = VAE_CLASSES.get(class_name_or_arch or "") or by_name.get(class_name_or_arch or "")
    if cls is None:
        raise UnknownModelClassError(
            f"{class_name_or_arch!r} is not a VAE: expected one of {sorted(VAE_CLASSES)} or {list(by_name)}"
        )
    return cls


def arch_of(class_name: str | None) -> str | None:
    """`"ConvVAE"` → `"conv"`; None for anything that is not a VAE class."""
    return next((arch for arch, cls in VAE_CLASSES.items() if cls.__name__ == class_name), None)


def kind_of(class_name: str | None) -> str:
    """The kind a class belongs to (`KINDS`): `"vae"` (ConvVAE, DenseVAE), `"classifier"` (DigitClassifier),
    `"latent-prior"` (LatentPrior), `"ddpm"` (UNet2DModel: a pixel or latent DDPM's U-Net), `"autoencoder"`
    (AutoencoderKL), or `"unknown"`. A pipeline folder is told apart further by `hub_models.hub.kinds` ("ddpm",
    "student", "ldm") from its model_index.json."""
    return KINDS.get(class_name or "", "unknown")


def config_class_name(folder: str | os.PathLike) -> str | None:
    """The `_class_name` of `folder/config.json` (None when there is no config)."""
    path = Path(folder) / "config.json"
    return json.loads(path.read_text()).get("_class_name") if path.is_file() else None


__all__ = [
    "KINDS",
    "MODEL_CLASSES",
    "VAE_CLASSES",
    "VAE_CLASS_NAMES",
    "UnknownModelClassError",
    "arch_of",
    "config_class_name",
    "kind_of",
    "model_class",
    "vae_class",
]
