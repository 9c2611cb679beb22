"""How `hub_models.hub.load` builds each kind from a repo or folder without running code from it: check what the
JSON names against the classes the kind allows, check the weights are complete safetensors, then call the
installed class's `from_pretrained(..., use_safetensors=True)`. `hub_models.hub.kinds` names one loader per kind."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import diffusers

from hub_models.hub.remote_code import class_name_of
from hub_models.hub.repo_files import HubLoadError, RepoFiles
from hub_models.models.registry import model_class

DDPM_SCHEDULERS = (
    "DDPMScheduler",
    "DDIMScheduler",
    "DPMSolverMultistepScheduler",
    "EulerDiscreteScheduler",
    "PNDMScheduler",
)
# diffusers components a pipeline may name, by component: (library, class) and the config that must agree
COMPONENTS = {"unet": ("UNet2DModel", "unet/config.json"), "vae": ("AutoencoderKL", "vae/config.json")}


def check_pipeline_index(name: str, index: dict, pipelines: Mapping[str, Any]) -> None:
    """HubLoadError unless model_index.json names one of `pipelines` with exactly the components it takes (a U-Net,
    a known diffusers scheduler, and diffusers' AutoencoderKL for a latent pipeline). A `["<module>", "<Class>"]`
    class name (the shipped remote code) is read as its class: the module is never imported."""
    class_name = class_name_of(index)
    if not isinstance(class_name, str) or class_name not in pipelines:
        raise HubLoadError(
            f"{name}: unknown pipeline class {class_name!r} in model_index.json; "
            f"load() only loads {' or '.join(pipelines)} (it never runs repo code)"
        )
    components = {k: v for k, v in index.items() if not k.startswith("_")}
    expected = {"unet", "scheduler"} | ({"vae"} if class_name == "LatentDDPMPipeline" else set())
    if set(components) != expected:
        raise HubLoadError(f"{name}: model_index.json components {sorted(components)}, expected {sorted(expected)}")
    if list(components["unet"]) != ["diffusers", "UNet2DModel"]:
        raise HubLoadError(f"{name}: unet component {components['unet']!r} is not diffusers' UNet2DModel")
    if "vae" in components and list(components["vae"]) != ["diffusers", "AutoencoderKL"]:
        raise HubLoadError(f"{name}: vae component {components['vae']!r} is not diffusers' AutoencoderKL")
    library, scheduler = components["scheduler"]
    if library != "diffusers" or scheduler not in DDPM_SCHEDULERS:
        raise HubLoadError(
            f"{name}: scheduler {components['scheduler']!r} is not one of diffusers' {', '.join(DDPM_SCHEDULERS)}"
        )


def load_pipeline(source: RepoFiles, repo_id_or_path: str | os.PathLike, pipelines: Mapping[str, Any],
                  **kwargs: Any) -> Any:
    """A pipeline folder: model_index.json checked, each component's config and weights checked, then the
    installed pipeline class (one of `pipelines`) built from it."""
    index = source.json("model_index.json")
    check_pipeline_index(source.name, index, pipelines)
    unet_cfg = source.json("unet/config.json")
    if unet_cfg.get("_class_name") != "UNet2DModel":
        raise HubLoadError(
            f"{source.name}: unet/config.json has class {unet_cfg.get('_class_name')!r}, expected UNet2DModel"
        )
    source.weights("unet")
    if "vae" in index:  # a latent pipeline: check_pipeline_index made sure it is diffusers' AutoencoderKL
        source.weights("vae")
        if (source.try_json("vae/config.json") or {}).get("_class_name") != "AutoencoderKL":
            raise HubLoadError(f"{source.name}: vae/config.json is missing or does not name AutoencoderKL")
    return _build_pipeline(pipelines[class_name_of(index)], index, str(repo_id_or_path), kwargs)


def _build_pipeline(pipeline_cls: Any, index: dict, where: str, kwargs: dict[str, Any]) -> Any:
    """The installed pipeline class built from its components, each loaded with its own diffusers class: the
    pipeline's `from_pretrained` would follow a `["<module>", "<Class>"]` name to the shipped code."""
    components = {}
    for name, (_, class_name) in ((k, v) for k, v in index.items() if not k.startswith("_")):
        cls = getattr(diffusers, class_name)  # checked above: UNet2DModel, AutoencoderKL or a known scheduler
        extra = {} if name == "scheduler" else {"use_safetensors": True}
        components[name] = cls.from_pretrained(where, subfolder=name, **extra, **kwargs)
    return pipeline_cls(**components)


def load_model(source: RepoFiles, repo_id_or_path: str | os.PathLike, classes: Mapping[str, Any],
               **kwargs: Any) -> Any:
    """A single model (config.json + safetensors) whose config names one of `classes`, built with the installed
    class (`hub_models.models.registry.model_class`, never a class the repo names)."""
    class_name = source.json("config.json").get("_class_name")
    if class_name not in classes:
        raise HubLoadError(f"{source.name}: config.json names {class_name!r}, expected one of {', '.join(classes)}")
    source.weights()
    return model_class(class_name).from_pretrained(str(repo_id_or_path), use_safetensors=True, **kwargs)


__all__ = ["DDPM_SCHEDULERS", "check_pipeline_index", "load_model", "load_pipeline"]
