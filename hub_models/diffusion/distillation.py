"""Progressive distillation (Salimans & Ho 2022): a student that takes one DDIM step where its teacher takes two.

Each round halves the number of sampling steps: the student starts as a copy of the teacher, learns to land in one
deterministic DDIM step (η = 0) where two teacher DDIM steps land, and becomes the teacher of the next round
(e.g. 32 → 16 → 8 → 4 steps). The student predicts v (`prediction_type="v_prediction"`), which stays well defined
at t = T − 1 where an ε-prediction's implied x0 = (z − σ·ε)/α divides by α ≈ 1e-5.

Time grid: the student of N steps samples with diffusers' `DDIMScheduler` at N steps with trailing spacing and
`set_alpha_to_one=True` (what `make_scheduler("ddim", ...)` builds): timesteps T−1, T−1−T/N, …, T/N−1, each step
going to t − T/N and the last one to ᾱ = 1. This grid nests (the teacher's 2N-step grid holds it and the midpoints)
only when T/(2N) is a whole number, so every round's teacher step count must divide T (T = 4000: 32, 40, 80, 160,
1000 … halve cleanly; 64 does not).

The target (the paper's Algorithm 2): from z_t = α_t·x + σ_t·ε the teacher takes two DDIM steps t → t' → t''
(t' = t − T/(2N), t'' = t − T/N), and x̃ is the x0 that one DDIM step from z_t must predict to land on z_t'':
    x̃ = (z_t'' − (σ_t''/σ_t)·z_t) / (α_t'' − (σ_t''/σ_t)·α_t).
The student's loss is the MSE between its v and ṽ = (α_t·z_t − x̃)/σ_t ("SNR + 1" weighting of the x0 error).

A teacher step is exactly the library's DDIM step (diffusers' with `use_clipped_model_output=True`): x0 from the
raw output, clipped to ±`clip` when the teacher's scheduler clips (`clip_sample`), and the ε direction re-derived
from that x0. Students do not clip (their scheduler says
`clip_sample=False`): x̃ may lie outside [−1, 1], and clipping it would break the one-step = two-steps identity.

Class-conditional teachers: the labels go to teacher and student alike, and a share of them (`label_dropout`) is
replaced by the null class, so the student learns both branches and classifier-free guidance is applied at
sampling (`sample_images(..., guidance_scale=w)`) with any w, as for the teacher.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.training_utils import EMAModel

from hub_models.diffusion.training import drop_labels, to_model_range
from hub_models.io import optimizer_update

STUDENT_PREDICTION_TYPE = "v_prediction"
STUDENT_SAMPLER = "ddim"  # the library's sampler that a student is sampled with (at its own step count)
METRICS_FILE = "metrics.json"

# teacher(z_t, t) -> raw UNet output (ε, v or x0 per its prediction type); labels are bound by the caller.
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def round_steps(num_train_timesteps: int, start_steps: int, num_rounds: int) -> list[tuple[int, int]]:
    """(teacher steps, student steps) of each round, or ValueError (one line) if the halving does not fit T.

    E.g. `round_steps(4000, 32, 3)` = [(32, 16), (16, 8), (8, 4)]."""
    if num_rounds < 1 or start_steps < 2:
        raise ValueError(f"need num_rounds ≥ 1 and start_steps ≥ 2, got {num_rounds} and {start_steps}")
    final = start_steps / 2**num_rounds
    if final != int(final):
        raise ValueError(f"{num_rounds} halvings of {start_steps} steps do not end on a whole number of steps")
    if num_train_timesteps % start_steps:
        divisors = [n for n in (8, 10, 16, 20, 32, 40, 50, 80, 100, 160, 200) if num_train_timesteps % n == 0]
        raise ValueError(
            f"start_steps={start_steps} does not divide the {num_train_timesteps} training timesteps: "
            f"DDIM's grids would not nest (try one of {divisors})"
        )
    return [(start_steps // 2**r, start_steps // 2 ** (r + 1)) for r in range(num_rounds)]


def extended_alphas_cumprod(scheduler_config: Mapping[str, Any]) -> torch.Tensor:
    """ᾱ_t of the schedule, t = 0…T−1, with ᾱ = 1 appended: index −1 is the clean end of the last DDIM step."""
    alphas = DDPMScheduler.from_config(dict(scheduler_config)).alphas_cumprod.float()
    return torch.cat([alphas, torch.ones(1)])


def _alpha_sigma(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """α_t, σ_t shaped `(batch, 1, 1, 1)`; t = −1 gives (1, 0)."""
    abar = alphas_cumprod.to(t.device)[t].view(-1, 1, 1, 1)  # its dtype: fp32 (float64 in tests)
    return abar.sqrt(), (1 - abar).sqrt()


def x0_and_eps(
    model_output: torch.Tensor,
    z: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    prediction_type: str,
    clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, ε) implied by a raw model output at z = α·x0 + σ·ε, as the library's DDIM step computes them: x0 is
    clipped to ±`clip` (None: not clipped) and ε re-derived from the clipped x0 (`use_clipped_model_output=True`,
    `make_scheduler("ddim")`'s default: docs/DDPM.md, "Why DDIM gets worse with more steps")."""
    model_output = model_output.to(z.dtype)
    if prediction_type == "epsilon":
        eps = model_output
        x0 = (z - sigma * eps) / alpha
    elif prediction_type == "v_prediction":
        x0 = alpha * z - sigma * model_output
        eps = alpha * model_output + sigma * z
    elif prediction_type == "sample":
        x0 = model_output
        eps = (z - alpha * x0) / sigma
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = (z - alpha * x0) / sigma
    return x0, eps


