"""One typed evaluation.json for every kind of run: version 2 round-trips, and both older layouts still load."""

from __future__ import annotations

import json

import pytest

from hub_models.evaluation.metrics import format_fid, is_standard_fid
from hub_models.evaluation.schema import SCHEMA_VERSION, Evaluation, point_key, vae_point

FID = {"fid": 80.0, "n_gen": 1000, "n_ref": 2000, "reference": "study-test", "floor": 9.0, "floor_n": 1000,
       "network": "Inception-v3 pool3"}


def test_a_vae_file_from_before_version_2_loads(tmp_path):
    (tmp_path / "evaluation.json").write_text(json.dumps({
        "settings": {"version": 1, "fid_samples": 1000, "seed": 0, "latent_points": 5000},
        "vae": {"n": 12000, "bce": 149.4, "kld": 5.7, "elbo": -155.1, "nll": 146.7, "nll_samples": 1000, "nll_n": 500},
        "latent_knn_accuracy": 0.645, "fid": FID, "classifier": {"n": 1000, "kl_to_uniform": 0.67}}))
    evaluation = Evaluation.read(tmp_path)
    assert evaluation.kind == "vae" and evaluation.schema_version == SCHEMA_VERSION
    assert evaluation.held_out["nll"] == 146.7 and evaluation.held_out["latent_knn_accuracy"] == 0.645
    assert evaluation.held_out["latent_points"] == 5000
    assert evaluation.fid == FID and evaluation.prior["classifier"]["kl_to_uniform"] == 0.67
    assert list(evaluation.points) == ["prior-n1000-seed0"]
    assert not is_standard_fid(evaluation.fid)  # no `preprocessing`: the old torch resize
    assert format_fid(evaluation.fid).endswith("; old torch-bilinear resize, pending re-measurement)")


def test_a_ddpm_file_from_before_version_2_loads_and_round_trips(tmp_path):
    point = {"sampler": "ddpm", "steps": 25, "num_samples": 10000, "ema": True, "seed": 0, "fid": FID}
    (tmp_path / "evaluation.json").write_text(json.dumps({"points": {"ddpm-25steps-ema-n10000-seed0": point}}))
    evaluation = Evaluation.read(tmp_path, kind="ddpm")
    assert evaluation.kind == "ddpm" and evaluation.points["ddpm-25steps-ema-n10000-seed0"] == point
    assert evaluation.held_out is None and evaluation.prior is None
    evaluation.write(tmp_path / "v2")
    raw = json.loads((tmp_path / "v2" / "evaluation.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and raw["kind"] == "ddpm"
    assert Evaluation.read(tmp_path / "v2") == evaluation


def test_version_2_round_trips_and_standard_fids_are_recognised(tmp_path):
    fid = {**FID, "preprocessing": "tf1-bilinear"}
    point = vae_point(1000, 0, fid, {"n": 1000}, weights="0123456789abcdef")
    evaluation = Evaluation(kind="vae", points={point_key(point): point}, held_out={"split": "study", "bce": 1.0},
                            settings={"seed": 0})
    evaluation.write(tmp_path)
    again = Evaluation.read(tmp_path)
    assert again == evaluation and again.fid == fid and is_standard_fid(again.fid)
    assert "old torch" not in format_fid(again.fid)


def test_unknown_versions_and_bad_files_are_clear_errors(tmp_path):
    assert Evaluation.read(tmp_path) is None  # no file: not evaluated
    (tmp_path / "evaluation.json").write_text(json.dumps({"schema_version": 99, "kind": "vae"}))
    with pytest.raises(ValueError, match="schema_version 99"):
        Evaluation.read(tmp_path)
    (tmp_path / "evaluation.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Evaluation.read(tmp_path)
    with pytest.raises(ValueError, match="JSON object"):
        Evaluation.from_dict([1, 2])
