"""Crash safety of the training scripts: SIGKILL mid-epoch + resume == an uninterrupted run (bit for bit on CPU),
checkpoints that `latest` must skip (a temp folder left by a kill during a save, a truncated checkpoint), NaN/inf
losses that stop the run without touching the checkpoints, and run outputs that mark a finished run.

Every run is tiny (a few dozen digits, ≤ 12 updates) and single-threaded, so the file stays short on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import preloaded_python
import pytest
import torch
from hub_server import USER
from safetensors.torch import load_file

from hub_models import ConvVAE
from hub_models.hub import HubPushError, push_run
from hub_models.training import list_checkpoints, write_json_atomic

pytestmark = pytest.mark.slow  # every test here trains real runs and kills them

REPO_ROOT = Path(__file__).resolve().parents[1]
VAE_SCRIPT = REPO_ROOT / "training" / "train_vae.py"
DDPM_SCRIPT = REPO_ROOT / "training" / "train_ddpm.py"

# 128 train digits / batch 16 = 8 updates per epoch; 12 updates cross an epoch boundary; a checkpoint every 3.
STEPS_PER_EPOCH, MAX_STEPS = 8, 12
COMMON = ["--limit_train_samples", "128", "--max_train_steps", str(MAX_STEPS), "--checkpointing_steps", "3",
          "--checkpoints_total_limit", "3", "--seed", "7"]  # fmt: skip
VAE_ARGS = [*COMMON, "--batch_size", "16", "--num_figure_samples", "4"]
DDPM_ARGS = [*COMMON, "--model_config", "tiny", "--train_batch_size", "16", "--eval_batch_size", "128",
             "--num_sample_images", "4", "--sample_steps", "2", "--logger", "none", "--log_every", "1"]  # fmt: skip
ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # one thread: bitwise reproducible, and gentle on 2 cores


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------
def _cmd(script: Path, args: list[str], out: Path) -> list[str]:
    return [str(script), *args, "--output_dir", str(out)]


def start(script: Path, args: list[str], out: Path) -> preloaded_python.PythonProcess:
    """The script in the background; stdout/stderr go to a file next to the run (no pipe to fill up)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return preloaded_python.start(_cmd(script, args, out), stdout=out.parent / f"{out.name}.log", cwd=REPO_ROOT,
                                  env={**os.environ, **ENV})  # fmt: skip


def run(script: Path, args: list[str], out: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = preloaded_python.run(_cmd(script, args, out), cwd=REPO_ROOT, env={**os.environ, **ENV}, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"{script.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def kill_during_save(proc: preloaded_python.PythonProcess, out: Path, steps: tuple[int, ...],
                     timeout: float = 500) -> int:
    """SIGKILL `proc` while it writes a checkpoint (its `.tmp-checkpoint-<step>` folder exists, the rename has not
    happened yet), trying each of `steps` in turn (a save lasts only ~10 ms: a busy poller may miss one).
    Returns the step whose save was cut."""
    root, deadline = out / "checkpoints", time.monotonic() + timeout
    for step in steps:
        tmp, final = root / f".tmp-checkpoint-{step}", root / f"checkpoint-{step}"
        while not tmp.exists() and not final.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the run ended or stalled before checkpoint-{step} (rc {proc.poll()})")
            time.sleep(0.001)
        if final.exists():
            continue  # missed this save's window: cut the next one
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        if tmp.is_dir() and not final.exists():
            return step
        raise AssertionError(f"the save of checkpoint-{step} finished before the kill landed")
    proc.kill()
    raise AssertionError(f"missed the save windows of checkpoints {steps}")


def truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "diffusion_pytorch_model.safetensors"))


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert a.keys() == b.keys(), what
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{what}: {len(different)} tensors differ, e.g. {different[:3]}"


def first_step(done: subprocess.CompletedProcess) -> int:
    """The step a resumed run picks up at (the trainer logs `Resumed from checkpoint-6: step 6, …`)."""
    return int(re.search(r"Resumed from checkpoint-\d+: step (\d+)", done.stderr).group(1))


def first_progress_step(done: subprocess.CompletedProcess) -> int:
    """The first update a run logged (stderr is not a terminal: a progress line every --log_every updates)."""
    return int(re.search(rf"\bstep (\d+)/{MAX_STEPS} epoch", done.stderr).group(1))


