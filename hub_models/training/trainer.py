"""The training loop every trainer shares, in the spirit of lucidrains' `Trainer`: it owns the accelerator, the
checkpoints and the exact resume, the per-update bookkeeping and logging, the per-epoch evaluation and the run
folder; a trainer (vae.py, ddpm.py, classifier.py) only says what its model, step, evaluation and outputs are.

    VAETrainer.main(args)          # what `training/train_vae.py` does after parsing its flags
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import broadcast_object_list, set_seed
from torch.utils.data import DataLoader, TensorDataset

from hub_models.data import MNISTUnavailableError
from hub_models.hub import push_run
from hub_models.image_datasets import ImageDataError, training_data
from hub_models.io import BF16_EMULATED, native_cpu_bf16, write_json_atomic
from hub_models.training.accelerate_utils import (
    CheckpointedGenerator,
    CheckpointLayoutError,
    Stopwatch,
    end_training,
    list_checkpoints,
    make_accelerator,
    resume_from,
    root_checkpoint,
    save_checkpoint,
    updates_per_epoch,
    weights_fingerprint,
)
from hub_models.training.portable_checkpoint import (
    PortableCheckpointError,
    import_checkpoint,
    is_portable_checkpoint,
    portable_step,
)
from hub_models.training.progress import Progress, logger, setup_logging


class TrainState:
    """What an exact resume needs beyond model/optimizer/RNG: the running loss of the current epoch, the loss
    of every update so far, the per-epoch history and the wall time. Registered for checkpointing by the Trainer.

    `epoch_sums` holds per-item sums some trainers keep over an epoch (the VAE's BCE/KLD, the classifier's
    accuracy); it is saved only when used, so DDPM checkpoints keep the layout of runs written before it existed.
    """

    def __init__(self) -> None:
        self.epoch_loss_sum = 0.0
        self.epoch_updates = 0
        self.loss_curve: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.train_seconds = 0.0  # wall time of the updates, summed over resumed sessions
        self.train_cpu_seconds = 0.0  # this process's CPU time over the same updates (a shared machine's honest clock)
        self.epoch_sums: dict[str, float] = {}

    def start_epoch(self) -> None:
        self.epoch_loss_sum, self.epoch_updates, self.epoch_sums = 0.0, 0, {}

    def add_update(self, loss: float, sums: dict[str, float]) -> None:
        self.loss_curve.append(loss)
        self.epoch_loss_sum += loss
        self.epoch_updates += 1
        for key, value in sums.items():
            self.epoch_sums[key] = self.epoch_sums.get(key, 0.0) + value

    def epoch_loss(self) -> float:
        """Mean loss of the current epoch's updates."""
        return self.epoch_loss_sum / max(self.epoch_updates, 1)

    def epoch_mean(self, key: str) -> float:
        """Per-item mean of `epoch_sums[key]` (sums carry their item count as `items`)."""
        return self.epoch_sums.get(key, 0.0) / max(self.epoch_sums.get("items", 0.0), 1.0)

    def record(self, entry: dict[str, Any]) -> None:
        # A partial epoch (stop at --max_train_steps) is replaced when a resumed run finishes that epoch.
        self.history = [h for h in self.history if h["epoch"] != entry["epoch"]] + [entry]

    def state_dict(self) -> dict[str, Any]:
        state = {
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_updates": self.epoch_updates,
            "loss_curve": list(self.loss_curve),
            "history": [dict(h) for h in self.history],
            "train_seconds": self.train_seconds,
            "train_cpu_seconds": self.train_cpu_seconds,
        }
        if self.epoch_sums:
            state["epoch_sums"] = dict(self.epoch_sums)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch_loss_sum, self.epoch_updates = state["epoch_loss_sum"], state["epoch_updates"]
        self.loss_curve, self.history = list(state["loss_curve"]), [dict(h) for h in state["history"]]
        self.train_seconds = state.get("train_seconds", 0.0)
        # Checkpoints from before the CPU clock count their wall time as CPU time (one thread, an upper bound).
        self.train_cpu_seconds = state.get("train_cpu_seconds", self.train_seconds)
        self.epoch_sums = dict(state.get("epoch_sums", {}))


