"""The files of a Hub repo or a local folder, read without running anything from them: `RepoFiles` (JSON and
safetensors fetched on demand, pickles refused) and `check_safetensors`. `load`, the cards and the Space read
through it."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


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


__all__ = ["PICKLE_SUFFIXES", "HubLoadError", "RepoFiles", "check_safetensors"]
