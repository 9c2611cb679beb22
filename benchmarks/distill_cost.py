#!/usr/bin/env python
"""CPU seconds per progressive-distillation update of a real teacher UNet, fp32 and bf16 autocast.

    OMP_NUM_THREADS=1 python benchmarks/distill_cost.py --model release/ddpm --precision fp32 bf16

One update = two teacher DDIM steps without gradients + one student forward/backward + Adam, on a batch of
random uint8 digits (the cost does not depend on the pixels). CPU time (`time.process_time`) is printed beside
wall time: on a shared machine only the CPU figure is comparable between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

from hub_models.diffusion import load_ddpm
from hub_models.diffusion.distillation import distillation_loss, extended_alphas_cumprod, teacher_clip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="release/ddpm", help="Teacher pipeline folder.")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--student_steps", type=int, default=16, help="Student steps of the round being timed.")
    p.add_argument("--updates", type=int, default=4, help="Timed updates per precision (the first is warm-up).")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    teacher, scheduler = load_ddpm(args.model)
    alphas = extended_alphas_cumprod(scheduler.config)
    images = torch.randint(0, 256, (args.batch_size, 28, 28), dtype=torch.uint8)
    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    for precision in args.precision:
        student = copy.deepcopy(teacher).train().requires_grad_(True)
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
        generator = torch.Generator().manual_seed(0)

        def autocast(precision: str = precision) -> contextlib.AbstractContextManager:
            return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

        cpu, wall = [], []
        for i in range(args.updates):
            c0, w0 = time.process_time(), time.perf_counter()
            with autocast():
                loss = distillation_loss(student, teacher, images, generator, student_steps=args.student_steps,
                                         alphas_cumprod=alphas, teacher_prediction_type="epsilon",
                                         teacher_clip_range=teacher_clip(scheduler.config), teacher_autocast=autocast())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            print(f"{precision} update {i}: cpu {cpu[-1]:.2f} s, wall {wall[-1]:.2f} s, loss {loss.item():.4f}")
        n = max(len(cpu) - 1, 1)
        print(f"{precision}: mean of updates 2–{len(cpu)}: cpu {sum(cpu[1:]) / n:.2f} s, "
              f"wall {sum(wall[1:]) / n:.2f} s")


if __name__ == "__main__":
    main(parse_args())
