"""The β-VAE trainer: loss per image = BCE (summed over the 784 pixels) + β·KLD, Adam, the study's recipe.

The model, metrics.json and figures are written when the run finishes (metrics.json marks a finished run for
`scripts/run_study.py`); history.json is rewritten after every epoch. With `--conditional` the model is a
conditional VAE (`num_classes=10`): the labels travel with the images, and the run also measures the class
accuracy of generated digits by requested class and draws the "digit × style" grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from hub_models.data import ImageSplit, uint8_to_unit
from hub_models.evaluation import vae_metrics
from hub_models.evaluation.vae import conditional_class_accuracy
from hub_models.figures import latent_scatter, manifold_grid, pca_2d, reconstruction_grid, save_png, to_pil
from hub_models.io import optimizer_update, save_pretrained_atomic, write_json_atomic
from hub_models.models import VAE_CLASSES, VAELoss
from hub_models.models.vae import Labels
from hub_models.reference import NUM_DIGITS
from hub_models.training.args import non_negative_float, positive_int
from hub_models.training.progress import logger
from hub_models.training.trainer import Trainer


def add_vae_args(parser: argparse.ArgumentParser) -> None:
    """The VAE's own flags (train_vae.py and the anomaly study): architecture, latent size, β."""
    parser.add_argument("--arch", choices=sorted(VAE_CLASSES), default="conv", help="Conv VAE or dense VAE.")
    parser.add_argument("--latent_dim", type=positive_int, default=2, help="Size of the latent z.")
    parser.add_argument("--beta", type=non_negative_float, default=1.0, help="Weight β of the KLD term.")


def beta_at(args: argparse.Namespace, step: int, steps_per_epoch: int) -> float:
    """β of update `step`: constant, or growing linearly from 0 over --beta_warmup_epochs (β-annealing)."""
    if args.beta_schedule == "constant" or args.beta_warmup_epochs == 0:
        return args.beta
    return args.beta * min(1.0, step / (args.beta_warmup_epochs * steps_per_epoch))


STYLE_ROWS = 8  # rows (latents z) of the digit × style grid


def training_step(
    accelerator,
    model,
    optimizer,
    images: torch.Tensor,
    beta: float,
    generator: torch.Generator,
    step: int,
    labels: torch.Tensor | None = None,
) -> VAELoss:
    """One batch: uint8 images → [0, 1] on the device → BCE + β·KLD → backward → (accumulated) update.
    `labels` `(batch,)`: the digits, for a conditional VAE only."""
    x = uint8_to_unit(images)
    with accelerator.accumulate(model):
        out = model(x, labels, generator=generator)
        terms = accelerator.unwrap_model(model).loss(x, beta=beta, output=out)
        optimizer_update(accelerator, model, terms.loss, optimizer, step=step)
    return terms


def test_metrics(model, images: torch.Tensor, beta: float, labels: torch.Tensor | None = None) -> dict[str, float]:
    """Held-out BCE, KLD, ELBO (fixed-seed posterior noise, so epochs compare on equal terms) and the β-loss.
    `labels`: the digits, for a conditional VAE only."""
    metrics = vae_metrics(model, images, seed=0, labels=labels)
    return {
        "bce": metrics["bce"],
        "kld": metrics["kld"],
        "elbo": metrics["elbo"],
        "loss": metrics["bce"] + beta * metrics["kld"],
    }


@torch.no_grad()
def style_grid(model, rows: int = STYLE_ROWS, generator: torch.Generator | None = None) -> torch.Tensor:
    """The "digit × style" grid of a conditional VAE: `rows` latents z ~ N(0, I), each decoded as every class.

    Returns:
        images `(rows * num_classes, 1, 28, 28)`, row-major: row r holds z_r decoded as digits 0..num_classes-1.
    """
    k = model.num_classes
    z = torch.randn((rows, model.config.latent_dim), generator=generator).to(model.device, model.dtype)
    labels = torch.arange(k).repeat(rows)
    return model.decode(z.repeat_interleave(k, dim=0), labels)


def _labels(model, split: ImageSplit) -> Labels | None:
    return split.labels if model.is_conditional else None


@torch.no_grad()
def write_figures(model, held_out: ImageSplit, figures_dir: Path, args: argparse.Namespace) -> None:
    """Reconstructions, prior samples, and the latent space (scatter + manifold at z=2, PCA above). A conditional
    VAE draws its samples as columns of digits 0–9 and adds the digit × style grid (no manifold: z is style)."""
    model.eval()
    originals = held_out.subset(32)
    x = originals.as_float().to(model.device)
    save_png(
        reconstruction_grid(x, model.reconstruct(x, _labels(model, originals))), figures_dir / "reconstructions.png"
    )
    generator = torch.Generator().manual_seed(args.seed)
    if model.is_conditional:
        n = args.num_figure_samples
        samples = model.sample(n, generator=generator, labels=torch.arange(n) % model.num_classes)
        save_png(to_pil(samples, nrow=model.num_classes, scale=3), figures_dir / "samples.png")
        grid = style_grid(model, generator=torch.Generator().manual_seed(args.seed))
        save_png(to_pil(grid, nrow=model.num_classes, scale=3), figures_dir / "style_grid.png")
    else:
        save_png(
            to_pil(model.sample(args.num_figure_samples, generator=generator), scale=3), figures_dir / "samples.png"
        )
    subset = held_out.subset(5000)
    chunks = uint8_to_unit(subset.images).split(1000)
    label_chunks = subset.labels.split(1000) if model.is_conditional else [None] * len(chunks)
    means = torch.cat(
        [model.encode(x.to(model.device), c)[0].cpu() for x, c in zip(chunks, label_chunks, strict=True)]
    ).numpy()
    labels = subset.labels.numpy()
    name = f"{args.arch} VAE, z={args.latent_dim}, β={args.beta:g}" + (", conditional" if model.is_conditional else "")
    if args.latent_dim == 2:
        save_png(
            latent_scatter(means, labels, title=f"Latent means of test digits — {name}"),
            figures_dir / "latent_scatter.png",
        )
        if not model.is_conditional:  # a conditional decoder needs a digit: its z alone has no manifold
            save_png(manifold_grid(lambda z: model.decode(z.to(model.device))), figures_dir / "manifold.png")
    else:
        points, ratio = pca_2d(means)
        save_png(
            latent_scatter(
                points,
                labels,
                title=f"PCA of latent means — {name}",
                xlabel=f"PC1 ({ratio[0]:.0%})",
                ylabel=f"PC2 ({ratio[1]:.0%})",
            ),
            figures_dir / "latent_pca.png",
        )


