"""The study folder's VAE runs, read (or evaluated) once, and the lookups the claims and tables share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub_models.evaluation.schema import Evaluation
from hub_models.evaluation.vae import EvalSettings, evaluate_vae_run
from hub_models.hub.naming import vae_run_name

LEGACY_MARK = "†"
FP32_SPEED_MARK = "‡"  # seconds of a bf16 point timed where bf16 is not native (fp32 speed)


@dataclass
class Run:
    name: str
    path: Path
    metrics: dict[str, Any]
    evaluation: Evaluation | None

    @property
    def test(self) -> dict[str, float]:
        """Held-out metrics: the report's own evaluation when there is one, else the training script's."""
        return (self.evaluation.held_out if self.evaluation else None) or self.metrics["test"]

    @property
    def bce(self) -> float:
        return self.test["bce"]

    @property
    def kld(self) -> float:
        return self.test["kld"]


def collect_runs(study_dir: Path, evaluate: bool, settings: EvalSettings) -> dict[str, Run]:
    runs = {}
    for path in sorted(p for p in study_dir.iterdir() if (p / "metrics.json").exists()):
        metrics = json.loads((path / "metrics.json").read_text())
        if metrics.get("model") != "vae":
            continue
        evaluation = evaluate_vae_run(path, settings) if evaluate else Evaluation.read(path, kind="vae")
        runs[path.name] = Run(path.name, path, metrics, evaluation)
    return runs


def _get(runs: dict[str, Run], arch: str, z: int, beta: float) -> Run | None:
    return runs.get(vae_run_name(arch, z, beta))


def _held(run: Run | None, key: str) -> float | None:
    """A held-out metric of the report's evaluation (None when not evaluated)."""
    if run is None or run.evaluation is None or not run.evaluation.held_out:
        return None
    return run.evaluation.held_out.get(key)


def _prior(run: Run | None, *path: str) -> float | None:
    """A number of the prior-sample point, e.g. `_prior(run, "fid", "fid")`."""
    value: Any = run.evaluation.prior if run is not None and run.evaluation is not None else None
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)
