"""The one table of model kinds: for each kind, the classes it is built from, how `load` builds it, its card
(builder, template, the first "How to use" snippet), its repo name, what a push publishes, and the Space's handler.

`cards`, `push` and `load` look a folder's kind up here (`kind_of_folder`) and never switch on the kind string;
adding a kind is adding one `Kind` to `KINDS` (docs/ARCHITECTURE.md, "Adding a kind"). The Space's handler is a
dotted path ("module:function") so that this layer does not import the Space's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffusers import DDPMPipeline
from huggingface_hub import ModelCardData

from hub_models.diffusion.distillation import student_steps
from hub_models.diffusion.latent import LatentDDPMPipeline
from hub_models.diffusion.pipeline import ClassConditionalDDPMPipeline
from hub_models.hub import naming
from hub_models.hub.card_parts import autoencoder, classifier, ddpm, latent_prior, vae
from hub_models.hub.card_parts.common import TEMPLATES_DIR
from hub_models.hub.loaders import load_model, load_pipeline
from hub_models.hub.push_steps import (
    COMMON_REWRITES,
    current_evaluation,
    name_published_vae,
    ship_published_scheduler,
)
from hub_models.hub.remote_code import class_name_of, remote_code_step
from hub_models.hub.repo_files import HubLoadError, RepoFiles
from hub_models.io import read_json_or_empty
from hub_models.models.registry import MODEL_CLASSES

CardBuilder = Callable[[Path, str], tuple[ModelCardData, dict[str, Any]]]
Rewrite = Callable[[Path, Path, str], None]
Step = Callable[[Path, Path, str], list[str]]

MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
PIPELINE_FILES = ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                  "scheduler/scheduler_config.json")
AUTOENCODER_FILES = ("vae/config.json", "vae/diffusion_pytorch_model.safetensors")
RECORDS = ("metrics.json", "evaluation.json", "training_config.json", "figures/*.png")


@dataclass(frozen=True)
class Kind:
    """One kind of model folder and everything the hub layer does with it.

    Attributes:
        name: the kind, as `kind_of_folder` returns it and run folders / commit messages name it.
        index_file: "config.json" (a single model) or "model_index.json" (a pipeline): where `_class_name` is read.
        classes: the `_class_name`s this kind accepts → the installed class `load` builds (never the repo's code).
        loader: `loader(files, repo_id_or_path, classes, **kwargs)`, the safe load (`hub_models.hub.loaders`).
        card: `card(run_dir, repo_id) -> (ModelCardData, template context)` (`hub_models.hub.card_parts`).
        template: the card's Jinja template: a file name in `model_cards/`, or the template text itself.
        snippet: the first "How to use" code block (Jinja, rendered with the card's context): diffusers only.
        repo_name: `repo_name(run_dir) -> "mnist-genlab-…"` (`hub_models.hub.naming`).
        published, required: what a push publishes / refuses to go without (fnmatch patterns, relative paths).
        rewrites: published files rewritten on their way to the repo, `rewrite(src, dest, repo_id)`.
        steps: extra push steps, `step(run_dir, staging, repo_id) -> [added paths]`; every kind ends with
            `remote_code_step` (the code `trust_remote_code` loads, `hub_models.hub.remote_code`).
        space_handler: "module:function" the Space loads this kind with, or None (the Space does not show it).
        claims: `claims(run_dir)`: among kinds accepting the same class, whether this folder is this kind.
    """

    name: str
    index_file: str
    classes: Mapping[str, Any]
    loader: Callable[..., Any]
    card: CardBuilder
    template: str
    snippet: str
    repo_name: Callable[[Path], str]
    published: tuple[str, ...]
    required: tuple[str, ...]
    rewrites: Mapping[str, Rewrite] = field(default_factory=dict)
    steps: tuple[Step, ...] = (remote_code_step,)
    space_handler: str | None = None
    claims: Callable[[Path], bool] | None = None

    def template_kwargs(self) -> dict[str, str]:
        """`ModelCard.from_template`'s template argument: a file of `model_cards/` or the text itself."""
        if self.template.endswith(".md") and "\n" not in self.template:
            return {"template_path": str(TEMPLATES_DIR / self.template)}
        return {"template_str": self.template}


def _classes(*names: str) -> dict[str, Any]:
    return {name: MODEL_CLASSES[name] for name in names}


def _is_student(run_dir: Path) -> bool:
    return student_steps(run_dir) is not None


_DDPM_PIPELINES = {"DDPMPipeline": DDPMPipeline, "ClassConditionalDDPMPipeline": ClassConditionalDDPMPipeline}
_VAE_PUSH = {**COMMON_REWRITES, "evaluation.json": current_evaluation("vae")}
_DDPM_PUSH = {**COMMON_REWRITES, "evaluation.json": current_evaluation("ddpm")}

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("vae", "config.json", _classes("ConvVAE", "DenseVAE"), load_model, vae.vae_context, "vae.md",
         vae.SNIPPET, naming.vae_repo_name, (*MODEL_FILES, *RECORDS), MODEL_FILES, _VAE_PUSH,
         space_handler="hub_models.space.sources:load_vae"),
    Kind("classifier", "config.json", _classes("DigitClassifier"), load_model, classifier.classifier_context,
         classifier.TEMPLATE, classifier.SNIPPET, naming.classifier_repo_name, (*MODEL_FILES, *RECORDS),
         MODEL_FILES, COMMON_REWRITES, space_handler="hub_models.space.sources:load_classifier"),
    Kind("latent-prior", "config.json", _classes("LatentPrior"), load_model, latent_prior.latent_prior_context,
         "latent_prior.md", latent_prior.SNIPPET, naming.latent_prior_repo_name,
         (*MODEL_FILES, *RECORDS, "scheduler/scheduler_config.json"),
         (*MODEL_FILES, "scheduler/scheduler_config.json", "metrics.json"),
         {**_VAE_PUSH, "config.json": name_published_vae}),
    Kind("autoencoder", "config.json", _classes("AutoencoderKL"), load_model, autoencoder.autoencoder_context,
         autoencoder.TEMPLATE, autoencoder.SNIPPET, naming.fixed_repo_name("ldm-autoencoder"),
         (*MODEL_FILES, *RECORDS), MODEL_FILES, COMMON_REWRITES),
    # a distilled student is a DDPM pipeline that ships the scheduler it was distilled for: listed before "ddpm"
    Kind("student", "model_index.json", _DDPM_PIPELINES, load_pipeline, ddpm.student_context, "ddpm.md",
         ddpm.SNIPPET, naming.student_repo_name, (*PIPELINE_FILES, *RECORDS), PIPELINE_FILES, _DDPM_PUSH,
         claims=_is_student),
    Kind("ddpm", "model_index.json", _DDPM_PIPELINES, load_pipeline, ddpm.ddpm_context, "ddpm.md", ddpm.SNIPPET,
         naming.ddpm_repo_name, (*PIPELINE_FILES, *RECORDS), PIPELINE_FILES, _DDPM_PUSH,
         (ship_published_scheduler, remote_code_step), space_handler="hub_models.space.sources:load_ddpm"),
    Kind("ldm", "model_index.json", {"LatentDDPMPipeline": LatentDDPMPipeline}, load_pipeline, ddpm.ldm_context,
         "ldm.md", ddpm.LDM_SNIPPET, naming.fixed_repo_name("ldm"),
         (*PIPELINE_FILES, *RECORDS, *AUTOENCODER_FILES), (*PIPELINE_FILES, *AUTOENCODER_FILES), _DDPM_PUSH),
)}
INDEX_FILES = ("model_index.json", "config.json")  # a pipeline folder also holds config.json-less parts


