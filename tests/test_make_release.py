"""scripts/make_release.py: what goes into release/, what is skipped, and what a re-render keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture()
def make_release(load_script):
    return load_script("scripts/make_release.py")


def _release(module, tmp_path: Path, ddpm_dir: Path, *extra: str) -> Path:
    release = tmp_path / "release"
    nowhere = tmp_path / "missing"  # every other source: absent, so only the DDPM is released
    module.main(module.parse_args([
        "--study_dir", str(nowhere), "--ddpm_dir", str(ddpm_dir), "--ldm_dir", str(nowhere),
        "--latent_prior_dir", str(nowhere), "--classifier_dir", str(nowhere),
        "--conditional_ddpm_dir", str(nowhere), "--release_dir", str(release), *extra]))
    return release


def test_an_unfinished_run_is_not_released(make_release, ddpm_run: Path, tmp_path: Path, capsys) -> None:
    metrics_path = ddpm_run / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["epochs_planned"] = metrics["epochs"] + 1  # a run stopped before its last epoch
    metrics_path.write_text(json.dumps(metrics))
    release = _release(make_release, tmp_path, ddpm_run)
    assert not (release / "ddpm").exists()
    assert f"has trained {metrics['epochs']} of its {metrics['epochs'] + 1} epochs, skipped" in capsys.readouterr().out


def test_a_finished_run_is_released_and_a_refresh_keeps_the_sample_cache(make_release, ddpm_run: Path,
                                                                       tmp_path: Path) -> None:
    module = make_release
    release = _release(module, tmp_path, ddpm_run)
    folder = release / "ddpm"
    assert (folder / "README.md").is_file() and (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not (folder / "checkpoints").exists()
    weights = (folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()

    chunk = folder / module.CACHE / "ddpm-5steps" / "chunk-0000.safetensors"  # what evaluate_ddpm.py caches
    chunk.parent.mkdir(parents=True)
    chunk.write_bytes(b"samples")
    (folder / "stray.txt").write_text("not a published file")
    _release(module, tmp_path, tmp_path / "elsewhere", "--refresh")
    assert chunk.read_bytes() == b"samples"  # hours of sampling survive the re-render
    assert not (folder / "stray.txt").exists()  # everything else is re-staged
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == weights


def test_source_url_reaches_the_cards_install_line(make_release, ddpm_run: Path, tmp_path: Path) -> None:
    release = _release(make_release, tmp_path, ddpm_run, "--source_url", "https://example.org/you/mnist-genlab")
    assert "git+https://example.org/you/mnist-genlab" in (release / "ddpm" / "README.md").read_text()
