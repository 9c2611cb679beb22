"""The study report on tiny runs: every claim gets a verdict, the tables and figures are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub_models.hub.naming import vae_run_name
from hub_models.study.report import EvalSettings, latent_knn_accuracy, study_claims, write_report

ROOT = Path(__file__).resolve().parents[1]
TINY_EVAL = EvalSettings(fid_samples=24, fid_reference_n=40, nll_samples=8, nll_images=16, latent_points=60)


@pytest.fixture(scope="module")
def tiny_study(tiny_mnist_cache, tmp_path_factory) -> Path:
    study = tmp_path_factory.mktemp("study")
    only = [vae_run_name("conv", 2, b) for b in (1e-3, 1.0, 20.0)] + [vae_run_name("dense", 2, 1.0),
                                                                        vae_run_name("conv", 4, 1.0)]
    subprocess.run([sys.executable, str(ROOT / "training" / "run_study.py"), "--study_dir", str(study),
                    "--no_report", "--only", *only, "--extra", "--max_train_steps", "8", "--num_figure_samples", "4",
                    "--checkpointing_steps", "100"], check=True, capture_output=True, timeout=600)
    return study


def test_runs_are_skipped_when_complete(tiny_study):
    result = subprocess.run([sys.executable, str(ROOT / "training" / "run_study.py"), "--study_dir", str(tiny_study),
                             "--no_report", "--only", "vae-conv-z2-beta1"], capture_output=True, text=True,
                            check=True, timeout=120)
    assert "vae-conv-z2-beta1: complete, skipped" in result.stdout


def test_report_has_every_claim_with_a_verdict(tiny_study, tmp_path):
    report = write_report(tiny_study, tmp_path, settings=TINY_EVAL)
    text = report.read_text()
    for name in ("vae-conv-z2-beta1e-3", "vae-conv-z2-beta1", "vae-conv-z2-beta20", "vae-dense-z2-beta1"):
        assert f"`{name}`" in text
        evaluation = json.loads((tiny_study / name / "evaluation.json").read_text())
        assert evaluation["fid"]["n_gen"] == 24 and evaluation["fid"]["floor"] is not None
        assert evaluation["vae"]["nll_samples"] == 8 and evaluation["vae"]["nll"] > 0
    claim_rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    verdicts = [row.rsplit("**", 2)[1] for row in claim_rows]
    assert len(verdicts) == 13
    # Every VAE claim is measured from these runs; only the DDPM ones lack their run here.
    assert verdicts.count("not measured") == 2
    assert set(verdicts) <= {"confirmed", "refuted", "partly", "not measured"}
    assert (tmp_path / "figures" / "rate_distortion.png").stat().st_size > 0
    assert (tmp_path / "figures" / "vae-conv-z2-beta1" / "samples.png").exists()
    assert "real-vs-real floor" in text


def test_claims_follow_the_numbers():
    def run(name, arch, bce, kld, params, knn, fid, kl, seconds):
        from hub_models.study.report import Run

        metrics = {"arch": arch, "parameters": params, "seconds_per_epoch": seconds, "test": {"bce": bce, "kld": kld}}
        evaluation = {"latent_knn_accuracy": knn, "fid": {"fid": fid}, "classifier": {"kl_to_uniform": kl}}
        return name, Run(name, Path(name), metrics, evaluation)

    runs = dict([
        run("vae-conv-z2-beta1e-3", "conv", 130, 40, 59_525, 0.80, 90, 0.05, 10),
        run("vae-conv-z2-beta1", "conv", 145, 6, 59_525, 0.90, 30, 0.02, 10),
        run("vae-conv-z2-beta20", "conv", 200, 1, 59_525, 0.50, 80, 0.40, 10),
        run("vae-dense-z2-beta1", "dense", 140, 6, 1_068_820, 0.85, 35, 0.03, 5),
        run("vae-conv-z4-beta1", "conv", 120, 9, 78_345, 0.92, 25, 0.02, 10),
    ])
    verdicts = {c.claim.split(":")[0].split(" (")[0]: c.verdict for c in study_claims(runs, None)}
    assert verdicts["Dense reconstructs better than Conv at z=2"] == "confirmed"
    assert verdicts["Conv trains faster than Dense"] == "refuted"
    assert verdicts["β = 1 is the best compromise"] == "confirmed"
    assert verdicts["Reconstruction"] == "confirmed"
    assert verdicts["DDPM"] == "not measured"


def test_latent_knn_accuracy_separates_clusters():
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    separated = rng.normal(size=(300, 2)) * 0.1 + labels[:, None] * 3
    mixed = rng.normal(size=(300, 2))
    assert latent_knn_accuracy(separated, labels) > 0.95
    assert latent_knn_accuracy(mixed, labels) < 0.4


@pytest.mark.parametrize("fid, n, verdict", [(12.0, 10_000, "confirmed"), (12.0, 2_000, "partly"),
                                             (30.0, 10_000, "confirmed"), (40.0, 10_000, "refuted")])
def test_ddpm_fid_verdict_counts_a_lower_fid_as_reaching_the_study(fid, n, verdict):
    ddpm = {"epochs_done": 20, "train_loss": 0.028, "test_loss": 0.028, "fid_point": {"sampler": "ddpm", "steps": 25},
            "fid": {"fid": fid, "n_gen": n, "n_ref": 10_000, "reference": "mnist-test", "floor": 1.0}}
    claim = next(c for c in study_claims({}, ddpm) if c.claim == "DDPM: FID 28.11")
    assert claim.verdict == verdict
    assert ("claimed quality is reached" in claim.measured) == (fid < 23)
