"""Anomaly detection by a VAE trained without one digit: scores, AUROC and the study script, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_auroc_per_held_out_digit(tiny_mnist_cache):
    from hub_models.data import load_splits
    from hub_models.study.anomaly import anomaly_auroc, anomaly_scores

    train, test = load_splits("official")
    record, model = anomaly_auroc(train, test, digit=0, epochs=2, elbo_samples=2)
    assert record["n_train"] == int((train.labels != 0).sum()) < len(train)
    assert record["n_anomalous"] == int((test.labels == 0).sum()) > 0
    scores = anomaly_scores(model, test.as_float(), elbo_samples=2)
    assert scores["reconstruction"].shape == scores["neg_elbo"].shape == (len(test),)
    assert np.all(scores["neg_elbo"] > 0)
    is_zero = (test.labels == 0).numpy()
    assert record["auroc_reconstruction"] == roc_auc_score(is_zero, scores["reconstruction"])
    # Higher score = more anomalous: unseen 0s (lots of ink, a shape never trained on) are found above chance.
    assert record["auroc_reconstruction"] > 0.6


@pytest.mark.slow
def test_anomaly_study_script(tiny_mnist_cache, tmp_run_dir, run_script, capsys):
    flags = ["--output_dir", str(tmp_run_dir), "--digits", "0", "7", "--epochs", "1", "--split", "official",
             "--elbo_samples", "1", "--save_models"]
    run_script("scripts/anomaly_study.py", *flags)
    capsys.readouterr()
    out = json.loads((tmp_run_dir / "anomaly.json").read_text())
    assert [r["digit"] for r in out["records"]] == [0, 7]
    assert all(0 <= r["auroc_neg_elbo"] <= 1 for r in out["records"])
    assert out["settings"]["num_epochs"] == 1 and "epochs" not in out["settings"]  # --epochs: the old alias
    assert (tmp_run_dir / "figures" / "anomaly_auroc.png").stat().st_size > 1000
    assert "| 7 |" in (tmp_run_dir / "anomaly.md").read_text()
    assert (tmp_run_dir / "models" / "without-7" / "config.json").exists()

    run_script("scripts/anomaly_study.py", *flags)  # an interrupted study resumes, nothing retrained
    assert capsys.readouterr().out.count("already measured, kept") == 2
    assert json.loads((tmp_run_dir / "anomaly.json").read_text())["records"] == out["records"]

    from hub_models.study.report import write_report  # the study report shows the table and the plot

    docs, study = tmp_run_dir / "docs", tmp_run_dir / "no-vae-runs"
    study.mkdir()
    text = write_report(study, docs, anomaly_dir=tmp_run_dir, evaluate=False).read_text()
    assert "## Anomaly detection" in text and "| 7 |" in text.split("## Anomaly detection")[1]
    assert (docs / "figures" / "anomaly_auroc.png").stat().st_size > 1000


def test_a_study_recorded_under_the_old_flag_names_is_resumed(tmp_path):
    """anomaly.json written before the flags took the diffusers names still counts as the same settings."""
    from hub_models.io import write_json_atomic
    from hub_models.study.anomaly import finished_records

    record = {"digit": 3, "auroc_reconstruction": 0.9}
    old = {"digits": [3], "arch": "conv", "epochs": 10, "batch_size": 64, "learning_rate": 1e-3, "limit": None}
    write_json_atomic(tmp_path / "anomaly.json", {"settings": old, "records": [record]})
    new = {"digits": [3, 4], "arch": "conv", "num_epochs": 10, "train_batch_size": 64, "learning_rate": 1e-3,
           "limit_train_samples": None}
    assert finished_records(tmp_path / "anomaly.json", new) == {3: record}
    assert finished_records(tmp_path / "anomaly.json", {**new, "num_epochs": 11}) == {}
