"""The Hub: pushing runs (`push_run`, `publish_study`), loading them back (`load`), their cards and names; what each
kind of model gets is the one table `hub_models.hub.kinds.KINDS`."""

from hub_models.hub.load import HubLoadError, RepoFiles, check_safetensors, load
from hub_models.hub.push import (
    DEFAULT_COLLECTION_TITLE,
    NO_CHANGES,
    PUBLISHED_FILES,
    HubPushError,
    find_runs,
    publish_study,
    published_files,
    push_run,
    push_run_in_background,
    repo_name_for_run,
    run_publish_cli,
)

__all__ = [
    "DEFAULT_COLLECTION_TITLE",
    "NO_CHANGES",
    "PUBLISHED_FILES",
    "HubLoadError",
    "HubPushError",
    "RepoFiles",
    "check_safetensors",
    "find_runs",
    "load",
    "publish_study",
    "published_files",
    "push_run",
    "push_run_in_background",
    "repo_name_for_run",
    "run_publish_cli",
]
