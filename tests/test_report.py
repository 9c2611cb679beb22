"""The study report on tiny runs: every claim gets a verdict, the tables and figures are written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from hub_models.evaluation.schema import Evaluation, vae_point
from hub_models.evaluation.vae import EvalSettings, active_units, latent_knn_accuracy, prior_mismatch_kl
from hub_models.reference import RELEASE_VAES
from hub_models.study.report import Run, _cell, study_claims, write_report
from hub_models.study.verdicts import RULES

ROOT = Path(__file__).resolve().parents[1]
TINY_EVAL = EvalSettings(fid_samples=24, fid_reference_n=40, nll_samples=8, nll_images=16, latent_points=60)


@pytest.fixture(scope="module")
def tiny_study(vae_study, tmp_path_factory) -> Path:
    """A copy of the release's five VAEs from the session's tiny study (conftest.py; trained by train_vae.py): the
    report writes evaluation.json into each run."""
    study = tmp_path_factory.mktemp("study")
    for name in RELEASE_VAES:
        shutil.copytree(vae_study / name, study / name)
    return study


def test_runs_are_skipped_when_complete(tiny_study, run_script, capsys):
    run_script("scripts/run_study.py", "--study_dir", str(tiny_study), "--no_report", "--only", "vae-conv-z2-beta1")
    assert "vae-conv-z2-beta1: complete, skipped" in capsys.readouterr().out


def test_report_has_every_claim_with_a_verdict(tiny_study, tmp_path):
    report = write_report(tiny_study, tmp_path, settings=TINY_EVAL)
    text = report.read_text()
    for name in ("vae-conv-z2-beta1e-3", "vae-conv-z2-beta1", "vae-conv-z2-beta20", "vae-dense-z2-beta1"):
        assert f"`{name}`" in text
        raw = json.loads((tiny_study / name / "evaluation.json").read_text())
        assert raw["schema_version"] == 2 and raw["kind"] == "vae"
        evaluation = Evaluation.read(tiny_study / name)
        assert evaluation.fid["n_gen"] == 24 and evaluation.fid["floor"] is not None
        assert evaluation.fid["preprocessing"] == "tf1-bilinear"
        assert evaluation.held_out["nll_samples"] == 8 and evaluation.held_out["nll"] > 0
        assert evaluation.held_out["active_units"] in (0, 1, 2)
    claim_rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    verdicts = [row.rsplit("**", 2)[1] for row in claim_rows]
    assert len(verdicts) == len(RULES)
    # Every VAE claim but speed is measured from these runs; the DDPM ones lack their run here.
    assert verdicts.count("not measured") == 4
    assert set(verdicts) <= {"confirmed", "refuted", "partly", "inconclusive", "not measured"}
    for rule in RULES.values():  # each verdict sits beside its rule
        assert f"| {_cell(rule.claim)} |" in text and f"| {_cell(rule.rule)} |" in text
    for row in claim_rows:  # a `|` inside a cell (E[z|x]) is escaped, so every row has its 4 cells
        assert len(re.split(r"(?<!\\)\|", row.strip().strip("|"))) == 4, row
    assert (tmp_path / "figures" / "rate_distortion.png").stat().st_size > 0
    assert (tmp_path / "figures" / "vae-conv-z2-beta1" / "samples.png").exists()
    assert "real-vs-real floor" in text and "PROTOCOL.md" in text


def _run(name, arch, bce, kld, params, knn, fid, kl, seconds, mismatch=0.5, active=2):
    metrics = {"arch": arch, "parameters": params, "seconds_per_epoch": seconds, "test": {"bce": bce, "kld": kld}}
    point = vae_point(1000, 0, {"fid": fid, "n_gen": 1000, "n_ref": 2000, "reference": "study-test",
                                "preprocessing": "tf1-bilinear"}, {"kl_to_uniform": kl}, weights=None)
    evaluation = Evaluation(kind="vae", points={"prior-n1000-seed0": point},
                            held_out={"bce": bce, "kld": kld, "elbo": -bce - kld, "latent_knn_accuracy": knn,
                                      "prior_mismatch_kl": mismatch, "active_units": active})
    return name, Run(name, Path(name), metrics, evaluation)


def test_claims_follow_the_numbers():
    runs = dict([
        _run("vae-conv-z2-beta1e-3", "conv", 130, 40, 59_525, 0.80, 90, 0.05, 10, mismatch=3.0),
        _run("vae-conv-z2-beta1", "conv", 145, 6, 59_525, 0.90, 30, 0.02, 10, mismatch=0.4),
        _run("vae-conv-z2-beta20", "conv", 200, 1, 59_525, 0.50, 80, 0.40, 10, active=1),
        _run("vae-dense-z2-beta1", "dense", 140, 6, 1_068_820, 0.85, 35, 0.03, 5),
        _run("vae-conv-z4-beta1", "conv", 120, 9, 78_345, 0.92, 25, 0.02, 10),
    ])
    verdicts = {c.claim: c.verdict for c in study_claims(runs, None)}
    assert verdicts[RULES["dense_bce"].claim] == "confirmed"
    # s/epoch says Dense is twice as fast, but per-run wall time never decides the speed claim.
    assert verdicts[RULES["speed"].claim] == "not measured"
    assert verdicts[RULES["beta_best"].claim] == "confirmed"
    assert verdicts[RULES["beta_bce"].claim] == "confirmed"
    assert verdicts[RULES["beta_latent"].claim] == "confirmed"
    assert verdicts[RULES["conv4_vs_dense2"].claim] == "partly"  # 13.6× is not 18×
    assert verdicts[RULES["ddpm_loss"].claim] == "not measured"
    speed = {"conv_images_per_s": 950.0, "dense_images_per_s": 1000.0, "side_by_side": True, "command": "bench"}
    claim = next(c for c in study_claims(runs, None, speed) if c.claim == RULES["speed"].claim)
    assert claim.verdict == "inconclusive" and "side by side" in claim.measured


def test_active_units_and_prior_mismatch():
    import numpy as np

    rng = np.random.default_rng(0)
    used = rng.normal(size=(1000, 2))
    collapsed = np.c_[rng.normal(size=1000), np.full(1000, 0.001) * rng.normal(size=1000)]
    assert active_units(used) == 2 and active_units(collapsed) == 1
    # Posterior means that match N(0, I) with tiny variances vs means spread 5× wider than the prior.
    logvar = np.full((1000, 2), np.log(1e-4))
    assert prior_mismatch_kl(used, logvar) < 0.1 < 1.0 < prior_mismatch_kl(5 * used, logvar)


def test_latent_knn_accuracy_separates_clusters():
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    separated = rng.normal(size=(300, 2)) * 0.1 + labels[:, None] * 3
    mixed = rng.normal(size=(300, 2))
    assert latent_knn_accuracy(separated, labels) > 0.95
    assert latent_knn_accuracy(mixed, labels) < 0.4


def _ddpm(epochs: int, fid: float, preprocessing: str | None = "tf1-bilinear") -> dict:
    f = {"fid": fid, "n_gen": 10_000, "n_ref": 10_000, "reference": "mnist-test", "floor": 1.0}
    if preprocessing:
        f["preprocessing"] = preprocessing
    point = {"sampler": "ddpm", "steps": 25, "num_samples": 10_000, "seed": 1, "fid": f}
    return {"epochs_done": epochs, "train_loss": 0.028, "test_loss": 0.028, "test_loss_samples": 3000,
            "test_samples": 12_000, "parameters": 3_281_281, "fid_point": point, "fid": f}


@pytest.mark.parametrize("fid", [12.0, 30.0, 40.0])
def test_ddpm_fid_is_not_comparable_and_shows_the_readers_protocols(fid):
    claims = {c.claim: c for c in study_claims({}, _ddpm(20, fid))}
    claim = claims[RULES["ddpm_fid"].claim]
    assert claim.verdict == "not comparable"
    assert f"the card's sampler: FID {fid:.2f} (ddpm 25 steps, N=10,000 vs 10,000 of mnist-test" in claim.measured


def test_ddpm_loss_is_pending_until_twenty_epochs_and_old_fids_are_marked():
    claims = {c.claim: c for c in study_claims({}, _ddpm(9, 10.0, preprocessing=None))}
    loss = claims[RULES["ddpm_loss"].claim]
    assert loss.verdict == "pending" and "still training" in loss.measured
    assert "first 3,000 of the 12,000" in loss.measured
    assert "old resize: pending re-measurement" in claims[RULES["ddpm_fid"].claim].measured
    assert claims[RULES["ddpm_parameters"].claim].verdict == "confirmed"
    assert {c.claim: c for c in study_claims({}, _ddpm(20, 10.0))}[RULES["ddpm_loss"].claim].verdict == "confirmed"


def test_a_rewrite_keeps_the_anomaly_section_when_its_results_are_not_here(tmp_path):
    from hub_models.study.report import ANOMALY_HEADING

    (tmp_path / "study").mkdir()
    old = f"# old\n\n{ANOMALY_HEADING} (the study's application)\n\nmean AUROC 0.754\n"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "REPORT.md").write_text(old)
    text = write_report(tmp_path / "study", tmp_path / "docs", anomaly_dir=tmp_path / "absent",
                        evaluate=False).read_text()
    assert text.count(ANOMALY_HEADING) == 1 and "mean AUROC 0.754" in text and "# old" not in text


def test_the_hybrid_section_comes_from_its_study_folder_and_is_kept_without_it(tmp_path):
    from hub_models.study.hybrid import HYBRID_HEADING

    (tmp_path / "study").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "REPORT.md").write_text(f"# old\n\n{HYBRID_HEADING}\n\nlatent FID 12.3\n")
    kept = write_report(tmp_path / "study", tmp_path / "docs", hybrid_dir=tmp_path / "absent",
                        evaluate=False).read_text()
    assert kept.count(HYBRID_HEADING) == 1 and "latent FID 12.3" in kept
    (tmp_path / "hybrid").mkdir()
    (tmp_path / "hybrid" / "hybrid.md").write_text("| pixel DDPM | 4.56 |\n")
    new = write_report(tmp_path / "study", tmp_path / "docs", hybrid_dir=tmp_path / "hybrid",
                       evaluate=False).read_text()
    assert new.count(HYBRID_HEADING) == 1 and "| pixel DDPM | 4.56 |" in new and "latent FID 12.3" not in new
