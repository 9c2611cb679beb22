"""The progressive-distillation trainer (`training/distill_ddpm.py`): a few-step v-prediction student of a DDPM.

All rounds run as ONE training of the shared `Trainer` (one accelerator, one checkpoint series, exact resume
anywhere): round r covers updates [r·S, (r+1)·S) for S updates per round. At the first update of a round the
student's weights (its EMA when kept) become the new teacher, the student restarts from them, its EMA restarts and
Adam's moments are cleared (the paper initialises each round's student from its teacher). The student that ends a
round is written to `rounds/<N>steps/` (a pipeline folder); a run resumed mid-round reloads its teacher from there.
The last student is the run folder itself. See docs/DDPM.md ("Few-step sampling (distillation)").

The training batches are the teacher's own data: with no data flags the run takes the ones the teacher's
training_config.json recorded (MNIST for the study's DDPMs); data flags naming other images are a one-line error
(`hub_models.training.ldm.check_upstream_data`). A class-conditional student keeps the teacher's classes.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, TensorDataset

from hub_models.diffusion import is_class_conditional, load_ddpm, sample_images, save_pipeline
from hub_models.diffusion.distillation import (
    STUDENT_PREDICTION_TYPE,
    STUDENT_SAMPLER,
    distillation_step,
    extended_alphas_cumprod,
    round_steps,
    student_scheduler,
    teacher_clip,
)
from hub_models.diffusion.sampling import num_classes
from hub_models.figures import save_png, to_pil
from hub_models.io import save_pretrained_atomic, write_json_atomic
from hub_models.models.unet import count_parameters
from hub_models.training.ldm import check_upstream_data, upstream_data_args, upstream_training_config
from hub_models.training.progress import logger
from hub_models.training.trainer import Trainer

ROUNDS_DIR = "rounds"


def round_dir(output_dir: str | Path, student_steps: int) -> Path:
    """Where the student of the round that ends at `student_steps` steps is written."""
    return Path(output_dir) / ROUNDS_DIR / f"{student_steps}steps"


class DistillationSetupError(ValueError):
    """A teacher that cannot be loaded or a step plan that does not fit its schedule (reported in one line)."""


class DistillTrainer(Trainer):
    """Progressive distillation of `--teacher_model_name_or_path` over `--num_rounds` rounds from `--start_steps`."""

    name = "distill_ddpm"

    def __init__(self, args: argparse.Namespace) -> None:
        args = argparse.Namespace(**vars(args))  # max_train_steps becomes the total of all rounds below
        try:
            self.teacher, teacher_scheduler = load_ddpm(args.teacher_model_name_or_path, use_ema=args.teacher_use_ema)
            self.teacher_config = dict(teacher_scheduler.config)
            self.rounds = round_steps(self.teacher_config["num_train_timesteps"], args.start_steps, args.num_rounds)
        except (OSError, ValueError) as err:
            raise DistillationSetupError(f"teacher {args.teacher_model_name_or_path}: {err}") from None
        self.student_steps_final = self.rounds[-1][1]
        self.conditional = is_class_conditional(self.teacher)
        self.scheduler = student_scheduler(self.teacher_config)
        self.alphas_cumprod = extended_alphas_cumprod(self.teacher_config)
        upstream = upstream_training_config(args.teacher_model_name_or_path)
        super().__init__(upstream_data_args(args, upstream))  # the teacher's data (MNIST by default)
        config = self.teacher.config
        check_upstream_data(self.data_info, upstream, f"the teacher {args.teacher_model_name_or_path}",
                            (config.in_channels, config.sample_size))
        self.steps_per_round_flag = args.max_train_steps
        self.teacher_round: int | None = None

    # ------------------------------------------------------------------------------------------------------------
    # Model, data, optimizer
    # ------------------------------------------------------------------------------------------------------------
    def build(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
        args, acc = self.args, self.accelerator
        student = copy.deepcopy(self.teacher).train().requires_grad_(True)
        self.teacher.requires_grad_(False).eval()
        self.ema = None
        if args.use_ema:
            self.ema = EMAModel(
                student.parameters(),
                decay=args.ema_max_decay,
                use_ema_warmup=True,
                inv_gamma=args.ema_inv_gamma,
                power=args.ema_power,
                model_cls=UNet2DModel,
                model_config=student.config,
            )
        optimizer = torch.optim.Adam(student.parameters(), lr=args.learning_rate)
        dataset = TensorDataset(self.train_split.images, self.train_split.labels)
        loader = DataLoader(dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=False)
        per_epoch = math.ceil(
            math.ceil(len(dataset) / (args.train_batch_size * acc.num_processes)) / args.gradient_accumulation_steps
        )
        self.steps_per_round = self.steps_per_round_flag or args.num_epochs * per_epoch
        args.max_train_steps = self.steps_per_round * len(self.rounds)
        return student, optimizer, loader

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer, max_steps: int) -> Any:
        if self.args.lr_scheduler == "constant":
            return None
        # Linear decay to 0 within each round (the paper's schedule); a prepared scheduler steps once per process.
        period = self.steps_per_round * self.accelerator.num_processes
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 - (k % period) / period)

    def checkpointed(self) -> list[Any]:
        return [self.ema] if self.ema is not None else []

    def after_resume(self) -> None:
        self.teacher.to(self.accelerator.device)
        self.alphas_cumprod = self.alphas_cumprod.to(self.accelerator.device)
        if self.ema is not None:
            self.ema.to(self.accelerator.device)

    def describe(self) -> str:
        plan = " → ".join([str(self.rounds[0][0])] + [str(s) for _, s in self.rounds])
        kind = "class-conditional " if self.conditional else ""
        return (
            f"distilling {kind}{self.args.teacher_model_name_or_path} ({count_parameters(self.teacher):,} "
            f"parameters): {plan} steps, {self.steps_per_round} updates per round; " + super().describe()
        )

    def config_extras(self) -> dict[str, Any]:
        return {
            **super().config_extras(),
            "max_train_steps": self.steps_per_round_flag,
            "steps_per_round": self.steps_per_round,
            "total_train_steps": self.max_steps,
            "rounds": [list(r) for r in self.rounds],
        }

    # ------------------------------------------------------------------------------------------------------------
    # Rounds
    # ------------------------------------------------------------------------------------------------------------
    def current_round(self, step: int | None = None) -> int:
        """The round of the update that follows `step` updates (default: now)."""
        step = self.global_step if step is None else step
        return min(step // self.steps_per_round, len(self.rounds) - 1)

    def _student_weights(self) -> UNet2DModel:
        """The student to hand on (its EMA when kept), as a standalone UNet."""
        unet = copy.deepcopy(self.unwrapped)
        if self.ema is not None:
            self.ema.copy_to(unet.parameters())
        return unet.eval()

    def _enter_round(self, r: int) -> None:
        """Make round r's teacher current (r > 0: the student of round r − 1)."""
        if r > 0:
            previous_steps = self.rounds[r - 1][1]
            if self.global_step == r * self.steps_per_round:  # the round starts now: hand the student on
                handed = self._student_weights()
                if self.accelerator.is_main_process:
                    self.save_student(handed, round_dir(self.output_dir, previous_steps), r - 1)
                self.unwrapped.load_state_dict(handed.state_dict())
                if self.ema is not None:
                    self.ema.shadow_params = [p.detach().clone() for p in self.unwrapped.parameters()]
                    self.ema.optimization_step = 0
                self.optimizer.state.clear()  # Adam's moments belonged to the previous round's problem
            else:  # resumed mid-round: the teacher was written when the round started
                handed = UNet2DModel.from_pretrained(
                    round_dir(self.output_dir, previous_steps), subfolder="unet", use_safetensors=True
                )
            self.teacher.load_state_dict(handed.state_dict())
            self.teacher.to(self.accelerator.device).eval()
            logger.info(f"round {r + 1}/{len(self.rounds)}: {self.rounds[r][0]} → {self.rounds[r][1]} steps")
        self.teacher_round = r

    def teacher_settings(self, r: int) -> tuple[str, float | None]:
        """(prediction type, x0 clipping) of round r's teacher: the original teacher's, then a student's."""
        if r == 0:
            return self.teacher_config["prediction_type"], teacher_clip(self.teacher_config)
        return STUDENT_PREDICTION_TYPE, None

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        r = self.current_round()
        if r != self.teacher_round:
            self._enter_round(r)
        images, labels = batch
        prediction_type, clip = self.teacher_settings(r)
        loss = distillation_step(
            self.accelerator, self.model, self.optimizer, self.lr_scheduler, max_grad_norm=self.args.max_grad_norm,
            ema=self.ema, step=self.global_step, teacher=self.teacher, images=images, generator=self.noise.generator,
            student_steps=self.rounds[r][1], alphas_cumprod=self.alphas_cumprod,
            teacher_prediction_type=prediction_type, teacher_clip_range=clip,
            class_labels=labels if self.conditional else None,
            label_dropout=self.args.label_dropout if self.conditional else 0.0,
            null_class=num_classes(self.teacher) if self.conditional else None,
        )  # fmt: skip
        return loss, {}

    def update_logs(self, loss: float, sums: dict[str, float]) -> dict[str, float]:
        return {"train/round": float(self.current_round(self.global_step - 1))}

    def postfix(self, loss: float, sums: dict[str, float]) -> dict[str, str]:
        r = self.current_round(self.global_step - 1)
        return {"loss": f"{loss:.4f}", "round": f"{r + 1}/{len(self.rounds)} ({self.rounds[r][1]} steps)"}

    def end_of_epoch(self, epoch: int) -> dict[str, Any]:
        """The epoch's mean training loss and the round it ended in (no teacher calls: the student's quality is
        scored by FID afterwards, `scripts/evaluate_ddpm.py`)."""
        r = self.current_round(max(self.global_step - 1, 0))
        entry = {
            "epoch": epoch + 1,
            "step": self.global_step,
            "train_loss": self.state.epoch_loss(),
            "round": r + 1,
            "student_steps": self.rounds[r][1],
            "complete": self.state.epoch_updates == self.steps_per_epoch,
        }
        logger.info(f"epoch {epoch + 1} (round {r + 1}): train loss {entry['train_loss']:.4f}")
        return entry

    # ------------------------------------------------------------------------------------------------------------
    # Outputs
    # ------------------------------------------------------------------------------------------------------------
    def distillation_record(self, r: int) -> dict[str, Any]:
        """What a student folder's metrics.json says about how it was made (round r, 0-based)."""
        curve = self.state.loss_curve
        rounds = []
        for k in range(r + 1):
            losses = curve[k * self.steps_per_round : (k + 1) * self.steps_per_round]
            tail = losses[-max(1, len(losses) // 10) :]
            rounds.append(
                {
                    "round": k + 1,
                    "teacher_steps": self.rounds[k][0],
                    "student_steps": self.rounds[k][1],
                    "updates": len(losses),
                    "final_loss": sum(tail) / len(tail) if tail else None,
                }
            )
        return {
            "teacher": str(self.args.teacher_model_name_or_path),
            "teacher_weights": "ema" if self.args.teacher_use_ema else "raw",
            "method": "progressive distillation (Salimans & Ho 2022), DDIM teacher, v-prediction student",
            "student_steps": self.rounds[r][1],
            "start_steps": self.rounds[0][0],
            "rounds": rounds,
            "steps_per_round": self.steps_per_round,
            "sampler": STUDENT_SAMPLER,
            "guidance": "applied at sampling (labels distilled with label dropout)" if self.conditional else None,
            "label_dropout": self.args.label_dropout if self.conditional else None,
        }

    def save_student(self, unet: UNet2DModel, folder: Path, r: int) -> None:
        """A pipeline folder (DDIM v-prediction scheduler) with a small metrics.json naming its step count."""
        save_pipeline(unet, self.scheduler, folder)
        write_json_atomic(folder / "metrics.json", self.base_metrics() | {"distillation": self.distillation_record(r)})

    def base_metrics(self) -> dict[str, Any]:
        config = self.teacher.config
        return {
            "model": "ddpm",
            "parameters": count_parameters(self.teacher),
            "num_train_timesteps": self.teacher_config["num_train_timesteps"],
            "beta_schedule": self.teacher_config["beta_schedule"],
            "prediction_type": STUDENT_PREDICTION_TYPE,
            "class_conditional": self.conditional,
            **({"num_class_embeds": config.num_class_embeds} if self.conditional else {}),
            "ema": self.ema is not None,
        }

    def write_epoch(self, epoch: int) -> None:
        """metrics.json of the run so far (the students of finished rounds are in rounds/)."""
        self.write_metrics(final=False)

    def write_metrics(self, final: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        last = self.state.history[-1] if self.state.history else {}
        r = self.current_round(max(self.global_step - 1, 0))
        metrics = {
            **self.base_metrics(),
            "distillation": self.distillation_record(r),
            "complete": final,
            "train_loss": last.get("train_loss"),
            "history": self.state.history,
            "mixed_precision": self.accelerator.mixed_precision,
            "train_batch_size": self.args.train_batch_size,
            "gradient_accumulation_steps": self.args.gradient_accumulation_steps,
            **self.run_summary(),
            "seconds_per_update": self.state.train_seconds / max(self.global_step, 1),
            **(extra or {}),
            "loss_curve": self.state.loss_curve,
        }
        write_json_atomic(self.output_dir / "metrics.json", metrics)
        return metrics

    def write_final(self) -> dict[str, Any] | None:
        """The final student as the run folder (EMA in unet/, raw in unet_non_ema/), in rounds/ too, a sample grid
        at its step count, metrics.json."""
        r = len(self.rounds) - 1
        student = self._student_weights()
        self.save_student(student, round_dir(self.output_dir, self.rounds[r][1]), r)
        save_pipeline(student, self.scheduler, self.output_dir)
        save_pretrained_atomic(self.unwrapped, self.output_dir / "unet_non_ema", safe_serialization=True)
        t0 = time.perf_counter()
        grid, num_images = self.sample_grid(student)
        seconds = time.perf_counter() - t0
        save_png(grid, self.output_dir / "figures" / "samples.png")
        return self.write_metrics(
            final=True,
            extra={
                "sampler": {
                    "name": STUDENT_SAMPLER,
                    "steps": self.student_steps_final,
                    "seconds": seconds,
                    "num_images": num_images,
                    **({"guidance_scale": self.args.guidance_scale} if self.conditional else {}),
                }
            },
        )

    def sample_grid(self, unet: UNet2DModel) -> tuple[Any, int]:
        """`--num_sample_images` images at the student's step count; class-conditional: a row per class of the
        teacher (MNIST's ten digits)."""
        args = self.args
        kwargs: dict[str, Any] = {}
        if self.conditional:
            k = num_classes(self.teacher)
            per_row = math.ceil(args.num_sample_images / k)
            kwargs = {
                "class_labels": torch.arange(k).repeat_interleave(per_row),
                "guidance_scale": args.guidance_scale,
            }
            num_images = per_row * k
        else:
            per_row, num_images = math.ceil(math.sqrt(args.num_sample_images)), args.num_sample_images
        images = sample_images(
            unet,
            self.scheduler.config,
            STUDENT_SAMPLER,
            self.student_steps_final,
            num_images,
            generator=torch.Generator().manual_seed(args.seed),
            **kwargs,
        )
        return to_pil(images, nrow=per_row, scale=3), num_images

    @classmethod
    def main(cls, args: argparse.Namespace) -> dict[str, Any] | None:
        try:
            return super().main(args)
        except DistillationSetupError as err:
            raise SystemExit(f"error: {err}") from None


__all__ = ["ROUNDS_DIR", "DistillTrainer", "DistillationSetupError", "round_dir"]
