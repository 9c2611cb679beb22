"""`UNet2DModel` configurations for 1×28×28 MNIST digits.

Every config uses 3 resolution levels (28 → 14 → 7): a 4th level would need 7 → 4 and breaks the skip
connections at 28×28, which is one of the failings of diffusers' unconditional example on MNIST.
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


def make_unet(name_or_path: str | os.PathLike = "default") -> UNet2DModel:
    """A freshly initialised `UNet2DModel` (seed torch before calling for reproducible weights)."""
    config = unet_config(name_or_path)
    size = config.get("sample_size", 28)
    levels = len(config["block_out_channels"])
    if isinstance(size, int) and size % 2 ** (levels - 1):
        raise ValueError(f"{levels} levels need sample_size divisible by {2 ** (levels - 1)}, got {size}")
    return UNet2DModel(**config)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["UNET_CONFIGS", "count_parameters", "make_unet", "unet_config"]