class SlicedTensorDataset(TensorDataset):
    """A `TensorDataset` whose batches are sliced from its tensors in one indexing op per tensor.

    The DataLoader hands `__getitems__` the batch's indices as its (seeded, resumable) sampler drew them, so the
    batches are the same, in the same order, as per-item indexing + `default_collate` gives; only the 64 Python
    item lookups and the `torch.stack` per batch are gone. Use it with `collate_fn=keep_batch`.
    """

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return [tensor.index_select(0, index) for tensor in self.tensors]


def keep_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """collate_fn of a `SlicedTensorDataset`: its batches are already stacked (module-level: workers pickle it)."""
    return batch


def tensor_loader(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True) -> DataLoader:
    """A DataLoader over in-memory tensors (same first dimension) whose batches are sliced whole
    (`SlicedTensorDataset`), shuffled by the sampler accelerate's `prepare` seeds per epoch: the batches of
    `DataLoader(TensorDataset(*tensors), batch_size, shuffle)`, faster."""
    return DataLoader(SlicedTensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle, drop_last=False,
                      collate_fn=keep_batch)


def use_faster_adam(optimizer: torch.optim.Optimizer, fused: bool = False) -> bool:
    """Give Adam/AdamW left at their default implementation the multi-tensor (`foreach`) one, which PyTorch picks
    by default on CUDA but not on the CPU: a few batched ops over all parameters instead of a Python loop over each,
    with the same arithmetic, so the weights stay bitwise the same (tests/test_vae_speed_paths.py checks).
    `fused=True`: the fused kernel instead (faster still, but it rounds differently). Returns whether any
    parameter group was switched."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the real one
    if type(inner) not in (torch.optim.Adam, torch.optim.AdamW):
        return False
    switched = False
    for group in inner.param_groups:
        if group.get("differentiable") or (group.get("foreach") is not None and not fused):
            continue  # a choice the trainer made itself
        if fused:
            group["foreach"], group["fused"] = None, True
        elif not group.get("fused"):
            group["foreach"] = True
        else:
            continue
        switched = True
    if fused and switched:
        inner._step_supports_amp_scaling = True  # what Adam(fused=True) sets in its constructor
    return switched


def tracker_config(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as tracker hyper-parameters (tensorboard takes numbers, strings and booleans only)."""
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in vars(args).items()}


