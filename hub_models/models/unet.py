"""`UNet2DModel` configurations, written for 1×28×28 MNIST digits and given any image shape by `shaped_config`.

Every config uses 3 resolution levels (28 → 14 → 7): a 4th level would need 7 → 4 and breaks the skip
connections at 28×28, which is one of the failings of diffusers' unconditional example on MNIST. Other data sets
`sample_size` and `in_channels = out_channels` from the images; the size must halve cleanly at every level
(`check_sample_size`).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from diffusers import UNet2DModel

_COMMON: dict[str, Any] = {
    "sample_size": 28,
    "in_channels": 1,
    "out_channels": 1,
    "norm_num_groups": 8,
    "time_embedding_type": "positional",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}

UNET_CONFIGS: dict[str, dict[str, Any]] = {
    # The study's size: 3,281,281 parameters (study: "3.3M"), plain ResNet blocks.
    "default": {
        **_COMMON,
        "block_out_channels": (32, 64, 120),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
    },
    # Same widths, self-attention at 7×7 (the study's "attention in the U-Net" future work): 3.6M parameters.
    "attention": {
        **_COMMON,
        "block_out_channels": (32, 64, 120),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "attention_head_dim": 8,
    },
    # For tests: ~0.1M parameters, still with one attention level so that code path is exercised.
    "tiny": {
        **_COMMON,
        "block_out_channels": (8, 16, 16),
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "attention_head_dim": 8,
    },
}


def named_config(name_or_path: str | os.PathLike, configs: dict[str, dict[str, Any]], what: str) -> dict[str, Any]:
    """`configs[name]`, or the model arguments of a JSON file / model folder (a `config.json` written by
    `save_pretrained`, or any dict of constructor arguments)."""
    if str(name_or_path) in configs:
        return copy.deepcopy(configs[str(name_or_path)])
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ValueError(f"unknown {what} config {name_or_path!r}: use one of {sorted(configs)} or a JSON file")
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def unet_config(name_or_path: str | os.PathLike = "default") -> dict[str, Any]:
    """A UNet config by name (`default`, `attention`, `tiny`) or from a JSON file."""
    return named_config(name_or_path, UNET_CONFIGS, "UNet")


def check_sample_size(config: dict[str, Any], what: str = "sample_size") -> None:
    """ValueError (one line, with the sizes that work) unless the image size halves cleanly at each of the
    config's down-sampling levels (`len(block_out_channels) - 1` of them), so the skip connections line up."""
    size = config.get("sample_size", 28)
    levels = len(config["block_out_channels"])
    step = 2 ** (levels - 1)
    sizes = size if isinstance(size, list | tuple) else (size,)
    bad = [s for s in sizes if s % step]
    if bad:
        near = sorted({max(step, bad[0] // step * step), (bad[0] // step + 1) * step})
        raise ValueError(f"{what} {bad[0]} does not fit this UNet: its {levels} levels halve the image "
                         f"{levels - 1} times, so the size must be a multiple of {step} (e.g. "
                         f"{' or '.join(map(str, near))})")


def shaped_config(config: dict[str, Any], channels: int, resolution: int, what: str = "sample_size"
                  ) -> dict[str, Any]:
    """`config` for images `(channels, resolution, resolution)`: `sample_size`, `in_channels = out_channels`
    (the UNet predicts noise of the image's shape); MNIST's (1, 28) leave the named configs as they are. `what`
    names the size in the error (`check_sample_size`)."""
    config = {**config, "sample_size": resolution, "in_channels": channels, "out_channels": channels}
    check_sample_size(config, what)
    return config


def make_unet(name_or_path: str | os.PathLike = "default", *, channels: int | None = None,
              resolution: int | None = None) -> UNet2DModel:
    """A freshly initialised `UNet2DModel` (seed torch before calling for reproducible weights), for images of
    `channels` × `resolution`² when given (default: the config's own shape, 1 × 28² for the named configs)."""
    config = unet_config(name_or_path)
    if channels is not None or resolution is not None:
        config = shaped_config(config, channels or config.get("in_channels", 1),
                               resolution or config.get("sample_size", 28))
    check_sample_size(config)
    return UNet2DModel(**config)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["UNET_CONFIGS", "check_sample_size", "count_parameters", "make_unet", "shaped_config", "unet_config"]
