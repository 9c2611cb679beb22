"""Everything the Gradio Space computes: loading the models once, the latent maps, decoding, interpolation,
DDPM streaming and the calibrated anomaly score. `spaces_app/app.py` only wires these to widgets.

Models come from a list of *sources* (local folders or Hub repo ids — the same `from_pretrained` either way);
a source that fails to load is recorded with its error and the matching tab shows that message instead of
crashing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from PIL import Image, ImageDraw

from hub_models.data import load_splits
from hub_models.diffusion.inpainting import (
    DEFAULT_COMPLETION_STEPS,
    DEFAULT_DENOISE_STEPS,
    DEFAULT_JUMP_LENGTH,
    DEFAULT_JUMP_N_SAMPLE,
    complete,
    denoise,
)
from hub_models.diffusion.sampling import (
    DEFAULT_GUIDANCE_SCALE,
    SAMPLERS,
    is_class_conditional,
    num_classes,
    sample_images,
)
from hub_models.evaluation import EVALUATION_FILE, Evaluation
from hub_models.evaluation.completion import half_mask, vae_complete
from hub_models.evaluation.ddpm import evaluation_summary
from hub_models.figures import DIGIT_CMAP, figure_to_pil, manifold_grid, to_pil
from hub_models.hub.load import RepoFiles, load
from hub_models.hub.naming import release_repo_ids, vae_run_name
from hub_models.io import BF16_EMULATED, atomic_path, cache_dir, compute_device, log, native_cpu_bf16
from hub_models.models import ConvVAE, DenseVAE, DigitClassifier
from hub_models.models.registry import kind_of
from hub_models.models.vae import BetaVAE, bernoulli_bce, kl_to_standard_normal
from hub_models.reference import DEFAULT_NAMESPACE, STUDY_BETAS

MODELS_ENV = "GENLAB_MODELS"  # "name=source,..." or "source,...": overrides everything
MODELS_DIR_ENV = "GENLAB_MODELS_DIR"  # local folders named like the model names win over repo ids
CALIBRATION_ENV = "GENLAB_CALIBRATION_DIGITS"
# The DDPM's U-Net precision on the CPU: "auto" (time both at start-up, keep bf16 only where it is clearly faster:
# CPUs with AVX512-BF16/AMX), "bf16" or "fp32". The sampler sweep measures its FIDs in bf16.
PRECISION_ENV = "GENLAB_DDPM_PRECISION"
BF16_MIN_SPEEDUP = 1.15
CALIBRATION_CACHE_ENV = "GENLAB_CALIBRATION_CACHE"  # folder of cached calibrations (default: the MNIST cache)
DEFAULT_CALIBRATION_DIGITS = 2000

MAX_LATENT_ABS = 50.0  # beyond this a decoder only extrapolates; API values are clamped to it
MAX_IMAGES = 64
MAX_DDPM_STEPS = 1000
# The default path of docs/PROTOCOL.md's rule (issue 15) on the candidates measured so far: of the paths within
# 1.0 s for 16 digits, SDE-DPM-Solver++ at 10 steps has the lowest held-out FID (10.75 at N=2,000 vs 12.81 for
# ancestral 10 steps), 1.54× the best point's (7.00): docs/DDPM.md ("The frontier of the full-recipe model").
DEFAULT_SAMPLER = "sde-dpmsolver++"
DEFAULT_DDPM_STEPS = 10  # one UNet call per step: 16 digits of the 3.3M UNet in 0.87 s of one bf16 CPU thread
DEFAULT_COUNT = 16  # digits per grid, VAE and DDPM alike
# A class-conditional DDPM: which digit ("any": unconditional, the null class; a digit; or a row per digit) and
# the classifier-free guidance w (ε = ε_∅ + w·(ε_c − ε_∅): 0 unconditional, 1 the model as trained).
ANY_DIGIT, EVERY_DIGIT = "any", "0–9 (a row each)"
DIGIT_CHOICES = (ANY_DIGIT, *map(str, range(10)), EVERY_DIGIT)
MAX_GUIDANCE = 10.0
MAX_PER_DIGIT = 6  # a row per digit: about `count` digits in all, 1–6 per row
DIGIT_SCALE = 10  # 28 px → 280 px, nearest-neighbour
LIVE_SCALE = 4  # the live slider digit: 112 px (PNG encoding of 280 px costs ~6 ms more); CSS upscales it
# The browser decodes the live slider itself (`decoder_js.DECODER_JS`) for decoders up to this size: the Conv VAEs
# (~28k–35k weights, ~150 kB as base64) fit; a Dense VAE (~535k weights, 2.8 MB) stays on the server.
MAX_BROWSER_WEIGHTS = 100_000


class SpaceError(ValueError):
    """A problem to show to the user as is (bad value, missing model, ...)."""


def _log(msg: str) -> None:
    log("space", msg)


# ----------------------------------------------------------------------------------------------------
# Where the models come from
# ----------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------
# Loaded models
# ----------------------------------------------------------------------------------------------------
@dataclass
class TestDigits:
    """Held-out digits used for the latent maps, the anomaly calibration and the test-set picks."""

    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    labels: np.ndarray  # (N,)


@dataclass
class VAEEntry:
    name: str
    source: str
    model: BetaVAE
    beta: float | None
    metrics: dict[str, Any]
    evaluation: Evaluation | None = None  # its evaluation.json (FID of prior samples, held-out metrics)
    means: np.ndarray | None = None  # (N, latent_dim) posterior means of the test digits
    calibration: np.ndarray | None = None  # sorted −ELBO (nats) of the test digits
    labels: np.ndarray | None = None  # (N,) their digits
    limit: float = 3.0  # latent range shown by the sliders and the map
    maps: dict[tuple[int, int], LatentMap] = field(default_factory=dict, repr=False)

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.latent_dim)

    @property
    def conditional(self) -> bool:
        """A conditional VAE: every decode takes a digit (the sliders move style within it)."""
        return bool(getattr(self.model, "is_conditional", False))

    @property
    def arch(self) -> str:
        return "Conv" if type(self.model).__name__ == "ConvVAE" else "Dense"

    @property
    def label(self) -> str:
        beta = "?" if self.beta is None else f"{self.beta:g}"
        return f"{self.name} — {self.arch} VAE, z={self.latent_dim}, β={beta}"


@dataclass
class DDPMEntry:
    name: str
    source: str
    unet: Any
    scheduler_config: dict[str, Any]
    metrics: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one sampling call at a time
    cpu_dtype: torch.dtype | None = None  # the U-Net's autocast dtype on the CPU (None: fp32), `cpu_precision`

    @property
    def conditional(self) -> bool:
        """A class-conditional UNet (a digit can be asked for, with classifier-free guidance)."""
        return is_class_conditional(self.unet)

    @property
    def default_guidance(self) -> float:
        """The w its evaluation chose (docs/PROTOCOL.md's guidance table), else the model as trained (1)."""
        w = self.metrics.get("guidance_scale")
        return float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else DEFAULT_GUIDANCE_SCALE


@dataclass
class Registry:
    """All models, loaded once at start-up, and the errors of those that could not be."""

    vaes: dict[str, VAEEntry] = field(default_factory=dict)
    ddpms: dict[str, DDPMEntry] = field(default_factory=dict)  # in the order of the sources: the first is the default
    classifier: Any = None
    test: TestDigits | None = None
    errors: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    load_seconds: float = 0.0

    def vae(self, name: str | None) -> VAEEntry:
        if not self.vaes:
            raise SpaceError("No VAE is loaded. " + self.describe_errors("vae"))
        # Checked as a string first: an API call may send a list or dict (unhashable: a TypeError in `in`).
        if not isinstance(name, str) or name not in self.vaes:
            shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "…"  # never echo a huge value
            raise SpaceError(f"Unknown VAE {shown}; choose one of: {', '.join(self.vaes)}.")
        return self.vaes[name]

    @property
    def ddpm(self) -> DDPMEntry | None:
        """The default DDPM (the first loaded), or None."""
        return next(iter(self.ddpms.values()), None)

    def require_ddpm(self, name: Any = None) -> DDPMEntry:
        """The DDPM called `name` (None: the default one)."""
        if not self.ddpms:
            raise SpaceError("The DDPM is not loaded. " + self.describe_errors("ddpm"))
        if name is None:
            return self.ddpm
        if not isinstance(name, str) or name not in self.ddpms:
            shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "…"
            raise SpaceError(f"Unknown DDPM {shown}; choose one of: {', '.join(self.ddpms)}.")
        return self.ddpms[name]

    def describe_errors(self, about: str = "") -> str:
        """The load errors of the models whose name contains `about` (all of them if none does)."""
        errors = {n: e for n, e in self.errors.items() if about in n} or self.errors
        return " ".join(f"{name}: {err}." for name, err in errors.items())


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


def study_series(reg: Registry) -> list[str]:
    """The loaded VAEs of the study's β comparison (Conv, z = 2, β = 1e-3 / 1 / 20), else the first three."""
    picks = [name for name in (vae_run_name("conv", 2, beta) for beta in STUDY_BETAS) if name in reg.vaes]
    return picks or unconditional_vaes(reg)[:3]


def load_test_digits(n: int) -> TestDigits | None:
    """The first `n` digits of the official MNIST test set (None, logged, when MNIST is unavailable)."""
    try:
        _, held_out = load_splits("official", limit=n)
        return TestDigits(held_out.as_float(), held_out.labels.numpy())
    except Exception as err:
        _log(f"no test digits ({type(err).__name__}: {err}); latent maps and calibration are off")
        return None


@torch.inference_mode()
def negative_elbo(model: BetaVAE, x: torch.Tensor, labels: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic per-image (BCE, KLD, −ELBO, μ): the decoder is evaluated at the posterior mean. `labels`:
    the digits, for a conditional VAE (its encoder and decoder both take them)."""
    mean, logvar = model.encode(x, labels)
    bce = bernoulli_bce(model.decode_logits(mean, labels), x)
    kld = kl_to_standard_normal(mean, logvar)
    return bce, kld, bce + kld, mean


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


def load_registry(sources: Mapping[str, str], calibration_digits: int | None = None) -> Registry:
    """Load every source once; record failures instead of raising."""
    t0 = time.perf_counter()
    reg = Registry(sources=dict(sources))
    n = calibration_digits if calibration_digits is not None else int(
        os.environ.get(CALIBRATION_ENV, DEFAULT_CALIBRATION_DIGITS))
    remote = [s for s in sources.values() if not _looks_like_folder(s)]
    hub_kwargs = {} if not remote or hub_reachable() else {"local_files_only": True}
    for name, source in sources.items():
        kw = {} if _looks_like_folder(source) else hub_kwargs
        try:
            files = open_source(source, kw)
            kind, config = model_kind(files, kw)
            metrics = files.try_json("metrics.json") or {}
            if kind == "vae":
                model = load(source, **kw).eval()
                beta = _beta_of(name, metrics, files.try_json("training_config.json"))
                reg.vaes[name] = VAEEntry(name, source, model, beta, metrics, read_evaluation(files, "vae"))
            elif kind == "ddpm":
                pipeline = load(source, **kw)
                metrics = {**metrics, **ddpm_evaluation(files)}  # metrics.json is training; the FID comes after
                unet = pipeline.unet.eval()
                reg.ddpms[name] = DDPMEntry(name, source, unet, dict(pipeline.scheduler.config), metrics,
                                            cpu_dtype=cpu_precision(unet))
            elif kind == "classifier":
                files.weights()  # complete safetensors, never a pickle
                reg.classifier = DigitClassifier.from_pretrained(source, use_safetensors=True, **kw).eval()
            else:
                raise SpaceError(f"{source}: unknown model class {config.get('_class_name')!r}")
            _log(f"loaded {name} ({kind}) from {source}")
        except Exception as err:
            reg.errors[name] = (str(err) if isinstance(err, SpaceError)
                                else f"could not load {source} ({type(err).__name__}: {err})")
            _log(reg.errors[name])
    if reg.vaes and n > 0:
        reg.test = load_test_digits(n)
        if reg.test is not None:
            for entry in reg.vaes.values():
                _calibrate(entry, reg.test)
                latent_map(entry, (0, 1))  # drawn now so the first visitor does not wait
    reg.load_seconds = time.perf_counter() - t0
    _log(f"{len(reg.vaes)} VAE(s), {len(reg.ddpms)} DDPM(s), classifier: {reg.classifier is not None}, "
         f"{0 if reg.test is None else len(reg.test.labels)} calibration digits, {reg.load_seconds:.2f} s")
    return reg


# ----------------------------------------------------------------------------------------------------
# Checking values that arrive from the UI or the API
# ----------------------------------------------------------------------------------------------------
def as_float(value: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SpaceError(f"{what} must be a number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(x):
        raise SpaceError(f"{what} must be a finite number, got {x}.")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise SpaceError(f"{what} must be between {lo:g} and {hi:g}, got {x:g}.")
    return x


def as_int(value: Any, what: str, lo: int, hi: int) -> int:
    x = as_float(value, what, lo, hi)
    if x != int(x):
        raise SpaceError(f"{what} must be a whole number, got {x:g}.")
    return int(x)


def as_seed(value: Any) -> int:
    if value is None or value == "":
        return 0
    return as_int(value, "The seed", 0, 2**63 - 1)


def as_latent(values: list[Any], latent_dim: int) -> torch.Tensor:
    """The first `latent_dim` slider values as a `(1, latent_dim)` tensor; missing ones are 0."""
    z = [as_float(v, f"z{i + 1}", -MAX_LATENT_ABS, MAX_LATENT_ABS) for i, v in enumerate(list(values)[:latent_dim])]
    z += [0.0] * (latent_dim - len(z))
    return torch.tensor([z], dtype=torch.float32)


# ----------------------------------------------------------------------------------------------------
# Generation, decoding, maps
# ----------------------------------------------------------------------------------------------------
def grid_columns(n: int) -> int:
    return max(1, min(8, math.ceil(math.sqrt(n))))


@torch.inference_mode()
def vae_generate(entry: VAEEntry, count: Any, seed: Any) -> Image.Image:
    """`count` digits decoded from z ~ N(0, I) with a seeded generator. A conditional VAE draws a row per digit
    (about `count` digits in all, 1–6 per row)."""
    n = as_int(count, "The number of digits", 1, MAX_IMAGES)
    generator = torch.Generator().manual_seed(as_seed(seed))
    if entry.conditional:
        classes = entry.model.num_classes
        per = max(1, min(MAX_PER_DIGIT, round(n / classes)))
        labels = torch.arange(classes).repeat_interleave(per)
        return to_pil(entry.model.sample(len(labels), generator=generator, labels=labels), nrow=per, scale=4)
    images = entry.model.sample(n, generator=generator)
    return to_pil(images, nrow=grid_columns(n), scale=4)


def vae_digit(entry: VAEEntry, digit: Any) -> int | None:
    """The digit a conditional VAE decodes (checked; a missing one is 0); None for an unconditional VAE."""
    if not entry.conditional:
        return None
    if digit is None or digit == "":
        return 0
    if isinstance(digit, bool):
        raise SpaceError(f"The digit must be a whole number 0–{entry.model.num_classes - 1}.")
    return as_int(digit, "The digit", 0, entry.model.num_classes - 1)


def require_unconditional(entry: VAEEntry, what: str) -> VAEEntry:
    """`entry`, or a SpaceError for a conditional VAE in a tab that cannot give it the digit."""
    if entry.conditional:
        raise SpaceError(f"{entry.name} is a conditional VAE: {what} needs an unconditional one (the conditional "
                         "VAE is in Generate and the latent explorer).")
    return entry


def unconditional_vaes(reg: Registry) -> list[str]:
    """The VAEs that need no digit: those of Reconstruct, Interpolate and Complete (which have no digit to give)."""
    return [name for name, e in reg.vaes.items() if not e.conditional]


@torch.inference_mode()
def decode_latent(entry: VAEEntry, values: list[Any], digit: Any = None) -> Image.Image:
    """One digit decoded from slider values, 112×112 crisp pixels (the live-slider path: well under 1 ms); a
    conditional VAE decodes the style `values` as the digit `digit`."""
    z = as_latent(values, entry.latent_dim)
    return to_pil(entry.model.decode(z, vae_digit(entry, digit)), nrow=1, padding=0, scale=LIVE_SCALE)


def _b64(t: torch.Tensor) -> str:
    """A tensor as base64 of its little-endian float32 bytes (what JavaScript's Float32Array reads)."""
    return base64.b64encode(t.detach().cpu().float().contiguous().numpy().astype("<f4").tobytes()).decode()


def browser_decoder(entry: VAEEntry, max_weights: int = MAX_BROWSER_WEIGHTS) -> dict[str, Any] | None:
    """The decoder as data for `hub_models.space.decoder_js` (the live slider decoded in the browser), or None when
    the browser cannot run it (a layer the JavaScript lacks, over `max_weights` weights): the slider then decodes on
    the server, through `/decode_latent`. A conditional VAE's first layer takes z and the one-hot digit
    (`num_classes` > 0): the browser appends the one-hot of the chosen digit to the sliders' values.

    Returns `{"name", "latent_dim", "num_classes", "weights", "layers": [...]}`; each layer is `{"type": "linear", "in",
    "out", "weight", "bias"}`, `{"type": "relu"}`, `{"type": "reshape", "shape"}` or `{"type":
    "conv_transpose2d", "in", "out", "kernel", "stride", "padding", "output_padding", "weight", "bias"}` with
    weights as base64 float32 in PyTorch's layout; a sigmoid on the last layer gives the pixels."""
    model = entry.model
    if isinstance(model, ConvVAE):
        modules = [model.decoder_input, *model.decoder]
    elif isinstance(model, DenseVAE):
        modules = list(model.decoder)
    else:
        return None
    layers: list[dict[str, Any]] = []
    for m in modules:
        if isinstance(m, torch.nn.Linear) and m.bias is not None:
            layers.append({"type": "linear", "in": m.in_features, "out": m.out_features,
                           "weight": _b64(m.weight), "bias": _b64(m.bias)})
        elif isinstance(m, torch.nn.ReLU):
            layers.append({"type": "relu"})
        elif isinstance(m, torch.nn.Unflatten) and m.dim == 1:
            layers.append({"type": "reshape", "shape": list(m.unflattened_size)})
        elif (isinstance(m, torch.nn.ConvTranspose2d) and m.bias is not None and m.groups == 1
              and m.dilation == (1, 1) and m.kernel_size[0] == m.kernel_size[1] and m.stride[0] == m.stride[1]
              and m.padding[0] == m.padding[1] and m.output_padding[0] == m.output_padding[1]):
            layers.append({"type": "conv_transpose2d", "in": m.in_channels, "out": m.out_channels,
                           "kernel": m.kernel_size[0], "stride": m.stride[0], "padding": m.padding[0],
                           "output_padding": m.output_padding[0], "weight": _b64(m.weight), "bias": _b64(m.bias)})
        else:
            return None  # a layer the JavaScript does not implement: the server decodes
    weights = sum(p.numel() for m in modules for p in m.parameters())
    if weights > max_weights:
        return None
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if not layers or layers[0]["type"] != "linear" or layers[0]["in"] != entry.latent_dim + num_classes:
        return None  # the label enters elsewhere than the first layer: the server decodes
    return {"name": entry.name, "latent_dim": entry.latent_dim, "num_classes": num_classes, "weights": weights,
            "layers": layers}


@dataclass
class LatentMap:
    """A scatter of the test digits' means over two latent dims, with the pixel ↔ latent mapping."""

    image: np.ndarray  # (H, W, 3) uint8
    box: tuple[float, float, float, float]  # axes in image pixels: left, top, right, bottom
    limit: float
    dims: tuple[int, int]

    def to_latent(self, px: float, py: float) -> tuple[float, float] | None:
        left, top, right, bottom = self.box
        if not (left <= px <= right and top <= py <= bottom):
            return None
        u = -self.limit + (px - left) / (right - left) * 2 * self.limit
        v = self.limit - (py - top) / (bottom - top) * 2 * self.limit
        return u, v

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        left, top, right, bottom = self.box
        u, v = np.clip([u, v], -self.limit, self.limit)
        return left + (u + self.limit) / (2 * self.limit) * (right - left), \
            top + (self.limit - v) / (2 * self.limit) * (bottom - top)

    def with_marker(self, z: torch.Tensor | None) -> Image.Image:
        im = Image.fromarray(self.image)
        if z is not None:
            z = z.flatten()
            x, y = self.to_pixel(float(z[self.dims[0]]), float(z[self.dims[1]]))
            draw = ImageDraw.Draw(im)
            draw.ellipse((x - 7, y - 7, x + 7, y + 7), outline=(0, 0, 0), width=3)
            draw.ellipse((x - 5, y - 5, x + 5, y + 5), outline=(255, 255, 255), width=2)
        return im


def _render_map(entry: VAEEntry, dims: tuple[int, int]) -> LatentMap:
    fig = plt.figure(figsize=(4.8, 4.4), dpi=100)
    ax = fig.add_axes((0.12, 0.11, 0.70, 0.80))
    limit = entry.limit
    if entry.means is not None and entry.labels is not None:
        pts = entry.means[:, list(dims)]
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=entry.labels, cmap=DIGIT_CMAP, s=4, alpha=0.75,
                        vmin=-0.5, vmax=9.5, linewidths=0)
        cax = fig.add_axes((0.85, 0.11, 0.03, 0.80))
        fig.colorbar(sc, cax=cax, ticks=range(10)).set_label("digit")
    else:
        ax.text(0, 0, "no test digits available", ha="center", va="center")
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel=f"z{dims[0] + 1}", ylabel=f"z{dims[1] + 1}")
    ax.grid(alpha=0.2)
    fig.canvas.draw()
    bbox = ax.get_window_extent()  # display pixels, origin bottom-left
    height = fig.canvas.get_width_height()[1]
    box = (bbox.x0, height - bbox.y1, bbox.x1, height - bbox.y0)
    image = np.asarray(figure_to_pil(fig))
    return LatentMap(image=image, box=box, limit=limit, dims=dims)


_MAP_LOCK = threading.Lock()  # matplotlib is not thread-safe; maps are drawn once per (model, dims)


def latent_map(entry: VAEEntry, dims: Any = (0, 1)) -> LatentMap:
    """The (cached) scatter of the test set over `dims`."""
    dims = check_dims(entry, dims)
    with _MAP_LOCK:
        if dims not in entry.maps:
            entry.maps[dims] = _render_map(entry, dims)
        return entry.maps[dims]


def check_dims(entry: VAEEntry, dims: Any) -> tuple[int, int]:
    try:
        i, j = (int(str(d).lstrip("z")) - 1 if isinstance(d, str) else int(d) for d in dims)
    except (TypeError, ValueError):
        raise SpaceError(f"Choose two latent dimensions, got {dims!r}.") from None
    if not (0 <= i < entry.latent_dim and 0 <= j < entry.latent_dim) or i == j:
        raise SpaceError(f"Choose two different dimensions among z1…z{entry.latent_dim}.")
    return i, j


@torch.inference_mode()
def latent_grid(entry: VAEEntry, values: list[Any], dims: Any = (0, 1), n: int = 15, digit: Any = None
                ) -> Image.Image:
    """An n×n grid of decodes over `dims` in [−limit, limit]² (y up), the other dims held at the sliders; a
    conditional VAE decodes every point as the digit `digit` (its styles)."""
    dims = check_dims(entry, dims)
    z = as_latent(values, entry.latent_dim)
    label = vae_digit(entry, digit)
    return manifold_grid(lambda zs: entry.model.decode(zs, label), n=n, limit=entry.limit, scale=2, fixed=z[0],
                         dims=dims)


# ----------------------------------------------------------------------------------------------------
# Reconstruction and anomaly score
# ----------------------------------------------------------------------------------------------------
@dataclass
class Reconstruction:
    name: str
    image: Image.Image
    bce: float
    kld: float
    neg_elbo: float
    percentile: float | None  # share of test digits with a lower −ELBO, in %


def anomaly_percentile(entry: VAEEntry, neg_elbo: float) -> float | None:
    """Percentile rank of a −ELBO among the calibration digits (100 = worse than every test digit)."""
    if entry.calibration is None or len(entry.calibration) == 0:
        return None
    return 100.0 * float(np.searchsorted(entry.calibration, neg_elbo, side="left")) / len(entry.calibration)


@torch.inference_mode()
def reconstruct(entry: VAEEntry, x: torch.Tensor) -> Reconstruction:
    """Reconstruct a prepared digit `(1, 1, 28, 28)` and score it against the test set."""
    require_unconditional(entry, "reconstructing a digit")
    if not torch.isfinite(x).all():
        raise SpaceError("The digit contains NaN values.")
    bce, kld, score, mean = negative_elbo(entry.model, x)
    recon = entry.model.decode(mean)
    s = float(score[0])
    return Reconstruction(entry.name, to_pil(recon, nrow=1, padding=0, scale=DIGIT_SCALE), float(bce[0]),
                          float(kld[0]), s, anomaly_percentile(entry, s))


def classify(registry: Registry, x: torch.Tensor) -> tuple[int, float] | None:
    if registry.classifier is None:
        return None
    probs, _, labels = registry.classifier.predict(x)
    return int(labels[0]), float(probs[0].max())


def test_digit(registry: Registry, digit: Any = None, seed: Any = None) -> tuple[torch.Tensor, int, int]:
    """A test digit `(1, 1, 28, 28)`, its label and index: of class `digit` (or any), chosen by `seed`."""
    if registry.test is None:
        raise SpaceError("The MNIST test set is not available on this server.")
    labels = registry.test.labels
    if digit in (None, "", "any"):
        pool = np.arange(len(labels))
    else:
        d = as_int(digit, "The digit", 0, 9)
        pool = np.nonzero(labels == d)[0]
        if len(pool) == 0:
            raise SpaceError(f"No test digit {d} is loaded.")
    rng = np.random.default_rng(None if seed in (None, "") else as_seed(seed))
    idx = int(pool[rng.integers(len(pool))])
    return registry.test.images[idx:idx + 1], int(labels[idx]), idx


# ----------------------------------------------------------------------------------------------------
# Interpolation
# ----------------------------------------------------------------------------------------------------
def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation between latents `a`, `b` `(latent_dim,)` at times `t` `(steps,)`:
    `(steps, latent_dim)`."""
    return a[None] + t[:, None] * (b - a)[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake; White 2016 for generative models): follows the arc between the two
    directions, which keeps a Gaussian prior's typical norm. Falls back to lerp for (anti)parallel vectors."""
    na, nb = a.norm(), b.norm()
    if na < 1e-8 or nb < 1e-8:
        return lerp(a, b, t)
    cos = torch.clamp(torch.dot(a / na, b / nb), -1.0, 1.0)
    theta = torch.arccos(cos)
    if theta < 1e-4 or math.pi - theta < 1e-4:
        return lerp(a, b, t)
    s = torch.sin(theta)
    return (torch.sin((1 - t) * theta) / s)[:, None] * a[None] + (torch.sin(t * theta) / s)[:, None] * b[None]


@torch.inference_mode()
def interpolate(entry: VAEEntry, xa: torch.Tensor, xb: torch.Tensor, steps: Any = 10,
                mode: str = "lerp") -> Image.Image:
    """A strip: input A, decodes along the path between the two latent means, input B."""
    require_unconditional(entry, "interpolating")
    n = as_int(steps, "The number of steps", 2, 32)
    if mode not in ("lerp", "slerp"):
        raise SpaceError(f"Unknown interpolation {mode!r}: use 'lerp' or 'slerp'.")
    means, _ = entry.model.encode(torch.cat([xa, xb]))
    path = (lerp if mode == "lerp" else slerp)(means[0], means[1], torch.linspace(0, 1, n))
    strip = torch.cat([xa, entry.model.decode(path), xb])
    return to_pil(strip, nrow=n + 2, scale=4)


# ----------------------------------------------------------------------------------------------------
# DDPM: streaming samples
# ----------------------------------------------------------------------------------------------------
class _Cancelled(Exception):
    pass


@contextlib.contextmanager
def on_device(entry: DDPMEntry, device: torch.device | str | None) -> Iterator[Any]:
    """The entry's UNet on `device` for the duration of a call, back on the CPU after it: on ZeroGPU a GPU is
    attached only inside a `@spaces.GPU` call. One call at a time per model (the lock), so a cancelled
    sampling thread that is finishing its last step never shares the UNet with the next call."""
    device = torch.device(device or "cpu")
    with entry.lock:
        try:
            yield entry.unet.to(device)
        finally:
            if device.type != "cpu":
                entry.unet.to("cpu")


@dataclass(frozen=True)
class DDPMRequest:
    """A DDPM call's arguments, checked: what `sample_images` gets and how the grid is laid out."""

    sampler: str
    steps: int
    count: int
    seed: int
    class_labels: list[int] | None  # None: unconditional
    guidance: float | None
    nrow: int  # grid columns

    def describe(self) -> str:
        if self.class_labels is None:
            return ""
        which = "a row per digit" if len(set(self.class_labels)) > 1 else f"digit {self.class_labels[0]}"
        return f" · {which}, guidance {self.guidance:g}"


def ddpm_request(entry: DDPMEntry, sampler: Any = DEFAULT_SAMPLER, steps: Any = DEFAULT_DDPM_STEPS,
                 count: Any = DEFAULT_COUNT, seed: Any = 0, digit: Any = ANY_DIGIT,
                 guidance: Any = DEFAULT_GUIDANCE_SCALE) -> DDPMRequest:
    """Check a DDPM call's values (each bad one gets its own message). `digit` is "any" (unconditional), a digit,
    or `EVERY_DIGIT` (one row per digit, about `count` digits in all); a digit needs a class-conditional model."""
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        shown = repr(sampler) if len(repr(sampler)) <= 60 else repr(sampler)[:57] + "…"  # never echo a huge value
        raise SpaceError(f"Unknown sampler {shown}: choose one of {', '.join(SAMPLERS)}.")
    n_steps = as_int(steps, "The number of steps", 1, MAX_DDPM_STEPS)
    n = as_int(count, "The number of digits", 1, MAX_IMAGES)
    seed = as_seed(seed)
    w = as_float(DEFAULT_GUIDANCE_SCALE if guidance is None else guidance, "The guidance scale", 0, MAX_GUIDANCE)
    if digit is None or (isinstance(digit, str) and digit.strip().lower() in ("", ANY_DIGIT)):
        return DDPMRequest(sampler, n_steps, n, seed, None, None, grid_columns(n))
    if not entry.conditional:
        raise SpaceError("This DDPM is unconditional: it cannot be asked for a digit (choose 'any').")
    classes = num_classes(entry.unet)
    if digit == EVERY_DIGIT:
        per = max(1, min(MAX_PER_DIGIT, round(n / classes)))
        labels = [d for d in range(classes) for _ in range(per)]
        return DDPMRequest(sampler, n_steps, len(labels), seed, labels, w, per)
    if isinstance(digit, bool):
        raise SpaceError(f"The digit must be a whole number 0–{classes - 1}, 'any' or '{EVERY_DIGIT}'.")
    d = as_int(digit, "The digit", 0, classes - 1)
    return DDPMRequest(sampler, n_steps, n, seed, [d] * n, w, grid_columns(n))


def cpu_precision(unet: torch.nn.Module, setting: str | None = None, repeats: int = 3) -> torch.dtype | None:
    """The autocast dtype the U-Net samples with on the CPU: `setting` (default `$GENLAB_DDPM_PRECISION`, "auto")
    "bf16" → bfloat16, "fp32" → None; "auto" times one denoising call of 16 digits both ways (alternating, best
    of `repeats`) and keeps bf16 only if it is ≥ `BF16_MIN_SPEEDUP`× faster: on CPUs without bf16 units autocast
    is slower than fp32."""
    setting = (setting or os.environ.get(PRECISION_ENV) or "auto").lower()
    if setting not in ("auto", "bf16", "fp32"):
        raise SpaceError(f"{PRECISION_ENV} must be auto, bf16 or fp32, not {setting[:20]!r}.")
    if setting != "auto":
        return torch.bfloat16 if setting == "bf16" else None
    if not native_cpu_bf16():  # timing it would cost seconds per call of the full-size U-Net
        _log(f"U-Net on the CPU: fp32 ({BF16_EMULATED})")
        return None
    size = unet.config.sample_size
    x = torch.zeros(16, unet.config.in_channels, size, size)
    t = torch.full((16,), 10)
    labels = {"class_labels": torch.zeros(16, dtype=torch.long)} if is_class_conditional(unet) else {}
    best = {None: float("inf"), torch.bfloat16: float("inf")}
    with torch.inference_mode():
        for i in range(repeats + 1):
            for dtype in best:
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                    unet(x, t, **labels)
                if i:  # the first round warms both up
                    best[dtype] = min(best[dtype], time.perf_counter() - t0)
    speedup = best[None] / best[torch.bfloat16]
    _log(f"U-Net on the CPU: fp32 {best[None] * 1000:.0f} ms, bf16 {best[torch.bfloat16] * 1000:.0f} ms per call "
         f"of 16 digits → {'bf16' if speedup >= BF16_MIN_SPEEDUP else 'fp32'}")
    return torch.bfloat16 if speedup >= BF16_MIN_SPEEDUP else None


def _sample(entry: DDPMEntry, req: DDPMRequest, device: torch.device | str | None, callback=None) -> torch.Tensor:
    with on_device(entry, device) as unet:
        dtype = entry.cpu_dtype if unet.device.type == "cpu" else None
        return sample_images(unet, entry.scheduler_config, sampler=req.sampler, num_inference_steps=req.steps,
                             num_images=req.count, generator=torch.Generator().manual_seed(req.seed),
                             callback=callback, class_labels=req.class_labels, guidance_scale=req.guidance,
                             autocast_dtype=dtype)


def ddpm_grid(entry: DDPMEntry, sampler: str = DEFAULT_SAMPLER, steps: Any = DEFAULT_DDPM_STEPS,
              count: Any = DEFAULT_COUNT, seed: Any = 0, digit: Any = ANY_DIGIT,
              guidance: Any = DEFAULT_GUIDANCE_SCALE, device: torch.device | str | None = None
              ) -> tuple[Image.Image, str]:
    """The final grid and status line `ddpm_stream` ends with for the same arguments, without the streaming
    (the Generate tab's first view is computed with it at start-up)."""
    req = ddpm_request(entry, sampler, steps, count, seed, digit, guidance)
    t0 = time.perf_counter()
    images = _sample(entry, req, device)
    return (to_pil(images, nrow=req.nrow, scale=3),
            f"{req.count} digits, {req.sampler}, {req.steps} steps, seed {req.seed}{req.describe()} "
            f"({time.perf_counter() - t0:.2f} s)")


def ddpm_stream(entry: DDPMEntry, sampler: str = DEFAULT_SAMPLER, steps: Any = DEFAULT_DDPM_STEPS,
                count: Any = DEFAULT_COUNT, seed: Any = 0, digit: Any = ANY_DIGIT,
                guidance: Any = DEFAULT_GUIDANCE_SCALE, max_updates: int = 12, heartbeat: float = 0.5,
                device: torch.device | str | None = None) -> Iterator[tuple[Image.Image | None, str]]:
    """Yield (grid, status) while the DDPM denoises: the model's current clean estimate about `max_updates`
    times, then the final samples; in between, every `heartbeat` seconds, (None, status) — progress text
    only. Closing the iterator (the UI's Stop button) stops the sampling thread at its next step; the
    heartbeat keeps the iterator closable within half a second even when steps are slow. `digit`/`guidance` ask a
    class-conditional model for a digit (`ddpm_request`). The UNet runs on `device` (default CPU) for the call;
    the images come back on the CPU."""
    req = ddpm_request(entry, sampler, steps, count, seed, digit, guidance)
    n, n_steps = req.count, req.steps
    every = max(1, math.ceil(n_steps / max_updates))
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()
    progress = [0]

    def callback(i: int, total: int, sample_t: torch.Tensor, pred_x0: torch.Tensor | None) -> None:
        if stop.is_set():
            raise _Cancelled
        progress[0] = i + 1
        if (i + 1) % every == 0 and i + 1 < total:
            preview = pred_x0 if pred_x0 is not None else sample_t
            updates.put(("step", i + 1, total, (preview.float() / 2 + 0.5).clamp(0, 1).cpu()))

    def run() -> None:
        try:
            updates.put(("done", n_steps, n_steps, _sample(entry, req, device, callback).cpu()))
        except _Cancelled:
            updates.put(("cancelled", 0, 0, None))
        except Exception as err:  # surfaced to the user below
            updates.put(("error", 0, 0, err))

    t0 = time.perf_counter()
    thread = threading.Thread(target=run, name="ddpm-sampling", daemon=True)
    try:
        # A first update at once: the UI shows the run started, and a Stop can close this iterator from now on.
        yield (to_pil(torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).div(4).add(0.5),
                      nrow=req.nrow, scale=3), f"denoising {n} digits with {req.sampler}, {n_steps} steps…")
        thread.start()
        while True:
            try:
                kind, i, total, payload = updates.get(timeout=heartbeat)
            except queue.Empty:
                yield None, f"step {progress[0]}/{n_steps} · {time.perf_counter() - t0:.1f} s"
                continue
            if kind == "step":
                yield (to_pil(payload, nrow=req.nrow, scale=3),
                       f"step {i}/{total} · {time.perf_counter() - t0:.1f} s · current estimate of x₀")
            elif kind == "done":
                yield (to_pil(payload, nrow=req.nrow, scale=3),
                       f"done: {n} digits, {req.sampler}, {total} steps in {time.perf_counter() - t0:.2f} s"
                       f"{req.describe()}")
                return
            elif kind == "error":
                raise SpaceError(f"Sampling failed: {type(payload).__name__}: {payload}")
            else:
                return
    finally:
        stop.set()  # the consumer went away (Stop button, closed tab): stop the thread at its next step
        if thread.ident is not None and thread.is_alive():
            _log("DDPM sampling cancelled")