class VAETrainer(Trainer):
    """`training/train_vae.py`: one β-VAE of the study."""

    name = "train_vae"

    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
        self.conditional = bool(getattr(self.args, "conditional", False))
        extra = {"num_classes": NUM_DIGITS} if self.conditional else {}  # unconditional configs stay as released
        model = VAE_CLASSES[self.args.arch](latent_dim=self.args.latent_dim, **extra)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.args.learning_rate)
        # uint8 tensors stay in memory; batches are converted to floats on the device, never per item through PIL.
        tensors = (self.train_split.images, self.train_split.labels) if self.conditional else (self.train_split.images,)
        loader = DataLoader(
            TensorDataset(*tensors), batch_size=self.args.train_batch_size, shuffle=True, drop_last=False
        )
        self.beta = self.args.beta
        return model, optimizer, loader

    def describe(self) -> str:
        kind = "conditional " if self.conditional else ""
        return (
            f"{kind}{self.args.arch} VAE, z={self.args.latent_dim}: {self.unwrapped.num_parameters():,} "
            f"parameters; " + super().describe()
        )

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, labels = batch if self.conditional else (batch[0], None)
        self.beta = beta_at(self.args, self.global_step, self.steps_per_epoch)
        terms = training_step(
            self.accelerator,
            self.model,
            self.optimizer,
            images,
            self.beta,
            self.noise.generator,
            self.global_step,
            labels,
        )
        n = torch.tensor(float(len(images)), device=images.device)
        return terms.loss.detach(), {"bce": terms.bce.detach() * n, "kld": terms.kld.detach() * n, "items": n}

    def update_logs(self, loss: float, sums: dict[str, float]) -> dict[str, float]:
        return {"train/beta": self.beta}

    def postfix(self, loss: float, sums: dict[str, float]) -> dict[str, str]:
        return {
            "bce": f"{sums['bce'] / sums['items']:.1f}",
            "kld": f"{sums['kld'] / sums['items']:.2f}",
            "beta": f"{self.beta:g}",
        }

    def end_of_epoch(self, epoch: int) -> dict[str, Any]:
        """Train BCE/KLD per image over the epoch's updates; held-out metrics with a fixed seed."""
        train_bce, train_kld = self.state.epoch_mean("bce"), self.state.epoch_mean("kld")
        beta = beta_at(self.args, max(self.global_step - 1, 0), self.steps_per_epoch)  # of the epoch's last update
        self.unwrapped.eval()
        test = test_metrics(
            self.unwrapped, self.held_out.as_float(), self.args.beta, self.held_out.labels if self.conditional else None
        )
        train = {"bce": train_bce, "kld": train_kld, "elbo": -(train_bce + train_kld)}
        self.accelerator.log(
            {**{f"train/{k}": v for k, v in train.items()}, **{f"test/{k}": v for k, v in test.items()}},
            step=self.global_step,
        )
        logger.info(
            f"epoch {epoch + 1}: train BCE {train_bce:.2f} KLD {train_kld:.2f} | "
            f"test BCE {test['bce']:.2f} KLD {test['kld']:.2f} ELBO {test['elbo']:.2f}"
        )
        return {"epoch": epoch + 1, "step": self.global_step, "beta": beta, "train": train, "test": test}

    def write_epoch(self, epoch: int) -> None:
        write_json_atomic(self.output_dir / "history.json", self.state.history)

    def write_final(self) -> dict[str, Any]:
        args, model = self.args, self.unwrapped
        save_pretrained_atomic(model, self.output_dir)
        write_figures(model, self.held_out, self.output_dir / "figures", args)
        last = self.state.history[-1]
        metrics = {
            "model": "vae",
            "arch": args.arch,
            "latent_dim": args.latent_dim,
            "beta": args.beta,
            "beta_schedule": args.beta_schedule,
            "parameters": model.num_parameters(),
            "test": last["test"],
            "train": last["train"],
            "history": self.state.history,
            "epochs": self.num_epochs,
            **self.run_summary(),
        }
        if self.conditional:
            metrics["conditional"] = conditional_class_accuracy(
                model, per_class=args.class_accuracy_samples, seed=args.seed
            )
            logger.info(f"class accuracy of generated digits: {metrics['conditional']['accuracy']:.1%}")
        write_json_atomic(self.output_dir / "metrics.json", metrics)
        logger.info(f"Saved the model, metrics.json and figures to {self.output_dir}")
        return metrics


__all__ = ["VAETrainer", "add_vae_args", "beta_at", "style_grid", "test_metrics", "training_step", "write_figures"]
