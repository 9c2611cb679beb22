"""Sharing runs on the Hugging Face Hub: `push_run` (one run folder → one repo, one commit), `publish_study`
(every run of a study + a collection) and `load` (repo id or folder → model, safetensors only, no repo code).

Pushing never touches the run folder: the files to publish are copied into a temporary staging folder with the
rendered model card, then sent in a single `create_commit`. The Hub drops files whose hash it already has, so
re-pushing an unchanged run creates no commit.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from hub_models.evaluation.schema import EVALUATION_FILE, Evaluation
from hub_models.hub.cards import published_scheduler, published_vae_id, read_json, render_model_card, run_kind
from hub_models.hub.load import HubLoadError, check_safetensors
from hub_models.hub.naming import hub_repo_name, published_repo_ids, vae_run_name
from hub_models.models.registry import arch_of
from hub_models.reference import CLASSIFIER_RUN, CONDITIONAL_DDPM_RUN, DDPM_RUN

logger = logging.getLogger(__name__)

# What a repo may hold, per run kind (relative paths, fnmatch patterns). Never checkpoints/, logs/, optimizer
# state, unet_non_ema/ (training-only weights) or pickles.
PUBLISHED_FILES = {
    "vae": (
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "metrics.json",
        "evaluation.json",
        "training_config.json",
        "figures/*.png",
    ),
    "ddpm": (
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
        "metrics.json",
        "evaluation.json",
        "training_config.json",
        "figures/*.png",
    ),
    "classifier": (
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "metrics.json",
        "training_config.json",
        "figures/*.png",
    ),
}
# A latent diffusion pipeline: the DDPM's files and the autoencoder in vae/.
PUBLISHED_FILES["ldm"] = (*PUBLISHED_FILES["ddpm"], "vae/config.json", "vae/diffusion_pytorch_model.safetensors")
# A learned latent prior: the MLP and its training scheduler (the VAE it decodes with is its own repo).
PUBLISHED_FILES["latent-prior"] = (*PUBLISHED_FILES["classifier"], "scheduler/scheduler_config.json")
REQUIRED_FILES = {
    "vae": ("config.json", "diffusion_pytorch_model.safetensors"),
    "classifier": ("config.json", "diffusion_pytorch_model.safetensors"),
    "ddpm": (
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
    ),
}
REQUIRED_FILES["ldm"] = (*REQUIRED_FILES["ddpm"], "vae/config.json", "vae/diffusion_pytorch_model.safetensors")
REQUIRED_FILES["latent-prior"] = (*REQUIRED_FILES["classifier"], "scheduler/scheduler_config.json", "metrics.json")
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
)
SECRET_KEYS = re.compile(r"token|secret|password|api_key", re.IGNORECASE)
DEFAULT_COLLECTION_TITLE = "mnist-genlab: β-VAEs and DDPMs on MNIST"
NO_CHANGES = "no changes"

T = TypeVar("T")


class HubPushError(RuntimeError):
    """A push that could not be done; the message says why and what to do (it never contains the token)."""


# ----------------------------------------------------------------------------------------------------------
# Pushing one run
# ----------------------------------------------------------------------------------------------------------
def _is_transient(err: Exception) -> bool:
    if isinstance(err, httpx2.TransportError):
        return True
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        # 412: the branch moved between reading its head and committing (a concurrent push); a retry re-reads it.
        return err.response.status_code >= 500 or err.response.status_code in (408, 412, 429)
    return False


def _describe(err: Exception) -> str:
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} from {err.response.request.method} {err.response.url.path}"
    return f"{type(err).__name__}: {err}"


def _with_retries(what: str, fn: Callable[[], T], max_retries: int, backoff: float) -> T:
    """`fn()` retried on connection errors and 5xx/429 with exponential backoff (backoff · 2^attempt)."""
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except Exception as err:
            if not _is_transient(err) or attempt == max_retries:
                raise
            delay = backoff * 2**attempt
            logger.warning(
                "%s failed (%s); retry %d/%d in %.1fs", what, _describe(err), attempt + 1, max_retries, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _require_token(token: str | None) -> str:
    """The explicit token or the one from HF_TOKEN / `hf auth login`; HubPushError (no network) if none."""
    token = token or get_token()
    if not token:
        raise HubPushError(
            "No Hugging Face token found: set HF_TOKEN or run `hf auth login` "
            "(a token with the 'write' role), then push again."
        )
    return token


def _check_token(api: HfApi, token: str, max_retries: int, backoff: float) -> str:
    """The user name behind a write token; HubPushError (before any upload work) otherwise."""
    try:
        info = _with_retries("whoami", lambda: api.whoami(token=token), max_retries, backoff)
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 401:
            raise HubPushError(
                "The Hub rejected the token (HTTP 401): it is invalid or expired; "
                "create a new 'write' token and set HF_TOKEN."
            ) from None
        raise HubPushError(f"Could not check the token with the Hub: {_describe(err)}") from None
    except httpx2.TransportError as err:
        raise HubPushError(f"Could not reach the Hub to check the token: {_describe(err)}") from None
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise HubPushError(
            f"The token of {info.get('name')!r} is read-only: pushing needs a token with the "
            "'write' role (https://huggingface.co/settings/tokens)."
        )
    return info.get("name", "")


def published_files(run_dir: str | os.PathLike) -> list[str]:
    """Relative paths of `run_dir` that a push publishes (besides the generated README.md)."""
    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    found = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir).as_posix()
        if any(fnmatch.fnmatchcase(rel, pat) and ("/" in pat or "/" not in rel) for pat in PUBLISHED_FILES[kind]):
            found.append(rel)
    missing = [f for f in REQUIRED_FILES[kind] if f not in found]
    if missing:
        raise HubPushError(f"{run_dir} is not a finished {kind.upper()} run: missing {', '.join(missing)}")
    return found


def stage_run(run_dir: str | os.PathLike, repo_id: str, staging: str | os.PathLike) -> list[str]:
    """Write what a push of `run_dir` as `repo_id` publishes into the empty folder `staging`: the publishable
    files, `evaluation.json` in the current schema, a DDPM's `scheduler/` set to the sampler its card reports, and
    the rendered card as README.md. Returns the relative paths. `make_release.py` builds `release/` with it."""
    run_dir, staging = Path(run_dir), Path(staging)
    files = published_files(run_dir)
    kind = run_kind(run_dir)
    for rel in files:  # a kill while the run saved its weights leaves them truncated: never publish those
        if rel.endswith(".safetensors"):
            try:
                check_safetensors(run_dir / rel)
            except HubLoadError as err:
                raise HubPushError(f"{run_dir} cannot be published: {err}. Resume or retrain the run.") from None
    for rel in files:
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel == "training_config.json":
            # CLI args may include a hub token or other secrets: never publish them.
            config = {k: v for k, v in read_json(run_dir / rel).items() if not SECRET_KEYS.search(k)}
            dest.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        elif rel == "config.json" and kind == "latent-prior":  # name the VAE as users will find it: its repo id
            config = read_json(run_dir / rel)
            config["vae_name_or_path"] = published_vae_id(config.get("vae_name_or_path", ""), repo_id)
            dest.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        elif rel == EVALUATION_FILE:
            evaluation = Evaluation.read(run_dir / rel, kind="ddpm" if kind in ("ddpm", "ldm") else "vae")
            dest.write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        else:
            shutil.copyfile(run_dir / rel, dest)
    if kind == "ddpm":  # the scheduler the card's snippet and FID use (trailing spacing, its step count in the card)
        scheduler = published_scheduler(run_dir)
        scheduler.save_pretrained(str(staging / "scheduler"))
        index = read_json(run_dir / "model_index.json")
        index["scheduler"] = ["diffusers", type(scheduler).__name__]
        (staging / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (staging / "README.md").write_text(str(render_model_card(run_dir, repo_id)))
    files.append("README.md")
    return files


def _stage(run_dir: Path, repo_id: str, staging: Path, token: str) -> list[str]:
    """`stage_run`, then refuse to publish anything that contains the token."""
    files = stage_run(run_dir, repo_id, staging)
    needle = token.encode()
    for rel in files:
        if needle in (staging / rel).read_bytes():
            raise HubPushError(f"{rel} contains the Hub token: refusing to publish it.")
    return files


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
) -> str:
    """Publish a finished run folder as `repo_id` in one commit; returns the commit URL or "no changes".

    Args:
        run_dir: a VAE run (config.json + safetensors) or a DDPM run (model_index.json, unet/, scheduler/).
        repo_id: `user/name` or `org/name`; created (with `private`) if it does not exist.
        token: a 'write' token; defaults to HF_TOKEN / the `hf auth login` token.
        revision: branch to commit to (created from main if missing); default main.
        create_pr: open a pull request instead of committing to the branch.
        max_retries, backoff: retries of each Hub call on connection errors and 5xx, waiting backoff·2^n s.

    Raises:
        HubPushError: missing/read-only/invalid token (before any upload), incomplete run, or a Hub failure
            that persisted through the retries. The run folder is never modified.
    """
    run_dir = Path(run_dir)
    token = _require_token(token)
    api = HfApi(token=token)
    branch = revision if revision not in (None, "main") and not create_pr else None
    heads: list[str] = []  # head before each attempt: the first tells whether anything changed
    try:
        with tempfile.TemporaryDirectory(prefix="hub-push-") as tmp:
            staging = Path(tmp)
            files = _stage(run_dir, repo_id, staging, token)  # local problems surface before any network call
            _check_token(api, token, max_retries, backoff)
            _with_retries(
                "create_repo",
                lambda: api.create_repo(repo_id, private=private, exist_ok=True),
                max_retries,
                backoff,
            )
            if branch:
                _with_retries(
                    "create_branch",
                    lambda: api.create_branch(repo_id, branch=branch, exist_ok=True),
                    max_retries,
                    backoff,
                )

            def commit() -> Any:
                target = "main" if create_pr else (branch or "main")
                head = api.repo_info(repo_id, revision=target).sha
                heads.append(head)
                remote = api.list_repo_files(repo_id, revision=head)
                deletions = [
                    CommitOperationDelete(path)
                    for path in remote
                    if path not in files and any(fnmatch.fnmatchcase(path, pat) for pat in MANAGED_REMOTE)
                ]
                # Fresh operations on each attempt: a CommitOperationAdd cannot be reused after a commit.
                additions = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(staging / rel)) for rel in files]
                info = api.create_commit(
                    repo_id,
                    operations=deletions + additions,
                    revision=branch,
                    create_pr=create_pr,
                    commit_message=commit_message or f"Upload {run_kind(run_dir).upper()} run {run_dir.name}",
                    commit_description="Model, metrics, figures and model card pushed by mnist-genlab.",
                    parent_commit=head,
                )
                return info

            info = _with_retries("commit", commit, max_retries, backoff)
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
    """`mnist-genlab-vae-conv-z2-beta1e-3` for a VAE run (`…-conditional` for a conditional one),
    `mnist-genlab-ddpm` for the DDPM run (`mnist-genlab-ddpm-conditional` class-conditional, `mnist-genlab-ldm` latent),
    `mnist-genlab-digit-classifier` for the classifier, `mnist-genlab-latent-prior-conv-z4-beta1` for a learned prior
    over that VAE (`hub_models.hub.naming.published_repo_ids` names the same)."""
    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    if kind == "ddpm":  # a class-conditional UNet gets its own repo beside the unconditional one
        unet_config = read_json(run_dir / "unet" / "config.json")
        return hub_repo_name(CONDITIONAL_DDPM_RUN if unet_config.get("num_class_embeds") else DDPM_RUN)
    if kind == "ldm":
        return hub_repo_name("ldm")
    if kind == "classifier":
        return hub_repo_name(CLASSIFIER_RUN)
    if kind == "latent-prior":  # after its VAE: vae-conv-z4-beta1 → mnist-genlab-latent-prior-conv-z4-beta1
        vae = Path(read_json(run_dir / "config.json").get("vae_name_or_path") or "").name
        if not vae:
            raise HubPushError(f"{run_dir}: cannot name the repo (config.json names no vae_name_or_path)")
        return hub_repo_name("latent-prior-" + vae.removeprefix(hub_repo_name("")).removeprefix("vae-"))
    config, metrics = read_json(run_dir / "config.json"), read_json(run_dir / "metrics.json")
    train_cfg = read_json(run_dir / "training_config.json")
    arch = arch_of(config.get("_class_name")) or metrics.get("arch")
    latent = config.get("latent_dim", metrics.get("latent_dim"))
    beta = metrics.get("beta", train_cfg.get("beta"))
    if arch is None or latent is None or beta is None:
        raise HubPushError(f"{run_dir}: cannot name the repo (need the architecture, latent_dim and beta)")
    schedule = metrics.get("beta_schedule", train_cfg.get("beta_schedule", "constant"))
    return hub_repo_name(vae_run_name(arch, int(latent), float(beta), schedule or "constant",
                                      conditional=bool(config.get("num_classes"))))


def publish_study(
    study_dir: str | os.PathLike | Sequence[str | os.PathLike],
    namespace: str,
    *,
    collection_title: str = DEFAULT_COLLECTION_TITLE,
    token: str | None = None,
    private: bool = False,
    max_retries: int = 5,
    backoff: float = 1.0,
) -> dict[str, Any]:
    """Push every run under `study_dir` (a folder or a list of folders) to `namespace/<consistent name>` and
    gather them in a collection.

    Idempotent: unchanged runs create no commit and items already in the collection are not added again.
    Returns `{"repos": {repo_id: commit url or "no changes"}, "collection": slug}`.
    """
    runs = find_runs(study_dir)
    if not runs:
        raise HubPushError(f"No finished run (metrics.json + config.json/model_index.json) under {study_dir}")
    names: dict[str, Path] = {}
    release = published_repo_ids(namespace)
    for run in runs:
        repo_id = f"{namespace}/{repo_name_for_run(run)}"
        if run.name in release and release[run.name] != repo_id:  # a release folder must keep its release name
            raise HubPushError(f"{run} would be published as {repo_id}, but the release names it {release[run.name]}")
        if repo_id in names:
            raise HubPushError(f"{names[repo_id]} and {run} would both be published as {repo_id}")
        names[repo_id] = run
    token = _require_token(token)
    api = HfApi(token=token)
    _check_token(api, token, max_retries, backoff)

    results = {
        repo_id: push_run(run, repo_id, token=token, private=private, max_retries=max_retries, backoff=backoff)
        for repo_id, run in names.items()
    }

    def find_or_create():
        for found in api.list_collections(owner=namespace, limit=100):
            if found.title == collection_title:
                return api.get_collection(found.slug)
        return api.create_collection(
            collection_title,
            namespace=namespace,
            private=private,
            exists_ok=True,
            description="β-VAEs (conv/dense, z=2/4, β=1e-3/1/20) and a DDPM on MNIST",
        )

    try:
        collection = _with_retries("collection", find_or_create, max_retries, backoff)
        present = {item.item_id for item in collection.items}
        for repo_id in names:
            if repo_id not in present:
                _with_retries(
                    "add to collection",
                    lambda r=repo_id: api.add_collection_item(
                        collection.slug, item_id=r, item_type="model", exists_ok=True
                    ),
                    max_retries,
                    backoff,
                )
    except (HfHubHTTPError, httpx2.TransportError) as err:
        raise HubPushError(
            f"The runs were pushed but updating the collection failed: {_describe(err)}; run publish_study again."
        ) from None
    return {"repos": results, "collection": collection.slug}


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
