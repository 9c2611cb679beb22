"""Where the Space's models come from and how they are loaded once at start-up: the list of sources (local folders
or Hub repo ids, the same `from_pretrained` either way), one loader per model kind, and the calibration of every VAE
on the test set (the anomaly score, the latent maps).

A source that fails to load is recorded with its error, and the matching tab shows that message instead of crashing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from hub_models.data import load_splits
from hub_models.evaluation import EVALUATION_FILE, Evaluation
from hub_models.evaluation.ddpm import evaluation_summary
from hub_models.hub.load import RepoFiles, load
from hub_models.hub.naming import release_repo_ids
from hub_models.io import atomic_path, cache_dir, log
from hub_models.models import DigitClassifier
from hub_models.models.registry import kind_of
from hub_models.reference import DEFAULT_NAMESPACE
from hub_models.space.checks import MAX_LATENT_ABS, SpaceError
from hub_models.space.diffusion import cpu_precision
from hub_models.space.latent import latent_map
from hub_models.space.reconstruct import negative_elbo
from hub_models.space.registry import DDPMEntry, Registry, TestDigits, VAEEntry, label_names_of

MODELS_ENV = "GENLAB_MODELS"  # "name=source,..." or "source,...": overrides everything
MODELS_DIR_ENV = "GENLAB_MODELS_DIR"  # local folders named like the model names win over repo ids
CALIBRATION_ENV = "GENLAB_CALIBRATION_DIGITS"
CALIBRATION_CACHE_ENV = "GENLAB_CALIBRATION_CACHE"  # folder of cached calibrations (default: the MNIST cache)
DEFAULT_CALIBRATION_DIGITS = 2000


def _log(msg: str) -> None:
    log("space", msg)


def resolve_model_sources(config_file: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                          models_dir: str | os.PathLike | None = None,
                          namespace: str = DEFAULT_NAMESPACE) -> dict[str, str]:
    """Names → sources (a local folder or a Hub repo id), in display order.

    1. `$GENLAB_MODELS` = "name=source,..." (or bare sources, named after their last path part);
    2. else the config file's `{"models": {"name": "repo_id", ...}}` (what `publish_space` writes), or, without
       one, the release list (`hub_models.reference.RELEASE` as `<namespace>/mnist-genlab-<name>`);
       each name is replaced by the folder `$GENLAB_MODELS_DIR/<name>` (else `models_dir/<name>`) when that
       folder exists, so a checkout's demo runs offline from `release/`.
    """
    env = os.environ if env is None else env
    if env.get(MODELS_ENV, "").strip():
        sources: dict[str, str] = {}
        for entry in env[MODELS_ENV].split(","):
            entry = entry.strip()
            if not entry:
                continue
            name, _, source = entry.partition("=") if "=" in entry else ("", "", entry)
            source = source.strip()
            sources[(name.strip() or Path(source.rstrip("/")).name)] = source
        return sources
    if config_file is not None and Path(config_file).is_file():
        mapping = json.loads(Path(config_file).read_text())
        mapping = mapping.get("models", mapping)
    else:
        mapping = release_repo_ids(namespace)
    local_dir = env.get(MODELS_DIR_ENV) or models_dir
    local = Path(local_dir) if local_dir else None
    return {name: str(local / name) if local is not None and (local / name).is_dir() else repo
            for name, repo in mapping.items()}


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the Hub endpoint. Offline, repo ids load from the local HF cache only, so a
    missing repo fails at once instead of after huggingface_hub's retries with back-off (minutes)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true"):
        return False
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def _looks_like_folder(source: str) -> bool:
    return Path(source).exists() or source.startswith((".", "/", "~")) or source.strip("/").count("/") != 1


def open_source(source: str, hub_kwargs: Mapping[str, Any]) -> RepoFiles:
    """The files of a model folder or Hub repo (`hub_models.hub.load.RepoFiles`), with a readable SpaceError
    when the folder or repo does not exist or cannot be reached."""
    if _looks_like_folder(source) and not Path(source).is_dir():
        raise SpaceError(f"{source}: no such model folder (no config.json or model_index.json)")
    try:
        return RepoFiles(source, dict(hub_kwargs))
    except RepositoryNotFoundError:
        raise SpaceError(f"{source}: no such repo on the Hub (or it is private)") from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise SpaceError(f"{source}: the Hub could not list this repo ({type(err).__name__})") from None


def model_kind(files: RepoFiles, hub_kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """("vae" | "ddpm" | "classifier" | "unknown", config.json) of a source, read as plain JSON."""
    if files.try_json("model_index.json") is not None:
        return "ddpm", {}
    config = files.try_json("config.json")
    if config is None:
        if files.local is not None:
            raise SpaceError(f"{files.name}: no such model folder (no config.json or model_index.json)")
        if hub_kwargs.get("local_files_only"):
            raise SpaceError(f"{files.name}: the Hub is not reachable and this repo is not in the local cache")
        raise SpaceError(f"{files.name}: no config.json or model_index.json in this Hub repo")
    return kind_of(config.get("_class_name")), config


def read_evaluation(files: RepoFiles, kind: str) -> Evaluation | None:
    """The `evaluation.json` released next to the weights (`hub_models.evaluation.Evaluation`, any schema version
    this library reads); None when there is none or it cannot be read."""
    data = files.try_json(EVALUATION_FILE) if files.has(EVALUATION_FILE) else None
    try:
        return Evaluation.from_dict(data, kind) if data is not None else None
    except (ValueError, KeyError, TypeError) as err:
        _log(f"{files.name}: {EVALUATION_FILE} ignored ({err})")
        return None


def ddpm_evaluation(files: RepoFiles) -> dict[str, Any]:
    """The FID the DDPM was released with: the main point of its `evaluation.json` (the one its card shows),
    e.g. `{"fid": 10.01, "fid_n": 10000, "fid_sampler": "ddpm", "fid_steps": 25}`, and for a class-conditional
    model the guidance its table chose (`"guidance_scale"`); {} when there is none or it was measured on other
    weights than the ones the folder or repo holds now."""
    if read_evaluation(files, "ddpm") is None:
        return {}
    # The summary checks each point's weights digest against the weights beside the file (a Hub snapshot folder
    # holds both once the pipeline is loaded).
    folder = files.local if files.local is not None else files.path(EVALUATION_FILE).parent
    try:
        summary = evaluation_summary(folder)
    except (OSError, KeyError, TypeError, ValueError):
        return {}
    main = summary["main"]
    out = {} if summary["guidance_scale"] is None else {"guidance_scale": summary["guidance_scale"]}
    if main and isinstance(main.get("fid"), dict):
        out.update(fid=main["fid"]["fid"], fid_n=main["fid"].get("n_gen"), fid_sampler=main.get("sampler"),
                   fid_steps=main.get("steps"))
    return out


def _beta_of(name: str, metrics: dict[str, Any], training_config: dict[str, Any] | None) -> float | None:
    for d in (metrics, training_config or {}):
        if isinstance(d.get("beta"), (int, float)):
            return float(d["beta"])
    if "beta" in name:  # "vae-conv-z2-beta1e-3" → 1e-3
        try:
            return float(name.rsplit("beta", 1)[1].split("-")[0].replace("_", "-"))
        except ValueError:
            return None
    return None


def load_test_digits(n: int) -> TestDigits | None:
    """The first `n` digits of the official MNIST test set (None, logged, when MNIST is unavailable)."""
    try:
        _, held_out = load_splits("official", limit=n)
        return TestDigits(held_out.as_float(), held_out.labels.numpy())
    except Exception as err:
        _log(f"no test digits ({type(err).__name__}: {err}); latent maps and calibration are off")
        return None


def _calibration_cache_file(entry: VAEEntry, test: TestDigits) -> Path:
    """Keyed by the weights and the digits themselves, so a retrained model or other data never reuses it."""
    h = hashlib.sha256(b"space-calibration-v1")
    for key, value in sorted(entry.model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    h.update(test.images.numpy().tobytes())
    root = os.environ.get(CALIBRATION_CACHE_ENV) or cache_dir("space-calibration")
    return Path(root) / f"{h.hexdigest()[:32]}.npz"


def _calibrate(entry: VAEEntry, test: TestDigits) -> None:
    """Posterior means and sorted −ELBO of the test digits; cached on disk (a warm start skips the passes)."""
    cache = _calibration_cache_file(entry, test)
    try:
        with np.load(cache, allow_pickle=False) as saved:
            means, calibration = saved["means"], saved["calibration"]
    except (OSError, KeyError, ValueError):
        scores, means = [], []
        for start in range(0, len(test.images), 500):
            labels = torch.as_tensor(test.labels[start:start + 500]).long() if entry.conditional else None
            _, _, score, mean = negative_elbo(entry.model, test.images[start:start + 500], labels)
            scores.append(score), means.append(mean)
        means, calibration = torch.cat(means).numpy(), np.sort(torch.cat(scores).numpy())
        try:  # best effort: a read-only disk only costs the recomputation next time
            with atomic_path(cache) as tmp:
                np.savez(tmp, means=means, calibration=calibration)
        except OSError:
            pass
    entry.means, entry.labels, entry.calibration = means, test.labels, calibration
    spread = float(np.percentile(np.abs(entry.means), 99.5)) if len(entry.means) else 3.0
    entry.limit = float(min(MAX_LATENT_ABS, max(3.0, math.ceil(spread * 1.1))))


def _dataset_of(training_config: dict[str, Any] | None) -> tuple[tuple[str, ...] | None, str | None]:
    """(label names, dataset name) a run's training_config.json records (None, None: MNIST, as released)."""
    dataset = (training_config or {}).get("dataset")
    name = dataset.get("name") if isinstance(dataset, dict) else None
    return label_names_of(training_config), str(name) if name is not None else None


