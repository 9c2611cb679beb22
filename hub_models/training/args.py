"""The flags every training script shares, with the names of diffusers' example scripts.

    parser = training_parser(__doc__, output_dir="runs/x", num_epochs=20, train_batch_size=64, learning_rate=1e-3)
    parser.add_argument("--latent_dim", ...)          # the script's own flags
    args = parse_training_args(parser)

`training_parser` builds an `argparse` parser whose parent holds the shared flags; each script sets its own
defaults. The VAE's first names (`--epochs`, `--batch_size`, `--lr`) and the classifier's `--limit` still work as
aliases; runs record the canonical names in training_config.json.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

CHECKPOINT_EVERY_WORDS = ("epoch", "none")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1, with a message that names the bad value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def checkpoint_every(text: str) -> int | str:
    """argparse type of --checkpointing_steps: a number of updates, `epoch` or `none`."""
    if text in CHECKPOINT_EVERY_WORDS:
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, 'epoch' or 'none', got {text}") from None


def _recipe_flags(parser: argparse.ArgumentParser) -> None:
    """Data and optimisation: what every trainer and the anomaly study take."""
    parser.add_argument("--output_dir", help="Where the run is written (default: %(default)s).")
    parser.add_argument("--num_epochs", "--epochs", dest="num_epochs", type=positive_int,
                        help="Training epochs (default: %(default)s).")
    parser.add_argument("--train_batch_size", "--batch_size", dest="train_batch_size", type=positive_int,
                        help="Batch size per process (default: %(default)s).")
    parser.add_argument("--learning_rate", "--lr", dest="learning_rate", type=float,
                        help="Learning rate (default: %(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of initialisation, shuffling and noise.")
    parser.add_argument("--split", choices=["study", "official"], default="study",
                        help="study: 80/20 of the 60k training digits (48k/12k); official: 60k train / 10k test "
                             "(default: %(default)s).")
    parser.add_argument("--limit_train_samples", "--limit", dest="limit_train_samples", type=positive_int,
                        default=None, help="Use only the first N digits of each split (quick runs, tests).")


def _loop_flags(parser: argparse.ArgumentParser) -> None:
    """What the library's training loop does with accelerate: precision, checkpoints, logs, the Hub."""
    parser.add_argument("--max_train_steps", type=positive_int, default=None,
                        help="Stop after this many updates (overrides --num_epochs; for tests and short runs).")
    parser.add_argument("--gradient_accumulation_steps", type=positive_int, default=1,
                        help="Batches per optimizer update.")
    parser.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None,
                        help="Defaults to `accelerate launch`'s setting (none when run with python).")
    parser.add_argument("--checkpointing_steps", type=checkpoint_every, default=500,
                        help="Save an accelerate checkpoint every N updates, every 'epoch', or 'none'; also at the "
                             "end (default: %(default)s).")
    parser.add_argument("--checkpoints_total_limit", type=positive_int, default=2,
                        help="Keep the newest K checkpoints (default: %(default)s).")
    parser.add_argument("--resume_from_checkpoint", default=None,
                        help="'latest' or a checkpoint folder: continue exactly where that run stopped.")
    parser.add_argument("--logger", choices=["tensorboard", "none"], default="tensorboard",
                        help="Experiment tracker (logs/ in the run folder).")
    parser.add_argument("--log_every", type=positive_int, default=50,
                        help="When stderr is not a terminal, log a progress line every N updates instead of a "
                             "progress bar.")
    parser.add_argument("--push_to_hub", action="store_true", help="Push the finished run to the Hub.")
    parser.add_argument("--hub_model_id", default=None, help="Repo id for --push_to_hub (user/name).")
    parser.add_argument("--hub_private", action="store_true", help="Create the Hub repo as private.")
    parser.add_argument("--write_rank_fingerprints", action="store_true",
                        help="Each process writes a hash of its final weights (checks data-parallel sync).")


def parent_parser(*, loop: bool = True) -> argparse.ArgumentParser:
    """The shared flags as an argparse parent (`loop=False`: only data and optimisation, for runners that train
    outside the accelerate loop, like the anomaly study)."""
    parent = argparse.ArgumentParser(add_help=False)
    _recipe_flags(parent.add_argument_group("data and optimisation (shared)"))
    if loop:
        _loop_flags(parent.add_argument_group("training loop (shared)"))
    return parent


def training_parser(doc: str | None, *, loop: bool = True, **defaults: Any) -> argparse.ArgumentParser:
    """A script's parser: its docstring as the description, the shared flags, and the script's defaults
    (e.g. `num_epochs=20`); add the script's own flags to it."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[parent_parser(loop=loop)])
    parser.set_defaults(**defaults)
    return parser


def parse_training_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, then check what no single flag can (argparse exits with one clear line)."""
    args = parser.parse_args(argv)
    if getattr(args, "push_to_hub", False) and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    missing = [f"--{k}" for k in ("output_dir", "num_epochs", "train_batch_size", "learning_rate")
               if getattr(args, k) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    return args


__all__ = [
    "checkpoint_every",
    "non_negative_float",
    "parent_parser",
    "parse_training_args",
    "positive_int",
    "probability",
    "training_parser",
]
