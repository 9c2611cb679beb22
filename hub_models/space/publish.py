"""Putting the Space on the Hub: `build_space` lays out a folder that runs on its own (the app, the library it
imports, pinned requirements, the Space card, `models.json` naming the published model repos, the report it links
to), and `publish_space` uploads it as a `repo_type="space"` repo in one commit.

The folder is built from an allow-list (never a copy of `spaces_app/`), so caches, `__pycache__`, Gradio's
`.gradio/` folder, run outputs and tokens cannot slip in; the staged files are scanned for the token before any
upload. The build is deterministic, so publishing again with nothing changed creates no commit.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, SpaceCard, constants
from huggingface_hub.errors import HfHubHTTPError

from hub_models.hub.naming import release_repo_ids
from hub_models.hub.push import (
    NO_CHANGES,
    HubPushError,
    _check_token,
    _describe,
    _is_transient,
    _require_token,
    _with_retries,
)
from hub_models.reference import DEFAULT_NAMESPACE
from hub_models.space.about import report_figures

logger = logging.getLogger(__name__)

LIBRARY = Path(__file__).resolve().parents[1]  # the hub_models package the Space imports
LIBRARY_SUFFIXES = (".py", ".md")  # modules, and the model-card templates shipped as package data
APP_FILE = "app.py"
TABS_DIR = "tabs"  # one module per tab, next to app.py
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# A CPU Space takes torch from the CPU-only index (5× smaller wheels); ZeroGPU needs the CUDA build from PyPI.
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
HARDWARE = {"cpu": "cpu-basic", "zero-gpu": "zero-a10g"}
# Never in a Space repo, whatever the folder holds (checked on the staged files too).
FORBIDDEN = ("__pycache__", "*.pyc", ".*", "*.egg-info", "checkpoints", "runs", "flagged", "*.safetensors",
             "*.bin", "*.pt", "*.ckpt", "*.pkl", "*.npz", "*.npy")
MAX_SPACE_MB = 20  # the library, the report's figures and the examples come to ~3 MB; more means an accident


@dataclass(frozen=True)
class SpaceSources:
    """Where the parts of the Space come from (a checkout's `spaces_app/` and `docs/`)."""

    app_dir: Path  # app.py, tabs/, README.md (the card template), requirements.txt (names), examples/
    docs_dir: Path  # REPORT.md and the figures it shows


def pinned_requirements(template: str | os.PathLike, *, hardware: str = "cpu") -> str:
    """`requirements.txt` of the Space: every package named in `template` pinned to the version installed here
    (the one the tests ran with), gradio left to the card's `sdk_version`; the CPU torch index for a CPU Space."""
    lines = ["# Pinned by scripts/publish_space.py to the versions its tests ran with; gradio comes from",
             "# sdk_version in README.md."]
    if hardware == "cpu":
        lines.append(f"--extra-index-url {CPU_INDEX}")
    for raw in Path(template).read_text().splitlines():
        name = re.split(r"[\s<>=!~;\[]", raw.strip(), maxsplit=1)[0]
        if not name or name.startswith(("#", "-")):
            continue
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise HubPushError(f"{template} names {name!r}, which is not installed here: cannot pin it") from None
        lines.append(f"{name}=={version.split('+')[0]}")  # 2.14.1+cpu → 2.14.1 (either build matches)
    return "\n".join(lines) + "\n"


def space_card(template: str | os.PathLike, models: Iterable[str], *, hardware: str = "cpu") -> SpaceCard:
    """The Space's README.md: the committed card with the facts only a build knows — the Gradio and Python
    versions tested here and the exact model repos the app loads (`models:` links the Space to them)."""
    card = SpaceCard.load(template)
    card.data.sdk = "gradio"
    card.data.sdk_version = importlib.metadata.version("gradio")
    card.data.python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    card.data.app_file = APP_FILE
    card.data.models = list(models)
    card.data.suggested_hardware = HARDWARE[hardware]
    return card


def _forbidden(rel: str) -> bool:
    return any(fnmatch.fnmatchcase(part, pat) for part in rel.split("/") for pat in FORBIDDEN)


def _library_files() -> list[tuple[Path, str]]:
    """(source, path in the Space) of the library's modules and templates (symlinked templates followed)."""
    found = []
    for root, dirs, files in os.walk(LIBRARY, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not _forbidden(d))
        for name in sorted(files):
            rel = (Path(root) / name).relative_to(LIBRARY).as_posix()
            if name.endswith(LIBRARY_SUFFIXES) and not _forbidden(rel):
                found.append((Path(root) / name, f"{LIBRARY.name}/{rel}"))
    return found


def build_space(dest: str | os.PathLike, sources: SpaceSources, *, space_id: str,
                models_namespace: str = DEFAULT_NAMESPACE, hardware: str = "cpu") -> list[str]:
    """Lay out the Space in the empty folder `dest`; returns the relative paths written.

    Args:
        dest: an empty (or missing) folder.
        sources: the checkout's `spaces_app/` and `docs/`.
        space_id: the Space's repo id (`user/name`): the app links to its own copy of the report.
        models_namespace: who published the models: the app loads `<namespace>/mnist-genlab-<run>` for every
            run of the release (`hub_models.reference.RELEASE`).
        hardware: "cpu" (CPU Basic, CPU torch wheels) or "zero-gpu" (CUDA torch; `@spaces.GPU` handlers).
    """
    if hardware not in HARDWARE:
        raise ValueError(f"hardware must be one of {sorted(HARDWARE)}, got {hardware!r}")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise HubPushError(f"{dest} is not empty: build the Space into an empty folder")
    app_dir, docs_dir = Path(sources.app_dir), Path(sources.docs_dir)
    models = release_repo_ids(models_namespace)
    copies: list[tuple[Path, str]] = [(app_dir / APP_FILE, APP_FILE), *_library_files()]
    copies += [(p, f"{TABS_DIR}/{p.name}") for p in sorted((app_dir / TABS_DIR).glob("*.py"))]
    copies += [(p, f"examples/{p.name}") for p in sorted((app_dir / "examples").glob("*"))
               if p.suffix.lower() in EXAMPLE_SUFFIXES]
    report = docs_dir / "REPORT.md"
    if report.is_file():
        copies += [(report, "docs/REPORT.md")]
        copies += [(docs_dir / rel, f"docs/{rel}") for rel in report_figures(report) if (docs_dir / rel).is_file()]
    written = {
        "README.md": str(space_card(app_dir / "README.md", models.values(), hardware=hardware)),
        "requirements.txt": pinned_requirements(app_dir / "requirements.txt", hardware=hardware),
        "models.json": json.dumps({"space": space_id, "models": models}, indent=2) + "\n",
    }
    for src, rel in copies:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
    for rel, text in written.items():
        (dest / rel).write_text(text, encoding="utf-8")
    files = sorted([rel for _, rel in copies] + list(written))
    bad = [rel for rel in files if _forbidden(rel)]
    if bad:
        raise HubPushError(f"refusing to publish {', '.join(bad)} in a Space")
    size = sum((dest / rel).stat().st_size for rel in files) / 2**20
    if size > MAX_SPACE_MB:
        raise HubPushError(f"the Space folder is {size:.1f} MB, over the {MAX_SPACE_MB} MB budget")
    return files


def _check_no_token(folder: Path, files: list[str], token: str) -> None:
    needle = token.encode()
    for rel in files:
        if needle in (folder / rel).read_bytes():
            raise HubPushError(f"{rel} contains the Hub token: refusing to publish it.")


def _check_models_exist(api: HfApi, models: dict[str, str], namespace: str, max_retries: int, backoff: float
                        ) -> None:
    """Every model repo the app will load exists, else a HubPushError naming the missing ones."""
    missing = [r for r in models.values()
               if not _with_retries("repo_exists", lambda r=r: api.repo_exists(r), max_retries, backoff)]
    if missing:
        raise HubPushError(
            f"the Space would load {len(missing)} model repo(s) that do not exist: {', '.join(missing)}. "
            f"Publish the models first (python scripts/publish_study.py --namespace {namespace}"
            " ...), or pass another --models_namespace.")


def publish_space(repo_id: str, sources: SpaceSources, *, models_namespace: str = DEFAULT_NAMESPACE,
                  hardware: str = "cpu", token: str | None = None, private: bool = False,
                  check_models: bool = True, max_retries: int = 5, backoff: float = 1.0) -> dict[str, Any]:
    """Build the Space (`build_space`) and upload it to `repo_id` (`repo_type="space"`) in one commit.

    Files the Space repo holds that the build no longer makes are deleted in the same commit. An unchanged Space
    makes no commit. With `check_models`, every model repo the app will load must exist first (publish them with
    `scripts/publish_study.py`).

    Returns:
        `{"commit": commit URL or "no changes", "url": the Space's page, "files": [paths], "models": {...}}`.

    Raises:
        HubPushError: no/read-only/invalid token (before any upload), missing model repos, a forbidden or
            token-bearing file, or a Hub failure that persisted through the retries.
    """
    token = _require_token(token)
    api = HfApi(token=token)
    models = release_repo_ids(models_namespace)
    heads: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="space-") as tmp:
            staging = Path(tmp)
            files = build_space(staging, sources, space_id=repo_id, models_namespace=models_namespace,
                                hardware=hardware)
            _check_no_token(staging, files, token)  # local problems surface before any network call
            _check_token(api, token, max_retries, backoff)
            if check_models:
                _check_models_exist(api, models, models_namespace, max_retries, backoff)
            _with_retries("create_repo", lambda: api.create_repo(
                repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True),
                max_retries, backoff)

            def commit() -> Any:
                head = api.repo_info(repo_id, repo_type="space").sha
                heads.append(head)
                remote = api.list_repo_files(repo_id, repo_type="space", revision=head)
                deletions = [CommitOperationDelete(p) for p in remote if p not in files and p != ".gitattributes"]
                additions = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(staging / rel))
                             for rel in files]
                return api.create_commit(
                    repo_id, repo_type="space", operations=deletions + additions, parent_commit=head,
                    commit_message="Update the mnist-genlab Space",
                    commit_description=f"Built by scripts/publish_space.py; models from {models_namespace}.")

            info = _with_retries("commit", commit, max_retries, backoff)
    except HubPushError:
        raise
    except (HfHubHTTPError, httpx2.TransportError) as err:
        retried = f" after {max_retries} retries" if _is_transient(err) else ""
        raise HubPushError(f"Publishing the Space {repo_id} failed{retried}: {_describe(err)}. "
                           "Nothing was committed; run it again.") from None
    url = f"{constants.ENDPOINT}/spaces/{repo_id}"
    if info.oid == heads[0]:
        logger.info("the Space %s is already up to date", repo_id)
        return {"commit": NO_CHANGES, "url": url, "files": files, "models": models}
    return {"commit": info.commit_url, "url": url, "files": files, "models": models}


__all__ = ["HARDWARE", "SpaceSources", "build_space", "pinned_requirements", "publish_space", "space_card"]
