#!/usr/bin/env python
"""Where the time of one `train_vae.py` update goes, part by part, and what each speed lever buys.

    OMP_NUM_THREADS=1 python benchmarks/vae_step_profile.py                    # the part table, then the levers
    OMP_NUM_THREADS=1 python benchmarks/vae_step_profile.py --levers none      # the part table only

The part table runs the trainer's own objects (`VAETrainer` after `setup()`: the prepared model, optimizer and
DataLoader, the tensorboard tracker, the progress line) and times each part of an update (one thread on the CPU:
every op has finished when it returns, so no part hides another's time): the batch from the DataLoader,
uint8 → float, `accelerator.accumulate`, forward, loss, the NaN check (a host sync), backward, `optimizer.step` +
`zero_grad`, the loop's bookkeeping (`.item()` / `.tolist()` of the reduced loss and sums), the progress line and
the tracker log (`Trainer._track`: tensorboard's writer, flushed every --log_every updates). Medians over
`--steps` updates after `--warmup` updates.

The levers are timed as whole updates (data + step + bookkeeping), each its own trainer, in alternating rounds in
the same process, so load drifts hit all alike; the model, data and seed are the same for all.

The clock is the process's CPU time (`--clock cpu`, `time.process_time`: all its threads, so the tracker's writer
thread counts too) unless `--clock wall`: on a shared, oversubscribed machine wall time mostly measures the
other processes, CPU time what an update costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python benchmarks/...` from a checkout
sys.path.insert(0, str(REPO / "training"))

from train_vae import parse_args  # noqa: E402

from hub_models.data import uint8_to_unit  # noqa: E402
from hub_models.io import check_finite  # noqa: E402
from hub_models.training.progress import Progress  # noqa: E402
from hub_models.training.vae import VAETrainer, beta_at  # noqa: E402

PARTS = ["data", "to float", "accumulate()", "forward", "loss", "NaN check (sync)", "backward", "optimizer",
         "bookkeeping (.item)", "progress", "tracker log"]  # fmt: skip
LEVERS = {  # name: (train_vae.py attributes the trainer reads, cumulative with the rows above it)
    "HEAD: per-item collate, for-loop Adam": {"_per_item_collate": True, "_for_loop_adam": True},
    "batch slicing": {"_for_loop_adam": True},
    "+ foreach Adam (= default)": {},
    "+ fused Adam (opt-in)": {"use_fused_adam": True},
    "+ channels_last (opt-in)": {"use_fused_adam": True, "channels_last": True},
    "+ inductor (opt-in)": {"use_fused_adam": True, "channels_last": True, "_inductor": True},
}
PROFILED = ["HEAD: per-item collate, for-loop Adam", "+ foreach Adam (= default)", "+ channels_last (opt-in)"]


def make_trainer(work: Path, num_train_samples: int, batch_size: int, **extra) -> VAETrainer:
    """A set-up VAETrainer as `train_vae.py --limit_train_samples N --mixed_precision no` builds it; `extra`:
    attributes set on its args, and `_per_item_collate` / `_for_loop_adam` / `_inductor` to time HEAD's loader,
    PyTorch's CPU default Adam and `accelerate launch --dynamo_backend inductor`."""
    args = parse_args(["--limit_train_samples", str(num_train_samples), "--train_batch_size", str(batch_size),
                       "--mixed_precision", "no", "--log_every", "10", "--output_dir", str(work), "--seed", "0"])
    for key, value in extra.items():
        if not key.startswith("_"):
            setattr(args, key, value)
    if extra.get("_inductor"):
        os.environ["ACCELERATE_DYNAMO_BACKEND"] = "inductor"  # what `accelerate launch --dynamo_backend` sets
    try:
        trainer = VAETrainer(args)
    finally:
        os.environ.pop("ACCELERATE_DYNAMO_BACKEND", None)
    if extra.get("_per_item_collate"):  # the DataLoader before batch slicing
        trainer.tensor_loader = lambda *tensors: DataLoader(
            TensorDataset(*tensors), batch_size=batch_size, shuffle=True, drop_last=False
        )
    trainer.setup()
    if extra.get("_for_loop_adam"):
        for group in trainer.optimizer.param_groups:
            group["foreach"] = None
    return trainer


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = time.process_time


