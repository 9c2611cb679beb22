"""The code a pushed repo ships so that `pip install diffusers` alone loads it, in the Hub's own conventions.

- A model of the library (`config.json` names ConvVAE, DenseVAE, DigitClassifier or LatentPrior): `<module>.py`
  at the repo root and `"auto_map": {"AutoModel": "<module>.<Class>"}` in config.json, for
  `diffusers.AutoModel.from_pretrained(repo, trust_remote_code=True)`.
- A pipeline of the library (ClassConditionalDDPMPipeline, LatentDDPMPipeline): `<module>.py` at the root and
  `"_class_name": ["<module>", "<Class>"]` in model_index.json, for
  `DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)`; its components are diffusers' own classes.
- diffusers' own classes (DDPMPipeline, AutoencoderKL) ship nothing: they load without `trust_remote_code`
  (`AutoModel` refuses `trust_remote_code=True` on a repo without code).

Each module is generated from the installed library's source (`hub_models.hub.remote.bundle`), never kept by hand.
`hub_models.hub.load` ignores all of it: it reads the class name (the second item of a list `_class_name`) and
builds the installed class. Beside the code, `add_sampler_configs` stores the scheduler settings the library samples
with where a card hands a user a diffusers scheduler (`SOLVER_FOLDER`, `SAMPLER_FOLDER`).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from diffusers import DDPMScheduler

from hub_models.diffusion.latent import LatentDDPMPipeline
from hub_models.diffusion.latent_prior import SCHEDULER_SUBFOLDER, latent_sampler
from hub_models.diffusion.pipeline import ClassConditionalDDPMPipeline
from hub_models.diffusion.sampling import make_scheduler
from hub_models.hub.remote.bundle import bundle
from hub_models.models.registry import MODEL_CLASSES

#: the library's classes a repo ships code for, by `_class_name` (diffusers' own classes are not here)
MODEL_CODE: dict[str, type] = {name: cls for name, cls in MODEL_CLASSES.items() if not isinstance(cls, str)}
PIPELINE_CODE: dict[str, type] = {cls.__name__: cls for cls in (ClassConditionalDDPMPipeline, LatentDDPMPipeline)}
#: a DDPMPipeline's DPM-Solver++ as the library builds it (x0 thresholding on): what the card's "other samplers" loads
SOLVER_FOLDER = "dpmsolver"
#: a latent prior's sampler as the library runs it (the card's sampler, trailing spacing), for the diffusers loop
SAMPLER_FOLDER = "sampler"

_LOAD_LINES = {
    "model": "from diffusers import AutoModel\n\n    model = AutoModel.from_pretrained(REPO, trust_remote_code=True)",
    "pipeline": "from diffusers import DiffusionPipeline\n\n"
                "    pipe = DiffusionPipeline.from_pretrained(REPO, trust_remote_code=True)",
}


def module_name(class_name: str) -> str:
    """The shipped module of a class: `ConvVAE` → `conv_vae`, `LatentDDPMPipeline` → `latent_ddpm_pipeline`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()


def class_name_of(index: dict[str, Any]) -> Any:
    """The class a config.json / model_index.json names: its `_class_name`, or the class of a
    `["<module>", "<Class>"]` list (a pipeline that ships its code)."""
    name = index.get("_class_name")
    return name[1] if isinstance(name, list) and len(name) == 2 else name


def _version() -> str:
    try:
        return importlib.metadata.version("mnist-genlab")
    except importlib.metadata.PackageNotFoundError:
        return "(source checkout)"


def module_source(cls: type, what: str) -> str:
    """The self-contained module shipped for `cls` (`what`: "model" or "pipeline", for its load line)."""
    docstring = (
        f"{cls.__name__} of mnist-genlab {_version()}, generated from the library's source\n"
        f"({cls.__module__} and what it uses) when this repository was pushed: re-push rather than edit.\n"
        "It imports only torch, diffusers and the standard library. Loaded with diffusers alone\n"
        "(REPO: this repository's id or folder):\n\n"
        f"    {_LOAD_LINES[what]}\n\n"
        "With mnist-genlab installed, `hub_models.hub.load(REPO)` builds the installed class and never runs this file."
    )
    return bundle([(cls.__module__, cls.__name__)], docstring)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")  # diffusers' own layout


def add_remote_code(folder: str | os.PathLike) -> list[str]:
    """Ship the code of the class `folder`'s config.json or model_index.json names (see the module's docstring):
    write `<module>.py` and point the JSON at it. Idempotent; nothing for diffusers' own classes.

    Returns:
        the paths written, relative to `folder`.
    """
    folder = Path(folder)
    for index_file, classes, what in (("model_index.json", PIPELINE_CODE, "pipeline"),
                                      ("config.json", MODEL_CODE, "model")):
        path = folder / index_file
        if not path.is_file():
            continue
        index = json.loads(path.read_text())
        cls = classes.get(class_name_of(index))
        if cls is None:
            return []
        module = module_name(cls.__name__)
        (folder / f"{module}.py").write_text(module_source(cls, what))
        if what == "pipeline":
            index["_class_name"] = [module, cls.__name__]
        else:
            index["auto_map"] = {"AutoModel": f"{module}.{cls.__name__}"}
        _write_json(path, index)
        return [f"{module}.py", index_file]
    return []


def add_sampler_configs(folder: str | os.PathLike) -> list[str]:
    """Store the scheduler a card's hint loads, as the library builds it from `folder`'s training scheduler:
    `dpmsolver/` for a DDPMPipeline trained with DDPMScheduler, `sampler/` (the sampler of metrics.json, else
    ancestral DDPM) for a LatentPrior. Returns the paths written, relative to `folder`."""
    folder = Path(folder)
    scheduler_file = folder / SCHEDULER_SUBFOLDER / "scheduler_config.json"
    if not scheduler_file.is_file():
        return []
    config = DDPMScheduler.load_config(str(folder / SCHEDULER_SUBFOLDER))
    index = folder / "model_index.json"
    if index.is_file():
        if class_name_of(json.loads(index.read_text())) != "DDPMPipeline" or config["_class_name"] != "DDPMScheduler":
            return []
        subfolder, scheduler = SOLVER_FOLDER, make_scheduler("dpmsolver++", config)
    elif class_name_of(json.loads((folder / "config.json").read_text())) == "LatentPrior":
        metrics_file = folder / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        name = (metrics.get("sampler") or {}).get("name", "ddpm")
        subfolder, scheduler = SAMPLER_FOLDER, latent_sampler(name, config)
    else:
        return []
    scheduler.save_pretrained(str(folder / subfolder))
    return [f"{subfolder}/scheduler_config.json"]


def remote_code_step(run_dir: Path, staging: Path, repo_id: str) -> list[str]:
    """The push step (`hub_models.hub.kinds.Kind.steps`, run last): the shipped code and the sampler configs,
    added to the staging folder. Returns the added paths."""
    return [*add_remote_code(staging), *add_sampler_configs(staging)]


def main(folders: list[str]) -> None:
    """`python -m hub_models.hub.remote_code FOLDER...`: apply the push step in place (the release folders)."""
    for folder in folders:
        print(folder, *remote_code_step(Path(folder), Path(folder), "") or ["(nothing to ship)"])


if __name__ == "__main__":
    main(sys.argv[1:])


__all__ = [
    "MODEL_CODE",
    "PIPELINE_CODE",
    "SAMPLER_FOLDER",
    "SOLVER_FOLDER",
    "add_remote_code",
    "add_sampler_configs",
    "class_name_of",
    "module_name",
    "module_source",
    "remote_code_step",
]
