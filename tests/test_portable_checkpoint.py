"""A training checkpoint carried in git without pickles: accelerate's folder → safetensors + JSON → the same folder."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from hub_models.training.portable_checkpoint import (
    PortableCheckpointError,
    export_checkpoint,
    import_checkpoint,
    is_portable_checkpoint,
    portable_step,
)


class _Counter:
    """A registered object whose state mixes tensors, tuples and plain values."""

    def __init__(self) -> None:
        self.state = {"n": 3, "curve": [0.5, 0.25], "pair": (1, "a"), "t": torch.arange(4)}

    def state_dict(self) -> dict:
        return self.state

    def load_state_dict(self, state: dict) -> None:
        self.state = state


def _checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    ema = EMAModel(model.parameters())
    for _ in range(2):
        model(torch.randn(4, 3)).pow(2).mean().backward()
        optimizer.step(), scheduler.step(), optimizer.zero_grad(), ema.step(model.parameters())
    accelerator.register_for_checkpointing(_Counter())
    accelerator.register_for_checkpointing(ema)
    folder = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    accelerator.save_state(str(folder))
    return folder


def _same(a, b, path: str = "root") -> None:
    assert type(a) is type(b), path
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}.{i}")
    else:
        assert a == b, (path, a, b)


def test_export_then_import_gives_back_every_file_exactly(tmp_path: Path) -> None:
    original = _checkpoint(tmp_path)
    portable = export_checkpoint(original, tmp_path / "state", step=2)
    assert is_portable_checkpoint(portable) and portable_step(portable) == 2
    assert not [p.name for p in portable.iterdir() if p.suffix in (".bin", ".pkl", ".pt")], "no pickle in git"
    restored = import_checkpoint(portable, tmp_path / "fresh" / "checkpoint-2")
    assert sorted(p.name for p in restored.iterdir()) == sorted(p.name for p in original.iterdir())
    for item in original.iterdir():
        if item.suffix == ".safetensors":
            assert item.read_bytes() == (restored / item.name).read_bytes()
        else:
            _same(torch.load(item, weights_only=False), torch.load(restored / item.name, weights_only=False), item.name)


def test_export_replaces_the_folder_in_place(tmp_path: Path) -> None:
    original = _checkpoint(tmp_path)
    dest = tmp_path / "state"
    dest.mkdir()
    (dest / "stale.safetensors").write_bytes(b"old")
    export_checkpoint(original, dest, step=2)
    assert not (dest / "stale.safetensors").exists()
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_folder_that_is_not_portable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PortableCheckpointError, match="not a portable checkpoint"):
        import_checkpoint(tmp_path, tmp_path / "out")
    original = _checkpoint(tmp_path)
    (original / "notes.txt").write_text("?")
    with pytest.raises(PortableCheckpointError, match="unexpected file"):
        export_checkpoint(original, tmp_path / "state", step=2)

