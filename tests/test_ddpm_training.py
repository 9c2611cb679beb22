"""training/train_ddpm.py end to end on a tiny UNet and a few hundred real digits: outputs, exact resume (also of a
checkpoint written by the script before the trainers moved into the library), data parallel, class conditioning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import preloaded_python
import pytest
import torch
from diffusers import DDPMPipeline, UNet2DModel
from PIL import Image
from safetensors.torch import load_file

from hub_models.diffusion import ClassConditionalDDPMPipeline, make_train_scheduler
from hub_models.diffusion.training import diffusion_loss, drop_labels
from hub_models.figures import to_pil
from hub_models.training.ddpm import make_ddpm_unet
from hub_models.training.portable_checkpoint import export_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "training" / "train_ddpm.py"
# The last commit whose train_ddpm.py ran its own loop: the long runs started with it must still resume.
SELF_CONTAINED_SCRIPT_COMMIT = "65044ca"
TINY = [
    "--model_config", "tiny", "--train_batch_size", "32", "--eval_batch_size", "128",
    "--num_sample_images", "4", "--sample_steps", "2", "--logger", "none",
]  # fmt: skip
RESUME = ["--checkpointing_steps", "4"]  # 410 train digits / 32 = 13 updates per epoch


def _run(args: list[str], launcher: list[str] | None = None, timeout: int = 300,
         script: Path = SCRIPT) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable]) + [str(script), *TINY, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    if launcher:
        result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    else:
        result = preloaded_python.run(cmd[1:], cwd=REPO_ROOT, env=env, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def _train(run_script, *args: str) -> str:
    """train_ddpm.py at tiny size in this process (run_script); what it logged."""
    return run_script("training/train_ddpm.py", *TINY, *args)


def _accelerate(*flags: str) -> list[str]:
    return [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", *flags]  # fmt: skip


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "diffusion_pytorch_model.safetensors"))


def _assert_same_run(a: Path, b: Path, what: str) -> None:
    """Bit-identical EMA and raw weights, and the same loss of every update and per-epoch history."""
    for sub in ("unet", "unet_non_ema"):
        wa, wb = _weights(a / sub), _weights(b / sub)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), f"{sub} differs: {what}"
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["loss_curve"] == mb["loss_curve"], what
    assert ma["history"] == mb["history"], what


@pytest.fixture(scope="module")
def whole_run(tiny_mnist_cache, tmp_path_factory, run_script) -> Path:
    """16 updates in one go (crosses the epoch boundary at 13): what every resumed run must equal."""
    out = tmp_path_factory.mktemp("ddpm") / "whole"
    _train(run_script, *RESUME, "--max_train_steps", "16", "--output_dir", str(out))
    return out


@pytest.mark.slow
def test_accelerate_launch_writes_a_loadable_pipeline(tiny_mnist_cache, tmp_run_dir):
    _run(["--max_train_steps", "4", "--output_dir", str(tmp_run_dir), "--checkpointing_steps", "2"],
         launcher=_accelerate("--num_processes", "1"))  # fmt: skip

    pipe = DDPMPipeline.from_pretrained(tmp_run_dir)
    unet = UNet2DModel.from_pretrained(tmp_run_dir, subfolder="unet", use_safetensors=True)
    assert pipe.scheduler.config.num_train_timesteps == 4000
    assert pipe.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert pipe.scheduler.config.prediction_type == "epsilon"
    assert unet.config.in_channels == unet.config.out_channels == 1 and unet.config.sample_size == 28
    assert unet.config.num_class_embeds is None

    ema, raw = _weights(tmp_run_dir / "unet"), _weights(tmp_run_dir / "unet_non_ema")
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema), "unet/ must hold the EMA, not the raw weights"

    metrics = json.loads((tmp_run_dir / "metrics.json").read_text())
    assert metrics["model"] == "ddpm" and metrics["global_step"] == 4 and metrics["num_processes"] == 1
    assert metrics["parameters"] == sum(p.numel() for p in unet.parameters())
    assert len(metrics["loss_curve"]) == 4 and metrics["class_conditional"] is False
    entry = metrics["history"][-1]
    assert {"epoch", "train_loss", "test_loss", "test_loss_ema"} <= entry.keys()
    assert 0 < entry["test_loss"] < 5 and 0 < entry["train_loss"] < 5
    assert metrics["test_loss"] == entry["test_loss"]
    assert metrics["train_seconds"] > 0 and metrics["train_cpu_seconds"] > 0
    assert metrics["sampler"] == {**metrics["sampler"], "name": "dpmsolver++"}

    grid = Image.open(tmp_run_dir / "figures" / "samples.png")
    assert grid.mode == "L" and grid.width > 28 * 2
    assert (tmp_run_dir / "figures" / "samples_epoch_001.png").exists()
    config = json.loads((tmp_run_dir / "training_config.json").read_text())
    assert config["model_config"] == "tiny" and config["max_train_steps"] == 4
    assert [p.name for p in sorted((tmp_run_dir / "checkpoints").iterdir())] == [
        "checkpoint-2",
        "checkpoint-4",
    ]


@pytest.mark.slow
def test_resume_is_exact(whole_run, tmp_path, run_script):
    """N steps in one go == the same run stopped and resumed twice: same weights bit for bit, same losses.

    Part 1 stops at 6 and its final checkpoint is deleted (a kill after the periodic checkpoint-4: resume
    mid-epoch from there). Part 2 stops at 10 and resumes from its final checkpoint (which already holds a
    partial-epoch record). The run crosses an epoch boundary, so skip_first_batches, the sampler's epoch and the
    checkpointed running loss all matter.
    """
    parts = tmp_path / "parts"
    _train(run_script, *RESUME, "--max_train_steps", "6", "--output_dir", str(parts))
    shutil.rmtree(parts / "checkpoints" / "checkpoint-6")
    for stop in ("10", "16"):
        _train(run_script, *RESUME, "--max_train_steps", stop, "--output_dir", str(parts), "--resume_from_checkpoint",
               "latest")

    _assert_same_run(whole_run, parts, "stopped and resumed twice")
    metrics = json.loads((whole_run / "metrics.json").read_text())
    assert len(metrics["loss_curve"]) == 16
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["history"][0]["complete"]


@pytest.mark.slow
def test_resumes_a_checkpoint_of_the_self_contained_script(whole_run, tmp_path, run_script):
    """`--resume_from_checkpoint latest` on a checkpoint written by train_ddpm.py as it was before the trainers
    moved into the library (the long runs started with it): the same checkpoint layout (custom states in the same
    order, the same TrainState keys but the later `train_cpu_seconds`), and the resumed run ends bit-identical to an
    uninterrupted new one."""
    try:
        source = subprocess.run(["git", "show", f"{SELF_CONTAINED_SCRIPT_COMMIT}:training/train_ddpm.py"],
                                cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs the git history ({SELF_CONTAINED_SCRIPT_COMMIT}; a shallow clone lacks it)")
    old_script = tmp_path / "training" / "train_ddpm.py"
    old_script.parent.mkdir()
    old_script.write_text(source)

    run = tmp_path / "run"
    _run([*RESUME, "--max_train_steps", "6", "--output_dir", str(run)], script=old_script)
    old_checkpoint = run / "checkpoints" / "checkpoint-6"
    new_checkpoint = next((whole_run / "checkpoints").iterdir())
    assert sorted(p.name for p in old_checkpoint.iterdir()) == sorted(p.name for p in new_checkpoint.iterdir())
    old_state, new_state = (torch.load(c / "custom_checkpoint_1.pkl", weights_only=False)
                            for c in (old_checkpoint, new_checkpoint))
    assert set(new_state.keys()) - set(old_state.keys()) == {"train_cpu_seconds"}  # added later; resume falls back
    assert set(old_state.keys()) <= set(new_state.keys())

    log = _train(run_script, *RESUME, "--max_train_steps", "16", "--output_dir", str(run), "--resume_from_checkpoint",
                 "latest")
    assert "Resumed from checkpoint-6: step 6" in log
    _assert_same_run(whole_run, run, "old checkpoint resumed by the new trainer")


@pytest.mark.slow
def test_resumes_from_a_portable_checkpoint(whole_run, tmp_path, run_script):
    """A checkpoint carried in git as safetensors + JSON (scripts/export_training_state.py) resumes exactly in a
    fresh run folder: `--resume_from_checkpoint <portable folder>`."""
    portable = export_checkpoint(whole_run / "checkpoints" / "checkpoint-12", tmp_path / "training-state", 12)
    assert not [p for p in portable.iterdir() if p.suffix in (".pkl", ".bin")]
    run = tmp_path / "run"
    log = _train(run_script, *RESUME, "--max_train_steps", "16", "--output_dir", str(run), "--resume_from_checkpoint",
                 str(portable))
    assert "Resumed from checkpoint-12: step 12" in log
    _assert_same_run(whole_run, run, "resumed from the portable checkpoint")


@pytest.mark.slow
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


# ----------------------------------------------------------------------------------------------------------
# Class-conditional training (classifier-free guidance)
# ----------------------------------------------------------------------------------------------------------
def test_label_dropout_replaces_the_requested_share_by_the_null_class():
    labels = torch.arange(10).repeat(10_000)
    out = drop_labels(labels, 0.1, null_class=10, generator=torch.Generator().manual_seed(0))
    dropped = out == 10
    assert abs(dropped.float().mean().item() - 0.1) < 0.005  # 100,000 draws: σ ≈ 0.001
    assert torch.equal(out[~dropped], labels[~dropped])
    assert set(labels[dropped].tolist()) == set(range(10))  # every digit gets dropped, not one class
    assert torch.equal(drop_labels(labels, 0.0, 10, torch.Generator()), labels)


def test_the_training_loss_feeds_dropped_labels_to_the_unet():
    """The step itself (not only the helper) gives the UNet the null class for ~label_dropout of the batch."""
    torch.manual_seed(0)
    unet = make_ddpm_unet("tiny", class_conditional=True)
    assert unet.config.num_class_embeds == 11 and unet.config.class_embed_type is None
    seen = []
    unet.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["class_labels"]), with_kwargs=True)
    images = torch.randint(0, 256, (400, 28, 28), dtype=torch.uint8)
    labels = torch.arange(10).repeat(40)
    with torch.no_grad():
        loss = diffusion_loss(unet, make_train_scheduler(), images, torch.Generator().manual_seed(0), labels, 0.25)
    assert torch.isfinite(loss)
    given = seen[-1]
    share = (given == 10).float().mean().item()
    assert 0.15 < share < 0.35  # 400 draws at p = 0.25: σ ≈ 0.022
    kept = given != 10
    assert torch.equal(given[kept], labels[kept])


@pytest.mark.slow
def test_class_conditional_run_end_to_end_and_exact_resume(tiny_mnist_cache, tmp_path, run_script):
    cond = ["--class_conditional", *RESUME]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _train(run_script, *cond, "--max_train_steps", "10", "--output_dir", str(whole))
    _train(run_script, *cond, "--max_train_steps", "6", "--output_dir", str(parts))
    shutil.rmtree(parts / "checkpoints" / "checkpoint-6")
    _train(run_script, *cond, "--max_train_steps", "10", "--output_dir", str(parts), "--resume_from_checkpoint",
           "latest")
    _assert_same_run(whole, parts, "class-conditional run resumed")

    pipe = ClassConditionalDDPMPipeline.from_pretrained(whole)
    assert pipe.unet.config.num_class_embeds == 11 and pipe.unet.config.class_embed_type is None
    metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["class_conditional"] is True and metrics["label_dropout"] == 0.1
    assert metrics["num_class_embeds"] == 11 and metrics["sampler"]["num_images"] == 10
    # The grid: one row per digit (4 requested digits → one column of 10 rows).
    grid = Image.open(whole / "figures" / "samples.png")
    assert grid.size == to_pil(torch.zeros(10, 1, 28, 28), nrow=1, scale=3).size
    config = json.loads((whole / "training_config.json").read_text())
    assert config["class_conditional"] is True and config["label_dropout"] == 0.1
