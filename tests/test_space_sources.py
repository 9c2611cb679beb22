"""Where the Space's models come from and how they load (`hub_models.space.sources`, `hub_models.space.registry`):
the model list, the released evaluation, the calibration and what a model that fails to load leaves behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from space_fixtures import REPO_ROOT, app_error, launch_space, load_app_module, png


def test_model_sources_from_env_config_and_the_release_list(tmp_path):
    from hub_models.hub.naming import release_repo_ids
    from hub_models.reference import RELEASE
    from hub_models.space.sources import resolve_model_sources

    assert resolve_model_sources(env={"GENLAB_MODELS": "a=/x/a, user/repo-b ,"}) == {"a": "/x/a",
                                                                                   "repo-b": "user/repo-b"}
    (tmp_path / "release" / "vae-one").mkdir(parents=True)
    config = tmp_path / "models.json"
    config.write_text(json.dumps({"space": "org/space",
                                  "models": {"vae-one": "org/vae-one", "vae-two": "org/vae-two"}}))
    env = {"GENLAB_MODELS_DIR": str(tmp_path / "release")}
    assert resolve_model_sources(config, env) == {"vae-one": str(tmp_path / "release" / "vae-one"),
                                                  "vae-two": "org/vae-two"}
    # Without a models.json: the release list, every run as <namespace>/mnist-genlab-<run>, the classifier included.
    sources = resolve_model_sources(None, {}, namespace="someone")
    assert list(sources) == list(RELEASE) and sources == release_repo_ids("someone")
    assert sources["vae-conv-z2-beta1-conditional"] == "someone/mnist-genlab-vae-conv-z2-beta1-conditional"
    assert sources["digit-classifier"] == "someone/mnist-genlab-digit-classifier"
    (tmp_path / "release" / "ddpm").mkdir()  # a checkout's release/ folders win over the repo ids
    local = resolve_model_sources(None, {}, models_dir=tmp_path / "release")
    assert local["ddpm"] == str(tmp_path / "release" / "ddpm") and local["vae-conv-z2-beta1"].endswith("/mnist-genlab-"
                                                                                                     "vae-conv-z2-beta1")


def test_the_spaces_model_list_is_the_release_list():
    """spaces_app/ holds no model list of its own: the app's default and the published models.json both come from
    hub_models.reference.RELEASE (one source)."""
    from hub_models.reference import RELEASE
    from hub_models.space.sources import resolve_model_sources

    assert not (REPO_ROOT / "spaces_app" / "models.json").exists()
    assert set(resolve_model_sources(load_app_module().MODELS_CONFIG, {})) == set(RELEASE)


def test_registry_reads_the_ddpm_fid_from_its_evaluation_json(space_models, tmp_path):
    """metrics.json has no FID (it is measured after training): the Space reads the evaluation.json released next to
    the weights, and ignores points measured on other weights."""
    import shutil

    from hub_models.evaluation import Evaluation
    from hub_models.space import about
    from hub_models.space.sources import load_registry

    ddpm = tmp_path / "ddpm"
    shutil.copytree(space_models["ddpm"], ddpm)
    reg = load_registry({"ddpm": str(ddpm)}, calibration_digits=0)
    metrics = reg.ddpm.metrics
    assert (metrics["fid"], metrics["fid_n"], metrics["fid_sampler"]) == (12.34, 1000, "ddpm")
    assert reg.ddpm.metrics["train_loss"] == 0.05  # metrics.json too
    assert "| 12.34 (N=1,000, ddpm, 25 steps) |" in about.models_markdown(reg, {})
    evaluation = Evaluation.read(ddpm)
    next(iter(evaluation.points.values()))["weights"] = "0" * 16  # measured on other weights: stale
    evaluation.write(ddpm)
    assert "fid" not in load_registry({"ddpm": str(ddpm)}, calibration_digits=0).ddpm.metrics
    (ddpm / "evaluation.json").unlink()
    assert "fid" not in load_registry({"ddpm": str(ddpm)}, calibration_digits=0).ddpm.metrics


def test_registry_calibrates_and_degrades(tiny_mnist_cache, space_models, tmp_path):
    from hub_models.space import sources
    from hub_models.space.checks import SpaceError
    from hub_models.space.latent import latent_map
    from hub_models.space.reconstruct import anomaly_percentile

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"_class_name": "Evil", "latent_dim": 2}))
    reg = sources.load_registry({"vae-conv-z2-beta1": space_models["vae-conv-z2-beta1"], "broken": str(broken),
                            "missing": str(tmp_path / "nope")}, calibration_digits=200)
    assert list(reg.vaes) == ["vae-conv-z2-beta1"] and set(reg.errors) == {"broken", "missing"}
    assert "Evil" in reg.errors["broken"]
    with pytest.raises(SpaceError, match="DDPM is not loaded"):
        reg.require_ddpm()
    entry = reg.vaes["vae-conv-z2-beta1"]
    assert entry.beta == 1.0 and entry.means.shape == (200, 2) and len(entry.calibration) == 200
    assert np.all(np.diff(entry.calibration) >= 0)
    assert anomaly_percentile(entry, entry.calibration[0] - 1) == 0.0
    assert anomaly_percentile(entry, entry.calibration[-1] + 1) == 100.0
    assert anomaly_percentile(entry, float(np.median(entry.calibration))) == pytest.approx(50, abs=1)
    # the calibration is cached, keyed by weights and digits, and a warm start reuses it exactly
    assert sources._calibration_cache_file(entry, reg.test).is_file()
    again = sources.load_registry({"v": space_models["vae-conv-z2-beta1"]}, calibration_digits=200).vaes["v"]
    assert np.array_equal(again.calibration, entry.calibration) and np.array_equal(again.means, entry.means)
    # the map's pixel ↔ latent mapping round-trips
    m = latent_map(entry, (0, 1))
    u, v = m.to_latent(*m.to_pixel(0.7, -1.2))
    assert (u, v) == pytest.approx((0.7, -1.2), abs=1e-6)
    assert m.to_latent(0, 0) is None  # outside the axes


def test_missing_models_degrade_with_a_message(tiny_mnist_cache, space_models, tmp_path, monkeypatch):
    from gradio_client import Client

    app = load_app_module()
    demo = launch_space(app, monkeypatch, {"vae-conv-z2-beta1": space_models["vae-conv-z2-beta1"],
                                      "ddpm": str(tmp_path / "not-trained-yet")})
    try:
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path / "dl"))
        png(client.predict("vae-conv-z2-beta1", 4, 0, api_name="/vae_generate"))
        with pytest.raises(app_error(), match="DDPM is not loaded"):
            client.predict("dpmsolver++", 5, 4, 0, api_name="/ddpm_generate")
    finally:
        demo.close()
    # Nothing loadable at all: the app still starts and every tab answers with the reason.
    demo = launch_space(app, monkeypatch, {"vae-conv-z2-beta1": str(tmp_path / "gone")})
    try:
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path / "dl"))
        for args, api in [((None, 4, 0), "/vae_generate"), (("3", []), "/reconstruct_test_digit")]:
            with pytest.raises(app_error(), match=r"No VAE is loaded\. vae-conv-z2-beta1: .*no such model folder"):
                client.predict(*args, api_name=api)
    finally:
        demo.close()