# ----------------------------------------------------------------------------------------------------
# Completion and denoising (the Complete tab)
# ----------------------------------------------------------------------------------------------------
HIDE_CHOICES = ("top half", "right half", "bottom half", "left half", "red paint only")
DEFAULT_HIDE = "top half"
COMPLETE_MODES = ("complete", "denoise")
DEFAULT_NOISE_LEVEL = 0.5  # a share of the T forward steps


def completion_mask(hide: Any, painted: torch.Tensor | None = None) -> torch.Tensor:
    """The pixels to complete `(28, 28)`: the chosen half (unless "red paint only") and the painted ones."""
    if not isinstance(hide, str) or hide not in HIDE_CHOICES:
        shown = repr(hide) if len(repr(hide)) <= 60 else repr(hide)[:57] + "…"
        raise SpaceError(f"Unknown part to hide {shown}: choose one of {', '.join(HIDE_CHOICES)}.")
    mask = torch.zeros(28, 28) if hide == "red paint only" else half_mask(hide.split()[0])
    if painted is not None:
        mask = torch.maximum(mask, painted)
    if not mask.any():
        raise SpaceError("Nothing to complete: paint the part to complete in red, or choose a half to hide.")
    return mask


def _masked_view(x: torch.Tensor, mask: torch.Tensor) -> Image.Image:
    """The input as the DDPM sees it: the hidden pixels in dark red."""
    grey = x[0, 0].clamp(0, 1)
    rgb = torch.stack([grey, grey, grey], -1)
    rgb[mask.bool()] = torch.tensor([0.45, 0.08, 0.08])
    im = Image.fromarray((rgb.numpy() * 255).round().astype(np.uint8), mode="RGB")
    return im.resize((28 * DIGIT_SCALE, 28 * DIGIT_SCALE), Image.NEAREST)


