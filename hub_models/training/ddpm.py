"""The DDPM trainer: the study's UNet2DModel predicting ε under a cosine schedule over 4000 timesteps, with an EMA
of the weights, and optionally class-conditional (the data's classes, 10 digits for MNIST, + the null class of
classifier-free guidance). The UNet takes the data's shape (`sample_size`, `in_channels`: MNIST's 1×28×28 by default).

After every epoch the run folder holds a usable pipeline (EMA weights in unet/, raw in unet_non_ema/), a sample
grid, the loss curve and metrics.json, so a run cut short is still usable. See docs/DDPM.md.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from hub_models.diffusion import DEFAULT_GUIDANCE_SCALE, make_train_scheduler, sample_images, save_pipeline
from hub_models.diffusion.training import held_out_loss, training_step
from hub_models.figures import figure_to_pil, plt, save_png, to_pil
from hub_models.image_datasets import ImageDataError, ImageDatasetInfo
from hub_models.io import save_pretrained_atomic, write_json_atomic
from hub_models.models.unet import count_parameters, shaped_config, unet_config
from hub_models.reference import NUM_DIGITS, STUDY_DDPM
from hub_models.training.progress import logger
from hub_models.training.trainer import Trainer, TrainState


def class_count(data_info: ImageDatasetInfo | None) -> int:
    """How many classes a class-conditional model of this data generates (MNIST's 10 digits when None), or an
    ImageDataError when the data has no labels."""
    if data_info is None:
        return NUM_DIGITS
    if not data_info.label_names:
        raise ImageDataError(f"--class_conditional needs labelled images, and {data_info.name} has none (a "
                             "--train_data_dir takes its labels from one sub-folder per class; a Hub dataset from "
                             "--label_column)")
    return len(data_info.label_names)


def make_ddpm_unet(model_config: str, class_conditional: bool = False,
                   data_info: ImageDatasetInfo | None = None) -> UNet2DModel:
    """The UNet of `--model_config` for `data_info`'s images (`sample_size` = resolution, `in_channels` =
    `out_channels` = channels; None: the config's own shape, MNIST's 1×28×28); class-conditional:
    `num_class_embeds` = the data's classes + the null class (the last index: 10 for MNIST's digits), with
    diffusers' default learned class embedding added to the timestep embedding.

    Raises:
        ImageDataError: a resolution the UNet's levels cannot halve (the message says which sizes work), or
            class conditioning on data without labels or with more classes than a given config's embeddings.
    """
    config = unet_config(model_config)
    if data_info is not None:
        try:
            config = shaped_config(config, data_info.channels, data_info.resolution, what="--resolution")
        except ValueError as err:
            raise ImageDataError(f"{err} (UNet '{model_config}', images of {data_info.name})") from None
    if class_conditional:
        wanted = class_count(data_info) + 1
        given = config.get("num_class_embeds")
        if given is not None and given != wanted:  # a JSON config with its own embeddings
            raise ImageDataError(f"UNet '{model_config}' has num_class_embeds={given}, but the data has "
                                 f"{wanted - 1} classes (+ the null class = {wanted})")
        config["num_class_embeds"] = wanted
    return UNet2DModel(**config)


class DDPMTrainer(Trainer):
    """`training/train_ddpm.py`: the study's DDPM recipe, unconditional or class-conditional, one code path."""

    name = "train_ddpm"

    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
        args = self.args
        model = self.make_unet()
        self.noise_scheduler = self.make_noise_scheduler()
        self.ema = None
        if args.use_ema:
            self.ema = EMAModel(
                model.parameters(),
                decay=args.ema_max_decay,
                use_ema_warmup=True,
                inv_gamma=args.ema_inv_gamma,
                power=args.ema_power,
                model_cls=UNet2DModel,
                model_config=model.config,
            )
        optimizer = (torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam)(
            model.parameters(),
            lr=args.learning_rate,
            betas=(args.adam_beta1, args.adam_beta2),
            weight_decay=args.adam_weight_decay,
            eps=args.adam_epsilon,
        )
        # uint8 tensors stay in memory; batches become floats on the device: no per-item PIL transforms.
        dataset = TensorDataset(self.train_split.images, self.train_split.labels)
        loader = DataLoader(dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=False,
                            num_workers=args.num_workers)
        return model, optimizer, loader

    def make_unet(self) -> UNet2DModel:
        """The UNet to train (`LDMTrainer` builds one for its autoencoder's latents instead)."""
        return make_ddpm_unet(self.args.model_config, self.args.class_conditional, self.data_info)

    @property
    def num_classes(self) -> int:
        """The classes a class-conditional run generates: the data's (MNIST: 10 digits)."""
        return class_count(self.data_info)

    def make_noise_scheduler(self):
        """The training noise schedule of the flags (its config is saved with the pipeline)."""
        args = self.args
        return make_train_scheduler(args.num_train_timesteps, args.beta_schedule, args.prediction_type,
                                    rescale_betas_zero_snr=args.rescale_betas_zero_snr)

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer, max_steps: int) -> Any:
        return get_scheduler(self.args.lr_scheduler, optimizer,
                             num_warmup_steps=self.args.lr_warmup_steps * self.accelerator.num_processes,
                             num_training_steps=max_steps)

    def checkpointed(self) -> list[Any]:
        return [self.ema] if self.ema is not None else []

    def after_resume(self) -> None:
        self.ema_unet = None
        if self.ema is not None:
            self.ema.to(self.accelerator.device)  # load_state puts the shadow weights on the CPU
            config = self.accelerator.unwrap_model(self.model).config
            self.ema_unet = UNet2DModel.from_config(config).to(self.accelerator.device)
        self.eval_images = self.held_out.images[: self.args.max_eval_samples]
        self.eval_labels = self.held_out.labels[: self.args.max_eval_samples] if self.args.class_conditional else None

    def describe(self) -> str:
        kind = "class-conditional " if self.args.class_conditional else ""
        return (f"{kind}UNet '{self.args.model_config}': {count_parameters(self.model):,} parameters; "
                + super().describe())

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, labels = batch
        loss = training_step(
            self.accelerator, self.model, self.optimizer, self.lr_scheduler, self.noise_scheduler, images,
            self.noise.generator, max_grad_norm=self.args.max_grad_norm, ema=self.ema, step=self.global_step,
            class_labels=labels if self.args.class_conditional else None, label_dropout=self.args.label_dropout,
            snr_gamma=self.args.snr_gamma,
        )  # fmt: skip
        return loss, {}

    def update_logs(self, loss: float, sums: dict[str, float]) -> dict[str, float]:
        return {"train/ema_decay": self.ema.cur_decay_value} if self.ema is not None else {}

    def postfix(self, loss: float, sums: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{loss:.4f}", "epoch mean": f"{self.state.epoch_loss():.4f}"}

    def end_of_epoch(self, epoch: int) -> dict[str, Any]:
        """Held-out loss with fixed noise (raw and EMA weights)."""
        args, acc = self.args, self.accelerator
        # The unwrapped model: ranks may run different numbers of eval batches, so no DDP forward here.
        scored = [("test_loss", self.unwrapped)]
        if self.ema is not None:
            self.ema.copy_to(self.ema_unet.parameters())
            scored.append(("test_loss_ema", self.ema_unet))
        entry = {"epoch": epoch + 1, "step": self.global_step, "train_loss": self.state.epoch_loss()}
        for key, unet in scored:
            entry[key] = held_out_loss(unet, self.noise_scheduler, self.eval_images, args.eval_batch_size,
                                       args.eval_seed, acc, labels=self.eval_labels)
        entry["complete"] = self.state.epoch_updates == self.steps_per_epoch
        acc.log({f"epoch/{k}": entry[k] for k in ("train_loss", "test_loss", "test_loss_ema") if k in entry},
                step=self.global_step)
        logger.info(f"epoch {epoch + 1}: train loss {entry['train_loss']:.4f} | test loss {entry['test_loss']:.4f}"
                    + (f" (EMA {entry['test_loss_ema']:.4f})" if "test_loss_ema" in entry else ""))
        return entry

    def fingerprint_modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.unwrapped, self.ema_unet) if self.ema_unet is not None else (self.unwrapped,)

    def save_folder(self, unet: UNet2DModel, directory: Path | None = None) -> None:
        """The pipeline folder around `unet` (the weights sampled from), in the run folder unless told."""
        save_pipeline(unet, self.noise_scheduler, directory or self.output_dir)

    def write_snapshot(self, directory: Path) -> None:
        """The EMA pipeline now, with the run's flags and clock: a run folder `scripts/evaluate_ddpm.py` scores."""
        unet = self.unwrapped
        if self.ema is not None:
            self.ema.copy_to(self.ema_unet.parameters())
            unet = self.ema_unet
        self.save_folder(unet, directory)
        write_json_atomic(directory / "training_config.json", {**vars(self.args), **self.config_extras()})
        write_json_atomic(directory / "metrics.json", {**self.model_metrics(), **self.run_summary()})
        logger.info(f"snapshot at {self.state.train_cpu_seconds / 3600:.2f} CPU-hours (update {self.global_step}): "
                    f"{directory}")

    def model_metrics(self) -> dict[str, Any]:
        """The fields of metrics.json that say what kind of model this is; the rest is common to every DDPM run."""
        return {"model": "ddpm", "unet_config": str(self.args.model_config),
                "parameters": count_parameters(self.unwrapped), "study": STUDY_DDPM}

    def write_epoch(self, epoch: int) -> None:
        """The pipeline folder (EMA weights in unet/, raw in unet_non_ema/), a sample grid and metrics.json."""
        args = self.args
        sampling_unet = self.ema_unet if self.ema_unet is not None else self.unwrapped
        self.save_folder(sampling_unet)
        save_pretrained_atomic(self.unwrapped, self.output_dir / "unet_non_ema", safe_serialization=True)

        t0 = time.perf_counter()
        grid, num_images = self.sample_grid(sampling_unet)
        sample_seconds = time.perf_counter() - t0
        figures = self.output_dir / "figures"
        save_png(grid, figures / f"samples_epoch_{epoch + 1:03d}.png")
        save_png(grid, figures / "samples.png")
        save_png(loss_figure(self.state, self.steps_per_epoch), figures / "loss_curve.png")

        last = self.state.history[-1]
        write_json_atomic(self.output_dir / "metrics.json", {
            **self.model_metrics(),
            "num_train_timesteps": args.num_train_timesteps,
            "beta_schedule": args.beta_schedule,
            "prediction_type": args.prediction_type,
            "rescale_betas_zero_snr": args.rescale_betas_zero_snr,
            "snr_gamma": args.snr_gamma,
            "lr_scheduler": args.lr_scheduler,
            "lr_warmup_steps": args.lr_warmup_steps,
            "learning_rate": args.learning_rate,
            "class_conditional": args.class_conditional,
            **({"num_class_embeds": self.num_classes + 1, "label_dropout": args.label_dropout}
               if args.class_conditional else {}),
            "ema": self.ema_unet is not None,
            "train_loss": last["train_loss"],
            "test_loss": last["test_loss"],
            **({"test_loss_ema": last["test_loss_ema"]} if "test_loss_ema" in last else {}),
            "history": self.state.history,
            "epochs": epoch + 1,
            "epochs_planned": args.num_epochs,
            "mixed_precision": self.accelerator.mixed_precision,
            "train_batch_size": args.train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            **self.run_summary(),
            "sampler": {"name": args.sampler, "steps": args.sample_steps, "seconds": sample_seconds,
                        "num_images": num_images,
                        **({"guidance_scale": args.guidance_scale} if args.class_conditional else {})},
            "test_loss_samples": len(self.eval_images),
            "loss_curve": self.state.loss_curve,
        })  # fmt: skip

    def sample_grid(self, unet: UNet2DModel) -> tuple[Image.Image, int]:
        """`--num_sample_images` images in a square grid; class-conditional: one row per class (rounded up to
        whole rows). Returns (grid, number of images)."""
        per_row, num_images, kwargs = grid_layout(self.args, self.num_classes if self.args.class_conditional
                                                  else NUM_DIGITS)
        images = sample_images(unet, self.noise_scheduler.config, self.args.sampler, self.args.sample_steps,
                               num_images, generator=torch.Generator().manual_seed(self.args.seed), **kwargs)
        return to_pil(images, nrow=per_row, scale=3), num_images


