#!/usr/bin/env python
"""One UNet call of 16 digits on the CPU under each runtime, side by side: is any faster than torch's bf16 autocast?

    pip install openvino onnx onnxruntime   # optional: a runtime that is not installed is skipped
    python benchmarks/unet_runtime.py --model release/ddpm --rounds 3

Runtimes: torch fp32, torch under `torch.autocast("cpu", torch.bfloat16)` (what the Space uses on CPUs with bf16
units), OpenVINO (the UNet converted in memory with `openvino.convert_model`; `INFERENCE_PRECISION_HINT` bf16 and
f32) and ONNX Runtime (exported in memory with `torch.onnx.export`). Each round times every runtime (best of
`--repeats` calls after one warm-up), in an order that alternates between rounds; the medians over rounds are compared
with the torch path the Space takes on this CPU (bf16 where it is native, else fp32; emulated bf16 is not timed),
and each runtime's largest absolute difference from torch fp32 on the same input is printed.
Nothing converted is written to disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...` from a checkout

import numpy as np
import torch

from hub_models.io import BF16_EMULATED, native_cpu_bf16
from hub_models.models.unet import make_unet
from hub_models.training import positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="A DDPM folder (its unet/); default: a random --model_config UNet.")
    p.add_argument("--model_config", default="default", help="UNet config when no --model.")
    p.add_argument("--num_images", type=positive_int, default=16)
    p.add_argument("--timestep", type=int, default=2000)
    p.add_argument("--threads", type=positive_int, default=1, help="Threads of every runtime (the Space: 1).")
    p.add_argument("--rounds", type=positive_int, default=3)
    p.add_argument("--repeats", type=positive_int, default=5)
    return p.parse_args(argv)


class _Eps(torch.nn.Module):
    """The UNet as a plain (x, t) → ε module, for the exporters."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t).sample


def runtimes(unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, threads: int) -> dict[str, Callable]:
    """name → a function computing ε for (x, t) as a float32 tensor."""

    def torch_fp32() -> torch.Tensor:
        return unet(x, t).sample

    def torch_bf16() -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16):
            return unet(x, t).sample.float()

    # Where bf16 is emulated (no AVX512/AMX) the Space stays in fp32, and timing emulated bf16 takes minutes.
    found = {"torch fp32": torch_fp32, **({"torch bf16": torch_bf16} if native_cpu_bf16() else {})}
    inputs = [x.numpy(), t.numpy()]
    if importlib.util.find_spec("openvino"):
        import openvino as ov

        graph = ov.convert_model(_Eps(unet), example_input=(x, t))
        for hint in ("bf16", "f32"):
            compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                              "INFERENCE_NUM_THREADS": threads,
                                                              "PERFORMANCE_HINT": "LATENCY"})
            found[f"openvino {hint}"] = lambda c=compiled: torch.from_numpy(np.asarray(c(inputs)[0]))
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        import onnxruntime as ort

        buffer = io.BytesIO()
        torch.onnx.export(_Eps(unet), (x, t), buffer, input_names=["x", "t"], output_names=["eps"], dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        found["onnxruntime fp32"] = lambda: torch.from_numpy(session.run(None, {"x": inputs[0], "t": inputs[1]})[0])
    return found


def best_of(fn: Callable, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def main(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(args.threads)
    from diffusers import UNet2DModel

    unet = (UNet2DModel.from_pretrained(Path(args.model) / "unet") if args.model else make_unet(args.model_config))
    unet.eval()
    x = torch.randn(args.num_images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.full((args.num_images,), args.timestep, dtype=torch.long)
    found = runtimes(unet, x, t, args.threads)
    reference = found["torch fp32"]()
    diffs = {name: (fn() - reference).abs().max().item() for name, fn in found.items()}
    names = list(found)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            seconds[name].append(best_of(found[name], args.repeats))
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    space = "torch bf16" if "torch bf16" in found else "torch fp32"  # what `cpu_precision` picks on this CPU
    base = medians[space]
    print(f"{args.num_images} digits, {sum(p.numel() for p in unet.parameters()):,} parameters, {args.threads} "
          f"thread(s), load average {os.getloadavg()[0]:.1f}; median over {args.rounds} rounds of the best of "
          f"{args.repeats}" + ("" if space == "torch bf16" else f"; torch bf16 not timed: {BF16_EMULATED}"))
    print(f"| runtime | ms per call | speed vs {space} (the Space's path here) | max abs diff vs torch fp32 |")
    print("|---|---:|---:|---:|")
    for name in names:
        print(f"| {name} | {medians[name] * 1e3:.0f} | {base / medians[name]:.2f}× | {diffs[name]:.1e} |")
    return medians


if __name__ == "__main__":
    main(parse_args())
