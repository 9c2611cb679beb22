"""A training checkpoint that can live in git: accelerate's `save_state` folder without its pickles.

`accelerator.save_state` writes the optimizer, lr schedule, RNG states and registered objects with `torch.save`
(pickles). To carry an unfinished run across machines (a fresh machine loses `runs/`), `export_checkpoint` turns such
a folder into safetensors (every tensor and array) + JSON (everything else, tuples kept as tuples), bit for bit;
`import_checkpoint` writes the accelerate folder back; `--resume_from_checkpoint <portable folder>` does that under
`<output_dir>/checkpoints/` and continues exactly where the exported run stopped. Nothing is ever unpickled from
the portable folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from hub_models.io import write_json_atomic

FORMAT = "mnist-genlab-portable-checkpoint"
FORMAT_VERSION = 1
INDEX_FILE = "portable_checkpoint.json"
PICKLED_SUFFIXES = (".bin", ".pkl")


class PortableCheckpointError(ValueError):
    """A folder that is not a complete portable checkpoint, or a checkpoint holding something it cannot carry."""


def _encode(value: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """JSON tree of `value`; tensors and numpy arrays go to `tensors` under their path in the tree."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(value, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(value))
        return {"__ndarray__": path}
    if isinstance(value, np.generic):
        return {"__npscalar__": value.dtype.str, "value": value.item()}
    if isinstance(value, dict):
        if not all(isinstance(k, str | int) for k in value):
            raise PortableCheckpointError(f"{path}: dict keys must be str or int")
        return {"__dict__": [[k, _encode(v, tensors, f"{path}.{k}")] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        items = [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise PortableCheckpointError(f"{path}: cannot carry a {type(value).__name__} without pickling it")


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__ndarray__" in node:
        return tensors[node["__ndarray__"]].numpy()
    if "__npscalar__" in node:
        return np.dtype(node["__npscalar__"]).type(node["value"])
    if "__tuple__" in node:
        return tuple(_decode(v, tensors) for v in node["__tuple__"])
    return {k: _decode(v, tensors) for k, v in node["__dict__"]}


def export_checkpoint(checkpoint_dir: str | os.PathLike, dest: str | os.PathLike, step: int) -> Path:
    """Write accelerate checkpoint `checkpoint_dir` (of update `step`) as a portable folder `dest`, replacing it.

    Safetensors files are copied; each pickled file becomes `<name>.json` + `<name>.safetensors`. The pickles read
    here are the run's own, written by this machine's `accelerator.save_state`."""
    source, dest = Path(checkpoint_dir), Path(dest)
    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files: dict[str, str] = {}
    for item in sorted(source.iterdir()):
        if item.suffix == ".safetensors":
            shutil.copyfile(item, tmp / item.name)
            files[item.name] = "copy"
        elif item.suffix in PICKLED_SUFFIXES:
            tensors: dict[str, torch.Tensor] = {}
            tree = _encode(torch.load(item, map_location="cpu", weights_only=False), tensors, "root")
            stem = item.name.replace(".", "_")
            (tmp / f"{stem}.json").write_text(json.dumps(tree) + "\n")
            save_file(tensors, str(tmp / f"{stem}.safetensors"))
            files[item.name] = stem
        else:
            raise PortableCheckpointError(f"{item}: unexpected file in an accelerate checkpoint")
    write_json_atomic(tmp / INDEX_FILE, {"format": FORMAT, "version": FORMAT_VERSION, "step": step, "files": files})
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def is_portable_checkpoint(path: str | os.PathLike) -> bool:
    index = Path(path) / INDEX_FILE
    return index.is_file() and json.loads(index.read_text()).get("format") == FORMAT


def portable_step(portable_dir: str | os.PathLike) -> int:
    """The update the portable checkpoint was taken at."""
    src = Path(portable_dir)
    if not is_portable_checkpoint(src):
        raise PortableCheckpointError(f"{src} is not a portable checkpoint (no {INDEX_FILE} of format {FORMAT!r})")
    return int(json.loads((src / INDEX_FILE).read_text())["step"])


def import_checkpoint(portable_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Recreate the accelerate checkpoint of `portable_dir` as the folder `dest` (replaced if it exists)."""
    src, final = Path(portable_dir), Path(dest)
    portable_step(src)  # refuses anything that is not a portable checkpoint
    index = json.loads((src / INDEX_FILE).read_text())
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, how in index["files"].items():
        if how == "copy":
            shutil.copyfile(src / name, tmp / name)
            continue
        try:
            tree = json.loads((src / f"{how}.json").read_text())
            tensors = load_file(str(src / f"{how}.safetensors"))
        except (OSError, ValueError) as err:
            raise PortableCheckpointError(f"{src}: {name} cannot be restored ({err})") from None
        torch.save(_decode(tree, tensors), tmp / name)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


__all__ = [
    "FORMAT",
    "PortableCheckpointError",
    "export_checkpoint",
    "import_checkpoint",
    "is_portable_checkpoint",
    "portable_step",
]
