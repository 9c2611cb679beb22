"""The Generate tab's DDPM: checked requests, the U-Net's precision on the CPU, and sampling that streams the
current estimate while it denoises (and stops when the visitor presses Stop)."""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from hub_models.diffusion.sampling import (
    DEFAULT_GUIDANCE_SCALE,
    SAMPLERS,
    is_class_conditional,
    num_classes,
    sample_images,
)
from hub_models.figures import to_pil
from hub_models.io import BF16_EMULATED, log, native_cpu_bf16
from hub_models.space.checks import (
    DEFAULT_COUNT,
    MAX_IMAGES,
    MAX_PER_DIGIT,
    SpaceError,
    as_float,
    as_int,
    as_seed,
    grid_columns,
    shown,
)
from hub_models.space.registry import DDPMEntry

# The DDPM's U-Net precision on the CPU: "auto" (time both at start-up, keep bf16 only where it is clearly faster:
# CPUs with AVX512-BF16/AMX), "bf16" or "fp32". The sampler sweep measures its FIDs in bf16.
PRECISION_ENV = "GENLAB_DDPM_PRECISION"
BF16_MIN_SPEEDUP = 1.15
MAX_DDPM_STEPS = 1000
# The default path follows docs/lab/PROTOCOL.md's rule (issue 15): of the paths within the Space's time budget for 16
# digits, the one with the lowest held-out FID (docs/DDPM.md, "The frontier of the full-recipe model").
DEFAULT_SAMPLER = "sde-dpmsolver++"
DEFAULT_DDPM_STEPS = 10  # one U-Net call per step
# A class-conditional DDPM: which digit ("any": unconditional, the null class; a digit; or a row per digit) and
# the classifier-free guidance w (ε = ε_∅ + w·(ε_c − ε_∅): 0 unconditional, 1 the model as trained).
ANY_DIGIT, EVERY_DIGIT = "any", "0–9 (a row each)"
DIGIT_CHOICES = (ANY_DIGIT, *map(str, range(10)), EVERY_DIGIT)
EVERY_CLASS_LABEL = "every class (a row each)"  # what `EVERY_DIGIT` reads as for a model of other classes
MAX_GUIDANCE = 10.0


def class_choices(entry: DDPMEntry | None) -> list[str] | list[tuple[str, str]]:
    """The class picker of a class-conditional DDPM: MNIST's `DIGIT_CHOICES`, or another dataset's label names
    (training_config.json) as (name, index) pairs, so requests keep sending indices."""
    if entry is None or not entry.conditional or entry.mnist_like:
        return list(DIGIT_CHOICES)
    names = entry.class_names(num_classes(entry.unet))
    return [(ANY_DIGIT, ANY_DIGIT), *((name, str(i)) for i, name in enumerate(names)),
            (EVERY_CLASS_LABEL, EVERY_DIGIT)]


def _log(msg: str) -> None:
    log("space", msg)


class _Cancelled(Exception):
    pass


@contextlib.contextmanager
def on_device(entry: DDPMEntry, device: torch.device | str | None) -> Iterator[Any]:
    """The entry's UNet on `device` for the duration of a call, back on the CPU after it: on ZeroGPU a GPU is
    attached only inside a `@spaces.GPU` call. One call at a time per model (the lock), so a cancelled
    sampling thread that is finishing its last step never shares the UNet with the next call."""
    device = torch.device(device or "cpu")
    with entry.lock:
        try:
            yield entry.unet.to(device)
        finally:
            if device.type != "cpu":
                entry.unet.to("cpu")


@dataclass(frozen=True)
class DDPMRequest:
    """A DDPM call's arguments, checked: what `sample_images` gets and how the grid is laid out."""

    sampler: str
    steps: int
    count: int
    seed: int
    class_labels: list[int] | None  # None: unconditional
    guidance: float | None
    nrow: int  # grid columns

    names: tuple[str, ...] | None = None  # the classes' names where they are not MNIST's digits

    def describe(self) -> str:
        if self.class_labels is None:
            return ""
        if self.names is not None:
            which = ("a row per class" if len(set(self.class_labels)) > 1
                     else f"class {self.names[self.class_labels[0]]}")
        else:
            which = "a row per digit" if len(set(self.class_labels)) > 1 else f"digit {self.class_labels[0]}"
        return f" · {which}, guidance {self.guidance:g}"