def teacher_clip(scheduler_config: Mapping[str, Any]) -> float | None:
    """The x0 clipping of the teacher's DDIM steps: the scheduler's `clip_sample_range` when it clips."""
    return float(scheduler_config.get("clip_sample_range", 1.0)) if scheduler_config.get("clip_sample") else None


@torch.no_grad()
def distillation_target(
    teacher: Denoiser,
    z_t: torch.Tensor,
    t: torch.Tensor,
    student_steps: int,
    alphas_cumprod: torch.Tensor,
    prediction_type: str,
    clip: float | None = None,
) -> torch.Tensor:
    """x̃ `(batch, channels, height, width)`: the x0 one DDIM step from (z_t, t) must predict to land where two
    DDIM steps of the teacher land (t → t − T/(2N) → t − T/N, N = `student_steps`).

    Args:
        teacher: raw output of the teacher at (z, t) (labels bound by the caller).
        z_t: noisy images `(batch, channels, height, width)`.
        t: their timesteps `(batch,)`, on the student's grid (T − 1 − k·T/N).
        alphas_cumprod: `extended_alphas_cumprod` of the schedule (T + 1 values).
        prediction_type, clip: the teacher's (`teacher_clip` of its scheduler config).
    """
    num_train_timesteps = len(alphas_cumprod) - 1
    half = num_train_timesteps // (2 * student_steps)
    z_t = z_t.to(torch.promote_types(z_t.dtype, alphas_cumprod.dtype))  # fp32 at least (float64 in tests)
    alpha_t, sigma_t = _alpha_sigma(alphas_cumprod, t)
    z, s = z_t, t
    for _ in range(2):  # two DDIM steps of the teacher
        alpha, sigma = _alpha_sigma(alphas_cumprod, s)
        x0, eps = x0_and_eps(teacher(z, s), z, alpha, sigma, prediction_type, clip)
        s = s - half
        alpha_next, sigma_next = _alpha_sigma(alphas_cumprod, s)
        z = alpha_next * x0 + sigma_next * eps
    alpha_2, sigma_2 = _alpha_sigma(alphas_cumprod, s)
    ratio = sigma_2 / sigma_t
    return (z - ratio * z_t) / (alpha_2 - ratio * alpha_t)