def load_vae(reg: Registry, name: str, source: str, files: RepoFiles, hub_kwargs: Mapping[str, Any]) -> None:
    """The Space's handler for a VAE: its entry, with its β, its released evaluation and its data's class names."""
    model = load(source, **hub_kwargs).eval()
    metrics = files.try_json("metrics.json") or {}
    training_config = files.try_json("training_config.json")
    beta = _beta_of(name, metrics, training_config)
    labels, dataset = _dataset_of(training_config)
    reg.vaes[name] = VAEEntry(name, source, model, beta, metrics, read_evaluation(files, "vae"), labels, dataset)


def load_ddpm(reg: Registry, name: str, source: str, files: RepoFiles, hub_kwargs: Mapping[str, Any]) -> None:
    """The Space's handler for a DDPM pipeline: its U-Net, scheduler, metrics and the FID it was released with."""
    pipeline = load(source, **hub_kwargs)
    # metrics.json is training; the FID comes after, from evaluation.json
    metrics = {**(files.try_json("metrics.json") or {}), **ddpm_evaluation(files)}
    unet = pipeline.unet.eval()
    labels, dataset = _dataset_of(files.try_json("training_config.json"))
    reg.ddpms[name] = DDPMEntry(name, source, unet, dict(pipeline.scheduler.config), metrics,
                                cpu_dtype=cpu_precision(unet), label_names=labels, dataset_name=dataset)