def error_line(done: subprocess.CompletedProcess) -> str:
    """The last line of stderr that is not a progress-bar frame (tqdm redraws its bar at exit)."""
    lines = [line for line in re.split(r"[\r\n]+", done.stderr) if line.strip() and "it/s]" not in line]
    return lines[-1].strip()


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def copy_run(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


# ----------------------------------------------------------------------------------------------------------
# Shared runs, per script (started side by side): an uninterrupted reference, and the same run SIGKILLed
# mid-epoch while it was writing a checkpoint (the worst moment: a half-written checkpoint folder is left).
# ----------------------------------------------------------------------------------------------------------
def _reference_and_killed(script: Path, args: list[str], root: Path, kill_during: tuple[int, ...]) -> dict:
    reference, killed = root / "reference", root / "killed"
    ref_proc = start(script, args, reference)
    kill_proc = start(script, args, killed)
    cut = kill_during_save(kill_proc, killed, kill_during)
    assert ref_proc.wait(timeout=600) == 0, (root / "reference.log").read_text()[-3000:]
    left = [int(p.name.split("-")[1]) for p in list_checkpoints(killed)]
    assert left == [s for s in (3, 6, 9) if s < cut][-3:], left  # every earlier save complete, the cut one absent
    return {"reference": reference, "killed": killed, "checkpoints": left, "cut": cut}


@pytest.fixture(scope="module")
def vae_runs(tiny_mnist_cache, tmp_path_factory) -> dict:
    # Killed while saving checkpoint-9 (or 12): checkpoints 3 and 6 (and 9) are complete, for the skip test.
    return _reference_and_killed(VAE_SCRIPT, VAE_ARGS, tmp_path_factory.mktemp("vae"), kill_during=(9, 12))


@pytest.fixture(scope="module")
def ddpm_runs(tiny_mnist_cache, tmp_path_factory) -> dict:
    return _reference_and_killed(DDPM_SCRIPT, DDPM_ARGS, tmp_path_factory.mktemp("ddpm"), kill_during=(6, 9))


# ----------------------------------------------------------------------------------------------------------
# SIGKILL mid-epoch, resume, compare
# ----------------------------------------------------------------------------------------------------------
def test_vae_sigkill_mid_epoch_then_resume_is_bitwise_identical(vae_runs, tmp_path):
    # Killed while writing checkpoint-9 (step 9 of 12, in epoch 2 of 8-step epochs): its temp folder is left
    # half-written, and `latest` must resume from checkpoint-6 (itself mid-epoch 1).
    latest = max(vae_runs["checkpoints"])
    assert latest % STEPS_PER_EPOCH != 0
    killed = copy_run(vae_runs["killed"], tmp_path / "run")
    assert (killed / "checkpoints" / f".tmp-checkpoint-{vae_runs['cut']}").is_dir()
    # A killed run is not a finished run: no metrics.json (the study runner's "done" marker), no model at the root.
    assert not (killed / "metrics.json").exists()
    assert not (killed / "diffusion_pytorch_model.safetensors").exists()

    t0 = time.perf_counter()
    done = run(VAE_SCRIPT, [*VAE_ARGS, "--resume_from_checkpoint", "latest"], killed)
    assert first_step(done) == latest
    print(f"train_vae resume from checkpoint-{latest} to step {MAX_STEPS}: {time.perf_counter() - t0:.1f} s")

    reference = vae_runs["reference"]
    assert_bitwise_equal(weights(reference), weights(killed), "VAE weights after SIGKILL + resume")
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (reference, killed))
    assert ma["global_step"] == mb["global_step"] == MAX_STEPS
    assert ma["history"] == mb["history"]  # train averages too: the running sums are checkpointed
    assert len(mb["history"]) == 2  # the epoch cut by the kill is recorded once, not twice


def test_ddpm_sigkill_mid_epoch_then_resume_is_bitwise_identical(ddpm_runs, tmp_path):
    # Killed while writing checkpoint-6 (step 6 of 8 in epoch 1): resume from checkpoint-3.
    latest = max(ddpm_runs["checkpoints"])
    assert latest % STEPS_PER_EPOCH != 0
    killed = copy_run(ddpm_runs["killed"], tmp_path / "run")
    assert (killed / "checkpoints" / f".tmp-checkpoint-{ddpm_runs['cut']}").is_dir()
    if ddpm_runs["cut"] < STEPS_PER_EPOCH:  # killed in epoch 1: nothing at the root yet (written per epoch)
        assert not (killed / "metrics.json").exists() and not (killed / "unet").exists()

    t0 = time.perf_counter()
    done = run(DDPM_SCRIPT, [*DDPM_ARGS, "--resume_from_checkpoint", "latest"], killed)
    assert first_step(done) == latest and first_progress_step(done) == latest + 1  # went on from there
    print(f"train_ddpm resume from checkpoint-{latest} to step {MAX_STEPS}: {time.perf_counter() - t0:.1f} s")

    reference = ddpm_runs["reference"]
    for sub in ("unet", "unet_non_ema"):  # EMA and raw weights
        assert_bitwise_equal(weights(reference / sub), weights(killed / sub), f"DDPM {sub} after SIGKILL + resume")
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (reference, killed))
    assert ma["loss_curve"] == mb["loss_curve"] and len(mb["loss_curve"]) == MAX_STEPS
    assert ma["history"] == mb["history"]


