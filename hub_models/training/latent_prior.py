"""The latent-prior trainer (`training/train_latent_prior.py`): a diffusion prior over a trained VAE's latents.

The VAE's posterior means of the training digits are computed once, standardised, and a `LatentPrior` learns to
denoise them under the study's cosine schedule (1,000 steps, `hub_models.diffusion.latent_prior`). The run folder
is a prior folder (`config.json` + safetensors + `scheduler/`, loaded by `load_latent_prior`) with metrics.json,
history.json and figures; with `--fid_samples N` it also measures the VAE's prior-sample FID with z ~ N(0, I) and
with the learned prior under the same protocol (`hub_models.evaluation.vae.prior_sample_point`).

The latents are of the VAE's own data: with no data flags the run takes the ones the VAE's training_config.json
recorded (MNIST for the study's VAEs), and data flags naming other images are a one-line error
(`hub_models.training.ldm.check_upstream_data`). The FID and classifier points are MNIST's protocol (study-test,
the digit classifier): on other data they are left out, with a line saying so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from hub_models.data import ImageSplit
from hub_models.diffusion.latent_prior import (
    latent_prior_loss,
    make_latent_train_scheduler,
    sample_latents,
    save_latent_prior,
)
from hub_models.evaluation.ddpm.run_data import RUN_REFERENCE
from hub_models.evaluation.metrics import ReferenceSet, format_fid, load_digit_classifier
from hub_models.evaluation.vae import EvalSettings, prior_sample_point
from hub_models.figures import latent_scatter, save_png, to_pil
from hub_models.hub import load
from hub_models.io import optimizer_update, write_json_atomic
from hub_models.models import LatentPrior
from hub_models.training.args import non_negative_float, positive_int
from hub_models.training.ldm import check_upstream_data, upstream_data_args, upstream_training_config
from hub_models.training.progress import logger
from hub_models.training.trainer import Trainer
from hub_models.training.vae import is_mnist


def add_latent_prior_args(parser: argparse.ArgumentParser) -> None:
    """The prior's own flags: which VAE, the MLP's size, the schedule, the sampler and the evaluation."""
    parser.add_argument(
        "--vae_name_or_path",
        default="release/vae-conv-z4-beta1",
        help="The trained VAE (folder or Hub repo id) whose latents the prior learns.",
    )
    parser.add_argument("--hidden_dim", type=positive_int, default=256, help="Width of the MLP denoiser.")
    parser.add_argument("--num_blocks", type=positive_int, default=3, help="Residual MLP blocks.")
    parser.add_argument(
        "--num_train_timesteps", type=positive_int, default=1000, help="Diffusion steps T of the cosine schedule."
    )
    parser.add_argument(
        "--prediction_type",
        choices=["v_prediction", "epsilon"],
        default="v_prediction",
        help="What the MLP predicts: v (default; stable on unbounded latents) or ε (x0 clipped to ±5σ).",
    )
    parser.add_argument(
        "--sampler",
        choices=["ddpm", "ddim", "dpmsolver++", "unipc"],
        default="ddpm",
        help="Sampler of the figures and the FID.",
    )
    parser.add_argument("--sample_steps", type=positive_int, default=100, help="Denoising steps of the sampler.")
    parser.add_argument("--num_figure_samples", type=positive_int, default=64, help="Digits in the sample grids.")
    parser.add_argument(
        "--fid_samples",
        type=int,
        default=0,
        help="Prior samples per FID (N(0, I) and learned); 0 = no FID. The protocol's N is 1000.",
    )
    parser.add_argument(
        "--classifier_samples",
        type=int,
        default=0,
        help="Prior samples per classifier-only point (recognisable share, KL to uniform, FD-classifier; cheap, no "
        "Inception), N(0, I) and learned; 0 = none.",
    )
    parser.add_argument(
        "--fid_reference_n",
        type=positive_int,
        default=2000,
        help="Digits of study-test the FID compares with (the protocol's 2000).",
    )
    parser.add_argument("--max_grad_norm", type=non_negative_float, default=1.0, help="Gradient clipping (0 = off).")


@torch.no_grad()
def posterior_means(vae, split: ImageSplit, batch_size: int = 1000) -> torch.Tensor:
    """E_q[z|x] of every image of `split` `(N, latent_dim)` (a conditional VAE is given the true labels)."""
    vae.eval()
    images = split.as_float().split(batch_size)
    labels = split.labels.split(batch_size) if vae.is_conditional else [None] * len(images)
    return torch.cat([vae.encode(x.to(vae.device), y)[0].float().cpu() for x, y in zip(images, labels, strict=True)])


class LatentPriorTrainer(Trainer):
    """`training/train_latent_prior.py`: a `LatentPrior` on a VAE's posterior means."""

    name = "train_latent_prior"

    def __init__(self, args: argparse.Namespace) -> None:
        self.upstream_config = upstream_training_config(args.vae_name_or_path)
        super().__init__(upstream_data_args(args, self.upstream_config))  # the VAE's data (MNIST by default)

    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
        args = self.args
        self.vae = load(args.vae_name_or_path).to(self.accelerator.device).eval()
        if self.vae.is_conditional:
            raise ValueError(
                f"{args.vae_name_or_path} is a conditional VAE: its latents depend on the label; "
                "train the prior on an unconditional one"
            )
        config = self.vae.config
        check_upstream_data(self.data_info, self.upstream_config, f"the VAE {args.vae_name_or_path}",
                            (getattr(config, "in_channels", 1), getattr(config, "sample_size", 28)))
        self.vae.requires_grad_(False)
        train_z = posterior_means(self.vae, self.train_split)
        self.held_out_z = posterior_means(self.vae, self.held_out)
        self.noise_scheduler = make_latent_train_scheduler(args.num_train_timesteps, args.prediction_type)
        model = LatentPrior(
            latent_dim=self.vae.config.latent_dim,
            hidden_dim=args.hidden_dim,
            num_blocks=args.num_blocks,
            vae_name_or_path=str(args.vae_name_or_path),
        )
        model.set_latent_stats(train_z)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        loader = DataLoader(TensorDataset(train_z), batch_size=args.train_batch_size, shuffle=True)
        return model, optimizer, loader

    def describe(self) -> str:
        return (
            f"latent prior for {self.args.vae_name_or_path} (z={self.vae.config.latent_dim}): "
            f"{self.unwrapped.num_parameters():,} parameters; " + super().describe()
        )

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        (z,) = batch
        acc = self.accelerator
        with acc.accumulate(self.model):
            loss = latent_prior_loss(self.model, self.noise_scheduler, z, self.noise.generator)
            optimizer_update(acc, self.model, loss, self.optimizer, step=self.global_step,
                             max_grad_norm=self.args.max_grad_norm)
        return loss.detach(), {}

    @torch.no_grad()
    def held_out_loss(self) -> float:
        """The denoising MSE on the held-out latents with fixed noise and timesteps (comparable across epochs)."""
        self.unwrapped.eval()
        generator = torch.Generator().manual_seed(1234)
        z = self.held_out_z.to(self.accelerator.device)
        loss = latent_prior_loss(self.unwrapped, self.noise_scheduler, z, generator)
        self.unwrapped.train()
        return float(loss)

    def end_of_epoch(self, epoch: int) -> dict[str, Any]:
        train_loss, test_loss = self.state.epoch_loss(), self.held_out_loss()
        self.accelerator.log({"train/epoch_loss": train_loss, "test/loss": test_loss}, step=self.global_step)
        logger.info(f"epoch {epoch + 1}: train loss {train_loss:.4f} | held-out loss {test_loss:.4f}")
        return {"epoch": epoch + 1, "step": self.global_step, "train_loss": train_loss, "test_loss": test_loss}

    def write_epoch(self, epoch: int) -> None:
        write_json_atomic(self.output_dir / "history.json", self.state.history)

    @torch.no_grad()
    def write_figures(self, figures_dir: Path) -> None:
        """Images decoded from the learned prior and from z ~ N(0, I) (same seed); at z=2 also 2,000 latents of
        the learned prior, to set beside the VAE's own latent_scatter.png (on MNIST coloured by the digit the
        classifier reads in them; other data has no classifier here: one colour)."""
        args, prior, vae = self.args, self.unwrapped.eval(), self.vae
        n = args.num_figure_samples
        z_prior = sample_latents(
            prior,
            self.noise_scheduler.config,
            args.sampler,
            args.sample_steps,
            n,
            torch.Generator().manual_seed(args.seed),
        )
        save_png(to_pil(vae.decode(z_prior.to(vae.device)), scale=3), figures_dir / "samples.png")
        save_png(
            to_pil(vae.sample(n, generator=torch.Generator().manual_seed(args.seed)), scale=3),
            figures_dir / "samples_standard_normal.png",
        )
        if vae.config.latent_dim == 2:
            many = sample_latents(
                prior,
                self.noise_scheduler.config,
                args.sampler,
                args.sample_steps,
                2000,
                torch.Generator().manual_seed(args.seed),
            )
            title = f"Learned prior: 2,000 latents ({args.sampler}, {args.sample_steps} steps)"
            if is_mnist(self.data_info):
                # Coloured by what the digit classifier reads in the decoded digit: the prior's samples have no label.
                read_as = load_digit_classifier().predict(vae.decode(many.to(vae.device)).cpu())[2]
                figure = latent_scatter(many.cpu().numpy(), read_as.numpy(), title=f"{title}, by decoded class")
            else:  # never the digit classifier on other data
                figure = latent_scatter(many.cpu().numpy(), -torch.ones(len(many), dtype=torch.long).numpy(),
                                        title=title, label_names=[])
            save_png(figure, figures_dir / "prior_samples_latent.png")

    def write_final(self) -> dict[str, Any]:
        args, prior = self.args, self.unwrapped
        save_latent_prior(prior, self.noise_scheduler, self.output_dir)
        self.write_figures(self.output_dir / "figures")
        last = self.state.history[-1]
        metrics: dict[str, Any] = {
            "model": "latent-prior",
            "vae": str(args.vae_name_or_path),
            "latent_dim": prior.config.latent_dim,
            "parameters": prior.num_parameters(),
            "num_train_timesteps": args.num_train_timesteps,
            "sampler": {"name": args.sampler, "steps": args.sample_steps},
            "train_loss": last["train_loss"],
            "test_loss": last["test_loss"],
            "history": self.state.history,
            "epochs": self.num_epochs,
            **self.run_summary(),
        }
        # The same N, seed and reference for z ~ N(0, I) and the learned prior (docs/lab/HYBRID.md's protocol); the
        # cheap classifier points first, metrics.json rewritten after each: a long FID cut short loses nothing else.
        for key, n, inception in (
            ("prior_samples_classifier", args.classifier_samples, False),
            ("prior_samples", args.fid_samples, True),
        ):
            if n <= 0:
                continue
            mnist = is_mnist(self.data_info)
            if not mnist and not inception:
                logger.info(f"{key} left out: the digit classifier reads MNIST only, and the VAE's data is "
                            f"{self.data_info.name}")
                continue
            # Other data: FID against the VAE's own held-out images (its train images: the floor), no classifier.
            reference = "study-test" if mnist else ReferenceSet(
                RUN_REFERENCE, self.held_out.images, self.train_split.images,
                json.dumps(self.data_info.to_dict(), sort_keys=True))
            settings = EvalSettings(fid_samples=n, fid_reference=reference, fid_reference_n=args.fid_reference_n,
                                    seed=args.seed)
            metrics[key] = [
                prior_sample_point(self.vae, None, settings=settings, inception=inception, classifier=mnist),
                prior_sample_point(
                    self.vae,
                    prior,
                    self.noise_scheduler.config,
                    args.sampler,
                    args.sample_steps,
                    settings=settings,
                    inception=inception,
                    classifier=mnist,
                ),
            ]
            for point in metrics[key]:
                c = point.get("classifier")
                fid_text = f"{format_fid(point['fid'])}; " if inception else ""
                cls_text = (f"recognisable {c['confident_share']:.1%}, KL to uniform {c['kl_to_uniform']:.3f}, "
                            f"FD-classifier {c['fd_classifier']:.1f}") if c else "no classifier of this data"
                logger.info(f"z from {point['prior']} (N={n:,}): {fid_text}{cls_text}")
            write_json_atomic(self.output_dir / "metrics.json", metrics)
        write_json_atomic(self.output_dir / "metrics.json", metrics)
        logger.info(f"Saved the latent prior, metrics.json and figures to {self.output_dir}")
        return metrics


__all__ = ["LatentPriorTrainer", "add_latent_prior_args", "posterior_means"]
