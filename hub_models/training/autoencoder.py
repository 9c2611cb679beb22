"""The autoencoder of latent diffusion: diffusers' `AutoencoderKL` on MNIST, loss = L1 reconstruction on [-1, 1]
pixels + kl_weight·KL of the 4×7×7 posterior (both means per element). Other image data (the data flags) sets
the autoencoder's `in_channels = out_channels` and `sample_size`; the resolution must halve cleanly at each of its
down-sampling levels (a multiple of 4 for the named configs).

Why L1 and a small KL weight: L1 keeps near-binary strokes sharp where MSE blurs them and keeps diffusers' decoder
convention (outputs in [-1, 1]); the KL term only keeps the posterior smooth and its scale bounded, as in Stable
Diffusion's KL-f8 autoencoder, since the diffusion model, not N(0, I), is the prior.

After every epoch the run folder holds the model (config.json with `scaling_factor` = 1 / std of the training
latents, safetensors), reconstructions and metrics.json. See docs/LATENT_DIFFUSION.md.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from diffusers import AutoencoderKL
from torch.utils.data import DataLoader, TensorDataset

from hub_models.data import uint8_to_unit
from hub_models.diffusion.latent import decode_latents, encode_latents, latent_shape, make_autoencoder
from hub_models.diffusion.training import to_model_range
from hub_models.figures import reconstruction_grid, save_png
from hub_models.image_datasets import ImageDataError
from hub_models.io import optimizer_update, save_pretrained_atomic, write_json_atomic
from hub_models.models.unet import count_parameters
from hub_models.training.progress import logger
from hub_models.training.trainer import Trainer


def autoencoder_loss(
    vae: torch.nn.Module, images: torch.Tensor, kl_weight: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, L1, KL) of uint8 images (digits `(batch, 28, 28)`, others `(batch, C, H, W)`): decode a posterior
    sample (the mean without `generator`), L1 per pixel on [-1, 1], KL to N(0, I) per latent element."""
    x = to_model_range(images)
    posterior = vae.encode(x).latent_dist
    z = posterior.mean
    if generator is not None:
        z = z + posterior.std * torch.randn(z.shape, generator=generator, device=generator.device).to(z.device)
    rec = vae.decode(z).sample
    l1 = (rec.float() - x).abs().mean()
    kl = posterior.kl().float().mean() / z[0].numel()  # diffusers sums the KL over (c, h, w)
    return l1 + kl_weight * kl, l1.detach(), kl.detach()


