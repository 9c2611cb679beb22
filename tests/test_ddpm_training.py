"""training/train_ddpm.py end to end on a tiny UNet and a few hundred real digits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DDPMPipeline, UNet2DModel
from PIL import Image
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "training" / "train_ddpm.py"
TINY = [
    "--model_config", "tiny", "--train_batch_size", "32", "--eval_batch_size", "128",
    "--num_sample_images", "4", "--sample_steps", "2", "--logger", "none",
]  # fmt: skip


def _run(args: list[str], launcher: list[str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable]) + [str(SCRIPT), *TINY, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def _accelerate(*flags: str) -> list[str]:
    return [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", *flags]  # fmt: skip


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "diffusion_pytorch_model.safetensors"))


def test_accelerate_launch_writes_a_loadable_pipeline(tiny_mnist_cache, tmp_run_dir):
    _run(["--max_train_steps", "4", "--output_dir", str(tmp_run_dir), "--checkpointing_steps", "2"],
         launcher=_accelerate("--num_processes", "1"))  # fmt: skip

    pipe = DDPMPipeline.from_pretrained(tmp_run_dir)
    unet = UNet2DModel.from_pretrained(tmp_run_dir, subfolder="unet", use_safetensors=True)
    assert pipe.scheduler.config.num_train_timesteps == 4000
    assert pipe.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert pipe.scheduler.config.prediction_type == "epsilon"
    assert unet.config.in_channels == unet.config.out_channels == 1 and unet.config.sample_size == 28

    ema, raw = _weights(tmp_run_dir / "unet"), _weights(tmp_run_dir / "unet_non_ema")
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema), "unet/ must hold the EMA, not the raw weights"

    metrics = json.loads((tmp_run_dir / "metrics.json").read_text())
    assert metrics["model"] == "ddpm" and metrics["global_step"] == 4 and metrics["num_processes"] == 1
    assert metrics["parameters"] == sum(p.numel() for p in unet.parameters())
    assert len(metrics["loss_curve"]) == 4
    entry = metrics["history"][-1]
    assert {"epoch", "train_loss", "test_loss", "test_loss_ema"} <= entry.keys()
    assert 0 < entry["test_loss"] < 5 and 0 < entry["train_loss"] < 5
    assert metrics["test_loss"] == entry["test_loss"]
    assert metrics["train_seconds"] > 0 and metrics["sampler"] == {**metrics["sampler"], "name": "dpmsolver++"}

    grid = Image.open(tmp_run_dir / "figures" / "samples.png")
    assert grid.mode == "L" and grid.width > 28 * 2
    assert (tmp_run_dir / "figures" / "samples_epoch_001.png").exists()
    config = json.loads((tmp_run_dir / "training_config.json").read_text())
    assert config["model_config"] == "tiny" and config["max_train_steps"] == 4
    assert [p.name for p in sorted((tmp_run_dir / "checkpoints").iterdir())] == [
        "checkpoint-2",
        "checkpoint-4",
    ]


def test_resume_is_exact(tiny_mnist_cache, tmp_path):
    """N steps in one go == the same run stopped and resumed twice: same weights bit for bit, same losses.

    410 train digits / 32 = 13 updates per epoch. Part 1 stops at 6 and its final checkpoint is deleted
    (a kill after the periodic checkpoint-4: resume mid-epoch from there). Part 2 stops at 10 and resumes
    from its final checkpoint (which already holds a partial-epoch record). The run crosses an epoch
    boundary, so skip_first_batches, the sampler's epoch and the checkpointed running loss all matter.
    """
    common = ["--checkpointing_steps", "4"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _run([*common, "--max_train_steps", "16", "--output_dir", str(whole)])
    _run([*common, "--max_train_steps", "6", "--output_dir", str(parts)])
    shutil.rmtree(parts / "checkpoints" / "checkpoint-6")
    for stop in ("10", "16"):
        _run(
            [
                *common,
                "--max_train_steps",
                stop,
                "--output_dir",
                str(parts),
                "--resume_from_checkpoint",
                "latest",
            ]
        )

    for sub in ("unet", "unet_non_ema"):
        a, b = _weights(whole / sub), _weights(parts / sub)
        assert all(torch.equal(a[k], b[k]) for k in a), f"{sub} differs after resume"
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (whole, parts))
    assert ma["loss_curve"] == mb["loss_curve"] and len(ma["loss_curve"]) == 16
    assert ma["history"] == mb["history"]
    assert [h["epoch"] for h in ma["history"]] == [1, 2] and ma["history"][0]["complete"]


@pytest.mark.skipif(sys.platform != "linux", reason="gloo data-parallel on CPU is tested on Linux")
def test_two_process_data_parallel(tiny_mnist_cache, tmp_run_dir):
    # `--cpu --num_processes 2` silently starts ONE process: use --multi_gpu + Accelerator(cpu=True).
    result = _run(["--max_train_steps", "4", "--output_dir", str(tmp_run_dir), "--write_rank_fingerprints"],
                  launcher=_accelerate("--multi_gpu", "--num_processes", "2"))  # fmt: skip
    metrics = json.loads((tmp_run_dir / "metrics.json").read_text())
    assert metrics["num_processes"] == 2, result.stdout
    fingerprints = [(tmp_run_dir / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert fingerprints[0] == fingerprints[1] and len(fingerprints[0]) == 64
    config = json.loads((tmp_run_dir / "training_config.json").read_text())
    assert config["num_processes"] == 2 and config["total_batch_size"] == 64
    assert DDPMPipeline.from_pretrained(tmp_run_dir).unet.config.sample_size == 28
