"""Sharing runs on the Hugging Face Hub: `push_run` (one run folder → one repo, one commit), `publish_study`
(every run of a study + a collection) and `load` (repo id or folder → model, safetensors only, no repo code).

Pushing never touches the run folder: the files to publish are copied into a temporary staging folder with the
rendered model card, then sent in a single `create_commit`. The Hub drops files whose hash it already has, so
re-pushing an unchanged run creates no commit.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError

from hub_models.evaluation.schema import EVALUATION_FILE
from hub_models.hub.cards import render_model_card
from hub_models.hub.hub_api import (
    HubPushError,
    _check_token,
    _describe,
    _is_transient,
    _require_token,
    _with_retries,
)
from hub_models.hub.kinds import KINDS, Kind, kind_of_folder
from hub_models.hub.naming import published_repo_ids
from hub_models.hub.remote_code import SAMPLER_FOLDER, SOLVER_FOLDER
from hub_models.hub.repo_files import HubLoadError, check_safetensors

logger = logging.getLogger(__name__)

# What a repo may hold, per kind (`hub_models.hub.kinds`): never checkpoints/, logs/, optimizer state,
# unet_non_ema/ (training-only weights) or pickles.
PUBLISHED_FILES = {name: kind.published for name, kind in KINDS.items()}
# Remote paths a push owns: stale files there (e.g. a figure a new run no longer makes) are deleted.
MANAGED_REMOTE = (
    "README.md",
    "config.json",
    "model_index.json",
    "*.safetensors",
    "metrics.json",
    EVALUATION_FILE,
    "training_config.json",
    "figures/*",
    "unet/*",
    "scheduler/*",
    "vae/*",
    "*.py",  # the shipped remote code and the sampler settings a card's hint loads (hub_models.hub.remote_code)
    f"{SAMPLER_FOLDER}/*",
    f"{SOLVER_FOLDER}/*",
)
DEFAULT_COLLECTION_TITLE = "mnist-genlab: β-VAEs and DDPMs on MNIST"
NO_CHANGES = "no changes"

T = TypeVar("T")


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    # a pattern without a folder matches top-level files only
    return any(fnmatch.fnmatchcase(rel, pat) and ("/" in pat or "/" not in rel) for pat in patterns)


def _published(run_dir: Path, kind: Kind) -> list[str]:
    found = [rel for path in sorted(p for p in run_dir.rglob("*") if p.is_file())
             if _matches(rel := path.relative_to(run_dir).as_posix(), kind.published)]
    missing = [f for f in kind.required if f not in found]
    if missing:
        raise HubPushError(f"{run_dir} is not a finished {kind.name.upper()} run: missing {', '.join(missing)}")
    return found


def published_files(run_dir: str | os.PathLike) -> list[str]:
    """Relative paths of `run_dir` that a push publishes (besides the generated README.md)."""
    run_dir = Path(run_dir)
    return _published(run_dir, kind_of_folder(run_dir))


def _check_weights(run_dir: Path, files: list[str]) -> None:
    """A kill while the run saved its weights leaves them truncated: never publish those."""
    for rel in files:
        if rel.endswith(".safetensors"):
            try:
                check_safetensors(run_dir / rel)
            except HubLoadError as err:
                raise HubPushError(f"{run_dir} cannot be published: {err}. Resume or retrain the run.") from None


def stage_run(run_dir: str | os.PathLike, repo_id: str, staging: str | os.PathLike,
              source_url: str | None = None) -> list[str]:
    """Write what a push of `run_dir` as `repo_id` publishes into the empty folder `staging`: the publishable
    files (some rewritten on the way, e.g. no secrets in training_config.json), the kind's extra steps (a DDPM's
    `scheduler/` set to the sampler its card reports) and the rendered card as README.md (its install line for
    `source_url`). Returns the relative paths. `make_release.py` builds `release/` with it."""
    run_dir, staging = Path(run_dir), Path(staging)
    kind = kind_of_folder(run_dir)
    files = _published(run_dir, kind)
    _check_weights(run_dir, files)
    for rel in files:
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        rewrite = kind.rewrites.get(rel)
        if rewrite is None:
            shutil.copyfile(run_dir / rel, dest)
        else:
            rewrite(run_dir / rel, dest, repo_id)
    for step in kind.steps:
        files += [rel for rel in step(run_dir, staging, repo_id) if rel not in files]
    (staging / "README.md").write_text(str(render_model_card(run_dir, repo_id, source_url)))
    files.append("README.md")
    return files


def _stage(run_dir: Path, repo_id: str, staging: Path, token: str, source_url: str | None) -> list[str]:
    """`stage_run`, then refuse to publish anything that contains the token."""
    files = stage_run(run_dir, repo_id, staging, source_url)
    needle = token.encode()
    for rel in files:
        if needle in (staging / rel).read_bytes():
            raise HubPushError(f"{rel} contains the Hub token: refusing to publish it.")
    return files


def _prepare_repo(api: HfApi, repo_id: str, private: bool, branch: str | None, retries: tuple[int, float]) -> None:
    """Create the repo (and the branch) if missing."""
    _with_retries("create_repo", lambda: api.create_repo(repo_id, private=private, exist_ok=True), *retries)
    if branch:
        _with_retries("create_branch", lambda: api.create_branch(repo_id, branch=branch, exist_ok=True), *retries)


def _commit_once(api: HfApi, repo_id: str, staging: Path, files: list[str], *, branch: str | None,
                 create_pr: bool, message: str, heads: list[str]) -> Any:
    """One commit of the staged `files` on the current head, deleting the stale files a push owns; the head it
    read is appended to `heads` (the first tells whether anything changed)."""
    head = api.repo_info(repo_id, revision="main" if create_pr else (branch or "main")).sha
    heads.append(head)
    deletions = [CommitOperationDelete(path) for path in api.list_repo_files(repo_id, revision=head)
                 if path not in files and any(fnmatch.fnmatchcase(path, pat) for pat in MANAGED_REMOTE)]
    # Fresh operations on each attempt: a CommitOperationAdd cannot be reused after a commit.
    additions = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(staging / rel)) for rel in files]
    return api.create_commit(
        repo_id, operations=deletions + additions, revision=branch, create_pr=create_pr, commit_message=message,
        commit_description="Model, metrics, figures and model card pushed by mnist-genlab.", parent_commit=head)


def push_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    max_retries: int = 5,
    backoff: float = 1.0,
    source_url: str | None = None,
) -> str:
    """Publish a finished run folder as `repo_id` in one commit; returns the commit URL or "no changes".

    Args:
        run_dir: a run folder of any kind of `hub_models.hub.kinds` (config.json or model_index.json).
        repo_id: `user/name` or `org/name`; created (with `private`) if it does not exist.
        token: a 'write' token; defaults to HF_TOKEN / the `hf auth login` token.
        revision: branch to commit to (created from main if missing); default main.
        create_pr: open a pull request instead of committing to the branch.
        max_retries, backoff: retries of each Hub call on connection errors and 5xx, waiting backoff·2^n s.
        source_url: where the project's source is published, for the card's install line (else none).

    Raises:
        HubPushError: missing/read-only/invalid token (before any upload), incomplete run, or a Hub failure
            that persisted through the retries. The run folder is never modified.
    """
    run_dir, token = Path(run_dir), _require_token(token)
    api, retries = HfApi(token=token), (max_retries, backoff)
    branch = revision if revision not in (None, "main") and not create_pr else None
    message = commit_message or f"Upload {kind_of_folder(run_dir).name.upper()} run {run_dir.name}"
    heads: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hub-push-") as tmp:
            staging = Path(tmp)
            files = _stage(run_dir, repo_id, staging, token, source_url)  # local problems before any network call
            _check_token(api, token, *retries)
            _prepare_repo(api, repo_id, private, branch, retries)
            info = _with_retries("commit", lambda: _commit_once(
                api, repo_id, staging, files, branch=branch, create_pr=create_pr, message=message, heads=heads),
                *retries)
    except HubPushError:
        raise
    except (HfHubHTTPError, httpx2.TransportError) as err:
        retried = f" after {max_retries} retries" if _is_transient(err) else ""
        raise HubPushError(
            f"Pushing {run_dir} to {repo_id} failed{retried}: {_describe(err)}. "
            "Nothing was committed; the run folder is unchanged, run the push again."
        ) from None
    if info.oid == heads[0] and not info.pr_url:
        logger.info("%s is already up to date with %s", repo_id, run_dir)
        return NO_CHANGES
    return info.pr_url or info.commit_url


def push_run_in_background(run_dir: str | os.PathLike, repo_id: str, **kwargs: Any) -> Future:
    """`push_run` in a daemon thread: training goes on (or exits) without waiting. The future holds the URL or
    the exception; failures are logged, never raised into the caller."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(push_run(run_dir, repo_id, **kwargs))
        except Exception as err:
            logger.warning("Background push of %s to %s failed: %s", run_dir, repo_id, err)
            future.set_exception(err)

    threading.Thread(target=work, name=f"push-{repo_id}", daemon=True).start()
    return future