def accepted_classes(index_file: str) -> list[str]:
    """Every `_class_name` some kind accepts in `index_file` (for error messages)."""
    return [name for kind in KINDS.values() if kind.index_file == index_file for name in kind.classes]


def kind_for(index_file: str, class_name: Any, run_dir: Path | None = None) -> Kind | None:
    """The kind of a folder whose `index_file` names `class_name` (the first in `KINDS` that claims `run_dir`)."""
    for kind in KINDS.values():
        if kind.index_file == index_file and class_name in kind.classes:
            # a Hub repo (no run_dir) is not told apart by `claims`: it is the kind that claims no more
            if kind.claims is None or (run_dir is not None and kind.claims(run_dir)):
                return kind
    return None


def kind_of_folder(run_dir: str | os.PathLike) -> Kind:
    """The kind of a run or release folder, from the class its model_index.json or config.json names."""
    run_dir = Path(run_dir)
    for index_file in INDEX_FILES:
        if (run_dir / index_file).is_file():
            class_name = class_name_of(read_json_or_empty(run_dir / index_file))
            kind = kind_for(index_file, class_name, run_dir)
            if kind is None:
                raise ValueError(f"{run_dir}/{index_file} names {class_name!r}, which no kind of "
                                 f"hub_models.hub.kinds accepts ({', '.join(accepted_classes(index_file))})")
            return kind
    raise ValueError(f"{run_dir} is neither a model run (config.json) nor a pipeline run (model_index.json)")


def kind_of_source(files: RepoFiles) -> tuple[Kind, dict]:
    """The kind of a repo or folder read through `RepoFiles` (plain JSON, nothing run) and its index JSON."""
    for index_file in INDEX_FILES:
        index = files.try_json(index_file)
        if index is None:
            continue
        kind = kind_for(index_file, class_name_of(index), files.local)
        if kind is None:
            what = "pipeline" if index_file == "model_index.json" else "model"
            raise HubLoadError(
                f"{files.name}: unknown {what} class {class_name_of(index)!r} in {index_file}; load() only "
                f"loads {', '.join(accepted_classes(index_file))} (it never runs repo code)")
        return kind, index
    raise HubLoadError(f"{files.name} has neither model_index.json nor config.json")


__all__ = ["KINDS", "Kind", "accepted_classes", "kind_for", "kind_of_folder", "kind_of_source"]
