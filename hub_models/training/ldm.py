"""The latent diffusion trainer: the DDPM trainer's loop, loss, EMA, checkpoints and held-out loss, run on the
scaled latents of a trained `AutoencoderKL` instead of pixels.

The training and held-out images are encoded once, at the start (posterior means × `scaling_factor`, kept in
memory as floats: `to_model_range` passes them through), and the UNet is built for the autoencoder's latent
shape. The images are the autoencoder's own data: with no data flags the run takes the ones its training_config.json
recorded (MNIST for the study's runs), and data flags that name other images are a one-line error
(`upstream_data_args`, `check_upstream_data`, shared with the latent prior and distillation).

After every epoch the run folder holds a `LatentDDPMPipeline` (vae/, unet/ with EMA weights, scheduler/),
unet_non_ema/, a decoded sample grid and metrics.json. See docs/LATENT_DIFFUSION.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from PIL import Image

from hub_models.data import ImageSplit
from hub_models.diffusion.latent import (
    LatentDDPMPipeline,
    encode_latents,
    latent_shape,
    latent_unet_config,
    load_autoencoder,
    make_latent_train_scheduler,
    save_latent_pipeline,
)
from hub_models.figures import to_pil
from hub_models.image_datasets import TRAINING_CONFIG, ImageDataError, ImageDatasetInfo, mnist_info
from hub_models.io import read_json
from hub_models.models.unet import count_parameters
from hub_models.training.ddpm import NUM_DIGITS, DDPMTrainer, class_count, grid_layout
from hub_models.training.progress import logger

AUTOENCODER_SUMMARY = ("kl_weight", "test_l1", "test_mse", "test_kl", "parameters", "global_step", "train_seconds")
# The flags of `hub_models.training.args.add_data_args` a second-stage run takes from the run it builds on (not
# --cache_dir: where a machine keeps its caches is its own, and the upstream run may come from another machine).
DATA_FLAGS = ("dataset_name", "dataset_config_name", "train_data_dir", "image_column", "label_column", "resolution",
              "num_channels", "on_bad_image")
# Any of these given: the user chose the data (then it must be the upstream run's).
_CHOOSING_FLAGS = ("dataset_name", "train_data_dir", "resolution", "num_channels")
# What makes two runs' data the same images (split and seed only choose which of them are held out).
DATA_IDENTITY = ("name", "config_name", "channels", "resolution", "label_names")


def upstream_training_config(name_or_path: str | Path) -> dict[str, Any] | None:
    """training_config.json of the run a model comes from: a local folder's, or a Hub repo's (pushed runs carry
    it); None when there is none (then `upstream_dataset` takes it for MNIST, the only data before the field)."""
    path = Path(name_or_path)
    if path.exists():
        return read_json(path / TRAINING_CONFIG) if (path / TRAINING_CONFIG).is_file() else None
    from huggingface_hub import hf_hub_download

    try:
        return read_json(hf_hub_download(str(name_or_path), TRAINING_CONFIG))
    except (OSError, ValueError):  # no such file or repo, offline, not a repo id: the model's loader says which
        return None


def upstream_dataset(config: dict[str, Any] | None) -> dict[str, Any]:
    """The `dataset` an upstream training_config.json recorded (`ImageDatasetInfo.to_dict()`); MNIST's for runs
    recorded before the field."""
    return (config or {}).get("dataset") or mnist_info().to_dict()


def upstream_data_args(args: argparse.Namespace, config: dict[str, Any] | None) -> argparse.Namespace:
    """`args` with the upstream run's data flags when the user gave none (a copy; unchanged otherwise): a latent
    UNet, a latent prior or a distilled student trains on the images its autoencoder / VAE / teacher was trained
    on. With no upstream flags recorded (the study's runs) nothing changes: MNIST."""
    if config is None or any(getattr(args, flag, None) is not None for flag in _CHOOSING_FLAGS):
        return args
    inherited = {flag: config[flag] for flag in DATA_FLAGS if flag in config}
    return argparse.Namespace(**{**vars(args), **inherited})


def _same_name(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    # one folder given as two paths (./imgs and imgs)
    return a is not None and b is not None and Path(a).exists() and Path(a).resolve() == Path(b).resolve()


def check_upstream_data(info: ImageDatasetInfo, config: dict[str, Any] | None, what: str,
                        shape: tuple[int, int] | None = None) -> None:
    """ImageDataError (one line) unless this run's data `info` is the data of the upstream run (`what`, e.g.
    "the autoencoder runs/ae"): the same images by `DATA_IDENTITY` as its training_config.json `config` recorded
    (None: a model without one, only its shape is checked), and, when the upstream model's input `shape`
    (channels, size) is given, that shape.

    Raises:
        ImageDataError: other images than the upstream run's, or images of another shape than its model's.
    """
    mine, theirs = info.to_dict(), upstream_dataset(config)
    differ = [k for k in DATA_IDENTITY if k != "name" and mine.get(k) != theirs.get(k)]
    if not _same_name(mine["name"], theirs.get("name")):
        differ.insert(0, "name")
    hint = f"leave out the data flags to train on {what}'s data, or give the flags it was trained with"
    if differ and config is not None:
        details = "; ".join(f"{k} {theirs.get(k)!r} vs {mine.get(k)!r} here" for k in differ)
        raise ImageDataError(f"{what} was trained on {theirs.get('name')}, not on this run's {mine['name']} "
                             f"({details}): {hint}")
    if shape is not None and tuple(shape) != (info.channels, info.resolution):
        raise ImageDataError(f"{what} takes {shape[0]}×{shape[1]}×{shape[1]} images, but this run's data "
                             f"({info.name}) is {info.channels}×{info.resolution}×{info.resolution}: {hint}")


class LDMTrainer(DDPMTrainer):
    """`training/train_ldm.py`: a `UNet2DModel` on the latents of `--pretrained_vae_model_name_or_path`."""

    name = "train_ldm"

    def __init__(self, args: Any) -> None:
        upstream = upstream_training_config(args.pretrained_vae_model_name_or_path)
        super().__init__(upstream_data_args(args, upstream))  # the accelerator and the autoencoder's data
        args = self.args
        self.vae = load_autoencoder(args.pretrained_vae_model_name_or_path).to(self.accelerator.device)
        check_upstream_data(self.data_info, upstream, f"the autoencoder {args.pretrained_vae_model_name_or_path}",
                            (self.vae.config.in_channels, self.vae.config.sample_size))
        if args.class_conditional:
            class_count(self.data_info)  # unlabelled data: the one-line error before minutes of encoding
        t0 = time.perf_counter()
        # The splits now hold latents where the DDPM trainer reads `.images`: its loop and loss run unchanged.
        self.held_out_total = len(self.held_out)
        held_out = self.held_out.subset(args.max_eval_samples)
        self.train_split = ImageSplit(encode_latents(self.vae, self.train_split.images), self.train_split.labels)
        self.held_out = ImageSplit(encode_latents(self.vae, held_out.images), held_out.labels)
        self.encode_seconds = time.perf_counter() - t0
        # The autoencoder run's headline numbers travel with the pipeline (its card reports them).
        ae_metrics = Path(args.pretrained_vae_model_name_or_path) / "metrics.json"
        ae = read_json(ae_metrics) if ae_metrics.is_file() else {}
        self.autoencoder_metrics = {k: ae[k] for k in AUTOENCODER_SUMMARY if k in ae}
        logger.info(
            f"encoded {len(self.train_split) + len(self.held_out):,} images to "
            f"{'×'.join(map(str, latent_shape(self.vae)))} latents in {self.encode_seconds:.1f} s "
            f"(scaled latent std {self.train_split.images.std().item():.3f})"
        )

    def run_summary(self) -> dict[str, Any]:
        # Only the first --max_eval_samples held-out images are encoded: the split's size is the original one.
        return {**super().run_summary(), "test_samples": self.held_out_total}

    def make_unet(self) -> UNet2DModel:
        config = latent_unet_config(self.args.model_config, self.vae)
        if self.args.class_conditional:
            config["num_class_embeds"] = self.num_classes + 1  # the data's classes + the null class (MNIST: 11)
        return UNet2DModel(**config)

    def describe(self) -> str:
        return f"latent {super().describe()}"

    def pipeline(self, unet: UNet2DModel) -> LatentDDPMPipeline:
        scheduler = make_latent_train_scheduler(
            self.args.num_train_timesteps, self.args.beta_schedule, self.args.prediction_type,
            self.args.rescale_betas_zero_snr,
        )
        return LatentDDPMPipeline(vae=self.vae, unet=unet, scheduler=scheduler)

    def save_folder(self, unet: UNet2DModel, directory: Path | None = None) -> None:
        """The latent pipeline folder: the autoencoder (vae/), `unet`, the scheduler."""
        pipe = self.pipeline(unet)
        save_latent_pipeline(pipe.vae, pipe.unet, pipe.scheduler, directory or self.output_dir)

    def model_metrics(self) -> dict[str, Any]:
        args = self.args
        return {
            "model": "latent-ddpm",
            "unet_config": str(args.model_config),
            "autoencoder": str(args.pretrained_vae_model_name_or_path),
            "latent_shape": list(latent_shape(self.vae)),
            "scaling_factor": self.vae.config.scaling_factor,
            "parameters": count_parameters(self.unwrapped),
            "autoencoder_parameters": count_parameters(self.vae),
            "encode_seconds_this_session": self.encode_seconds,
            "autoencoder_metrics": self.autoencoder_metrics,
        }

    def sample_grid(self, unet: UNet2DModel) -> tuple[Image.Image, int]:
        """`--num_sample_images` decoded images (class-conditional: one row per class)."""
        per_row, num_images, kwargs = grid_layout(
            self.args, self.num_classes if self.args.class_conditional else NUM_DIGITS
        )
        images = self.pipeline(unet)(
            batch_size=num_images,
            num_inference_steps=self.args.sample_steps,
            sampler=self.args.sampler,
            output_type="pt",
            generator=torch.Generator().manual_seed(self.args.seed),
            **kwargs,
        ).images
        return to_pil(images, nrow=per_row, scale=3), num_images


__all__ = [
    "DATA_FLAGS",
    "DATA_IDENTITY",
    "LDMTrainer",
    "check_upstream_data",
    "upstream_data_args",
    "upstream_dataset",
    "upstream_training_config",
]