# ----------------------------------------------------------------------------------------------------------
# Publishing a whole study
# ----------------------------------------------------------------------------------------------------------
def find_runs(study_dir: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Finished run folders (VAE and DDPM) in or under `study_dir` (one folder or several, e.g.
    `studies/vae-grid` and `runs/ddpm-default`), skipping checkpoints, logs and hidden folders."""
    roots = [study_dir] if isinstance(study_dir, str | os.PathLike) else list(study_dir)
    runs: list[Path] = []
    for root in map(Path, roots):
        for metrics in sorted(root.rglob("metrics.json")):
            folder = metrics.parent
            parts = folder.relative_to(root).parts
            if {"checkpoints", "logs", "unet_non_ema"} & set(parts) or any(p.startswith(".") for p in parts):
                continue
            if (folder / "model_index.json").is_file() or (folder / "config.json").is_file():
                if folder.resolve() not in {r.resolve() for r in runs}:
                    runs.append(folder)
    return runs


def repo_name_for_run(run_dir: str | os.PathLike) -> str:
    """The repo name of a run, by its kind's naming (`hub_models.hub.kinds`, `hub_models.hub.naming`):
    `mnist-genlab-vae-conv-z2-beta1e-3`, `mnist-genlab-ddpm-conditional`, `mnist-genlab-latent-prior-conv-z4-beta1`,
    … (`hub_models.hub.naming.published_repo_ids` names the release the same)."""
    run_dir = Path(run_dir)
    try:
        kind = kind_of_folder(run_dir)
    except ValueError as err:
        raise HubPushError(str(err)) from None
    return kind.repo_name(run_dir)


def _study_repo_ids(runs: list[Path], namespace: str) -> dict[str, Path]:
    """{repo id: run} for the runs of a study; HubPushError when two runs would share a repo or a release folder
    would not keep its release name."""
    names: dict[str, Path] = {}
    release = published_repo_ids(namespace)
    for run in runs:
        repo_id = f"{namespace}/{repo_name_for_run(run)}"
        if run.name in release and release[run.name] != repo_id:  # a release folder must keep its release name
            raise HubPushError(f"{run} would be published as {repo_id}, but the release names it {release[run.name]}")
        if repo_id in names:
            raise HubPushError(f"{names[repo_id]} and {run} would both be published as {repo_id}")
        names[repo_id] = run
    return names


def _collect(api: HfApi, namespace: str, title: str, repo_ids: Sequence[str], private: bool,
             retries: tuple[int, float]) -> str:
    """Find or create the collection `title` of `namespace`, add the repos it lacks; returns its slug."""
    def find_or_create() -> Any:
        for found in api.list_collections(owner=namespace, limit=100):
            if found.title == title:
                return api.get_collection(found.slug)
        return api.create_collection(title, namespace=namespace, private=private, exists_ok=True,
                                     description="β-VAEs (conv/dense, z=2/4, β=1e-3/1/20) and a DDPM on MNIST")

    try:
        collection = _with_retries("collection", find_or_create, *retries)
        present = {item.item_id for item in collection.items}
        for repo_id in (r for r in repo_ids if r not in present):
            _with_retries("add to collection", lambda r=repo_id: api.add_collection_item(
                collection.slug, item_id=r, item_type="model", exists_ok=True), *retries)
    except (HfHubHTTPError, httpx2.TransportError) as err:
        raise HubPushError(
            f"The runs were pushed but updating the collection failed: {_describe(err)}; run publish_study again."
        ) from None
    return collection.slug


def publish_study(
    study_dir: str | os.PathLike | Sequence[str | os.PathLike],
    namespace: str,
    *,
    collection_title: str = DEFAULT_COLLECTION_TITLE,
    token: str | None = None,
    private: bool = False,
    max_retries: int = 5,
    backoff: float = 1.0,
    source_url: str | None = None,
) -> dict[str, Any]:
    """Push every run under `study_dir` (a folder or a list of folders) to `namespace/<consistent name>` and
    gather them in a collection (`source_url`: the cards' install line, as in `push_run`).

    Idempotent: unchanged runs create no commit and items already in the collection are not added again.
    Returns `{"repos": {repo_id: commit url or "no changes"}, "collection": slug}`.
    """
    runs = find_runs(study_dir)
    if not runs:
        raise HubPushError(f"No finished run (metrics.json + config.json/model_index.json) under {study_dir}")
    names = _study_repo_ids(runs, namespace)
    token = _require_token(token)
    api = HfApi(token=token)
    _check_token(api, token, max_retries, backoff)
    results = {
        repo_id: push_run(run, repo_id, token=token, private=private, max_retries=max_retries, backoff=backoff,
                          source_url=source_url)
        for repo_id, run in names.items()
    }
    slug = _collect(api, namespace, collection_title, list(names), private, (max_retries, backoff))
    return {"repos": results, "collection": slug}


def run_publish_cli(publish: Callable[[], T], show: Callable[[T], None]) -> int:
    """The body of a publishing script's `main`: warnings-level logging, then `show(publish())`; a Hub or input
    error becomes one line on stderr and exit status 1 (no traceback for what the user can fix)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result = publish()
    except (HubPushError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    show(result)
    return 0


__all__ = [
    "NO_CHANGES",
    "PUBLISHED_FILES",
    "HubPushError",
    "find_runs",
    "publish_study",
    "published_files",
    "push_run",
    "push_run_in_background",
    "repo_name_for_run",
    "run_publish_cli",
    "stage_run",
]