def grid_layout(args: Any, num_classes: int = NUM_DIGITS) -> tuple[int, int, dict[str, Any]]:
    """(images per row, number of images, the sampler's label arguments) of a run's sample grid: a square grid of
    `args.num_sample_images`, or for a class-conditional run one row per class 0 … `num_classes` − 1 (MNIST's
    digits by default), rounded up to whole rows."""
    if not args.class_conditional:
        return math.ceil(math.sqrt(args.num_sample_images)), args.num_sample_images, {}
    per_row = math.ceil(args.num_sample_images / num_classes)
    labels = torch.arange(num_classes).repeat_interleave(per_row)
    return per_row, len(labels), {"class_labels": labels, "guidance_scale": args.guidance_scale}


def loss_figure(state: TrainState, steps_per_epoch: int) -> Image.Image:
    """Training loss per update (smoothed) and per-epoch train/test losses, next to the study's figures."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    curve = torch.tensor(state.loss_curve)
    window = max(1, min(50, len(curve) // 10))
    smooth = curve.unfold(0, window, 1).mean(1) if len(curve) >= window else curve
    ax.plot(
        torch.arange(window, window + len(smooth)) / steps_per_epoch, smooth, lw=1, label=f"train (mean of {window})"
    )
    epochs = [h for h in state.history if h.get("complete")]
    if epochs:
        x = [h["step"] / steps_per_epoch for h in epochs]
        ax.plot(x, [h["train_loss"] for h in epochs], "o-", label="train, epoch mean")
        ax.plot(x, [h["test_loss"] for h in epochs], "s-", label="held-out")
    ax.axhline(STUDY_DDPM["test_loss"], color="grey", ls="--", lw=1, label="study: test 0.0280")
    ax.set(xlabel="epoch", ylabel="ε-prediction MSE", yscale="log", title="DDPM training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return figure_to_pil(fig)


__all__ = [
    "DEFAULT_GUIDANCE_SCALE",
    "NUM_DIGITS",
    "DDPMTrainer",
    "class_count",
    "grid_layout",
    "loss_figure",
    "make_ddpm_unet",
]