def load_classifier(reg: Registry, name: str, source: str, files: RepoFiles, hub_kwargs: Mapping[str, Any]
                    ) -> None:
    """The Space's handler for the digit classifier (Reconstruct and Complete read their digits with it)."""
    files.weights()  # complete safetensors, never a pickle
    reg.classifier = DigitClassifier.from_pretrained(source, use_safetensors=True, **hub_kwargs).eval()


# The handler of each model kind (`hub_models.models.registry.kind_of`), all with one signature.
SPACE_LOADERS: dict[str, Callable[[Registry, str, str, RepoFiles, Mapping[str, Any]], None]] = {
    "vae": load_vae, "ddpm": load_ddpm, "classifier": load_classifier}


def _load_one(reg: Registry, name: str, source: str, hub_kwargs: Mapping[str, Any]) -> None:
    files = open_source(source, hub_kwargs)
    kind, config = model_kind(files, hub_kwargs)
    handler = SPACE_LOADERS.get(kind)
    if handler is None:
        raise SpaceError(f"{source}: unknown model class {config.get('_class_name')!r}")
    handler(reg, name, source, files, hub_kwargs)
    _log(f"loaded {name} ({kind}) from {source}")


def load_registry(sources: Mapping[str, str], calibration_digits: int | None = None) -> Registry:
    """Load every source once; record failures instead of raising."""
    t0 = time.perf_counter()
    reg = Registry(sources=dict(sources))
    n = calibration_digits if calibration_digits is not None else int(
        os.environ.get(CALIBRATION_ENV, DEFAULT_CALIBRATION_DIGITS))
    remote = [s for s in sources.values() if not _looks_like_folder(s)]
    hub_kwargs = {} if not remote or hub_reachable() else {"local_files_only": True}
    for name, source in sources.items():
        try:
            _load_one(reg, name, source, {} if _looks_like_folder(source) else hub_kwargs)
        except Exception as err:
            reg.errors[name] = (str(err) if isinstance(err, SpaceError)
                                else f"could not load {source} ({type(err).__name__}: {err})")
            _log(reg.errors[name])
    # The calibration digits are MNIST's: a VAE of other images gets no anomaly percentile and no latent map.
    if any(e.mnist_like for e in reg.vaes.values()) and n > 0:
        reg.test = load_test_digits(n)
        if reg.test is not None:
            for entry in (e for e in reg.vaes.values() if e.mnist_like):
                _calibrate(entry, reg.test)
                latent_map(entry, (0, 1))  # drawn now so the first visitor does not wait
    reg.load_seconds = time.perf_counter() - t0
    _log(f"{len(reg.vaes)} VAE(s), {len(reg.ddpms)} DDPM(s), classifier: {reg.classifier is not None}, "
         f"{0 if reg.test is None else len(reg.test.labels)} calibration digits, {reg.load_seconds:.2f} s")
    return reg


__all__ = ["CALIBRATION_CACHE_ENV", "CALIBRATION_ENV", "DEFAULT_CALIBRATION_DIGITS", "MODELS_DIR_ENV", "MODELS_ENV",
           "SPACE_LOADERS", "ddpm_evaluation", "hub_reachable", "load_classifier", "load_ddpm", "load_registry",
           "load_test_digits", "load_vae", "model_kind", "open_source", "read_evaluation", "resolve_model_sources"]
