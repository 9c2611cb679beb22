"""What a push does to a run's files besides copying them: the files rewritten on their way to the staging folder,
and the per-kind steps that add files to it (`hub_models.hub.kinds` names which kind gets which).

A rewrite is `rewrite(src, dest, repo_id)`: read the run's `src`, write the published `dest`. A step is
`step(run_dir, staging, repo_id) -> list[str]`: add files to `staging`, return their relative paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hub_models.evaluation.schema import EVALUATION_FILE, Evaluation
from hub_models.hub.card_parts.ddpm import published_scheduler
from hub_models.hub.naming import published_vae_id
from hub_models.io import read_json, read_json_or_empty

SECRET_KEYS = re.compile(r"token|secret|password|api_key", re.IGNORECASE)


def _write_json(dest: Path, payload: dict, sort_keys: bool = True) -> None:
    dest.write_text(json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n")


def strip_secrets(src: Path, dest: Path, repo_id: str) -> None:
    """training_config.json without CLI arguments that may hold a Hub token or another secret."""
    _write_json(dest, {k: v for k, v in read_json(src).items() if not SECRET_KEYS.search(k)})


def current_evaluation(kind: str):
    """A rewrite of evaluation.json into the current schema, read as an evaluation of `kind` ("vae" or "ddpm")."""
    def rewrite(src: Path, dest: Path, repo_id: str) -> None:
        _write_json(dest, Evaluation.read(src, kind=kind).to_dict(), sort_keys=False)

    return rewrite


def name_published_vae(src: Path, dest: Path, repo_id: str) -> None:
    """A latent prior's config.json naming its VAE as users will find it: by its repo id."""
    config = read_json(src)
    config["vae_name_or_path"] = published_vae_id(config.get("vae_name_or_path", ""), repo_id)
    _write_json(dest, config)


def ship_published_scheduler(run_dir: Path, staging: Path, repo_id: str) -> list[str]:
    """A DDPM's `scheduler/` set to the sampler its card's snippet and FID use (trailing spacing, the step count is
    in the card), and model_index.json naming that scheduler class."""
    scheduler = published_scheduler(run_dir)
    scheduler.save_pretrained(str(staging / "scheduler"))
    index = read_json_or_empty(run_dir / "model_index.json")
    index["scheduler"] = ["diffusers", type(scheduler).__name__]
    _write_json(staging / "model_index.json", index)
    return []  # both paths are published files already


COMMON_REWRITES = {"training_config.json": strip_secrets}

__all__ = ["COMMON_REWRITES", "EVALUATION_FILE", "SECRET_KEYS", "current_evaluation", "name_published_vae",
           "ship_published_scheduler", "strip_secrets"]
