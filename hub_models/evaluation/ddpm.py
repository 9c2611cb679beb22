"""FID of a trained DDPM (pixel or latent) and the sampler sweep (FID vs CPU time), resumable, cached in the run.

Generated digits are written in chunks (`<run>/evaluation/<point>/chunk-*.npy`, uint8) as they are made, so a
killed evaluation resumes where it stopped; every finished point lands in `<run>/evaluation.json`, keyed by the
weights' digest, so more training invalidates it and nothing else does.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import UNet2DModel
from filelock import FileLock, Timeout
from safetensors import safe_open
from safetensors.torch import save_file

from hub_models.diffusion.latent import is_latent_run, load_latent_pipeline
from hub_models.diffusion.pipeline import load_ddpm
from hub_models.diffusion.sampling import make_scheduler, sample_images
from hub_models.evaluation.inception import inception_features
from hub_models.evaluation.metrics import as_uint8, classifier_metrics, fid, format_fid, is_standard_fid
from hub_models.evaluation.schema import EVALUATION_FILE, Evaluation
from hub_models.io import (
    BF16_CONVOLUTIONS_IN_FP32,
    autocast,
    bf16_convolutions_in_fp32,
    compute_device,
    cpu_name,
    no_tf32,
    read_json,
    write_json_atomic,
)
from hub_models.reference import NUM_DIGITS

SWEEP_STEPS = (5, 10, 25, 50, 100, 250, 1000)
SAMPLED_ON_FILE = "sampled_on.json"  # beside a point's chunks: chunk file → the device it was sampled on
# The sweep docs/PROTOCOL.md fixes for the full-recipe model, in its order: every point in bf16; the ODE solvers stop at
# 250 steps (a 1,000-step point is ~1 CPU-hour here). Nothing is selected until all of it is measured.
PROTOCOL_SWEEP: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("ddpm", SWEEP_STEPS), ("dpmsolver++", SWEEP_STEPS[:-1]), ("unipc", SWEEP_STEPS[:-1]), ("ddim", SWEEP_STEPS[:-1]))
PROTOCOL_SWEEP_PRECISION = "bf16"
PROTOCOL_RERUNS = 3  # the bf16 points with the lowest FIDs, re-run in fp32
PROTOCOL_TIE = 0.05  # FIDs within 5 % of the lowest are tied: fewest U-Net passes, then bf16, wins
# The class-conditional model's guidance table (docs/PROTOCOL.md): these w at N = 2,000; ties go to class accuracy.
PROTOCOL_GUIDANCE = (0.0, 1.0, 2.0, 3.0, 5.0)
# What `Point.precision` names: the dtype the UNet runs in while sampling (the scheduler stays in fp32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
# Samplers with no state between steps: a chunk of theirs saves its progress every few minutes and resumes there
# (a 1,000-step chunk is hours of one core, longer than a process may live).
RESUMABLE_SAMPLERS = ("ddpm", "ddim")
CHECKPOINT_SECONDS = 300.0


@dataclass(frozen=True)
class Point:
    """One way of sampling the model: which weights, which sampler, how many steps, how many digits."""

    sampler: str = "dpmsolver++"
    steps: int = 25
    num_samples: int = 10_000
    ema: bool = True
    seed: int = 0
    precision: str = "fp32"
    # Sampler settings changed from the library's (`make_scheduler(sampler, config, **overrides)`), as
    # ((name, value), ...): the sampler study varies one at a time. Empty for every ordinary point.
    overrides: tuple[tuple[str, Any], ...] = ()
    # A class-conditional model: w of classifier-free guidance. Its digits are requested in balanced classes
    # (digit i of the N is class i mod 10, `requested_labels`). None for an unconditional model.
    guidance_scale: float | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}: choose one of {sorted(PRECISIONS)}")

    @property
    def key(self) -> str:
        key = f"{self.sampler}-{self.steps}steps-{'ema' if self.ema else 'raw'}-n{self.num_samples}-seed{self.seed}"
        key = key if self.precision == "fp32" else f"{key}-{self.precision}"
        key = key if self.guidance_scale is None else f"{key}-w{self.guidance_scale:g}"
        return key + "".join(f"-{name}={value}" for name, value in self.overrides)

    def labels(self, num_images: int, first: int = 0) -> dict[str, Any]:
        """The sampler's label arguments for digits `first … first + num_images − 1` of the N (none when
        unconditional)."""
        if self.guidance_scale is None:
            return {}
        return {"class_labels": requested_labels(num_images, first), "guidance_scale": self.guidance_scale}

    def sample(self, unet: UNet2DModel, scheduler_config: Mapping[str, Any], num_images: int,
               seed: int, first: int = 0, progress: str | os.PathLike | None = None) -> torch.Tensor:
        """`num_images` digits `(N, 1, 28, 28)` in [0, 1] the way this point samples them, from `seed`; `first`:
        where they start in the N (which classes a conditional point requests); `progress`: a file where a
        `RESUMABLE_SAMPLERS` run saves its state every `CHECKPOINT_SECONDS` and resumes from (same digits)."""
        sampler = make_scheduler(self.sampler, scheduler_config, **dict(self.overrides)) if self.overrides \
            else self.sampler
        generator = torch.Generator().manual_seed(seed)
        resume = _resume(Path(progress), generator) if progress and self.sampler in RESUMABLE_SAMPLERS else {}
        with torch.inference_mode(), no_tf32():
            return sample_images(unet, scheduler_config, sampler, self.steps, num_images, generator=generator,
                                 autocast_dtype=PRECISIONS[self.precision], **resume,
                                 **self.labels(num_images, first))


def _resume(path: Path, generator: torch.Generator) -> dict[str, Any]:
    """`sample_images` arguments that continue a run from `path` (if saved) and keep saving it there."""
    resume: dict[str, Any] = {}
    if path.exists():
        with safe_open(path, "pt") as saved:
            resume = {"latents": saved.get_tensor("sample"), "first_step": int(saved.metadata()["next_step"])}
            generator.set_state(saved.get_tensor("generator_state"))
    last = time.monotonic()

    def save(i: int, num_steps: int, sample: torch.Tensor, pred_x0: torch.Tensor) -> None:
        nonlocal last
        if time.monotonic() - last < CHECKPOINT_SECONDS or i + 1 == num_steps:
            return
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"sample": sample.cpu().contiguous(), "generator_state": generator.get_state()}, tmp,
                  metadata={"next_step": str(i + 1)})
        os.replace(tmp, path)
        last = time.monotonic()

    return {**resume, "callback": save}


def requested_labels(num_images: int, first: int = 0) -> torch.Tensor:
    """The digits a class-conditional point asks for: digit i of the N is class i mod 10 (balanced classes)."""
    return (torch.arange(first, first + num_images) % NUM_DIGITS).long()


def weights_digest(run_dir: str | os.PathLike, ema: bool = True) -> str:
    """sha256 (first 16 hex digits) of the UNet weights a point samples from."""
    path = Path(run_dir) / ("unet" if ema else "unet_non_ema") / "diffusion_pytorch_model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def point_sampler(run_dir: str | os.PathLike, point: Point) -> Callable[..., torch.Tensor]:
    """`draw(num_images, seed, first=0, progress=None)` → digits `(N, 1, 28, 28)` in [0, 1] as `point` samples
    them from the run's weights: a pixel DDPM folder, or a latent one (`LatentDDPMPipeline`: the latent is sampled,
    then decoded). `first`: where the digits start in the point's N (the classes a conditional point requests);
    `progress`: where a long pixel run saves its state and resumes from (`Point.sample`)."""
    device = compute_device()  # the noise is drawn on the CPU, so a seed gives the same starting noise anywhere
    if not is_latent_run(run_dir):
        unet, scheduler = load_ddpm(run_dir, use_ema=point.ema, device=device)
        return lambda n, seed, first=0, progress=None: point.sample(unet, scheduler.config, n, seed, first,
                                                                    progress)
    if point.overrides:
        raise ValueError("sampler overrides are for pixel DDPMs; a latent pipeline samples with its own settings")
    pipe = load_latent_pipeline(run_dir)
    if not point.ema:
        pipe.unet = UNet2DModel.from_pretrained(str(run_dir), subfolder="unet_non_ema", use_safetensors=True)
    pipe.to(device)

    def draw(n: int, seed: int, first: int = 0, progress: str | os.PathLike | None = None) -> torch.Tensor:
        with torch.inference_mode(), no_tf32():  # a latent run is short: no progress to save
            return pipe(batch_size=n, num_inference_steps=point.steps, sampler=point.sampler, output_type="pt",
                        generator=torch.Generator().manual_seed(seed),
                        autocast_dtype=PRECISIONS[point.precision], **point.labels(n, first)).images

    return draw


def generate(run_dir: str | os.PathLike, point: Point, batch_size: int = 500,
             log: Callable[[str], None] = print, results_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """`point.num_samples` digits as uint8 `(N, 28, 28)`; chunks already on disk are reused (resumable).

    Chunk i is drawn with seed `point.seed * 1_000_003 + i`, so the digits do not depend on how often the
    evaluation was interrupted; a long chunk of a stateless sampler also saves its progress every few minutes
    (`Point.sample`), so a killed process loses minutes, not hours. Several processes may make one point together:
    each chunk is made under a file lock, a process skips the chunks others are making and then waits for them (a
    lock dies with its process, so a killed process's chunk is made again by a waiting one). Where each chunk was
    sampled is kept beside them (`sampled_on`): digits made on a GPU machine can be scored on another.
    """
    run_dir = Path(run_dir)
    folder = chunk_folder(run_dir, point, results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [min(batch_size, point.num_samples - start) for start in range(0, point.num_samples, batch_size)]
    draw = None

    def make(i: int) -> None:
        nonlocal draw
        path, start, n = folder / f"chunk-{i:05d}.npy", i * batch_size, sizes[i]
        progress = folder / f".chunk-{i:05d}-n{n}.progress.safetensors"  # n: another batch size, other digits
        if progress.exists():
            log(f"[{point.key}] chunk {i}: resuming from step {_saved_step(progress)}")
        if draw is None and BF16_CONVOLUTIONS_IN_FP32 in sampling_device(point):
            log(f"[{point.key}] no native bf16 on this CPU: {BF16_CONVOLUTIONS_IN_FP32} (docs/PROTOCOL.md)")
        draw = draw or point_sampler(run_dir, point)
        t0 = time.perf_counter()
        images = draw(n, point.seed * 1_000_003 + i, start, progress)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, as_uint8(images).numpy())
        with FileLock(folder / f".{SAMPLED_ON_FILE}.lock"):
            write_json_atomic(folder / SAMPLED_ON_FILE, {**_sampling_record(folder), path.name: sampling_device(point)})
        os.replace(tmp, path)
        progress.unlink(missing_ok=True)
        log(f"[{point.key}] {start + n:,}/{point.num_samples:,} digits ({time.perf_counter() - t0:.0f} s)")

    def missing(i: int) -> bool:
        return not (folder / f"chunk-{i:05d}.npy").exists()

    def load(i: int, mmap_mode: str | None = None) -> np.ndarray:
        path = folder / f"chunk-{i:05d}.npy"
        chunk = np.load(path, mmap_mode=mmap_mode)
        if len(chunk) != sizes[i]:  # chunk i's seed depends on i, so another batch size means other digits
            raise ValueError(f"{path} holds {len(chunk)} digits, not {sizes[i]}: it was saved with another batch "
                             f"size; pass the --batch_size it was made with")
        return chunk

    for i in range(len(sizes)):  # before any sampling: a wrong --batch_size costs nothing
        if not missing(i):
            load(i, mmap_mode="r")
    _make_shared(folder, "chunk", len(sizes), missing, make,
                 lambda i: log(f"[{point.key}] waiting for chunk {i}, which another process is making"))
    return torch.cat([torch.from_numpy(load(i)) for i in range(len(sizes))])


def _make_shared(folder: Path, name: str, count: int, missing: Callable[[int], bool], make: Callable[[int], None],
                 waiting: Callable[[int], None]) -> None:
    """Make the missing ones of `count` chunks, several processes together: each under its file lock
    (`.<name>-<i>.lock`); a process skips the chunks others are making, then waits for them (a lock dies with its
    process, so a killed process's chunk is made again by a waiting one)."""
    elsewhere = []
    for i in filter(missing, range(count)):
        lock = FileLock(folder / f".{name}-{i:05d}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:  # another process is making it
            elsewhere.append(i)
            continue
        try:
            if missing(i):
                make(i)
        finally:
            lock.release()
    for i in filter(missing, elsewhere):
        waiting(i)
        with FileLock(folder / f".{name}-{i:05d}.lock"):
            if missing(i):  # its process stopped before saving it
                make(i)


def chunk_features(folder: str | os.PathLike, images: torch.Tensor, batch_size: int,
                   log: Callable[[str], None] = print, key: str = "") -> np.ndarray:
    """Inception features `(N, 2048)` of a point's digits (`generate`'s chunks of `batch_size`), saved per chunk
    beside them (`features-<i>.npy`): processes scoring one point share the work as they share its sampling, and a
    killed scoring resumes. With chunks a multiple of Inception's batch of 50 (the protocol's 250) the features are
    the ones of one pass over all the digits, bit for bit."""
    folder = Path(folder)
    starts = range(0, len(images), batch_size)

    def path(i: int) -> Path:
        return folder / f"features-{i:05d}.npy"

    def make(i: int) -> None:
        t0 = time.perf_counter()
        features = inception_features(images[starts[i]:starts[i] + batch_size])
        tmp = folder / f".{path(i).name}.tmp.npy"
        np.save(tmp, features)
        os.replace(tmp, path(i))
        done = starts[i] + len(features)
        log(f"[{key}] Inception features {done:,}/{len(images):,} ({time.perf_counter() - t0:.0f} s)")

    def missing(i: int) -> bool:
        if not path(i).exists():
            return True
        return len(np.load(path(i), mmap_mode="r")) != len(images[starts[i]:starts[i] + batch_size])

    _make_shared(folder, "features", len(starts), missing, make,
                 lambda i: log(f"[{key}] waiting for the features of chunk {i}, which another process computes"))
    return np.concatenate([np.load(path(i)) for i in range(len(starts))])


def _saved_step(progress: Path) -> int:
    with safe_open(progress, "pt") as saved:
        return int(saved.metadata()["next_step"])


def chunk_folder(run_dir: str | os.PathLike, point: Point, results_dir: str | os.PathLike | None = None) -> Path:
    """Where a point's digits are saved: `<results_dir or run_dir>/evaluation/<point key>-<weights digest>/`."""
    return Path(results_dir or run_dir) / "evaluation" / f"{point.key}-{weights_digest(run_dir, point.ema)}"


def sampling_device(point: Point) -> str:
    """Where and how `point` samples in this process: "cuda", "cpu", or, for bf16 on a CPU without native bf16,
    "cpu (bf16 convolutions computed in fp32)" (`hub_models.io.autocast`)."""
    device = compute_device().type
    emulated = bf16_convolutions_in_fp32(device, PRECISIONS[point.precision])
    return f"{device} ({BF16_CONVOLUTIONS_IN_FP32})" if emulated else device


def timed_at_fp32_speed(point: Mapping[str, Any]) -> bool:
    """Whether a bf16 point's seconds come from a CPU without native bf16 (convolutions in fp32: fp32 speed),
    not comparable with native-bf16 timings."""
    return BF16_CONVOLUTIONS_IN_FP32 in (point.get("timed_on") or "")


def sampled_on(folder: str | os.PathLike) -> str:
    """Where a point's chunks were sampled (`sampling_device` of each), the distinct ones joined by " + " (chunks
    from before this was recorded: the CPU, where every earlier point was sampled)."""
    recorded = _sampling_record(folder)
    return " + ".join(sorted({recorded.get(chunk.name, "cpu") for chunk in Path(folder).glob("chunk-*.npy")})) or "cpu"


def _sampling_record(folder: str | os.PathLike) -> dict[str, str]:
    path = Path(folder) / SAMPLED_ON_FILE
    return read_json(path) if path.exists() else {}


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
                   results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """FID (with N, reference and the real-vs-real floor at N), classifier metrics and, if `timing`, seconds per 16
    digits of one point; cached in `<run>/evaluation.json` under the point's key and the weights' digest.
    `n_ref` scores against the first `n_ref` digits of the reference set (default: all of it). `results_dir`
    keeps evaluation.json and the digits elsewhere than the run (a comparison's point is not the run's own)."""
    run_dir = Path(run_dir)
    results_dir = Path(results_dir or run_dir)
    digest = weights_digest(run_dir, point.ema)

    def cached() -> dict[str, Any] | None:
        hit = load_evaluation(results_dir).get("points", {}).get(point.key)
        if hit and hit.get("weights") == digest and hit.get("reference") == reference and not force \
                and hit.get("n_ref") == n_ref and is_standard_fid(hit.get("fid") or {}) \
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
                            log=log, n_ref=n_ref, results_dir=results_dir)


def _score_point(run_dir: Path, point: Point, images: torch.Tensor, features: np.ndarray, *, digest: str,
                 reference: str, timing: bool, log: Callable[[str], None], n_ref: int | None,
                 results_dir: Path) -> dict[str, Any]:
    log(f"[{point.key}] FID against {reference} …")
    result: dict[str, Any] = {**asdict(point), "weights": digest, "reference": reference,
                              **({"n_ref": n_ref} if n_ref is not None else {}),
                              "fid": fid(features=features, reference=reference, n_ref=n_ref),
                              "classifier": classifier_metrics(
                                  images, reference=None,
                                  requested=None if point.guidance_scale is None else requested_labels(len(images)))}
    result.update(_timing(run_dir, point) if timing else dict.fromkeys(("seconds_per_16", "timed_on", "timed_cpu")))
    result["sampled_on"] = sampled_on(chunk_folder(run_dir, point, results_dir))
    result["scored_on"] = compute_device().type
    result["torch_threads"] = torch.get_num_threads()
    result["load_average"] = os.getloadavg()[0]
    update_evaluation(results_dir, lambda evaluation: evaluation.setdefault("points", {}).update({point.key: result}))
    log(f"[{point.key}] FID {result['fid']['fid']:.2f} (N={result['fid']['n_gen']:,}, floor "
        f"{result['fid']['floor']:.2f}); {result['classifier']['confident_share']:.1%} recognisable")
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


def evaluation_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The current evaluation of a run: `main` (the headline: the EMA point against the official test digits with
    the most digits, the sweep's selected sampler first, then fp32 ancestral DDPM; None before there is one),
    `raw` (the non-EMA point with the most digits), `sweep` (the timed EMA points on the held-out split of the
    most common N and seed, if there are several), `others` (the remaining EMA points, most digits first), a
    conditional model's guidance table, its choice and the w to use it with (`guidance_scale`), and `card_check`
    (the card snippet check of this headline, whose evaluator points are not in `others`); None/[] if absent."""
    # Points sampled with settings other than the library's (`overrides`: the sampler study's, or DDIM's raw-ε step
    # before the library changed it) are kept in evaluation.json but are not the model's evaluation.
    points = [p for p in current_points(run_dir) if not p.get("overrides")]
    guided = {id(p) for p in guidance_group(points)}
    ema = [p for p in points if p["ema"] and id(p) not in guided]
    raw = [p for p in points if not p["ema"]]
    # The sweep: the timed points on the selection split of the most common N, seed and reference (a card check's
    # other seeds at the same N are not sweep points, nor are the paths reported on the test digits).
    timed = [p for p in ema if p.get("seconds_per_16") is not None and p.get("reference") == "study-test"]
    groups = [_sweep_group(p) for p in timed]
    group = max(set(groups), key=groups.count) if groups else None
    sweep = [p for p in timed if _sweep_group(p) == group]
    sweep = sorted(sweep, key=_how) if len(sweep) > 1 else []
    # The headline is never a selection point (docs/PROTOCOL.md): not a sweep point and never scored against the
    # held-out split that selects (a finalist re-scored at N = 2,000 is one); points older than the reference
    # field were all against the official test digits.
    candidates = [p for p in ema if not any(p is q for q in sweep) and p.get("reference", "mnist-test") == "mnist-test"]
    # Other paths reported at the headline's N (the Space's default, the best point) never displace the sampler
    # the protocol selected on the held-out split (a class-conditional model's: its guidance table's).
    table = guidance_group(points)
    choice = select_guidance(table)
    chosen = select_point(sweep) or choice
    selected = _how(chosen) if chosen else None
    main = max(candidates, key=lambda p: (p["num_samples"], _how(p) == selected, p["sampler"] == "ddpm",
                                          p.get("precision", "fp32") == "fp32")) if candidates else None
    # The card check (evaluation/card_check.py) of this headline: its evaluator points are one line, not five.
    check = load_evaluation(run_dir).get("settings", {}).get("card_snippet_check")
    if main is None or check is None or any(main.get(k) != v for k, v in check["headline"].items()):
        check = None

    def checked(p: dict[str, Any]) -> bool:
        return check is not None and p["num_samples"] == check["num_samples"] and p["seed"] in check["seeds"] \
            and p.get("reference") == check["reference"] and all(p.get(k) == v for k, v in check["headline"].items())

    others = sorted((p for p in ema if p is not main and p not in sweep and not checked(p)),
                    key=lambda p: -p["num_samples"])
    # The w a conditional model is used with: its headline's (measured at the chosen w), else the table's choice.
    w = main.get("guidance_scale") if main else None
    w = choice["guidance_scale"] if w is None and choice else w
    return {"main": main, "raw": max(raw, key=lambda p: p["num_samples"]) if raw else None, "sweep": sweep,
            "others": others, "guidance": table, "guidance_choice": choice, "guidance_scale": w, "card_check": check}


def guidance_group(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The guidance table of a class-conditional run: its EMA points where several guidance scales were scored
    with the same N, sampler, steps, precision, seed and reference (`evaluate_ddpm.py --guidance_sweep`), by w."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for p in points:
        if p["ema"] and p.get("guidance_scale") is not None:
            key = (p["num_samples"], p["sampler"], p["steps"], p.get("precision", "fp32"), p["seed"], p["reference"])
            groups.setdefault(key, []).append(p)
    scales = {key: {p["guidance_scale"] for p in group} for key, group in groups.items()}
    multi = [key for key in groups if len(scales[key]) > 1]
    if not multi:
        return []
    key = max(multi, key=lambda k: (len(scales[k]), k[0]))
    return sorted(groups[key], key=lambda p: p["guidance_scale"])


def select_guidance(table: list[dict[str, Any]], scales: Iterable[float] = PROTOCOL_GUIDANCE
                    ) -> dict[str, Any] | None:
    """docs/PROTOCOL.md's guidance choice from a guidance table (`guidance_group`): the lowest FID; the w's within
    `PROTOCOL_TIE` of it tie, and the one whose digits the classifier reads as the requested digit most often wins.
    None until every w of `scales` is in the table (nothing is chosen from a partial table)."""
    if not table or not set(scales) <= {p["guidance_scale"] for p in table}:
        return None
    best = min(map(_fid, table))
    tied = [p for p in table if _fid(p) <= best * (1 + PROTOCOL_TIE)]
    return max(tied, key=lambda p: (p["classifier"]["class_accuracy"], -_fid(p)))


def describe_point(point: dict[str, Any]) -> str:
    """One line: the FID with N, reference and floor, how the digits were sampled, how many are recognisable."""

    precision = ", UNet in bf16" if point.get("precision", "fp32") != "fp32" else ""
    guidance = "" if point.get("guidance_scale") is None else (
        f", guidance w = {point['guidance_scale']:g}, classes balanced")
    accuracy = "" if "class_accuracy" not in point["classifier"] else (
        f"; {point['classifier']['class_accuracy']:.1%} read as the requested digit")
    return (f"{format_fid(point['fid'])}; {point['sampler']} with {point['steps']} steps{precision}{guidance}, "
            f"{'EMA' if point['ema'] else 'raw (non-EMA)'} weights; {point['classifier']['confident_share']:.1%} "
            f"of the digits recognisable (classifier confidence > 0.9){accuracy}")


def sweep_points(samplers: Iterable[str], steps: Iterable[int], num_samples: int = 1000, seed: int = 0,
                 precision: str = "fp32", guidance_scale: float | None = None) -> list[Point]:
    """Every sampler × step count, cheapest first (so a short session still fills the low end of the plot)."""
    return sorted((Point(s, k, num_samples, True, seed, precision, guidance_scale=guidance_scale)
                   for s in samplers for k in steps), key=lambda p: p.steps)


def is_conditional_run(run_dir: str | os.PathLike) -> bool:
    """True for a run folder whose UNet takes class labels (`num_class_embeds` in `unet/config.json`)."""
    config = Path(run_dir) / "unet" / "config.json"
    return config.exists() and read_json(config).get("num_class_embeds") is not None


def missing_sweep_points(sweep: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The (sampler, steps) of `PROTOCOL_SWEEP` that `sweep` lacks in its precision, in the protocol's order."""
    done = {(p["sampler"], p["steps"]) for p in sweep
            if p.get("precision", "fp32") == PROTOCOL_SWEEP_PRECISION and not p.get("overrides")}
    return [(sampler, k) for sampler, steps in PROTOCOL_SWEEP for k in steps if (sampler, k) not in done]


def _plan_points(sweep: list[dict[str, Any]], precision: str) -> list[dict[str, Any]]:
    plan = {(sampler, k) for sampler, steps in PROTOCOL_SWEEP for k in steps}
    return [p for p in sweep if (p["sampler"], p["steps"]) in plan and p.get("precision", "fp32") == precision
            and p.get("guidance_scale") is None and not p.get("overrides")]


def _how(point: Mapping[str, Any]) -> tuple[str, int, str]:
    return point["sampler"], point["steps"], point.get("precision", "fp32")


def _fid(point: dict[str, Any]) -> float:
    return point["fid"]["fid"]


def protocol_reruns(sweep: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The (sampler, steps) the protocol re-runs in fp32: the `PROTOCOL_RERUNS` lowest-FID points of a complete
    bf16 sweep ([] while any is missing: nothing is chosen from a partial sweep)."""
    if missing_sweep_points(sweep):
        return []
    ranked = sorted(_plan_points(sweep, PROTOCOL_SWEEP_PRECISION), key=_fid)
    return [(p["sampler"], p["steps"]) for p in ranked[:PROTOCOL_RERUNS]]


def select_point(sweep: list[dict[str, Any]]) -> dict[str, Any] | None:
    """docs/PROTOCOL.md's choice from the sweep (points of one N, seed and reference): among every bf16 point and
    the fp32 re-runs, the lowest FID; the points within `PROTOCOL_TIE` of it tie, and the one with the fewest U-Net
    passes (steps), then bf16, wins. None until the sweep and its fp32 re-runs are all measured."""
    reruns = protocol_reruns(sweep)
    fp32 = [p for p in _plan_points(sweep, "fp32") if (p["sampler"], p["steps"]) in reruns]
    if not reruns or len(fp32) < len(reruns):
        return None
    candidates = [*_plan_points(sweep, PROTOCOL_SWEEP_PRECISION), *fp32]
    best = min(map(_fid, candidates))
    tied = [p for p in candidates if _fid(p) <= best * (1 + PROTOCOL_TIE)]
    return min(tied, key=lambda p: (p["steps"], p.get("precision", "fp32") != "bf16", _fid(p)))


def _sweep_group(point: Mapping[str, Any]) -> tuple[int, int, str]:
    return point["num_samples"], point["seed"], point.get("reference", "mnist-test")


def sweep_results(run_dir: str | os.PathLike, num_samples: int, guidance_scale: float | None = None, *,
                  seed: int | None = None, reference: str | None = None) -> list[dict[str, Any]]:
    """The current EMA points of one N (and, for a class-conditional model, one guidance w; if given, one seed and
    reference) that have a timing: the sweep as measured so far. Points of other w (the guidance table) are another
    axis, never on this one."""
    return sorted((p for p in current_points(run_dir)
                   if p["num_samples"] == num_samples and p["ema"] and p.get("seconds_per_16") is not None
                   and p.get("guidance_scale") == guidance_scale and not p.get("overrides")
                   and seed in (None, p["seed"]) and reference in (None, p.get("reference", "mnist-test"))),
                  key=_how)


def _subplots(figsize: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib  # only when a plot is drawn: loading a model never imports matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=110)


def _save(fig: Any, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _mark_points(ax: Any, points: list[dict[str, Any]], xs: list[float], ys: list[float], color: str) -> None:
    """Label each point with its step count; hollow markers for seconds timed without native bf16."""
    for p, x, y in zip(points, xs, ys, strict=True):
        if timed_at_fp32_speed(p):
            ax.plot(x, y, marker="o", color=color, mfc="white", ls="none")
        ax.annotate(str(p["steps"]), (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)


def sweep_plot(points: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """FID vs seconds per 16 digits, one line per sampler and U-Net precision (a sampler's colour, fp32 dashed when
    the sweep has both), step counts labelled, the real-vs-real floor drawn."""

    fig, ax = _subplots(figsize=(9, 4.8))
    precisions = sorted({p.get("precision", "fp32") for p in points})
    for sampler in sorted({p["sampler"] for p in points}):
        color = None
        for precision in precisions:
            ps = sorted((p for p in points if p["sampler"] == sampler and p.get("precision", "fp32") == precision),
                        key=lambda p: p["steps"])
            if not ps:
                continue
            xs, ys = [p["seconds_per_16"] for p in ps], [p["fid"]["fid"] for p in ps]
            label = sampler if len(precisions) == 1 else f"{sampler} ({precision})"
            (line,) = ax.plot(xs, ys, marker="o", label=label, color=color,
                              ls="--" if precision == "fp32" and len(precisions) > 1 else "-")
            color = line.get_color()
            _mark_points(ax, ps, xs, ys, color)
    floors = [p["fid"]["floor"] for p in points if p["fid"].get("floor") is not None]
    if floors:
        ax.axhline(floors[0], color="grey", ls="--", lw=1, label=f"real-vs-real floor ({floors[0]:.1f})")
    if any(map(timed_at_fp32_speed, points)):
        ax.plot([], [], marker="o", mfc="white", mec="grey", ls="none", label="timed without native bf16 (fp32 speed)")
    n = points[0]["fid"]["n_gen"] if points else 0
    ax.set(xscale="log", yscale="log", xlabel="CPU seconds per 16 digits (log)", ylabel=f"FID, N={n:,} (log)",
           title="DDPM samplers: quality vs time (labels: steps)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # off the points
    return _save(fig, path)


def guidance_plot(points: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """FID (left axis, with its floor) and the share read as the requested digit (right axis) against the
    guidance scale w: the guidance table as a figure."""

    ws = [p["guidance_scale"] for p in points]
    fig, ax = _subplots(figsize=(7, 4.2))
    ax.plot(ws, [p["fid"]["fid"] for p in points], marker="o", color="C0", label="FID")
    if points and points[0]["fid"].get("floor") is not None:
        ax.axhline(points[0]["fid"]["floor"], color="C0", ls="--", lw=1,
                   label=f"real-vs-real floor ({points[0]['fid']['floor']:.1f})")
    n = points[0]["fid"]["n_gen"] if points else 0
    ax.set(xlabel="guidance scale w (0 = unconditional, 1 = conditional)", ylabel=f"FID, N={n:,} (lower is better)",
           title="Classifier-free guidance: quality and class control")
    right = ax.twinx()
    right.plot(ws, [100 * p["classifier"].get("class_accuracy", float("nan")) for p in points], marker="s",
               color="C1", label="read as the requested digit")
    right.set_ylabel("read as the requested digit (%)", color="C1")
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


@torch.no_grad()
def epsilon_error_by_timestep(unet: UNet2DModel, scheduler_config: Mapping[str, Any], images: torch.Tensor,
                              timesteps: Iterable[int], *, seed: int = 0, batch_size: int = 256,
                              autocast_dtype: torch.dtype | None = None) -> dict[int, float]:
    """Mean squared error of the UNet's ε-prediction, per timestep, on real digits noised at that timestep.

    Each digit gets one noise draw (from `seed`), the same at every t, so the curve shows where along t the
    model's error sits (the held-out loss is its average over uniform t). ε-prediction UNets only.

    Args:
        images: uint8 digits `(N, 28, 28)` (held-out ones: the model never saw them).
        timesteps: the training timesteps to score (0 = almost clean, T-1 = pure noise).
        autocast_dtype: run the UNet under `torch.autocast` with this dtype, as sampling does.
    """
    noise_scheduler = make_scheduler("ddpm", scheduler_config)
    if noise_scheduler.config.prediction_type != "epsilon":
        raise ValueError(f"ε-error needs an ε-prediction UNet, not {noise_scheduler.config.prediction_type!r}")
    device = unet.device
    x0 = images.unsqueeze(1).float().div(127.5).sub(1.0)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    errors = {}
    for t in timesteps:
        total = 0.0
        for start in range(0, len(x0), batch_size):
            clean, eps = x0[start:start + batch_size], noise[start:start + batch_size]
            step = torch.full((len(clean),), int(t), dtype=torch.long)
            noisy = noise_scheduler.add_noise(clean, eps, step).to(device, unet.dtype)
            with autocast(device.type, autocast_dtype):
                pred = unet(noisy, step.to(device)).sample
            total += (pred.float().cpu() - eps).pow(2).mean(dim=(1, 2, 3)).sum().item()
        errors[int(t)] = total / len(x0)
    return errors


__all__ = [
    "EVALUATION_FILE",
    "PRECISIONS",
    "PROTOCOL_GUIDANCE",
    "PROTOCOL_RERUNS",
    "PROTOCOL_SWEEP",
    "PROTOCOL_SWEEP_PRECISION",
    "PROTOCOL_TIE",
    "SWEEP_STEPS",
    "Point",
    "chunk_features",
    "chunk_folder",
    "current_points",
    "describe_point",
    "epsilon_error_by_timestep",
    "evaluate_point",
    "evaluation_summary",
    "generate",
    "guidance_group",
    "guidance_plot",
    "is_conditional_run",
    "load_evaluation",
    "missing_sweep_points",
    "point_sampler",
    "protocol_reruns",
    "requested_labels",
    "retime_points",
    "sampled_on",
    "sampling_device",
    "seconds_per_16",
    "select_guidance",
    "select_point",
    "sweep_plot",
    "sweep_points",
    "sweep_results",
    "timed_at_fp32_speed",
    "update_evaluation",
    "weights_digest",
]