# ----------------------------------------------------------------------------------------------------------
# Checkpoints `latest` must not pick
# ----------------------------------------------------------------------------------------------------------
def test_latest_ignores_a_temp_folder_and_skips_a_truncated_checkpoint(vae_runs, tmp_path):
    run_dir = copy_run(vae_runs["killed"], tmp_path / "run")
    steps = vae_runs["checkpoints"]
    assert len(steps) >= 2, steps
    newest = run_dir / "checkpoints" / f"checkpoint-{steps[-1]}"
    # The kill during the save of the next checkpoint left its temp folder behind, half written.
    tmp = run_dir / "checkpoints" / f".tmp-checkpoint-{vae_runs['cut']}"
    assert tmp.is_dir()
    # And the newest complete checkpoint is damaged (a disk problem, a copy cut short).
    truncate_half(newest / "model.safetensors")
    assert [p.name for p in list_checkpoints(run_dir)][-1] == newest.name  # the temp folder is not listed

    done = run(VAE_SCRIPT, [*VAE_ARGS, "--resume_from_checkpoint", "latest"], run_dir)
    out = done.stdout + done.stderr
    assert f"skipping unreadable checkpoint {newest}" in out
    assert str(tmp) not in out
    assert first_step(done) == steps[-2]  # resumed from the previous checkpoint
    # Resumed from the previous checkpoint, the run still ends bit-identical to the uninterrupted one.
    assert_bitwise_equal(weights(vae_runs["reference"]), weights(run_dir), "VAE weights after skipping")


def test_a_checkpoint_of_another_layout_stops_the_run_and_changes_nothing(vae_runs, tmp_path):
    """A checkpoint whose saved training state does not match the trainer's (written by another version, or with
    other flags such as --no_ema) is not "unreadable": `latest` must not skip it and start a new run over it."""
    run_dir = copy_run(vae_runs["killed"], tmp_path / "run")
    for checkpoint in list_checkpoints(run_dir):  # the layout of VAE checkpoints before the TrainState existed
        (checkpoint / "custom_checkpoint_1.pkl").unlink()
    before = tree_digest(run_dir)
    done = run(VAE_SCRIPT, [*VAE_ARGS, "--resume_from_checkpoint", "latest"], run_dir, check=False)
    assert done.returncode == 1
    last = error_line(done)
    assert last.startswith("error: ") and "holds other training state than this script saves" in last, last
    assert tree_digest(run_dir) == before


# ----------------------------------------------------------------------------------------------------------
# NaN / inf losses
# ----------------------------------------------------------------------------------------------------------
def test_vae_non_finite_loss_stops_the_run_and_keeps_the_checkpoints(vae_runs, tmp_path):
    """Resume a healthy run with β = 1e300: β·KLD overflows float32 to inf at the first update."""
    run_dir = copy_run(vae_runs["killed"], tmp_path / "run")
    before = tree_digest(run_dir / "checkpoints")
    done = run(VAE_SCRIPT, [*VAE_ARGS, "--beta", "1e300", "--resume_from_checkpoint", "latest"], run_dir, check=False)

    assert done.returncode == 1
    last = error_line(done)
    assert last.startswith("error: loss became inf at step ") and "stopping" in last
    assert "The last good checkpoint is kept" in last and "--resume_from_checkpoint latest" in last
    assert f"at step {max(vae_runs['checkpoints'])};" in last  # the first update after the resume
    assert tree_digest(run_dir / "checkpoints") == before  # nothing written over the good checkpoints
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "config.json").exists()
    # The newest checkpoint still holds a loadable, finite model.
    state = load_file(str(list_checkpoints(run_dir)[-1] / "model.safetensors"))
    model = ConvVAE(latent_dim=2)
    model.load_state_dict(state, strict=True)
    assert all(torch.isfinite(t).all() for t in state.values())