def ddpm_request(entry: DDPMEntry, sampler: Any = DEFAULT_SAMPLER, steps: Any = DEFAULT_DDPM_STEPS,
                 count: Any = DEFAULT_COUNT, seed: Any = 0, digit: Any = ANY_DIGIT,
                 guidance: Any = DEFAULT_GUIDANCE_SCALE) -> DDPMRequest:
    """Check a DDPM call's values (each bad one gets its own message). `digit` is "any" (unconditional), a digit,
    or `EVERY_DIGIT` (one row per digit, about `count` digits in all); a digit needs a class-conditional model."""
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise SpaceError(f"Unknown sampler {shown(sampler)}: choose one of {', '.join(SAMPLERS)}.")
    n_steps = as_int(steps, "The number of steps", 1, MAX_DDPM_STEPS)
    n = as_int(count, "The number of digits", 1, MAX_IMAGES)
    seed = as_seed(seed)
    w = as_float(DEFAULT_GUIDANCE_SCALE if guidance is None else guidance, "The guidance scale", 0, MAX_GUIDANCE)
    if digit is None or (isinstance(digit, str) and digit.strip().lower() in ("", ANY_DIGIT)):
        return DDPMRequest(sampler, n_steps, n, seed, None, None, grid_columns(n))
    if not entry.conditional:
        raise SpaceError("This DDPM is unconditional: it cannot be asked for a digit (choose 'any').")
    classes = num_classes(entry.unet)
    names = None if entry.mnist_like else entry.class_names(classes)
    if digit == EVERY_DIGIT:
        per = max(1, min(MAX_PER_DIGIT, round(n / classes)))
        labels = [d for d in range(classes) for _ in range(per)]
        return DDPMRequest(sampler, n_steps, len(labels), seed, labels, w, per, names)
    if names is not None and isinstance(digit, str) and digit in names:  # a class asked for by its name
        digit = names.index(digit)
    if isinstance(digit, bool):
        raise SpaceError(f"The digit must be a whole number 0–{classes - 1}, 'any' or '{EVERY_DIGIT}'.")
    d = as_int(digit, "The digit" if names is None else "The class", 0, classes - 1)
    return DDPMRequest(sampler, n_steps, n, seed, [d] * n, w, grid_columns(n), names)


def cpu_precision(unet: torch.nn.Module, setting: str | None = None, repeats: int = 3) -> torch.dtype | None:
    """The autocast dtype the U-Net samples with on the CPU: `setting` (default `$GENLAB_DDPM_PRECISION`, "auto")
    "bf16" → bfloat16, "fp32" → None; "auto" times one denoising call of 16 digits both ways (alternating, best
    of `repeats`) and keeps bf16 only if it is ≥ `BF16_MIN_SPEEDUP`× faster: on CPUs without bf16 units autocast
    is slower than fp32."""
    setting = (setting or os.environ.get(PRECISION_ENV) or "auto").lower()
    if setting not in ("auto", "bf16", "fp32"):
        raise SpaceError(f"{PRECISION_ENV} must be auto, bf16 or fp32, not {setting[:20]!r}.")
    if setting != "auto":
        return torch.bfloat16 if setting == "bf16" else None
    if not native_cpu_bf16():  # timing it would cost seconds per call of the full-size U-Net
        _log(f"U-Net on the CPU: fp32 ({BF16_EMULATED})")
        return None
    size = unet.config.sample_size
    x = torch.zeros(16, unet.config.in_channels, size, size)
    t = torch.full((16,), 10)
    labels = {"class_labels": torch.zeros(16, dtype=torch.long)} if is_class_conditional(unet) else {}
    best = {None: float("inf"), torch.bfloat16: float("inf")}
    with torch.inference_mode():
        for i in range(repeats + 1):
            for dtype in best:
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                    unet(x, t, **labels)
                if i:  # the first round warms both up
                    best[dtype] = min(best[dtype], time.perf_counter() - t0)
    speedup = best[None] / best[torch.bfloat16]
    _log(f"U-Net on the CPU: fp32 {best[None] * 1000:.0f} ms, bf16 {best[torch.bfloat16] * 1000:.0f} ms per call "
         f"of 16 digits → {'bf16' if speedup >= BF16_MIN_SPEEDUP else 'fp32'}")
    return torch.bfloat16 if speedup >= BF16_MIN_SPEEDUP else None


def _sample(entry: DDPMEntry, req: DDPMRequest, device: torch.device | str | None, callback=None) -> torch.Tensor:
    with on_device(entry, device) as unet:
        dtype = entry.cpu_dtype if unet.device.type == "cpu" else None
        return sample_images(unet, entry.scheduler_config, sampler=req.sampler, num_inference_steps=req.steps,
                             num_images=req.count, generator=torch.Generator().manual_seed(req.seed),
                             callback=callback, class_labels=req.class_labels, guidance_scale=req.guidance,
                             autocast_dtype=dtype)


def ddpm_grid(entry: DDPMEntry, sampler: str = DEFAULT_SAMPLER, steps: Any = DEFAULT_DDPM_STEPS,
              count: Any = DEFAULT_COUNT, seed: Any = 0, digit: Any = ANY_DIGIT,
              guidance: Any = DEFAULT_GUIDANCE_SCALE, device: torch.device | str | None = None
              ) -> tuple[Image.Image, str]:
    """The final grid and status line `ddpm_stream` ends with for the same arguments, without the streaming
    (the Generate tab's first view is computed with it at start-up)."""
    req = ddpm_request(entry, sampler, steps, count, seed, digit, guidance)
    t0 = time.perf_counter()
    images = _sample(entry, req, device)
    return (to_pil(images, nrow=req.nrow, scale=3),
            f"{req.count} {entry.noun}, {req.sampler}, {req.steps} steps, seed {req.seed}{req.describe()} "
            f"({time.perf_counter() - t0:.2f} s)")


