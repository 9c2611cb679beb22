"""Model cards (README.md) for published runs, rendered from Jinja templates with `huggingface_hub.ModelCard` /
`ModelCardData`, so the YAML metadata (tags, license, `model-index`) is built by the library and validated by the
Hub rather than string-formatted by hand.

Which facts a card shows is each kind's builder in `hub_models.hub.card_parts`; which builder, template and first
snippet a folder gets is `hub_models.hub.kinds`. Every number comes from the run folder (metrics.json,
training_config.json, config.json, the safetensors headers); the study's claims sit next to them (`STUDY`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import ModelCard, ModelCardData

from hub_models.hub.card_parts.classifier import classifier_card_context
from hub_models.hub.card_parts.common import LIBRARY_NAME, install_context, safetensors_parameters, split_label
from hub_models.hub.card_parts.ddpm import published_sampler, published_scheduler
from hub_models.hub.kinds import KINDS, Kind, kind_of_folder
from hub_models.hub.naming import published_vae_id
from hub_models.reference import STUDY


def run_kind(run_dir: str | os.PathLike) -> str:
    """The kind of a run folder (`hub_models.hub.kinds.KINDS`: 'vae', 'ddpm', 'ldm', …), from the class it names."""
    return kind_of_folder(run_dir).name


def _render(kind: Kind, card_data: ModelCardData, context: dict[str, Any], source_url: str | None) -> ModelCard:
    """The card of `kind` from its builder's output: the kind's snippet first, the install line only for a real
    source (`common.install_line`)."""
    context = {**install_context(source_url), **context}
    context["usage_snippet"] = jinja2.Template(kind.snippet).render(**context)
    return ModelCard.from_template(card_data, **kind.template_kwargs(), **context)


def card_context(run_dir: str | os.PathLike, repo_id: str) -> tuple[Kind, ModelCardData, dict[str, Any]]:
    """The kind of `run_dir`, and its card's metadata and template context when published as `repo_id`."""
    kind = kind_of_folder(run_dir)
    card_data, context = kind.card(Path(run_dir), repo_id)
    return kind, card_data, context


def usage_snippet(run_dir: str | os.PathLike, repo_id: str) -> str:
    """The first "How to use" code block of `run_dir`'s card as `repo_id` (diffusers only; the card shows exactly
    this, and the remote-code tests run it)."""
    kind, _, context = card_context(run_dir, repo_id)
    return jinja2.Template(kind.snippet).render(**install_context(), **context)


def render_model_card(run_dir: str | os.PathLike, repo_id: str, source_url: str | None = None) -> ModelCard:
    """The README.md of `run_dir` published as `repo_id`. `source_url`: where the project's source is published
    (the card's install line); without it, the installed package's Homepage, else no install line."""
    kind, card_data, context = card_context(run_dir, repo_id)
    return _render(kind, card_data, context, source_url)


def classifier_model_card(metrics: dict[str, Any], repo_id: str = "mnist-genlab-digit-classifier",
                          source_url: str | None = None) -> ModelCard:
    """The card of a trained classifier from its metrics (`training/train_classifier.py` writes it before the run
    folder is complete)."""
    card_data, context = classifier_card_context(metrics, repo_id)
    return _render(KINDS["classifier"], card_data, context, source_url)


__all__ = [
    "LIBRARY_NAME",
    "STUDY",
    "card_context",
    "classifier_model_card",
    "published_sampler",
    "published_scheduler",
    "published_vae_id",
    "render_model_card",
    "run_kind",
    "safetensors_parameters",
    "split_label",
    "usage_snippet",
]
