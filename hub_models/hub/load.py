"""Loading from the Hub or a folder without running repo code: `load` (repo id or folder → model, safetensors
only, known classes only). `RepoFiles` (the files of a repo or folder, fetched on demand), which the Space and the
cards read metadata through, lives in `hub_models.hub.repo_files` and is re-exported here.
"""

from __future__ import annotations

import os
from typing import Any

from hub_models.hub.kinds import KINDS, kind_of_source
from hub_models.hub.loaders import DDPM_SCHEDULERS
from hub_models.hub.repo_files import PICKLE_SUFFIXES, HubLoadError, RepoFiles, check_safetensors

# The pipeline classes `load` builds, by the exact `_class_name` of model_index.json (our classes are imported from
# this library, never from the repo).
PIPELINE_CLASSES = {name: cls for kind in KINDS.values() if kind.index_file == "model_index.json"
                    for name, cls in kind.classes.items()}


def load(repo_id_or_path: str | os.PathLike, **kwargs: Any) -> Any:
    """The model or pipeline of a Hub repo id or a local run folder, of any kind of `hub_models.hub.kinds` (a
    ConvVAE/DenseVAE, a DigitClassifier, a LatentPrior, an AutoencoderKL, a DDPMPipeline, a
    ClassConditionalDDPMPipeline or a LatentDDPMPipeline).

    Reads `model_index.json` or `config.json` (plain JSON), accepts only the classes a kind names, checks that the
    weights are complete safetensors, then calls the installed class's `from_pretrained(..., use_safetensors=True)`.
    Never unpickles and never imports code from the repo (the files shipped for `trust_remote_code` are ignored).

    Args:
        repo_id_or_path: `user/repo` or a folder.
        kwargs: `revision`, `cache_dir`, `token`, `local_files_only`, ... passed to `from_pretrained`.

    Raises:
        HubLoadError: unknown class, pickled-only or truncated weights, or missing files.
    """
    kwargs.pop("use_safetensors", None)
    source = RepoFiles(repo_id_or_path, kwargs)
    kind, _ = kind_of_source(source)
    return kind.loader(source, repo_id_or_path, kind.classes, **kwargs)


__all__ = [
    "DDPM_SCHEDULERS", "PICKLE_SUFFIXES", "PIPELINE_CLASSES", "HubLoadError", "RepoFiles", "check_safetensors", "load",
]
