"""Score a point (FID, classifier metrics, timing), cached in `<run>/evaluation.json` under the weights' digest."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from hub_models.evaluation.ddpm.chunks import chunk_features, chunk_folder, generate, sampled_on, sampling_device
from hub_models.evaluation.ddpm.point import Point, point_sampler, requested_labels, run_num_classes, weights_digest
from hub_models.evaluation.ddpm.run_data import classifier_digest, run_classifier, scoring_reference
from hub_models.evaluation.metrics import classifier_metrics, fid, is_standard_fid
from hub_models.evaluation.schema import EVALUATION_FILE, Evaluation
from hub_models.io import (
    compute_device,
    cpu_name,
    write_json_atomic,
)


def seconds_per_16(run_dir: str | os.PathLike, point: Point, repeats: int = 1) -> float:
    """Wall time for 16 digits with this sampler and step count (best of `repeats`, after a 1-step warm-up)."""
    point_sampler(run_dir, replace(point, steps=1))(16, point.seed)  # warm-up
    draw = point_sampler(run_dir, point)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        draw(16, point.seed).cpu()  # .cpu(): on a GPU, wait for the work to finish
        best = min(best, time.perf_counter() - t0)
    return best


def load_evaluation(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's `evaluation.json` in the current schema (`hub_models.evaluation.schema`), as a dict."""
    evaluation = Evaluation.read(run_dir, kind="ddpm") or Evaluation(kind="ddpm")
    return evaluation.to_dict()


def update_evaluation(run_dir: str | os.PathLike, change: Callable[[dict[str, Any]], Any]) -> None:
    """Re-read the run's evaluation.json, `change` it in place and write it back, under a lock: other processes may
    be writing other points meanwhile."""
    lock_dir = Path(run_dir) / "evaluation"  # beside the digits: not a file of the published run
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_dir / f".{EVALUATION_FILE}.lock"):
        evaluation = load_evaluation(run_dir)
        change(evaluation)
        write_json_atomic(Path(run_dir) / EVALUATION_FILE, evaluation)


