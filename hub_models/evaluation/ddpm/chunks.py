"""A point's digits and Inception features, made in chunks on disk (resumable, shared by several processes), and
where each chunk was sampled."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from safetensors import safe_open

from hub_models.evaluation.ddpm.point import PRECISIONS, Point, point_sampler, weights_digest
from hub_models.evaluation.inception import inception_features
from hub_models.evaluation.metrics import as_uint8
from hub_models.io import (
    BF16_CONVOLUTIONS_IN_FP32,
    bf16_convolutions_in_fp32,
    compute_device,
    read_json,
    write_json_atomic,
)

SAMPLED_ON_FILE = "sampled_on.json"  # beside a point's chunks: chunk file → the device it was sampled on

def generate(run_dir: str | os.PathLike, point: Point, batch_size: int = 500,
             log: Callable[[str], None] = print, results_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """`point.num_samples` images as uint8 `(N, H, W)` (grey: MNIST's `(N, 28, 28)`) or `(N, 3, H, W)` (RGB);
    chunks already on disk are reused (resumable).

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
            log(f"[{point.key}] no native bf16 on this CPU: {BF16_CONVOLUTIONS_IN_FP32} (docs/lab/PROTOCOL.md)")
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