def _sampling_thread(entry: DDPMEntry, req: DDPMRequest, device: torch.device | str | None, every: int
                     ) -> tuple[threading.Thread, queue.Queue, threading.Event, list[int]]:
    """(thread, updates, stop, progress): a thread, not started yet, that samples `req` and puts ("step", i, total,
    preview) every `every` steps, then ("done" | "cancelled" | "error", ...) on `updates`; setting `stop` ends it at
    its next step; `progress[0]` is the steps done."""
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()
    progress = [0]

    def callback(i: int, total: int, sample_t: torch.Tensor, pred_x0: torch.Tensor | None) -> None:
        if stop.is_set():
            raise _Cancelled
        progress[0] = i + 1
        if (i + 1) % every == 0 and i + 1 < total:
            preview = pred_x0 if pred_x0 is not None else sample_t
            updates.put(("step", i + 1, total, (preview.float() / 2 + 0.5).clamp(0, 1).cpu()))

    def run() -> None:
        try:
            updates.put(("done", req.steps, req.steps, _sample(entry, req, device, callback).cpu()))
        except _Cancelled:
            updates.put(("cancelled", 0, 0, None))
        except Exception as err:  # surfaced to the user by `ddpm_stream`
            updates.put(("error", 0, 0, err))

    return threading.Thread(target=run, name="ddpm-sampling", daemon=True), updates, stop, progress


def ddpm_stream(entry: DDPMEntry, sampler: str = DEFAULT_SAMPLER, steps: Any = DEFAULT_DDPM_STEPS,
                count: Any = DEFAULT_COUNT, seed: Any = 0, digit: Any = ANY_DIGIT,
                guidance: Any = DEFAULT_GUIDANCE_SCALE, max_updates: int = 12, heartbeat: float = 0.5,
                device: torch.device | str | None = None) -> Iterator[tuple[Image.Image | None, str]]:
    """Yield (grid, status) while the DDPM denoises: the model's current clean estimate about `max_updates`
    times, then the final samples; in between, every `heartbeat` seconds, (None, status) — progress text
    only. Closing the iterator (the UI's Stop button) stops the sampling thread at its next step; the
    heartbeat keeps the iterator closable within half a second even when steps are slow. `digit`/`guidance` ask a
    class-conditional model for a digit (`ddpm_request`). The UNet runs on `device` (default CPU) for the call;
    the images come back on the CPU."""
    req = ddpm_request(entry, sampler, steps, count, seed, digit, guidance)
    n, n_steps = req.count, req.steps
    thread, updates, stop, progress = _sampling_thread(entry, req, device, max(1, math.ceil(n_steps / max_updates)))
    t0 = time.perf_counter()
    try:
        # A first update at once: the UI shows the run started, and a Stop can close this iterator from now on.
        noise = torch.randn(n, *entry.shape, generator=torch.Generator().manual_seed(0))  # the model's shape
        yield (to_pil(noise.div(4).add(0.5), nrow=req.nrow, scale=3),
               f"denoising {n} {entry.noun} with {req.sampler}, {n_steps} steps…")
        thread.start()
        while True:
            try:
                kind, i, total, payload = updates.get(timeout=heartbeat)
            except queue.Empty:
                yield None, f"step {progress[0]}/{n_steps} · {time.perf_counter() - t0:.1f} s"
                continue
            if kind == "step":
                yield (to_pil(payload, nrow=req.nrow, scale=3),
                       f"step {i}/{total} · {time.perf_counter() - t0:.1f} s · current estimate of x₀")
            elif kind == "done":
                yield (to_pil(payload, nrow=req.nrow, scale=3),
                       f"done: {n} {entry.noun}, {req.sampler}, {total} steps in {time.perf_counter() - t0:.2f} s"
                       f"{req.describe()}")
                return
            elif kind == "error":
                raise SpaceError(f"Sampling failed: {type(payload).__name__}: {payload}")
            else:
                return
    finally:
        stop.set()  # the consumer went away (Stop button, closed tab): stop the thread at its next step
        if thread.ident is not None and thread.is_alive():
            _log("DDPM sampling cancelled")


__all__ = ["ANY_DIGIT", "BF16_MIN_SPEEDUP", "DEFAULT_DDPM_STEPS", "DEFAULT_SAMPLER", "DIGIT_CHOICES",
           "EVERY_CLASS_LABEL", "EVERY_DIGIT", "MAX_DDPM_STEPS", "MAX_GUIDANCE", "PRECISION_ENV", "DDPMRequest",
           "class_choices", "cpu_precision", "ddpm_grid", "ddpm_request", "ddpm_stream", "on_device"]
