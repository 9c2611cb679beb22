"""Accelerate plumbing shared by the training scripts: the accelerator, atomic checkpoints, exact resume."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1, with a message that names the bad value."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number ≥ 0."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def make_accelerator(output_dir: str | os.PathLike, *, mixed_precision: str | None = None,
                     gradient_accumulation_steps: int = 1, log_with: str | None = "tensorboard") -> Accelerator:
    """An `Accelerator` that also works data-parallel on CPU-only machines.

    Without CUDA, `cpu=True` is what turns `accelerate launch --multi_gpu`/`torchrun` into MULTI_CPU over gloo
    (otherwise every process trains alone). `mixed_precision=None` lets `accelerate launch`'s setting win.
    """
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(Path(output_dir) / "logs")),
        # Shuffling driven by (seed, epoch) alone, so a resumed run sees exactly the same batches.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def end_training(accelerator: Accelerator) -> None:
    """Finish trackers and tear the process group down cleanly (avoids a SIGABRT on rank 1 at exit)."""
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# --------------------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------------------
def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints, oldest first (temp folders of interrupted saves are not listed)."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_step(path: str | os.PathLike) -> int:
    match = _CHECKPOINT_RE.match(Path(path).name)
    if not match:
        raise ValueError(f"{path} is not a checkpoint folder (expected checkpoint-<step>)")
    return int(match.group(1))


def save_checkpoint(accelerator: Accelerator, output_dir: str | os.PathLike, step: int, keep: int | None) -> Path:
    """`accelerator.save_state` into a temp folder renamed into place: a kill mid-save never leaves a
    `checkpoint-N` that `latest` would pick but could not load. Keeps the newest `keep` checkpoints."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    final, tmp = root / f"checkpoint-{step}", root / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        if keep is not None and keep > 0:
            for old in list_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, output_dir: str | os.PathLike, which: str) -> int | None:
    """Restore `which` (`latest` or a path); returns the global step, or None when there is nothing to resume.

    With `latest`, a checkpoint that fails to load (truncated, corrupt) is skipped with a warning and the
    previous one is tried.
    """
    if which != "latest":
        accelerator.load_state(str(which))
        return checkpoint_step(which)
    for path in reversed(list_checkpoints(output_dir)):
        try:
            accelerator.load_state(str(path))
            return checkpoint_step(path)
        except Exception as err:
            accelerator.print(f"warning: skipping unreadable checkpoint {path} ({type(err).__name__}: {err})")
    return None


@dataclass
class ResumePoint:
    global_step: int = 0
    first_epoch: int = 0
    batches_to_skip: int = 0  # batches of `first_epoch` already consumed


def resume_point(global_step: int | None, updates_per_epoch: int, gradient_accumulation_steps: int) -> ResumePoint:
    if not global_step:
        return ResumePoint()
    epoch, done = divmod(global_step, updates_per_epoch)
    return ResumePoint(global_step, epoch, done * gradient_accumulation_steps)


def resume_from(accelerator: Accelerator, output_dir: str | os.PathLike, which: str | None,
                updates_per_epoch: int, gradient_accumulation_steps: int) -> ResumePoint:
    """Restore `which` (`latest`, a path, or None for a fresh run) and say where training picks up."""
    step = None
    if which:
        step = load_checkpoint(accelerator, output_dir, which)
        if step is None:
            accelerator.print("No checkpoint to resume from: starting a new run.")
    return resume_point(step, updates_per_epoch, gradient_accumulation_steps)


def updates_per_epoch(num_batches: int, gradient_accumulation_steps: int) -> int:
    return math.ceil(num_batches / gradient_accumulation_steps)


# --------------------------------------------------------------------------------------------------------------
# Run outputs
# --------------------------------------------------------------------------------------------------------------
class Stopwatch:
    """Wall time of the training loop alone (evaluation and figures excluded)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start: float | None = None

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.total += time.perf_counter() - (self._start or time.perf_counter())


def check_finite(loss: torch.Tensor, step: int) -> None:
    """Stop on NaN/inf instead of writing garbage weights over the last good checkpoint."""
    if not torch.isfinite(loss).all():
        raise FloatingPointError(
            f"loss became {loss.item()} at step {step}; stopping. The last good checkpoint is kept: lower the "
            "learning rate or resume with --resume_from_checkpoint latest."
        )


class CheckpointedGenerator:
    """A torch.Generator for training noise whose state is saved with `accelerator.save_state`.

    The global RNG is not enough for an exact resume: each new DataLoader iterator draws from it, so a resumed run
    would see shifted noise. Register with `accelerator.register_for_checkpointing(rng)`; use `rng.generator`.
    """

    def __init__(self, seed: int, device: str | torch.device = "cpu") -> None:
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["state"])
