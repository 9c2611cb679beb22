"""The kinds table (`hub_models.hub.kinds`) and what the cards of the released folders say with it: one kind per
folder, the first snippet diffusers-only and exactly the kind's snippet, truthful tags, splits and install lines,
and scheduler hints that build the library's samplers. Read from `release/` (no training, no network)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from hub_models.diffusion.sampling import make_scheduler
from hub_models.evaluation.card_check import card_snippet
from hub_models.hub import cards
from hub_models.hub.card_parts.common import PLACEHOLDER_SOURCES
from hub_models.hub.card_parts.ddpm import sampler_hints
from hub_models.hub.cards import render_model_card, usage_snippet
from hub_models.hub.kinds import KINDS, kind_of_folder
from hub_models.hub.naming import published_repo_ids
from hub_models.io import read_json, read_json_or_empty
from hub_models.models.registry import KINDS as CLASS_KINDS

RELEASE = Path(__file__).resolve().parents[1] / "release"
FOLDERS = sorted(p.name for p in RELEASE.iterdir() if p.is_dir() and not p.name.startswith("."))
REPO_IDS = published_repo_ids("mnist-tester")


def _card(name: str, **kwargs) -> tuple[str, dict]:
    text = str(render_model_card(RELEASE / name, REPO_IDS[name], **kwargs))
    return text, yaml.safe_load(text.split("---\n")[1])


def test_every_kind_is_complete_and_every_class_has_one() -> None:
    for kind in KINDS.values():
        assert kind.classes and kind.published and set(kind.required) <= set(kind.published) | set(kind.required)
        assert "from_pretrained(" in kind.snippet
        if kind.space_handler:  # a dotted path the Space layer resolves: this layer never imports it
            module, function = kind.space_handler.split(":")
            assert callable(getattr(importlib.import_module(module), function))
    assert set(CLASS_KINDS.values()) <= set(KINDS)  # models.registry's kinds are entries of the table


@pytest.mark.parametrize("name", FOLDERS)
def test_released_card_starts_with_its_kinds_diffusers_snippet(name: str) -> None:
    text, meta = _card(name)
    snippet = card_snippet(text)
    assert snippet.strip() == usage_snippet(RELEASE / name, REPO_IDS[name]).strip()
    assert "hub_models" not in snippet and "pip install" not in snippet  # diffusers only
    loader = "DiffusionPipeline" if kind_of_folder(RELEASE / name).index_file == "model_index.json" else "AutoModel"
    assert f'{loader}.from_pretrained("{REPO_IDS[name]}"' in snippet
    assert meta["library_name"] == "diffusers"


@pytest.mark.parametrize("name", FOLDERS)
def test_released_card_tags_and_splits_are_truthful(name: str) -> None:
    _, meta = _card(name)
    conditional = name.endswith("conditional")
    if conditional:  # the Hub has no class-conditional task: no pipeline tag, and no unconditional result
        assert "pipeline_tag" not in meta and "unconditional-image-generation" not in meta["tags"]
    for entry in meta.get("model-index", []):
        for result in entry["results"]:
            assert "[" not in result["dataset"]["split"], result["dataset"]["split"]  # no pseudo slice syntax
            if conditional:
                assert result["task"]["type"] != "unconditional-image-generation"


def test_conditional_ddpm_card_shows_no_sweep_it_does_not_have() -> None:
    text, _ = _card("ddpm-conditional")
    assert "sampler_sweep" not in text


@pytest.mark.parametrize("name", ["vae-conv-z2-beta1", "ddpm", "digit-classifier", "ldm"])
def test_install_line_only_for_a_real_source(name: str) -> None:
    text, _ = _card(name)
    assert "pip install" not in text  # this checkout's package metadata names no Homepage
    for placeholder in PLACEHOLDER_SOURCES:
        assert placeholder not in _card(name, source_url=f"https://{placeholder}")[0]
    text, _ = _card(name, source_url="https://example.org/me/mnist-genlab")
    assert 'pip install "mnist-genlab @ git+https://example.org/me/mnist-genlab"' in text


def test_ddpm_scheduler_hints_build_the_library_samplers() -> None:
    """`X.from_config(config, **settings)` from the shipped scheduler's config equals `make_scheduler`'s sampler."""
    run = RELEASE / "ddpm"
    config = read_json(run / "scheduler" / "scheduler_config.json")
    classes = {cls.__name__: cls for cls in (DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler)}
    for name, code in sampler_hints(run).items():
        built = eval(code, {"config": config, **classes})  # the card's own expression, as a user runs it
        expected = make_scheduler(name, config)
        assert type(built) is type(expected)
        assert {k: v for k, v in built.config.items() if not k.startswith("_")} == {
            k: v for k, v in expected.config.items() if not k.startswith("_")}, name
    text, _ = _card("ddpm")
    assert "thresholding=True" in text and "from_config(pipe.scheduler.config)`" not in text


def test_read_json_has_one_meaning(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")
    assert read_json_or_empty(tmp_path / "missing.json") == {}
    hub = Path(cards.__file__).parent
    assert not [p for p in hub.rglob("*.py") if re.search(r"^def read_json", p.read_text(), re.M)]
