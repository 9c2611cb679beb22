"""One typed `evaluation.json` for every kind of run (VAE, DDPM), versioned.

    {"schema_version": 2, "kind": "vae" | "ddpm",
     "settings": {...},                      # how much was evaluated (VAE: `EvalSettings`; DDPM: {})
     "held_out": {...} | null,               # VAE only: BCE/KLD/ELBO/NLL and latent metrics on held-out digits
     "points": {key: SamplePoint, ...}}      # every way of sampling the model that was scored

A *point* is one way of drawing samples (a VAE's prior, a DDPM sampler with its steps) with the FID, the
classifier metrics and, for DDPMs, the time per 16 digits. `Evaluation.read` also accepts the two layouts written
before version 2 (a VAE's `{"settings", "vae", "fid", "classifier", "latent_knn_accuracy"}` and a DDPM's
`{"points"}`), so older run folders and Hub repos keep loading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from hub_models.io import write_json_atomic

EVALUATION_FILE = "evaluation.json"
SCHEMA_VERSION = 2
Kind = Literal["vae", "ddpm"]
VAE_PRIOR_SAMPLER = "prior"  # the sampler name of a VAE's point: z ~ N(0, I), one decoder pass


class FIDResult(TypedDict, total=False):
    """`hub_models.evaluation.fid`'s result."""

    fid: float
    n_gen: int
    n_ref: int
    reference: str  # a name in REFERENCE_SETS: "mnist-test" (official 10k test) or "study-test" (12k held-out)
    floor: float | None  # real-vs-real FID at the same N
    floor_n: int | None
    network: str  # the Inception network and its input convention
    preprocessing: str  # "tf1-bilinear" (absent in files from before the standard resize: the torch resize)


class SamplePoint(TypedDict, total=False):
    """One way of sampling a model, scored."""

    sampler: str  # "prior" for a VAE; a `hub_models.diffusion.sampling.SAMPLERS` name for a DDPM
    steps: int  # 1 for a VAE (one decoder pass)
    num_samples: int
    seed: int
    ema: bool | None  # None for a VAE (no EMA)
    precision: str  # "fp32" or "bf16" (the network's dtype while sampling)
    weights: str | None  # sha256 (16 hex digits) of the weights sampled from
    reference: str
    n_ref: int | None  # the first n_ref digits of the reference set (None: all of it)
    overrides: list[list[Any]]  # sampler settings changed from the library's ((name, value) pairs; DDPM studies)
    fid: FIDResult
    classifier: dict[str, Any]  # `classifier_metrics`
    seconds_per_16: float | None
    # Where the digits were sampled: "cpu", "cuda", "cpu (bf16 convolutions computed in fp32)" (a bf16 point on a
    # CPU without native bf16), several joined by " + " (absent: the CPU).
    sampled_on: str
    timed_on: str | None  # the same for `seconds_per_16` (absent: the CPU, native bf16)
    timed_cpu: str | None  # the CPU model `seconds_per_16` was measured on (absent: not recorded)
    scored_on: str  # "cpu" or "cuda": where their Inception features were computed (absent: the CPU)
    torch_threads: int
    load_average: float


class HeldOut(TypedDict, total=False):
    """A VAE's metrics on held-out digits (`vae_metrics` + latent metrics)."""

    split: str  # "study" (the 12,000 held-out digits of the 80/20 split) or "official" (the 10,000 test digits)
    dataset: str  # the images' dataset (name or folder): written only for runs on data other than MNIST
    weights: str | None  # sha256 (16 hex digits) of the weights evaluated (absent in files from before version 2)
    n: int
    bce: float
    kld: float
    elbo: float
    nll: float
    nll_samples: int
    nll_n: int
    latent_knn_accuracy: float | None  # None for data without labels
    latent_points: int
    active_units: int
    prior_mismatch_kl: float


