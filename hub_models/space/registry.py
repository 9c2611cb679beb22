"""The models the Space has loaded (`Registry`, one entry per model) and the lookups every tab shares: a VAE or
DDPM by name, the VAEs that need no digit, a test digit, the classifier's reading of a digit.

A model of another dataset (issue 37) is drawn at its own shape (`channels`, `resolution`: config.json's
`in_channels` / `sample_size`, MNIST's 1 and 28 where the config predates them) and names its classes with the
label names its training_config.json records; the MNIST-only parts (test digits, the digit classifier, the
completion canvas) are for `mnist_like` models alone."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE, is_class_conditional
from hub_models.evaluation import Evaluation
from hub_models.hub.naming import vae_run_name
from hub_models.models.vae import BetaVAE
from hub_models.reference import STUDY_BETAS
from hub_models.space.checks import SpaceError, as_int, as_seed, shown


@dataclass
class TestDigits:
    """Held-out digits used for the latent maps, the anomaly calibration and the test-set picks."""

    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    labels: np.ndarray  # (N,)


MNIST_LABELS = tuple(str(d) for d in range(10))


def label_names_of(training_config: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The class names a run's training_config.json records (`dataset.label_names`), None when it records none
    (the released MNIST runs)."""
    dataset = (training_config or {}).get("dataset")
    names = dataset.get("label_names") if isinstance(dataset, dict) else None
    return tuple(str(n) for n in names) if isinstance(names, list) and names else None


class _Shaped:
    """What VAE and DDPM entries share about their images: shape, class names, whether they are MNIST's."""

    label_names: tuple[str, ...] | None
    dataset_name: str | None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.resolution, self.resolution

    @property
    def mnist_like(self) -> bool:
        """28×28 grey digits of MNIST: the test digits, the digit classifier and the 28×28 canvases apply."""
        return (self.shape == (1, 28, 28) and self.dataset_name in (None, "ylecun/mnist")
                and self.label_names in (None, MNIST_LABELS))

    @property
    def data_title(self) -> str:
        """The data's name as the page shows it: the Hub id, or "a local image folder" (no local path)."""
        name = self.dataset_name
        if name is None:
            return "MNIST"
        return "a local image folder" if name.startswith(("/", ".", "~")) or name.count("/") != 1 else name

    @property
    def noun(self) -> str:
        """What the model draws, in the status lines and labels: "digits" for MNIST models, else "images"."""
        return "digits" if self.mnist_like else "images"

    def class_names(self, count: int) -> tuple[str, ...]:
        """The names of `count` classes: the recorded label names, else "0", "1", … (MNIST's digits)."""
        names = self.label_names or ()
        return tuple(names[:count]) if len(names) >= count else tuple(str(i) for i in range(count))


@dataclass
class VAEEntry(_Shaped):
    name: str
    source: str
    model: BetaVAE
    beta: float | None
    metrics: dict[str, Any]
    evaluation: Evaluation | None = None  # its evaluation.json (FID of prior samples, held-out metrics)
    label_names: tuple[str, ...] | None = None  # training_config.json's dataset (None: MNIST's digits)
    dataset_name: str | None = None
    means: np.ndarray | None = None  # (N, latent_dim) posterior means of the test digits
    calibration: np.ndarray | None = None  # sorted −ELBO (nats) of the test digits
    labels: np.ndarray | None = None  # (N,) their digits
    limit: float = 3.0  # latent range shown by the sliders and the map
    # `hub_models.space.latent.LatentMap` per pair of dims, drawn once
    maps: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.latent_dim)

    @property
    def channels(self) -> int:
        return int(getattr(self.model.config, "in_channels", 1))

    @property
    def resolution(self) -> int:
        return int(getattr(self.model.config, "sample_size", 28))

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
class DDPMEntry(_Shaped):
    name: str
    source: str
    unet: Any
    scheduler_config: dict[str, Any]
    metrics: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one sampling call at a time
    cpu_dtype: torch.dtype | None = None  # the U-Net's autocast dtype on the CPU (None: fp32), `cpu_precision`
    label_names: tuple[str, ...] | None = None  # training_config.json's dataset (None: MNIST's digits)
    dataset_name: str | None = None

    @property
    def channels(self) -> int:
        return int(getattr(getattr(self.unet, "config", None), "in_channels", 1))

    @property
    def resolution(self) -> int:
        size = getattr(getattr(self.unet, "config", None), "sample_size", 28)
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def conditional(self) -> bool:
        """A class-conditional UNet (a digit can be asked for, with classifier-free guidance)."""
        return is_class_conditional(self.unet)

    @property
    def default_guidance(self) -> float:
        """The w its evaluation chose (docs/lab/PROTOCOL.md's guidance table), else the model as trained (1)."""
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
            raise SpaceError(f"Unknown VAE {shown(name)}; choose one of: {', '.join(self.vaes)}.")
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
            raise SpaceError(f"Unknown DDPM {shown(name)}; choose one of: {', '.join(self.ddpms)}.")
        return self.ddpms[name]

    def describe_errors(self, about: str = "") -> str:
        """The load errors of the models whose name contains `about` (all of them if none does)."""
        errors = {n: e for n, e in self.errors.items() if about in n} or self.errors
        return " ".join(f"{name}: {err}." for name, err in errors.items())


def study_series(reg: Registry) -> list[str]:
    """The loaded VAEs of the study's β comparison (Conv, z = 2, β = 1e-3 / 1 / 20), else the first three."""
    picks = [name for name in (vae_run_name("conv", 2, beta) for beta in STUDY_BETAS) if name in reg.vaes]
    return picks or unconditional_vaes(reg)[:3]


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


def require_mnist_model(entries: list[VAEEntry]) -> None:
    """A SpaceError when none of `entries` learned MNIST: the Space's test digits are MNIST's."""
    if entries and not any(e.mnist_like for e in entries):
        data = ", ".join(sorted({e.data_title for e in entries}))
        raise SpaceError(f"The test digits are MNIST's, and the chosen model(s) learned {data}: upload or draw an "
                         "image instead, or choose an MNIST VAE.")


def unconditional_vaes(reg: Registry) -> list[str]:
    """The VAEs that need no digit: those of Reconstruct, Interpolate and Complete (which have no digit to give)."""
    return [name for name, e in reg.vaes.items() if not e.conditional]


def mnist_vaes(reg: Registry) -> list[str]:
    """The unconditional VAEs of MNIST's 28×28 digits (the completion canvas is MNIST's)."""
    return [name for name in unconditional_vaes(reg) if reg.vaes[name].mnist_like]


def mnist_ddpm(reg: Registry) -> DDPMEntry | None:
    """The first DDPM of MNIST's 28×28 digits (Complete's canvas is MNIST's), or None."""
    return next((e for e in reg.ddpms.values() if e.mnist_like), None)


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


__all__ = ["MNIST_LABELS", "DDPMEntry", "Registry", "TestDigits", "VAEEntry", "classify", "label_names_of",
           "mnist_ddpm", "mnist_vaes", "require_mnist_model", "require_unconditional", "study_series", "test_digit",
           "unconditional_vaes", "vae_digit"]