def _digit_image(x: torch.Tensor) -> Image.Image:
    return to_pil(x, nrow=1, padding=0, scale=DIGIT_SCALE)


def complete_digit(reg: Registry, x: torch.Tensor, painted: torch.Tensor | None = None, hide: Any = DEFAULT_HIDE,
                   mode: Any = "complete", level: Any = DEFAULT_NOISE_LEVEL, vae_name: Any = None,
                   digit: Any = ANY_DIGIT, seed: Any = 0, device: torch.device | str | None = None
                   ) -> tuple[Image.Image, Image.Image, Image.Image | None, str]:
    """(input as the DDPM sees it, DDPM result, VAE result, status) for a prepared digit `(1, 1, 28, 28)`.

    `mode` "complete": the hidden pixels (`hide` and the red `painted` mask) are filled in by the DDPM (RePaint)
    and by the VAE (decode of the masked digit's posterior mean, known pixels pasted back). "denoise": the digit is
    noised for `level`·T forward steps, then the DDPM denoises it from there; the VAE reconstructs the noisy digit.
    `digit` guides a class-conditional DDPM (classifier-free guidance at the default scale)."""
    entry = reg.require_ddpm()
    if not isinstance(mode, str) or mode not in COMPLETE_MODES:
        raise SpaceError(f"Unknown mode {str(mode)[:40]!r}: choose 'complete' or 'denoise'.")
    if not torch.isfinite(x).all():
        raise SpaceError("The digit contains NaN values.")
    seed = as_seed(seed)
    labels = None
    if not (digit is None or (isinstance(digit, str) and digit.strip().lower() in ("", ANY_DIGIT))):
        if not entry.conditional:
            raise SpaceError("This DDPM is unconditional: it cannot be guided towards a digit (choose 'any').")
        if isinstance(digit, bool):
            raise SpaceError("The digit must be a whole number 0–9 or 'any'.")
        labels = [as_int(digit, "The digit", 0, num_classes(entry.unet) - 1)]
    vaes = unconditional_vaes(reg)
    vae = None
    if vae_name not in (None, ""):
        vae = reg.vae(vae_name)
        if vae.conditional:
            raise SpaceError(f"{vae.name} is a conditional VAE: choose one of {', '.join(vaes)} to compare with.")
    elif vaes:
        vae = reg.vaes[vaes[0]]
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    if mode == "complete":
        mask = completion_mask(hide, painted)
        with on_device(entry, device) as unet:
            out = complete(unet, x, mask, entry.scheduler_config, DEFAULT_COMPLETION_STEPS, DEFAULT_JUMP_LENGTH,
                           DEFAULT_JUMP_N_SAMPLE, generator=generator, class_labels=labels).cpu()
        shown = _masked_view(x, mask)
        with torch.inference_mode():
            vae_out = None if vae is None else vae_complete(vae.model, x, mask)
        what = (f"completed {int(mask.sum())} hidden pixels: RePaint, {DEFAULT_COMPLETION_STEPS} DDPM steps, "
                f"jumps of {DEFAULT_JUMP_LENGTH} × {DEFAULT_JUMP_N_SAMPLE}")
    else:
        total = int(entry.scheduler_config.get("num_train_timesteps", 1000))
        t = round(as_float(level, "The noise level", 0, 1) * total)
        with on_device(entry, device) as unet:
            noisy, out = denoise(unet, x, t, entry.scheduler_config, DEFAULT_DENOISE_STEPS, generator=generator,
                                 class_labels=labels)
        noisy, out = noisy.cpu(), out.cpu()
        shown = _digit_image(noisy)
        with torch.inference_mode():
            vae_out = None if vae is None else vae.model.decode(vae.model.encode(noisy)[0])
        what = f"noised for {t} of {total} steps, then denoised from there ({min(t, DEFAULT_DENOISE_STEPS)} steps)"
    guess = classify(reg, out)
    read = "" if guess is None else f" · the classifier reads the DDPM's digit as **{guess[0]}** ({guess[1]:.0%})"
    status = f"{what}, seed {seed}{'' if labels is None else f', guided to {labels[0]}'} " \
             f"({time.perf_counter() - t0:.2f} s){read}"
    if vae is not None:
        status += f" · VAE: {vae.name}"
    return shown, _digit_image(out), None if vae_out is None else _digit_image(vae_out), status


__all__ = [
    "ANY_DIGIT",
    "COMPLETE_MODES",
    "DEFAULT_COUNT",
    "DEFAULT_DDPM_STEPS",
    "DEFAULT_SAMPLER",
    "DIGIT_CHOICES",
    "EVERY_DIGIT",
    "HIDE_CHOICES",
    "MAX_GUIDANCE",
    "DDPMEntry",
    "DDPMRequest",
    "LatentMap",
    "Reconstruction",
    "Registry",
    "SpaceError",
    "TestDigits",
    "VAEEntry",
    "anomaly_percentile",
    "browser_decoder",
    "classify",
    "complete_digit",
    "completion_mask",
    "compute_device",
    "ddpm_evaluation",
    "ddpm_grid",
    "ddpm_request",
    "ddpm_stream",
    "decode_latent",
    "hub_reachable",
    "interpolate",
    "latent_grid",
    "latent_map",
    "lerp",
    "load_registry",
    "model_kind",
    "negative_elbo",
    "on_device",
    "open_source",
    "read_evaluation",
    "reconstruct",
    "require_unconditional",
    "resolve_model_sources",
    "slerp",
    "study_series",
    "test_digit",
    "unconditional_vaes",
    "vae_digit",
    "vae_generate",
]
