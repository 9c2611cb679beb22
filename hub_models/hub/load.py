"""Loading from the Hub or a folder without running repo code: `load` (repo id or folder → model, safetensors
only, known classes only) and `RepoFiles` (the files of a repo or folder, fetched on demand), which the Space and the
cards read metadata through.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from diffusers import DDPMPipeline
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from hub_models.diffusion.latent import LatentDDPMPipeline
from hub_models.diffusion.pipeline import ClassConditionalDDPMPipeline
from hub_models.models.registry import VAE_CLASS_NAMES, model_class

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
DDPM_SCHEDULERS = (
    "DDPMScheduler",
    "DDIMScheduler",
    "DPMSolverMultistepScheduler",
    "EulerDiscreteScheduler",
    "PNDMScheduler",
)
# The pipeline classes `load` builds, by the exact `_class_name` of model_index.json (our class is imported from
# this library, never from the repo).
PIPELINE_CLASSES = {"DDPMPipeline": DDPMPipeline, "ClassConditionalDDPMPipeline": ClassConditionalDDPMPipeline,
                    "LatentDDPMPipeline": LatentDDPMPipeline}


class HubLoadError(ValueError):
    """A repo or folder that `load` refuses: unknown class, pickled or corrupt weights, missing files."""


def check_safetensors(path: str | os.PathLike) -> None:
    """HubLoadError unless `path` is a complete safetensors file (header parses, data covers every tensor)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len <= 0 or 8 + header_len > size:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(header_len))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, struct.error) as err:
        raise HubLoadError(f"{path.name} is not a valid safetensors file ({err})") from None
    if 8 + header_len + max(ends, default=0) != size:
        raise HubLoadError(
            f"{path.name} is truncated or corrupt: {size} bytes, the header describes "
            f"{8 + header_len + max(ends, default=0)}"
        )


class RepoFiles:
    """Files of a local folder or a Hub repo (downloaded on demand, safetensors only)."""

    def __init__(self, repo_id_or_path: str | os.PathLike, hub_kwargs: dict):
        self.name = str(repo_id_or_path)
        self.local = Path(repo_id_or_path) if Path(repo_id_or_path).is_dir() else None
        self.hub_kwargs = {
            k: v
            for k, v in hub_kwargs.items()
            if k in ("revision", "cache_dir", "token", "local_files_only", "force_download")
        }
        if self.local is not None:
            self.files = {p.relative_to(self.local).as_posix() for p in self.local.rglob("*") if p.is_file()}
        elif self.hub_kwargs.get("local_files_only"):
            self.files = None  # unknown: rely on the cache
        else:
            self.files = set(
                HfApi(token=self.hub_kwargs.get("token")).list_repo_files(
                    self.name, revision=self.hub_kwargs.get("revision")
                )
            )

    def has(self, rel: str) -> bool:
        return self.files is None or rel in self.files

    def path(self, rel: str) -> Path:
        if self.local is not None:
            return self.local / rel
        try:
            return Path(hf_hub_download(self.name, rel, **self.hub_kwargs))
        except EntryNotFoundError:
            raise HubLoadError(f"{self.name} has no {rel}") from None

    def try_json(self, rel: str) -> dict | None:
        """The JSON file `rel`, or None when the source does not have it."""
        if self.files is not None and rel not in self.files:
            return None
        try:
            return self.json(rel)
        except (HubLoadError, LocalEntryNotFoundError):
            return None

    def json(self, rel: str) -> dict:
        try:
            return json.loads(self.path(rel).read_text())
        except json.JSONDecodeError as err:
            raise HubLoadError(f"{self.name}/{rel} is not valid JSON ({err})") from None

    def weights(self, folder: str = "") -> Path:
        prefix = f"{folder}/" if folder else ""
        name = f"{prefix}diffusion_pytorch_model.safetensors"
        if not self.has(name):
            pickled = sorted(f for f in self.files or () if f.startswith(prefix) and f.endswith(PICKLE_SUFFIXES))
            if pickled:
                raise HubLoadError(
                    f"{self.name} only has pickled weights ({', '.join(pickled)}); refusing to "
                    "load them (pickles can run code). Re-save the model with safetensors."
                )
            raise HubLoadError(f"{self.name} has no {name}")
        path = self.path(name)
        check_safetensors(path)
        return path


def load(repo_id_or_path: str | os.PathLike, **kwargs: Any):
    """A ConvVAE/DenseVAE, a LatentPrior, a DDPMPipeline, a ClassConditionalDDPMPipeline or a LatentDDPMPipeline
    from a Hub repo id or a local run folder.

    Reads `model_index.json` or `config.json` (plain JSON), accepts only the known classes, checks that the
    weights are complete safetensors, then calls `from_pretrained(..., use_safetensors=True)`. Never unpickles
    and never imports code from the repo.

    Args:
        repo_id_or_path: `user/repo` or a folder.
        kwargs: `revision`, `cache_dir`, `token`, `local_files_only`, ... passed to `from_pretrained`.

    Raises:
        HubLoadError: unknown class, pickled-only or truncated weights, or missing files.
    """
    kwargs.pop("use_safetensors", None)
    source = RepoFiles(repo_id_or_path, kwargs)
    index = source.try_json("model_index.json")
    if index is not None:
        _check_ddpm_index(source.name, index)
        unet_cfg = source.json("unet/config.json")
        if unet_cfg.get("_class_name") != "UNet2DModel":
            raise HubLoadError(
                f"{source.name}: unet/config.json has class {unet_cfg.get('_class_name')!r}, expected UNet2DModel"
            )
        source.weights("unet")
        if "vae" in index:  # a latent pipeline: _check_ddpm_index made sure it is diffusers' AutoencoderKL
            source.weights("vae")
            if (source.try_json("vae/config.json") or {}).get("_class_name") != "AutoencoderKL":
                raise HubLoadError(f"{source.name}: vae/config.json is missing or does not name AutoencoderKL")
        pipeline_cls = PIPELINE_CLASSES[index["_class_name"]]
        return pipeline_cls.from_pretrained(str(repo_id_or_path), use_safetensors=True, **kwargs)
    config = source.try_json("config.json")
    if config is None:
        raise HubLoadError(f"{source.name} has neither model_index.json nor config.json")
    class_name = config.get("_class_name")
    if class_name not in (*VAE_CLASS_NAMES, "LatentPrior"):
        raise HubLoadError(
            f"{source.name}: unknown model class {class_name!r} in config.json; load() only "
            f"loads {', '.join(VAE_CLASS_NAMES)}, LatentPrior or a DDPMPipeline (it never runs repo code)"
        )
    source.weights()
    return model_class(class_name).from_pretrained(str(repo_id_or_path), use_safetensors=True, **kwargs)


def _check_ddpm_index(name: str, index: dict) -> None:
    class_name = index.get("_class_name")
    if not isinstance(class_name, str) or class_name not in PIPELINE_CLASSES:
        raise HubLoadError(
            f"{name}: unknown pipeline class {class_name!r} in model_index.json; "
            f"load() only loads {' or '.join(PIPELINE_CLASSES)} (it never runs repo code)"
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



__all__ = [
    "DDPM_SCHEDULERS", "PICKLE_SUFFIXES", "PIPELINE_CLASSES", "HubLoadError", "RepoFiles", "check_safetensors", "load",
]