def student_timesteps(num_train_timesteps: int, student_steps: int) -> torch.Tensor:
    """The student's DDIM timesteps with trailing spacing, noisiest first: T−1, T−1−T/N, …, T/N−1."""
    stride = num_train_timesteps // student_steps
    return torch.arange(num_train_timesteps - 1, -1, -stride)[:student_steps]


def distillation_loss(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    student_steps: int,
    alphas_cumprod: torch.Tensor,
    teacher_prediction_type: str,
    teacher_clip_range: float | None = None,
    class_labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    null_class: int | None = None,
    teacher_autocast: Any = None,
) -> torch.Tensor:
    """The student's v-MSE to the two-teacher-step target on one batch of uint8 digits `(batch, 28, 28)`, at
    timesteps drawn uniformly from the student's grid. `teacher_autocast`: a context manager for the teacher's
    forwards (e.g. `accelerator.autocast()`; the student is autocast by accelerate's `prepare`)."""
    x0 = to_model_range(images)
    device = x0.device
    grid = student_timesteps(len(alphas_cumprod) - 1, student_steps).to(device)
    t = grid[torch.randint(0, student_steps, (len(x0),), generator=generator, device=generator.device).to(device)]
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(device)
    alpha, sigma = _alpha_sigma(alphas_cumprod, t)
    z_t = alpha * x0 + sigma * noise
    kwargs = {}
    if class_labels is not None:
        kwargs["class_labels"] = drop_labels(class_labels, label_dropout, null_class, generator)

    def teacher_fn(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return teacher(z, s, **kwargs).sample

    was_training = teacher.training
    teacher.eval()
    with teacher_autocast if teacher_autocast is not None else contextlib.nullcontext():
        x_target = distillation_target(
            teacher_fn, z_t, t, student_steps, alphas_cumprod, teacher_prediction_type, teacher_clip_range
        )
    teacher.train(was_training)
    v_target = (alpha * z_t - x_target) / sigma
    v_pred = student(z_t, t, **kwargs).sample
    return F.mse_loss(v_pred.float(), v_target)


def distillation_step(
    accelerator: Accelerator,
    student: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    *,
    max_grad_norm: float,
    ema: EMAModel | None = None,
    step: int = 0,
    **loss_kwargs: Any,
) -> torch.Tensor:
    """One micro-batch: `distillation_loss(student, **loss_kwargs)`, backward, then clipping + optimizer/lr/EMA
    updates when gradients sync. Returns the detached loss; FloatingPointError on NaN/inf before any update."""
    with accelerator.accumulate(student):
        loss = distillation_loss(student, teacher_autocast=accelerator.autocast(), **loss_kwargs)
        optimizer_update(accelerator, student, loss, optimizer, step=step, max_grad_norm=max_grad_norm,
                         lr_scheduler=lr_scheduler, ema=ema)
    return loss.detach()


def student_scheduler(teacher_scheduler_config: Mapping[str, Any]) -> DDIMScheduler:
    """The scheduler a student folder is saved with: diffusers' DDIM on the teacher's noise schedule, v-prediction,
    trailing spacing, ᾱ = 1 at the end, no clipping (what `make_scheduler("ddim", ...)` then samples it with)."""
    return DDIMScheduler.from_config(
        dict(teacher_scheduler_config),
        prediction_type=STUDENT_PREDICTION_TYPE,
        timestep_spacing="trailing",
        set_alpha_to_one=True,
        clip_sample=False,
        thresholding=False,
    )


def student_steps(run_dir: str | os.PathLike) -> int | None:
    """The step count a distilled student samples at (`metrics.json` → `distillation.student_steps`); None for a
    folder that is not a student (or has no metrics.json)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    steps = json.loads(path.read_text()).get("distillation", {}).get("student_steps")
    return int(steps) if steps is not None else None


__all__ = [
    "STUDENT_PREDICTION_TYPE",
    "STUDENT_SAMPLER",
    "Denoiser",
    "distillation_loss",
    "distillation_step",
    "distillation_target",
    "extended_alphas_cumprod",
    "round_steps",
    "student_scheduler",
    "student_steps",
    "student_timesteps",
    "teacher_clip",
    "x0_and_eps",
]
