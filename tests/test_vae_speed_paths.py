"""The VAE loop's speed paths (issue 37): batches sliced whole give exactly the seeded DataLoader's batches, also
after a mid-epoch resume; the multi-tensor Adam the trainer switches to gives bitwise the same weights; the
opt-in levers (fused Adam, channels_last) train. Tiny tensors and the tiny MNIST copy; nothing asserts a speed."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from hub_models.models.conv_vae import ConvVAE
from hub_models.training.accelerate_utils import make_accelerator
from hub_models.training.trainer import tensor_loader, use_faster_adam


def _data(n: int = 203) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8), torch.randint(0, 10, (n,), generator=g)


def _epoch(loader, epoch: int, skip: int = 0, accelerator=None) -> list[list[torch.Tensor]]:
    loader.set_epoch(epoch)
    batches = accelerator.skip_first_batches(loader, skip) if skip else loader
    return [list(batch) for batch in batches]


def _assert_same(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y) and all(u.dtype == v.dtype and torch.equal(u, v) for u, v in zip(x, y, strict=True))


@pytest.mark.parametrize("with_labels", [False, True])
def test_sliced_batches_are_the_seeded_dataloaders_batches(tmp_path, with_labels):
    """Prepared by accelerate (its seedable sampler), per epoch: same order, content, dtypes, last partial batch."""
    accelerator = make_accelerator(tmp_path, log_with=None)
    images, labels = _data()
    tensors = (images, labels) if with_labels else (images,)
    old = accelerator.prepare(DataLoader(TensorDataset(*tensors), batch_size=16, shuffle=True, drop_last=False))
    new = accelerator.prepare(tensor_loader(*tensors, batch_size=16))
    for epoch in (0, 1, 5):
        a, b = _epoch(old, epoch), _epoch(new, epoch)
        _assert_same(a, b)
        assert len(b) == 13 and len(b[-1][0]) == 203 - 12 * 16  # the partial last batch is kept
    assert not torch.equal(_epoch(new, 0)[0][0], _epoch(new, 1)[0][0])  # epochs are shuffled differently


def test_a_mid_epoch_resume_sees_the_rest_of_the_epoch(tmp_path):
    """`skip_first_batches` (what the trainer does on a resume) on the sliced loader: the uninterrupted epoch's tail,
    the same as the per-item loader gives."""
    accelerator = make_accelerator(tmp_path, log_with=None)
    images, labels = _data()
    old = accelerator.prepare(DataLoader(TensorDataset(images, labels), batch_size=16, shuffle=True))
    new = accelerator.prepare(tensor_loader(images, labels, batch_size=16))
    whole = _epoch(new, 2)
    for skip in (1, 5, 12):
        tail = _epoch(new, 2, skip, accelerator)
        _assert_same(tail, whole[skip:])
        _assert_same(tail, _epoch(old, 2, skip, accelerator))


def _train(optimizer_cls, steps: int = 8, **kwargs) -> tuple[dict[str, torch.Tensor], torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = ConvVAE(hidden_channels=(4, 8))  # every layer kind of the study's model, small
    optimizer = optimizer_cls(model.parameters(), lr=1e-3, **kwargs)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    noise = torch.Generator().manual_seed(2)
    for _ in range(steps):
        model.loss(x, generator=noise).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model.state_dict(), optimizer


@pytest.mark.parametrize(("optimizer_cls", "kwargs"), [(torch.optim.Adam, {}),
                                                       (torch.optim.AdamW, {"weight_decay": 0.01})])
def test_foreach_adam_gives_bitwise_the_same_weights(optimizer_cls, kwargs):
    loop, loop_opt = _train(optimizer_cls, **kwargs)
    assert loop_opt.param_groups[0]["foreach"] is None  # PyTorch's CPU default: the per-parameter loop
    fast, fast_opt = _train(_Switched(optimizer_cls, fused=False), **kwargs)
    assert fast_opt.param_groups[0]["foreach"] is True
    assert all(torch.equal(loop[k], fast[k]) for k in loop)
    fused, fused_opt = _train(_Switched(optimizer_cls, fused=True), **kwargs)
    assert fused_opt.param_groups[0]["fused"] is True
    assert all(torch.allclose(loop[k], fused[k], atol=1e-3) for k in loop)  # another rounding, the same training


def test_a_trainers_own_choice_is_kept():
    optimizer = torch.optim.Adam(ConvVAE().parameters(), foreach=False)
    assert not use_faster_adam(optimizer) and optimizer.param_groups[0]["foreach"] is False
    assert not use_faster_adam(torch.optim.SGD(ConvVAE().parameters(), lr=0.1))


class _Switched:
    """An optimizer class whose instances `use_faster_adam` switched right after construction."""

    def __init__(self, cls, fused: bool) -> None:
        self.cls, self.fused = cls, fused

    def __call__(self, params, **kwargs):
        optimizer = self.cls(params, **kwargs)
        assert use_faster_adam(optimizer, fused=self.fused)
        return optimizer


def _run_vae(tmp_path, name: str, **extra) -> tuple[dict[str, torch.Tensor], list]:
    from train_vae import parse_args

    from hub_models.training.vae import VAETrainer

    out = tmp_path / name
    args = parse_args(["--max_train_steps", "9", "--batch_size", "32", "--checkpointing_steps", "none",
                       "--num_figure_samples", "4", "--logger", "none", "--output_dir", str(out)])
    for key, value in extra.items():
        setattr(args, key, value)
    VAETrainer.main(args)
    return load_file(out / "diffusion_pytorch_model.safetensors"), json.loads((out / "metrics.json").read_text())


@pytest.fixture()
def train_vae_script(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "training"))


def test_opt_in_levers_train(tiny_mnist_cache, tmp_path, train_vae_script):
    """--use_fused_adam and --channels_last change the rounding, not the training: a few updates run, save and
    end close to the default run."""
    default, metrics = _run_vae(tmp_path, "default")
    opted, opted_metrics = _run_vae(tmp_path, "opt-in", use_fused_adam=True, channels_last=True)
    assert default.keys() == opted.keys()
    assert all(torch.allclose(default[k], opted[k], atol=1e-3) for k in default)
    assert abs(metrics["test"]["bce"] - opted_metrics["test"]["bce"]) < 1.0