def profile_parts(trainer: VAETrainer, warmup: int, steps: int) -> dict[str, float]:
    """Median ms of each part of an update (the trainer's loop, unrolled with a clock between parts)."""
    acc, model, optimizer = trainer.accelerator, trainer.model, trainer.optimizer
    unwrapped, generator = trainer.unwrapped, trainer.noise.generator
    progress = Progress(trainer.max_steps, 0, trainer.name, trainer.args.log_every, True)
    times: dict[str, list[float]] = {p: [] for p in PARTS}
    batches = iter(trainer.loader)
    for step in range(warmup + steps):
        t = [clock()]
        batch = next(batches)
        t.append(clock())
        x = uint8_to_unit(batch[0])
        t.append(clock())
        ctx = acc.accumulate(model)
        ctx.__enter__()
        t.append(clock())
        out = model(x, None, generator=generator)
        t.append(clock())
        terms = unwrapped.loss(x, beta=1.0, output=out)
        t.append(clock())
        check_finite(terms.loss, step)
        t.append(clock())
        acc.backward(terms.loss)
        t.append(clock())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ctx.__exit__(None, None, None)
        t.append(clock())
        beta = beta_at(trainer.args, step, trainer.steps_per_epoch)
        n = torch.tensor(float(len(x)))
        sums = {"bce": terms.bce.detach() * n, "kld": terms.kld.detach() * n, "items": n}
        update_sums = {k: v.double() for k, v in sums.items()}
        loss = acc.reduce(terms.loss.detach(), reduction="mean").item()
        keys = sorted(update_sums)
        step_sums = dict(zip(keys, acc.reduce(torch.stack([update_sums[k] for k in keys])).tolist(), strict=True))
        trainer.state.add_update(loss, step_sums)
        t.append(clock())
        progress.update(step + 1, 0, trainer.postfix(loss, step_sums))
        t.append(clock())
        trainer.global_step = step + 1
        trainer._track({"train/loss": loss, "train/beta": beta})
        t.append(clock())
        if step >= warmup:
            for part, a, b in zip(PARTS, t[:-1], t[1:], strict=True):
                times[part].append(b - a)
    progress.close()
    return {part: 1e3 * statistics.median(v) for part, v in times.items()}


def time_updates(trainer: VAETrainer, steps: int) -> float:
    """ms per update of the trainer's own loop (`_run_epoch`) over `steps` updates."""
    trainer.max_steps = trainer.global_step + steps
    progress = Progress(trainer.max_steps, trainer.global_step, trainer.name, 10**9, False)
    start = clock()
    trainer._run_epoch(0, trainer.loader, progress)
    return 1e3 * (clock() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=64, help="The study's 64.")
    parser.add_argument("--num_train_samples", type=int, default=12800, help="Digits in memory (≥ a round's steps).")
    parser.add_argument("--warmup", type=int, default=20, help="Updates before timing (compilation, caches).")
    parser.add_argument("--steps", type=int, default=150, help="Timed updates of the part table.")
    parser.add_argument("--rounds", type=int, default=10, help="Alternating rounds of the levers.")
    parser.add_argument("--round_steps", type=int, default=20, help="Timed updates per lever and round (short "
                        "rounds, many of them: a shared machine's load drifts less within one).")
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), help=f"Which of {list(LEVERS)}; 'none': none.")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="CPU time of this process, or wall.")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(tempfile.mkdtemp(prefix="vae-step-profile-"))
    print(f"Conv VAE z=2, batch {args.batch_size}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"{args.clock} clock, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    tables = {name: profile_parts(make_trainer(work / f"parts{i}", args.num_train_samples, args.batch_size,
                                                **LEVERS[name]), args.warmup, args.steps)
              for i, name in enumerate(PROFILED)}  # fmt: skip
    print(f"\none update, median ms per part over {args.steps} updates:")
    print(f"  {'part':22s} " + " ".join(f"{name[:26]:>26s}" for name in tables))
    for part in PARTS:
        print(f"  {part:22s} " + " ".join(f"{t[part]:26.3f}" for t in tables.values()))
    totals = [sum(t.values()) for t in tables.values()]
    print(f"  {'sum':22s} " + " ".join(f"{v:26.3f}" for v in totals))
    print(f"  {'images/s':22s} " + " ".join(f"{1e3 * args.batch_size / v:26,.0f}" for v in totals))

    levers = [name for name in args.levers if name != "none"]
    if not levers:
        return
    trainers: dict[str, Callable[[], float]] = {}
    for name in levers:
        trainer = make_trainer(work / name.replace(" ", "_"), args.num_train_samples, args.batch_size,
                               **LEVERS[name])
        time_updates(trainer, args.warmup)
        trainers[name] = lambda t=trainer: time_updates(t, args.round_steps)
    rates: dict[str, list[float]] = {name: [] for name in levers}
    for r in range(args.rounds):
        for name in levers if r % 2 == 0 else levers[::-1]:
            rates[name].append(trainers[name]())
    base = statistics.median(rates[levers[0]])
    print(f"\nwhole updates (train loop incl. data, bookkeeping, tensorboard), ms per update, median of "
          f"{args.rounds} alternating rounds of {args.round_steps}:")
    for name in levers:
        ms = statistics.median(rates[name])
        print(f"  {name:30s} {ms:7.3f} ms  ({1e3 * args.batch_size / ms:,.0f} images/s, {base / ms:.2f}× "
              f"{levers[0]}; rounds {', '.join(f'{v:.2f}' for v in rates[name])})")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
