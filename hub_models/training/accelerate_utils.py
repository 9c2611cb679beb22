"""Accelerate plumbing shared by the trainers: the accelerator, atomic checkpoints, exact resume."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import PartialState
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, gather_object

from hub_models.training.progress import logger

CHECKPOINTS_DIR = "checkpoints"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


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


class CheckpointLayoutError(RuntimeError):
    """A checkpoint written with other registered state than this trainer's (another script or version)."""


def _load_state(accelerator: Accelerator, path: Path) -> None:
    try:
        accelerator.load_state(str(path))
    except RuntimeError as err:
        if "does not match the number of registered objects" in str(err):  # accelerate's wording
            raise CheckpointLayoutError(
                f"{path} holds other training state than this script saves (another script or an older "
                "version wrote it); nothing was changed. Resume it with the script that wrote it."
            ) from None
        raise


def root_checkpoint(output_dir: str | os.PathLike, step: int) -> Path:
    """`<output_dir>/checkpoints/checkpoint-<step>`."""
    return Path(output_dir) / CHECKPOINTS_DIR / f"checkpoint-{step}"


def load_checkpoint(accelerator: Accelerator, output_dir: str | os.PathLike, which: str) -> int | None:
    """Restore `which` (`latest` or a path); returns the global step, or None when there is nothing to resume.

    With `latest`, a checkpoint that fails to load (truncated, corrupt) is skipped with a warning and the
    previous one is tried; one written by another script (CheckpointLayoutError) stops the run instead of
    silently starting a new one over it.
    """
    if which != "latest":
        _load_state(accelerator, Path(which))
        return checkpoint_step(which)
    for path in reversed(list_checkpoints(output_dir)):
        try:
            _load_state(accelerator, path)
            return checkpoint_step(path)
        except CheckpointLayoutError:
            raise
        except Exception as err:
            logger.warning(f"skipping unreadable checkpoint {path} ({type(err).__name__}: {err})")
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
            logger.info("No checkpoint to resume from: starting a new run.")
        else:
            logger.info(f"Resumed from checkpoint-{step}: step {step}, epoch {step // updates_per_epoch + 1}")
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


class CheckpointedGenerator:
    """A torch.Generator for training noise whose state is saved with `accelerator.save_state`.

    The global RNG is not enough for an exact resume: each new DataLoader iterator draws from it, so a resumed run
    would see shifted noise. Register with `accelerator.register_for_checkpointing(rng)`; use `rng.generator`.
    accelerate saves custom state from the main process only, so every process's state is gathered into it
    (`states`); `state` is the main process's, as in checkpoints written before, which still load.
    """

    def __init__(self, seed: int, device: str | torch.device = "cpu") -> None:
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def state_dict(self) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        state = self.generator.get_state()
        if PartialState().num_processes == 1:
            return {"state": state}
        return {"state": state, "states": gather_object([state])}  # a collective: save_state runs on every rank

    def load_state_dict(self, state: dict[str, torch.Tensor | list[torch.Tensor]]) -> None:
        partial = PartialState()
        states = state.get("states")
        if states is not None and len(states) == partial.num_processes:
            self.generator.set_state(states[partial.process_index])
        else:
            self.generator.set_state(state["state"])


def weights_fingerprint(*modules: torch.nn.Module) -> str:
    """sha256 of the modules' state dicts (names and bytes): equal on every rank of an in-sync data-parallel run."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