def test_ddpm_diverging_run_stops_with_a_clear_message(tiny_mnist_cache, tmp_path):
    """--learning_rate 1e30: Adam moves every weight by ~1e30 at the first update; the next loss is NaN/inf."""
    run_dir = tmp_path / "run"
    args = [*DDPM_ARGS, "--learning_rate", "1e30", "--checkpointing_steps", "1"]
    done = run(DDPM_SCRIPT, args, run_dir, check=False)

    assert done.returncode == 1
    last = error_line(done)
    assert re.match(r"error: loss became (nan|inf|-inf) at step 1; stopping", last), last
    assert "The last good checkpoint is kept" in last
    # The checkpoint saved before the divergence is complete and finite; no pipeline was written.
    assert [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-1"]
    state = load_file(str(run_dir / "checkpoints" / "checkpoint-1" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in state.values())
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "unet").exists()


# ----------------------------------------------------------------------------------------------------------
# Run outputs
# ----------------------------------------------------------------------------------------------------------
def sigkill_when_ready(target, *args) -> None:
    """Run `target(*args, ready)` in a forked child (no second torch import: it starts at once) and SIGKILL it as
    soon as it sets `ready`, i.e. half-way through the write under test."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=target, args=(*args, ready), daemon=True)
    child.start()
    assert ready.wait(timeout=120), f"{target.__name__} never reached the write it is killed in"
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL


def _write_then_die_mid_write(path: Path, ready) -> None:
    """Write a complete file, then start rewriting it and stop half-way through (where a SIGKILL would land)."""
    write_json_atomic(path, {"epoch": 1, "complete": True})

    def half_then_hang(self: Path, data: str, *args, **kwargs) -> int:
        with open(self, "w") as f:
            f.write(data[: len(data) // 2])
        ready.set()
        time.sleep(600)
        return 0

    Path.write_text = half_then_hang  # only in this forked child
    write_json_atomic(path, {"epoch": 2, "payload": list(range(10_000))})


def test_json_outputs_survive_a_sigkill_mid_write(tmp_path):
    """write_json_atomic (metrics.json, history.json, training_config.json): a SIGKILL half-way through a rewrite
    leaves the previous complete file (a plain write_text would leave half a JSON)."""
    target = tmp_path / "metrics.json"
    sigkill_when_ready(_write_then_die_mid_write, target)
    assert json.loads(target.read_text()) == {"epoch": 1, "complete": True}
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["metrics.json"]


def _save_pipeline_then_die_mid_save(run_dir: Path, ready) -> None:
    """Save a complete DDPM pipeline, then start saving other weights over it and stop half-way through the
    safetensors file (where a SIGKILL during the end-of-epoch save would land)."""
    import safetensors.torch

    from hub_models.diffusion.pipeline import make_train_scheduler, save_pipeline
    from hub_models.models.unet import make_unet

    torch.manual_seed(0)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), run_dir)
    (run_dir / "saved-once").touch()

    def half_then_hang(tensors, filename, metadata=None):
        blob = safetensors.torch.save(tensors, metadata=metadata)
        Path(filename).write_bytes(blob[: len(blob) // 2])
        ready.set()
        time.sleep(600)

    safetensors.torch.save_file = half_then_hang  # only in this forked child
    torch.manual_seed(1)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), run_dir)


def test_pipeline_weights_survive_a_sigkill_mid_save(tmp_path):
    """The DDPM rewrites its pipeline after every epoch: a kill during that save leaves the previous complete
    weights, which load (a plain save_pretrained would leave a truncated safetensors in unet/)."""
    from hub_models.diffusion.pipeline import load_ddpm
    from hub_models.hub import load
    from hub_models.models.unet import make_unet

    sigkill_when_ready(_save_pipeline_then_die_mid_save, tmp_path)
    assert (tmp_path / "saved-once").exists()
    unet, _ = load_ddpm(tmp_path)
    torch.manual_seed(0)
    first = make_unet("tiny").state_dict()
    assert all(torch.equal(first[k], v) for k, v in unet.state_dict().items())
    load(tmp_path)  # hub.load's truncation check passes too
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "model_index.json", "saved-once", "scheduler", "unet"]


@pytest.mark.parametrize("kind", ["vae", "ddpm"])
def test_push_refuses_weights_truncated_by_a_kill(hub, vae_run, ddpm_run, kind):
    """Weights truncated by a kill (a run of an older version that saved in place, a full disk, a copy cut short):
    publishing must refuse such a run (before any network call) instead of uploading weights nobody can load."""
    run_dir = vae_run if kind == "vae" else ddpm_run
    weights_file = run_dir / ("" if kind == "vae" else "unet") / "diffusion_pytorch_model.safetensors"
    truncate_half(weights_file)
    hub.requests.clear()
    with pytest.raises(HubPushError, match=r"diffusion_pytorch_model\.safetensors is truncated or corrupt"):
        push_run(run_dir, f"{USER}/cut-short-{kind}", backoff=0.01)
    assert [r for r in hub.requests if "agent-harnesses" not in r[1]] == []
    assert hub.repos == {}
