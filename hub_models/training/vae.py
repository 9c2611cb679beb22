"""The β-VAE trainer: loss per image = BCE (summed over the pixels: 784 for MNIST) + β·KLD, Adam, the study's
recipe.

MNIST by default; any image data the data flags name (`--dataset_name`, `--train_data_dir`, `--resolution`,
`--num_channels`) sets the model's `in_channels` and `sample_size`. The model, metrics.json and figures are
written when the run finishes (metrics.json marks a finished run for `scripts/run_study.py`); history.json is
rewritten after every epoch. With `--conditional` the model is a conditional VAE with one class per label of the
data (`num_classes=10` on MNIST): the labels travel with the images, the run draws the "class × style" grid and,
on MNIST (or with `--classifier_dir`, a classifier trained on that data), measures the class accuracy of
generated images by requested class.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from hub_models.data import ImageSplit, uint8_to_unit
from hub_models.evaluation import vae_metrics
from hub_models.evaluation.metrics import load_digit_classifier
from hub_models.evaluation.vae import conditional_class_accuracy
from hub_models.figures import latent_scatter, manifold_grid, pca_2d, reconstruction_grid, save_png, to_pil
from hub_models.image_datasets import MNIST_INFO_NAME, ImageDataError, ImageDatasetInfo
from hub_models.io import optimizer_update, save_pretrained_atomic, write_json_atomic
from hub_models.models import VAE_CLASSES, VAELoss
from hub_models.models.vae import Labels
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
        images `(rows * num_classes, C, H, W)`, row-major: row r holds z_r decoded as classes 0..num_classes-1.
    """
    k = model.num_classes
    z = torch.randn((rows, model.config.latent_dim), generator=generator).to(model.device, model.dtype)
    labels = torch.arange(k).repeat(rows)
    return model.decode(z.repeat_interleave(k, dim=0), labels)


def _labels(model, split: ImageSplit) -> Labels | None:
    return split.labels if model.is_conditional else None


def is_mnist(info: ImageDatasetInfo | None) -> bool:
    """Whether a run's data is the study's MNIST (None: a run recorded before the data was), the data the shipped
    digit classifier and the study's figure titles are for."""
    return info is None or (info.name == MNIST_INFO_NAME and (info.channels, info.resolution) == (1, 28))


@torch.no_grad()
def write_figures(
    model, held_out: ImageSplit, figures_dir: Path, args: argparse.Namespace, info: ImageDatasetInfo | None = None
) -> None:
    """Reconstructions, prior samples, and the latent space (scatter + manifold at z=2, PCA above). A conditional
    VAE draws its samples as columns of classes (digits 0–9) and adds the class × style grid (no manifold: z is
    style). `info`: the data (None: MNIST); other data's scatter is coloured by its label names."""
    mnist = is_mnist(info)
    label_names = None if mnist else (info.label_names or [])
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
            latent_scatter(
                means,
                labels,
                title=f"Latent means of {'test digits' if mnist else 'held-out images'} — {name}",
                label_names=label_names,
            ),
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
                label_names=label_names,
            ),
            figures_dir / "latent_pca.png",
        )


class VAETrainer(Trainer):
    """`training/train_vae.py`: one β-VAE of the study."""

    name = "train_vae"

    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
        self.conditional = bool(getattr(self.args, "conditional", False))
        config = self.model_config()
        try:
            model = VAE_CLASSES[self.args.arch](latent_dim=self.args.latent_dim, **config)
        except ValueError as err:  # an image size the architecture cannot take: the user's --resolution
            raise ImageDataError(
                f"--arch {self.args.arch} cannot take {config['sample_size']}×{config['sample_size']} images: {err}; "
                "pass --resolution with one of those"
            ) from None
        optimizer = torch.optim.Adam(model.parameters(), lr=self.args.learning_rate)
        # uint8 tensors stay in memory; batches are converted to floats on the device, never per item through PIL.
        tensors = (self.train_split.images, self.train_split.labels) if self.conditional else (self.train_split.images,)
        loader = self.tensor_loader(*tensors)  # batches sliced whole, in the seeded sampler's order
        self.beta = self.args.beta
        return model, optimizer, loader

    def model_config(self) -> dict[str, Any]:
        """What the data sets in the model's config: its image shape and, with --conditional, one class per label
        name (MNIST: 1×28×28, 10 classes: the study's configs). An ImageDataError (one line, nothing written)
        when the data cannot give them."""
        info = self.data_info
        config: dict[str, Any] = {"in_channels": info.channels, "sample_size": info.resolution}
        if self.conditional:
            if not info.label_names:
                raise ImageDataError(
                    f"--conditional needs labelled images, and {info.name} has none (give --train_data_dir one "
                    "sub-folder per class, or --label_column for a Hub dataset), or drop --conditional"
                )
            config["num_classes"] = len(info.label_names)
        return config

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
        write_figures(model, self.held_out, self.output_dir / "figures", args, self.data_info)
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
        classifier = getattr(args, "classifier_dir", None)
        if self.conditional and (classifier is not None or is_mnist(self.data_info)):
            metrics["conditional"] = conditional_class_accuracy(
                model,
                per_class=args.class_accuracy_samples,
                seed=args.seed,
                classifier=load_digit_classifier(classifier) if classifier is not None else None,
            )
            what = "digits" if is_mnist(self.data_info) else "images"
            logger.info(f"class accuracy of generated {what}: {metrics['conditional']['accuracy']:.1%}")
        elif self.conditional:
            logger.info(
                f"class accuracy left out: the shipped digit classifier is for MNIST, not {self.data_info.name} "
                "(train one with training/train_classifier.py and pass --classifier_dir)"
            )
        write_json_atomic(self.output_dir / "metrics.json", metrics)
        logger.info(f"Saved the model, metrics.json and figures to {self.output_dir}")
        return metrics


__all__ = ["VAETrainer", "add_vae_args", "beta_at", "style_grid", "test_metrics", "training_step", "write_figures"]