@dataclass
class Evaluation:
    """The content of one run's `evaluation.json`."""

    kind: Kind
    points: dict[str, SamplePoint] = field(default_factory=dict)
    held_out: HeldOut | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # ---- reading and writing ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], kind: Kind | None = None) -> Evaluation:
        """Any layout this project wrote (version 2, or the VAE / DDPM layouts before it) → an `Evaluation`."""
        if not isinstance(data, dict):
            raise ValueError(f"evaluation.json must hold a JSON object, not {type(data).__name__}")
        version = data.get("schema_version")
        if version == SCHEMA_VERSION:
            return cls(kind=data["kind"], points=dict(data.get("points") or {}), held_out=data.get("held_out"),
                       settings=dict(data.get("settings") or {}))
        if version is not None:
            raise ValueError(f"evaluation.json has schema_version {version}; this library reads up to "
                             f"{SCHEMA_VERSION}: upgrade mnist-genlab")
        if kind == "vae" or ("points" not in data and ("vae" in data or "fid" in data)):  # a VAE's version 1
            return cls._from_vae_v1(data)
        return cls(kind=kind or "ddpm", points=dict(data.get("points") or {}))

    @classmethod
    def _from_vae_v1(cls, data: dict[str, Any]) -> Evaluation:
        settings = dict(data.get("settings") or {})
        held_out = dict(data.get("vae") or {}) or None
        if held_out is not None and "latent_knn_accuracy" in data:
            held_out["latent_knn_accuracy"] = data["latent_knn_accuracy"]
            held_out["latent_points"] = settings.get("latent_points")
        points: dict[str, SamplePoint] = {}
        if data.get("fid"):
            point = vae_point(settings.get("fid_samples") or data["fid"].get("n_gen", 0), settings.get("seed", 0),
                              data["fid"], data.get("classifier") or {}, weights=None)
            points[point_key(point)] = point
        return cls(kind="vae", points=points, held_out=held_out, settings=settings)

    @classmethod
    def read(cls, path: str | os.PathLike, kind: Kind | None = None) -> Evaluation | None:
        """`path` (a run folder or the file itself) → an `Evaluation`; None when there is no file."""
        path = Path(path)
        if path.is_dir():
            path = path / EVALUATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
        return cls.from_dict(data, kind)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": self.kind, "settings": self.settings,
                "held_out": self.held_out, "points": self.points}

    def write(self, run_dir: str | os.PathLike) -> Path:
        path = Path(run_dir) / EVALUATION_FILE
        write_json_atomic(path, self.to_dict())
        return path

    # ---- what readers ask for ----------------------------------------------------------------------------
    @property
    def prior(self) -> SamplePoint | None:
        """A VAE's prior-sample point (the one with the most samples); None for a DDPM or when not evaluated."""
        points = [p for p in self.points.values() if p.get("sampler") == VAE_PRIOR_SAMPLER]
        return max(points, key=lambda p: p.get("num_samples", 0)) if points else None

    @property
    def fid(self) -> FIDResult | None:
        """The FID of a VAE's prior samples."""
        prior = self.prior
        return prior.get("fid") if prior else None


def point_key(point: SamplePoint) -> str:
    """`prior-n1000-seed0` for a VAE; DDPM points use `hub_models.evaluation.ddpm.Point.key`."""
    if point.get("sampler") == VAE_PRIOR_SAMPLER:
        return f"{VAE_PRIOR_SAMPLER}-n{point['num_samples']}-seed{point['seed']}"
    raise ValueError("DDPM points are keyed by hub_models.evaluation.ddpm.Point.key")


def vae_point(num_samples: int, seed: int, fid: FIDResult, classifier: dict[str, Any],
              weights: str | None) -> SamplePoint:
    """The point of a VAE's prior samples (z ~ N(0, I), decoded once, fp32)."""
    return SamplePoint(sampler=VAE_PRIOR_SAMPLER, steps=1, num_samples=int(num_samples), seed=int(seed), ema=None,
                       precision="fp32", weights=weights, reference=fid.get("reference", ""), fid=fid,
                       classifier=classifier, seconds_per_16=None)


def read_evaluation(path: str | os.PathLike, kind: Kind | None = None) -> Evaluation | None:
    """`Evaluation.read`: the typed `evaluation.json` of a run folder (None when absent)."""
    return Evaluation.read(path, kind)


__all__ = [
    "EVALUATION_FILE",
    "SCHEMA_VERSION",
    "VAE_PRIOR_SAMPLER",
    "Evaluation",
    "FIDResult",
    "HeldOut",
    "SamplePoint",
    "point_key",
    "read_evaluation",
    "vae_point",
]
