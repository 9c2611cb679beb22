#!/usr/bin/env python
"""Training images/s: `training/train_vae.py` vs pytorch/examples' `vae/main.py` with the study's Conv VAE
swapped in, both run as subprocesses, alternating.

    # the example (kept outside the repo; not part of this project):
    curl -fLo runs/bench/vae_main.py https://raw.githubusercontent.com/pytorch/examples/main/vae/main.py
    OMP_NUM_THREADS=1 python benchmarks/vae_throughput.py --example_script runs/bench/vae_main.py
    # before/after in the same rounds: a checkout of the earlier commit as a third side
    git worktree add /tmp/before HEAD~1 && OMP_NUM_THREADS=1 python benchmarks/vae_throughput.py \
        --example_script runs/bench/vae_main.py --compare_checkout /tmp/before

What is compared, the same on both sides:
- model: the study's Conv VAE (`hub_models` ConvVAE, z=2). The example's model line `model = VAE().to(device)` is
  replaced, in a temporary copy, by a thin wrapper around it that returns what the example's loop expects
  (reconstruction as (batch, 784), μ, log σ²); the example's loss is kept: BCE summed + KLD, i.e. the study's
  BCE(sum) + β·KLD at β = 1 (train_vae.py's default). If that line is missing the benchmark stops with an error.
- data: the first `--num_train_samples` digits of the study's training split. train_vae.py reads them with
  `--limit_train_samples`; for the example they are written once as MNIST idx files, which its unchanged
  `datasets.MNIST('../data', download=True, transform=ToTensor())` finds (so it downloads nothing) and decodes
  per item, as it does on the real MNIST.
- batch `--batch_size` (the study's 64), Adam lr 1e-3, fp32, progress every 10 steps (the example's default
  `--log-interval 10`; train_vae.py `--log_every 10`).

Timing: as in benchmarks/ddpm_throughput.py (details in benchmarks/anchor.py): from the progress lines, only the
steps after `--warmup_steps`, start-up never counted, each round a fresh pair of processes, A B then B A. On
Linux also per CPU second of each child over the same steps: on a shared, oversubscribed machine the wall-clock
rates move with the other jobs, the CPU-time ones with what a step costs.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from anchor import REPO, Side, environment_line, run_rounds, summarize, write_patched

from hub_models.data import load_splits

MODEL_LINE = "model = VAE().to(device)"
STUDY_MODEL = f'''import sys as _sys
_sys.path.insert(0, {str(REPO)!r})
from hub_models.models.conv_vae import ConvVAE


class StudyVAE(nn.Module):
    """The study's Conv VAE, returning what this example's loop expects."""

    def __init__(self):
        super().__init__()
        self.vae = ConvVAE()

    def forward(self, x):
        out = self.vae(x.view(-1, 1, 28, 28))
        return out.sample.view(-1, 784), out.mean, out.logvar


model = StudyVAE().to(device)'''
STUDY_MODEL_PATCH = [(MODEL_LINE, STUDY_MODEL)]
EXAMPLE_PROGRESS = re.compile(r"Train Epoch: \d+ \[(\d+)/\d+")  # "Train Epoch: 1 [640/12800 (5%)]\tLoss: …"
OURS_PROGRESS = re.compile(r"step (\d+)/\d+ epoch")


def write_mnist_idx(images: np.ndarray, labels: np.ndarray, raw_dir: Path, prefix: str) -> None:
    """Write uint8 digits `(n, 28, 28)` and labels `(n,)` as `{prefix}-images-idx3-ubyte` / `-labels-idx1-ubyte`
    (the uncompressed files torchvision's MNIST reads from `root/MNIST/raw`)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    n = len(images)
    header = np.array([0x803, n, 28, 28], dtype=">u4").tobytes()
    (raw_dir / f"{prefix}-images-idx3-ubyte").write_bytes(header + np.ascontiguousarray(images, np.uint8).tobytes())
    header = np.array([0x801, n], dtype=">u4").tobytes()
    (raw_dir / f"{prefix}-labels-idx1-ubyte").write_bytes(header + np.ascontiguousarray(labels, np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example_script", required=True, help="Path of pytorch/examples' vae/main.py.")
    parser.add_argument("--batch_size", type=int, default=64, help="Batch size of both sides (the study's 64).")
    parser.add_argument("--warmup_steps", type=int, default=20, help="Steps per run before timing starts.")
    parser.add_argument("--steps", type=int, default=100, help="Timed steps per run.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds.")
    parser.add_argument("--num_train_samples", type=int, default=12800, help="Digits both sides train on.")
    parser.add_argument("--work_dir", default=None, help="Where the data and logs go (default: a temp dir).")
    parser.add_argument("--compare_checkout", default=None,
                        help="Another checkout of this project (e.g. `git worktree add /tmp/before HEAD~1`): its "
                             "train_vae.py runs as a third side in the same rounds (before/after on equal terms).")
    args = parser.parse_args()
    if args.warmup_steps < 1 or args.steps < 1:
        parser.error("--warmup_steps and --steps must be ≥ 1")
    if args.warmup_steps + args.steps + 20 > args.num_train_samples // args.batch_size:
        parser.error(
            "warm-up + timed steps (+ 20, the log interval's slack) must fit in one epoch: raise "
            "--num_train_samples or lower --steps"
        )

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vae-throughput-"))
    (work / "run" / "results").mkdir(parents=True, exist_ok=True)  # the example reads '../data', writes results/
    write_patched(args.example_script, STUDY_MODEL_PATCH, work / "run" / "vae_main_study.py")
    train, held_out = load_splits("study", limit=args.num_train_samples)
    raw = work / "data" / "MNIST" / "raw"
    write_mnist_idx(train.images.numpy(), train.labels.numpy(), raw, "train")
    write_mnist_idx(held_out.images.numpy(), held_out.labels.numpy(), raw, "t10k")

    stop = args.warmup_steps + args.steps + 20

    def train_vae(name: str, repo: Path, out: str) -> Side:
        return Side(
            name,
            [sys.executable, str(repo / "training/train_vae.py"), "--limit_train_samples", str(args.num_train_samples),
             "--train_batch_size", str(args.batch_size), "--max_train_steps", str(stop), "--mixed_precision", "no",
             "--log_every", "10", "--output_dir", str(work / out), "--seed", "0"],
            OURS_PROGRESS, lambda m: int(m.group(1)), cwd=repo,
        )  # fmt: skip

    ours = train_vae("train_vae.py", REPO, "ours")
    others = []
    if args.compare_checkout:
        others.append(train_vae("train_vae.py (compared)", Path(args.compare_checkout).resolve(), "compared"))
    example = Side(
        "vae/main.py (Conv VAE)",
        [sys.executable, "vae_main_study.py", "--batch-size", str(args.batch_size), "--epochs", "1",
         "--log-interval", "10"],
        EXAMPLE_PROGRESS, lambda m: int(m.group(1)) // args.batch_size + 1,  # it prints batch_idx · batch
        cwd=work / "run",
    )  # fmt: skip
    print(
        f"Conv VAE, {len(train)} digits, batch {args.batch_size}, {args.warmup_steps} warm-up + {args.steps} "
        f"timed steps per run, {args.rounds} alternating rounds; {environment_line()}; logs in {work}",
        flush=True,
    )
    run_rounds([ours, example, *others], args.batch_size, args.warmup_steps, args.steps, args.rounds, work / "logs")
    summarize(ours, example)
    for other in others:
        summarize(other, example, label=f"{args.compare_checkout}:")
    print(f"done; {environment_line()}", flush=True)


if __name__ == "__main__":
    main()