def evaluate_point(run_dir: str | os.PathLike, point: Point, *, reference: str = "mnist-test",
                   timing: bool = True, batch_size: int = 500, force: bool = False,
                   log: Callable[[str], None] = print, n_ref: int | None = None,
                   results_dir: str | os.PathLike | None = None,
                   classifier_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """FID (with N, reference and the real-vs-real floor at N), classifier metrics and, if `timing`, seconds per 16
    images of one point; cached in `<run>/evaluation.json` under the point's key and the weights' digest.
    `n_ref` scores against the first `n_ref` images of the reference set (default: all of it). `results_dir`
    keeps evaluation.json and the images elsewhere than the run (a comparison's point is not the run's own).

    A run on other data than MNIST is scored against its own held-out images (`reference="held-out"`,
    `hub_models.evaluation.ddpm.run_data`); its class metrics use `classifier_dir` (a classifier trained on that
    data) and are left out (`"classifier": {}`) without one. `classifier_dir` also replaces MNIST's digit classifier.
    """
    run_dir = Path(run_dir)
    results_dir = Path(results_dir or run_dir)
    digest = weights_digest(run_dir, point.ema)
    judge = classifier_digest(classifier_dir)

    def cached() -> dict[str, Any] | None:
        hit = load_evaluation(results_dir).get("points", {}).get(point.key)
        if hit and hit.get("weights") == digest and hit.get("reference") == reference and not force \
                and hit.get("n_ref") == n_ref and is_standard_fid(hit.get("fid") or {}) \
                and hit.get("classifier_weights") == judge \
                and (hit.get("seconds_per_16") is not None or not timing):
            return hit
        return None

    if hit := cached():
        return hit
    images = generate(run_dir, point, batch_size, log, results_dir)
    folder = chunk_folder(run_dir, point, results_dir)
    features = chunk_features(folder, images, batch_size, log, point.key)
    # Processes that made the point's digits together score it once; the others wait and read the result.
    with FileLock(folder / ".scoring.lock"):
        if hit := cached():
            return hit
        return _score_point(run_dir, point, images, features, digest=digest, reference=reference, timing=timing,
                            log=log, n_ref=n_ref, results_dir=results_dir, classifier_dir=classifier_dir)


def _class_metrics(run_dir: Path, point: Point, images: torch.Tensor,
                   classifier_dir: str | os.PathLike | None) -> dict[str, Any]:
    """`classifier_metrics` of a point's images with the run's classifier (`run_classifier`); {} when the run is
    on other data and no classifier of it was given."""
    classes = run_num_classes(run_dir)
    classifier = run_classifier(run_dir, classifier_dir, classes if point.guidance_scale is not None else None)
    if classifier is None:
        return {}
    requested = None if point.guidance_scale is None else requested_labels(len(images), classes=classes)
    return classifier_metrics(images, classifier, reference=None, requested=requested)


def _score_point(run_dir: Path, point: Point, images: torch.Tensor, features: np.ndarray, *, digest: str,
                 reference: str, timing: bool, log: Callable[[str], None], n_ref: int | None,
                 results_dir: Path, classifier_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    log(f"[{point.key}] FID against {reference} …")
    judge = classifier_digest(classifier_dir)
    result: dict[str, Any] = {**asdict(point), "weights": digest, "reference": reference,
                              **({"n_ref": n_ref} if n_ref is not None else {}),
                              "fid": fid(features=features, reference=scoring_reference(run_dir, reference),
                                         n_ref=n_ref),
                              "classifier": _class_metrics(run_dir, point, images, classifier_dir),
                              **({"classifier_weights": judge} if judge is not None else {})}
    result.update(_timing(run_dir, point) if timing else dict.fromkeys(("seconds_per_16", "timed_on", "timed_cpu")))
    result["sampled_on"] = sampled_on(chunk_folder(run_dir, point, results_dir))
    result["scored_on"] = compute_device().type
    result["torch_threads"] = torch.get_num_threads()
    result["load_average"] = os.getloadavg()[0]
    update_evaluation(results_dir, lambda evaluation: evaluation.setdefault("points", {}).update({point.key: result}))
    recognisable = (f"{result['classifier']['confident_share']:.1%} recognisable" if result["classifier"]
                    else "no class metrics (no classifier of this data)")
    log(f"[{point.key}] FID {result['fid']['fid']:.2f} (N={result['fid']['n_gen']:,}, floor "
        f"{result['fid']['floor']:.2f}); {recognisable}")
    return result


def _timing(run_dir: str | os.PathLike, point: Point, repeats: int = 1) -> dict[str, Any]:
    """`seconds_per_16` of `point` here, with where it was timed (`timed_on`, and the CPU model `timed_cpu`)."""
    return {"seconds_per_16": seconds_per_16(run_dir, point, repeats), "timed_on": sampling_device(point),
            "timed_cpu": cpu_name() if compute_device().type == "cpu" else None}


def retime_points(run_dir: str | os.PathLike, repeats: int = 1, log: Callable[[str], None] = print) -> int:
    """Re-measure `seconds_per_16` of every timed EMA point of the run in this process, so that a sweep sampled
    over several machines has all its seconds from one (CPU models differ 2x and more in speed). The FIDs are
    untouched; raw-weight points keep theirs (a release has no raw weights to time). Returns how many points were
    re-timed."""
    names = {f.name for f in fields(Point)}
    timings: dict[str, dict[str, Any]] = {}
    for p in current_points(run_dir):
        if not p["ema"] or p.get("seconds_per_16") is None:
            continue
        point = Point(**{k: tuple(map(tuple, v)) if k == "overrides" else v for k, v in p.items() if k in names})
        timings[point.key] = {**_timing(run_dir, point, repeats), "torch_threads": torch.get_num_threads(),
                              "load_average": os.getloadavg()[0]}
        log(f"[{point.key}] {timings[point.key]['seconds_per_16']:.2f} s per 16 digits "
            f"(was {p['seconds_per_16']:.2f})")

    def change(evaluation: dict[str, Any]) -> None:
        for key, timing in timings.items():
            evaluation["points"][key].update(timing)

    update_evaluation(run_dir, change)
    return len(timings)


def current_points(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The evaluated points whose weights are the ones the run folder holds now (older ones are stale).

    A folder without `unet_non_ema/` (a release ships the EMA weights only) keeps its raw-weight points: they were
    measured on the run it was released from and cannot be re-checked."""
    run_dir = Path(run_dir)
    digests = {ema: weights_digest(run_dir, ema) for ema in (True, False)
               if (run_dir / ("unet" if ema else "unet_non_ema") / "diffusion_pytorch_model.safetensors").exists()}
    return [p for p in load_evaluation(run_dir).get("points", {}).values()
            if digests.get(p["ema"], None if p["ema"] else p["weights"]) == p["weights"]]