class Trainer:
    """The loop. Subclasses define `build`, `training_step`, `end_of_epoch` and, as needed, the other hooks."""

    name = "train"  # tracker project and progress-bar label
    uses_noise_rng = True  # a checkpointed generator for the step's noise (registered first: checkpoint layout)

    def __init__(self, args: argparse.Namespace) -> None:
        setup_logging()
        self.args = args
        self.output_dir = Path(args.output_dir)
        self.accelerator = make_accelerator(
            self.output_dir,
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            log_with=None if args.logger == "none" else args.logger,
        )
        set_seed(args.seed)
        # MNIST by default (images (N, 28, 28)); any other image data as (N, C, H, W), described by data_info.
        self.train_split, self.held_out, self.data_info = training_data(args)
        self.state = TrainState()
        self.clock = Stopwatch()
        self.global_step = self.images_seen = 0
        self.noise: CheckpointedGenerator | None = None

    # ----------------------------------------------------------------------------------------------------------
    # What a trainer defines
    # ----------------------------------------------------------------------------------------------------------
    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader]:
        """The model, its optimizer and the training DataLoader (not yet prepared)."""
        raise NotImplementedError

    def tensor_loader(self, *tensors: torch.Tensor, shuffle: bool = True) -> DataLoader:
        """`tensor_loader` at --train_batch_size, for `build`."""
        return tensor_loader(*tensors, batch_size=self.args.train_batch_size, shuffle=shuffle)

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer, max_steps: int) -> Any:
        """A learning-rate scheduler (prepared after the rest, once the number of updates is known) or None."""
        return None

    def checkpointed(self) -> list[Any]:
        """Further objects saved in checkpoints, after the noise generator and the TrainState (e.g. the EMA)."""
        return []

    def after_resume(self) -> None:
        """Fix-ups once a checkpoint is loaded (e.g. move the EMA back to the device)."""

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One micro-batch: forward, backward, update. Returns (mean loss, per-item sums with their `items`)."""
        raise NotImplementedError

    def update_logs(self, loss: float, sums: dict[str, float]) -> dict[str, float]:
        """Tracker values of one update beside train/loss and train/lr."""
        return {}

    def postfix(self, loss: float, sums: dict[str, float]) -> dict[str, str]:
        """What the progress bar (or progress line) shows for one update."""
        return {"loss": f"{loss:.4f}"}

    def end_of_epoch(self, epoch: int) -> dict[str, Any]:
        """Evaluate after an epoch (or a partial one); returns the history record (with `epoch`)."""
        raise NotImplementedError

    def write_epoch(self, epoch: int) -> None:
        """Main process, after every epoch: what a run cut short should still have on disk."""

    def write_final(self) -> dict[str, Any] | None:
        """Main process, at the end: the finished run's files; returns its metrics."""
        return None

    def describe(self) -> str:
        """One line about the model and the data, logged at the start."""
        return f"{len(self.train_split):,} train / {len(self.held_out):,} held-out images of {self.data_info.name}"

    def fingerprint_modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.unwrapped,)

    def config_extras(self) -> dict[str, Any]:
        """What training_config.json records beside the flags."""
        return {
            "dataset": self.data_info.to_dict(),  # what `from_pretrained` users and cards read of the data
            "num_processes": self.accelerator.num_processes,
            "mixed_precision_used": self.accelerator.mixed_precision,
            "total_batch_size": self.args.train_batch_size * self.accelerator.num_processes
            * self.args.gradient_accumulation_steps,
        }

    def push(self) -> str:
        """Publish the finished run (`--push_to_hub`); returns the commit URL."""
        return push_run(self.output_dir, self.args.hub_model_id, private=self.args.hub_private)

    # ----------------------------------------------------------------------------------------------------------
    # The loop
    # ----------------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Prepare everything with accelerate, register the checkpointed state, resume, write the config."""
        acc, args = self.accelerator, self.args
        model, optimizer, loader = self.build()
        if getattr(args, "channels_last", False):  # opt-in: other conv kernels, other rounding
            model = model.to(memory_format=torch.channels_last)
        self.model, self.optimizer, self.loader = acc.prepare(model, optimizer, loader)
        self.steps_per_epoch = updates_per_epoch(len(self.loader), args.gradient_accumulation_steps)  # per process
        self.max_steps = args.max_train_steps or args.num_epochs * self.steps_per_epoch
        # A prepared scheduler steps once per process per update: give it those numbers (as diffusers' examples).
        lr_scheduler = self.make_lr_scheduler(self.optimizer, self.max_steps * acc.num_processes)
        self.lr_scheduler = acc.prepare(lr_scheduler) if lr_scheduler is not None else None
        self.num_epochs = math.ceil(self.max_steps / self.steps_per_epoch)

        # Registration order is the checkpoint layout: keep it fixed.
        if self.uses_noise_rng:
            self.noise = CheckpointedGenerator(args.seed + acc.process_index, acc.device)
            acc.register_for_checkpointing(self.noise)
        acc.register_for_checkpointing(self.state)
        for obj in self.checkpointed():
            acc.register_for_checkpointing(obj)
        self.start = resume_from(acc, self.output_dir, self._resume_source(), self.steps_per_epoch,
                                 args.gradient_accumulation_steps)
        self.global_step = self.start.global_step
        # After the resume: a loaded state brings its own param_groups. Fused is opt-in (other rounding).
        use_faster_adam(self.optimizer, fused=getattr(args, "use_fused_adam", False))
        self.after_resume()
        self.unwrapped = acc.unwrap_model(self.model)

        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.output_dir / "training_config.json", {**vars(args), **self.config_extras()})
            acc.init_trackers(self.name, config=tracker_config(args))
        # Per-update values go to tensorboard's writer itself, flushed every --log_every updates: accelerate's `log`
        # flushes on every call, which waits for the writer thread (on a busy CPU, most of what logging costs).
        self._writer = acc.get_tracker("tensorboard", unwrap=True) if args.logger == "tensorboard" else None
        logger.info(f"{self.describe()}; {self.max_steps} updates ({self.steps_per_epoch}/epoch); "
                    f"{acc.num_processes} process(es) on {acc.device}; mixed precision {acc.mixed_precision}")
        if acc.device.type == "cpu" and acc.mixed_precision == "bf16" and not native_cpu_bf16():
            logger.warning(f"--mixed_precision bf16: {BF16_EMULATED}; train with --mixed_precision no here")

    def _resume_source(self) -> str | None:
        """--resume_from_checkpoint, with a portable checkpoint (a run carried in git, written by
        scripts/export_training_state.py) first recreated as an accelerate checkpoint of this run."""
        which = self.args.resume_from_checkpoint
        if not which or which == "latest" or not is_portable_checkpoint(which):
            return which
        dest = root_checkpoint(self.output_dir, portable_step(which))
        imported = [str(import_checkpoint(which, dest)) if self.accelerator.is_main_process else None]
        return broadcast_object_list(imported)[0]

    def train(self) -> dict[str, Any] | None:
        """Run (or resume) the whole training; returns the finished run's metrics on the main process."""
        self.setup()
        acc, args = self.accelerator, self.args
        if self.global_step and not self.start.batches_to_skip and not any(
            h.get("step") == self.global_step for h in self.state.history
        ):  # checkpointed at the last update of an epoch, before its evaluation: evaluate that epoch now
            self._finish_epoch(self.start.first_epoch - 1)
        progress = Progress(self.max_steps, self.global_step, self.name, args.log_every, acc.is_local_main_process)
        for epoch in range(self.start.first_epoch, self.num_epochs):
            if self.cpu_budget_spent:  # resumed after the budget's end: nothing left to train
                break
            self.model.train()
            self.loader.set_epoch(epoch)
            mid_epoch = epoch == self.start.first_epoch and self.start.batches_to_skip > 0
            batches = acc.skip_first_batches(self.loader, self.start.batches_to_skip) if mid_epoch else self.loader
            if not mid_epoch:
                self.state.start_epoch()
            with self.clock:
                self._run_epoch(epoch, batches, progress)
            if self._finish_epoch(epoch):
                break
        progress.close()

        if args.write_rank_fingerprints:
            fingerprint = weights_fingerprint(*self.fingerprint_modules())
            (self.output_dir / f"rank{acc.process_index}.sha256").write_text(fingerprint)
        metrics = self.write_final() if acc.is_main_process else None
        if acc.is_main_process and args.push_to_hub:
            # The run's result, on stdout. The run is safe on disk already: a failed upload is reported, never raised.
            try:
                print(f"Pushed to {self.push()}", flush=True)
            except Exception as err:
                print(f"warning: push to the Hub failed ({type(err).__name__}: {err}); the run is in "
                      f"{self.output_dir}: retry with `python scripts/push_to_hub.py --run_dir {self.output_dir} "
                      f"--repo_id {args.hub_model_id}`", flush=True)
        end_training(acc)
        return metrics

    def _finish_epoch(self, epoch: int) -> bool:
        """Evaluate, record, checkpoint at the end (or every epoch), write the epoch's outputs. True when done."""
        acc, args = self.accelerator, self.args
        self.state.record(self.end_of_epoch(epoch))
        done = self.global_step >= self.max_steps or self.cpu_budget_spent
        every = args.checkpointing_steps
        if every != "none" and (done or every == "epoch") and not any(
            c.name == f"checkpoint-{self.global_step}" for c in list_checkpoints(self.output_dir)
        ):
            save_checkpoint(acc, self.output_dir, self.global_step, args.checkpoints_total_limit)
        if acc.is_main_process:
            self.write_epoch(epoch)
        acc.wait_for_everyone()
        return done

    def _run_epoch(self, epoch: int, batches: Any, progress: Progress) -> None:
        acc, args = self.accelerator, self.args
        update_loss = torch.zeros((), device=acc.device)
        update_sums: dict[str, torch.Tensor] = {}
        tick, cpu_tick = time.perf_counter(), time.process_time()
        for batch in batches:
            loss, sums = self.training_step(batch)
            update_loss += loss / args.gradient_accumulation_steps
            for key, value in sums.items():
                update_sums[key] = update_sums.get(key, 0) + value.detach().double()
            self.images_seen += len(batch[0]) * acc.num_processes
            if not acc.sync_gradients:
                continue
            self.global_step += 1
            now = time.perf_counter()
            self.state.train_seconds, tick = self.state.train_seconds + now - tick, now
            cpu_now = time.process_time()
            cpu_before = self.state.train_cpu_seconds
            self.state.train_cpu_seconds, cpu_tick = cpu_before + cpu_now - cpu_tick, cpu_now
            self._snapshot_if_due(cpu_before)
            step_loss = acc.reduce(update_loss, reduction="mean").item()
            update_loss.zero_()
            step_sums = {}
            if update_sums:
                keys = sorted(update_sums)
                reduced = acc.reduce(torch.stack([update_sums[k] for k in keys]), reduction="sum").tolist()
                step_sums, update_sums = dict(zip(keys, reduced, strict=True)), {}
            self.state.add_update(step_loss, step_sums)
            progress.update(self.global_step, epoch, self.postfix(step_loss, step_sums))
            logs = {"train/loss": step_loss, **self.update_logs(step_loss, step_sums)}
            if self.lr_scheduler is not None:
                logs["train/lr"] = self.lr_scheduler.get_last_lr()[0]
            self._track(logs)
            if isinstance(args.checkpointing_steps, int) and self.global_step % args.checkpointing_steps == 0:
                save_checkpoint(acc, self.output_dir, self.global_step, args.checkpoints_total_limit)
            if self.global_step >= self.max_steps or self.cpu_budget_spent:
                break

    @property
    def cpu_budget_spent(self) -> bool:
        """--max_train_cpu_hours reached (the updates' own CPU time, so other work on the machine does not count)."""
        hours = getattr(self.args, "max_train_cpu_hours", None)
        return hours is not None and self.state.train_cpu_seconds >= hours * 3600

    def _snapshot_if_due(self, cpu_before: float) -> None:
        """--snapshot_every_cpu_hours: the sampling model when the updates' CPU time passes a multiple of it."""
        every = getattr(self.args, "snapshot_every_cpu_hours", None)
        if not every or not self.accelerator.is_main_process:
            return
        k = int(self.state.train_cpu_seconds // (every * 3600))
        if k > int(cpu_before // (every * 3600)):
            self.write_snapshot(self.output_dir / "snapshots" / f"cpu_hours_{k * every:g}")

    def write_snapshot(self, directory: Path) -> None:
        """The sampling model as it is now, in `directory` (trainers that support --snapshot_every_cpu_hours)."""
        raise NotImplementedError(f"{type(self).__name__} writes no snapshots")

    def _track(self, logs: dict[str, float]) -> None:
        """One update's tracker values (the same events as `accelerator.log`, without its flush per call)."""
        writer = getattr(self, "_writer", None)
        if not hasattr(writer, "add_scalar") or not all(isinstance(v, int | float) for v in logs.values()):
            self.accelerator.log(logs, step=self.global_step)  # other processes get a blank tracker: no-ops
            return
        for key, value in logs.items():
            writer.add_scalar(key, value, global_step=self.global_step)
        if self.global_step % self.args.log_every == 0:
            writer.flush()

    def run_summary(self) -> dict[str, Any]:
        """Timing and size numbers every run's metrics.json records."""
        return {
            "global_step": self.global_step,
            "dataset": self.data_info.to_dict(),  # what `from_pretrained` users and cards read of the data
            "num_processes": self.accelerator.num_processes,
            "train_seconds": self.state.train_seconds,
            "train_cpu_seconds": self.state.train_cpu_seconds,
            "seconds_per_epoch": self.state.train_seconds * self.steps_per_epoch / max(self.global_step, 1),
            "images_per_second_this_session": self.images_seen / self.clock.total if self.clock.total else None,
            "seed": self.args.seed,
            "split": self.args.split,
            "train_samples": len(self.train_split),
            "test_samples": len(self.held_out),
        }

    @classmethod
    def main(cls, args: argparse.Namespace) -> dict[str, Any] | None:
        """What a training script calls: train, turning the errors a user can fix into one line and exit 1."""
        try:
            return cls(args).train()
        except (MNISTUnavailableError, ImageDataError, CheckpointLayoutError, PortableCheckpointError) as err:
            raise SystemExit(f"error: {err}") from None
        except FloatingPointError as err:  # diverged: the checkpoints on disk are the last good state
            raise SystemExit(f"error: {err}") from None


__all__ = [
    "SlicedTensorDataset",
    "TrainState",
    "Trainer",
    "keep_batch",
    "tensor_loader",
    "tracker_config",
    "use_faster_adam",
]
