"""The latent diffusion trainer: the DDPM trainer's loop, loss, EMA, checkpoints and held-out loss, run on the
scaled latents of a trained `AutoencoderKL` instead of pixels.

The training and held-out digits are encoded once, at the start (posterior means × `scaling_factor`, kept in
memory as floats: `to_model_range` passes them through), and the UNet is built for the autoencoder's latent
shape. After every epoch the run folder holds a `LatentDDPMPipeline` (vae/, unet/ with EMA weights, scheduler/),
unet_non_ema/, a decoded sample grid and metrics.json. See docs/LATENT_DIFFUSION.md.
"""

from __future__ import annotations

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
from hub_models.io import read_json
from hub_models.models.unet import count_parameters
from hub_models.training.ddpm import NUM_DIGITS, DDPMTrainer, grid_layout
from hub_models.training.progress import logger

AUTOENCODER_SUMMARY = ("kl_weight", "test_l1", "test_mse", "test_kl", "parameters", "global_step", "train_seconds")


class LDMTrainer(DDPMTrainer):
    """`training/train_ldm.py`: a `UNet2DModel` on the latents of `--pretrained_vae_model_name_or_path`."""

    name = "train_ldm"

    def __init__(self, args: Any) -> None:
        super().__init__(args)  # the accelerator and the MNIST splits
        self.vae = load_autoencoder(args.pretrained_vae_model_name_or_path).to(self.accelerator.device)
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
            f"encoded {len(self.train_split) + len(self.held_out):,} digits to "
            f"{'×'.join(map(str, latent_shape(self.vae)))} latents in {self.encode_seconds:.1f} s "
            f"(scaled latent std {self.train_split.images.std().item():.3f})"
        )

    def run_summary(self) -> dict[str, Any]:
        # Only the first --max_eval_samples held-out digits are encoded: the split's size is the original one.
        return {**super().run_summary(), "test_samples": self.held_out_total}

    def make_unet(self) -> UNet2DModel:
        config = latent_unet_config(self.args.model_config, self.vae)
        if self.args.class_conditional:
            config["num_class_embeds"] = NUM_DIGITS + 1
        return UNet2DModel(**config)

    def describe(self) -> str:
        return f"latent {super().describe()}"

    def pipeline(self, unet: UNet2DModel) -> LatentDDPMPipeline:
        scheduler = make_latent_train_scheduler(
            self.args.num_train_timesteps, self.args.beta_schedule, self.args.prediction_type,
            self.args.rescale_betas_zero_snr,
        )
        return LatentDDPMPipeline(vae=self.vae, unet=unet, scheduler=scheduler)

    def save_folder(self, unet: UNet2DModel) -> None:
        """The latent pipeline folder: the autoencoder (vae/), `unet`, the scheduler."""
        pipe = self.pipeline(unet)
        save_latent_pipeline(pipe.vae, pipe.unet, pipe.scheduler, self.output_dir)

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
        """`--num_sample_images` decoded digits (class-conditional: one row per digit)."""
        per_row, num_images, kwargs = grid_layout(self.args)
        images = self.pipeline(unet)(
            batch_size=num_images,
            num_inference_steps=self.args.sample_steps,
            sampler=self.args.sampler,
            output_type="pt",
            generator=torch.Generator().manual_seed(self.args.seed),
            **kwargs,
        ).images
        return to_pil(images, nrow=per_row, scale=3), num_images


__all__ = ["LDMTrainer"]