@torch.no_grad()
def held_out_metrics(vae: AutoencoderKL, images: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Held-out L1 and MSE (on [0, 1] pixels, posterior mean decoded) and KL per latent element."""
    sums = torch.zeros(3, dtype=torch.float64)
    for batch in images.split(batch_size):
        x = to_model_range(batch).to(vae.device)
        posterior = vae.encode(x).latent_dist
        rec = (vae.decode(posterior.mean).sample.float() / 2 + 0.5).clamp(0, 1)
        target = x / 2 + 0.5
        per_image = posterior.kl().float() / posterior.mean[0].numel()
        sums += (
            torch.stack(
                [
                    (rec - target).abs().mean((1, 2, 3)).sum(),
                    ((rec - target) ** 2).mean((1, 2, 3)).sum(),
                    per_image.sum(),
                ]
            )
            .double()
            .cpu()
        )
    l1, mse, kl = (sums / len(images)).tolist()
    return {"test_l1": l1, "test_mse": mse, "test_kl": kl}


def latent_scaling_factor(vae: AutoencoderKL, images: torch.Tensor, batch_size: int) -> float:
    """1 / std of the (unscaled) latents of `images`, as Stable Diffusion measured its 0.18215; of the posterior
    means, which are what the latent UNet is trained on (`LDMTrainer`)."""
    latents = encode_latents(vae, images, batch_size)
    return vae.config.scaling_factor / latents.std().item()  # encode_latents scales by the current factor


class AutoencoderTrainer(Trainer):
    """`training/train_autoencoder.py`: an `AutoencoderKL` on MNIST digits (or the data flags' images), for latent
    diffusion."""

    name = "train_autoencoder"

    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
        args, info = self.args, self.data_info
        try:  # MNIST's 1×28×28 leaves the named configs exactly as released
            model = make_autoencoder(args.model_config, channels=info.channels, resolution=info.resolution,
                                     what="--resolution")
        except ValueError as err:
            raise ImageDataError(f"{err} (autoencoder '{args.model_config}', images of {info.name})") from None
        optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
        dataset = TensorDataset(self.train_split.images, self.train_split.labels)
        loader = DataLoader(dataset, batch_size=args.train_batch_size, shuffle=True, num_workers=args.num_workers)
        return model, optimizer, loader

    def after_resume(self) -> None:
        self.eval_images = self.held_out.images[: self.args.max_eval_samples]
        self.scale_images = self.train_split.images[: self.args.max_eval_samples]

    def describe(self) -> str:
        return (
            f"AutoencoderKL '{self.args.model_config}': {count_parameters(self.model):,} parameters; "
            + super().describe()
        )

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, _ = batch
        acc = self.accelerator
        with acc.accumulate(self.model):
            loss, l1, kl = autoencoder_loss(self.model, images, self.args.kl_weight, self.noise.generator)
            optimizer_update(acc, self.model, loss, self.optimizer, step=self.global_step,
                             max_grad_norm=self.args.max_grad_norm)
        n = len(images)
        return loss.detach(), {"l1": l1 * n, "kl": kl * n, "items": torch.tensor(float(n), device=loss.device)}

    def postfix(self, loss: float, sums: dict[str, float]) -> dict[str, str]:
        items = max(sums.get("items", 1.0), 1.0)
        return {
            "loss": f"{loss:.4f}",
            "l1": f"{sums.get('l1', 0) / items:.4f}",
            "kl": f"{sums.get('kl', 0) / items:.2f}",
        }

    def end_of_epoch(self, epoch: int) -> dict[str, Any]:
        """Held-out L1/MSE/KL, and the latent scaling factor (stored in the model's config)."""
        args, vae = self.args, self.unwrapped
        was_training = vae.training
        vae.eval()
        entry = {
            "epoch": epoch + 1,
            "step": self.global_step,
            "train_loss": self.state.epoch_loss(),
            "train_l1": self.state.epoch_mean("l1"),
            "train_kl": self.state.epoch_mean("kl"),
            **held_out_metrics(vae, self.eval_images, args.eval_batch_size),
        }
        scaling = latent_scaling_factor(vae, self.scale_images, args.eval_batch_size)
        vae.register_to_config(scaling_factor=scaling)
        vae.train(was_training)
        entry.update(scaling_factor=scaling, complete=self.state.epoch_updates == self.steps_per_epoch)
        self.accelerator.log(
            {f"epoch/{k}": entry[k] for k in ("train_loss", "test_l1", "test_mse", "test_kl")}, step=self.global_step
        )
        logger.info(
            f"epoch {epoch + 1}: train loss {entry['train_loss']:.4f} | test L1 {entry['test_l1']:.4f} "
            f"MSE {entry['test_mse']:.4f} KL {entry['test_kl']:.3f} | scaling_factor {scaling:.4f}"
        )
        return entry

    def write_epoch(self, epoch: int) -> None:
        """The model (config.json + safetensors), reconstructions of held-out images and metrics.json."""
        vae = self.unwrapped
        vae.register_to_config(scaling_factor=self.state.history[-1]["scaling_factor"])
        save_pretrained_atomic(vae, self.output_dir, safe_serialization=True)
        was_training = vae.training
        vae.eval()
        originals = self.held_out.images[:32]
        t0 = time.perf_counter()
        recon = decode_latents(vae, encode_latents(vae, originals))
        seconds = time.perf_counter() - t0
        vae.train(was_training)
        figures = self.output_dir / "figures"
        grid = reconstruction_grid(uint8_to_unit(originals), recon.cpu())
        save_png(grid, figures / f"reconstructions_epoch_{epoch + 1:03d}.png")
        save_png(grid, figures / "reconstructions.png")
        last = self.state.history[-1]
        write_json_atomic(self.output_dir / "metrics.json", {
            "model": "autoencoder-kl",
            "autoencoder_config": str(self.args.model_config),
            "parameters": count_parameters(vae),
            "latent_shape": list(latent_shape(vae)),
            "kl_weight": self.args.kl_weight,
            **{k: last[k] for k in ("train_loss", "test_l1", "test_mse", "test_kl", "scaling_factor")},
            "reconstruct_32_seconds": seconds,
            "history": self.state.history,
            "epochs": epoch + 1,
            "epochs_planned": self.args.num_epochs,
            "mixed_precision": self.accelerator.mixed_precision,
            "train_batch_size": self.args.train_batch_size,
            **self.run_summary(),
            "test_samples_scored": len(self.eval_images),
            "loss_curve": self.state.loss_curve,
        })  # fmt: skip


__all__ = ["AutoencoderTrainer", "autoencoder_loss", "held_out_metrics", "latent_scaling_factor"]
