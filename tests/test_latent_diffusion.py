"""Latent diffusion end to end on tiny configs and a few hundred real digits: training/train_autoencoder.py and
training/train_ldm.py write their folders, the pipeline folder loads (from_pretrained, hub.load), samples
deterministic in-range digits with every sampler, renders a card, and bad input fails with one clear line."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

from hub_models.data import load_splits
from hub_models.diffusion import SAMPLERS
from hub_models.diffusion.latent import (
    LatentDDPMPipeline,
    encode_latents,
    latent_shape,
    load_autoencoder,
    make_autoencoder,
    make_latent_train_scheduler,
    save_latent_pipeline,
)
from hub_models.evaluation.ddpm import Point, generate, point_sampler
from hub_models.hub import load
from hub_models.hub.cards import render_model_card
from hub_models.hub.load import HubLoadError
from hub_models.hub.push import published_files

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--model_config", "tiny", "--train_batch_size", "32", "--max_train_steps", "3", "--logger", "none",
          "--max_eval_samples", "64", "--eval_batch_size", "64"]  # fmt: skip


def _script(name: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run training/<name> as `python training/<name> args` does, in this process (no second interpreter)."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(REPO_ROOT / "training" / name), run_name="__main__")


@pytest.fixture(scope="module")
def runs(tiny_mnist_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ldm")
    with pytest.MonkeyPatch.context() as mp:
        _script("train_autoencoder.py", [*COMMON, "--output_dir", str(root / "ae")], mp)
        _script("train_ldm.py", [*COMMON, "--output_dir", str(root / "ldm"), "--pretrained_vae_model_name_or_path",
                                 str(root / "ae"), "--num_sample_images", "4", "--sample_steps", "2"], mp)  # fmt: skip
    return {"ae": root / "ae", "ldm": root / "ldm"}


def test_scripts_write_their_folders(runs: dict[str, Path]) -> None:
    ae, ldm = runs["ae"], runs["ldm"]
    for rel in ("config.json", "diffusion_pytorch_model.safetensors", "metrics.json", "figures/reconstructions.png"):
        assert (ae / rel).is_file(), rel
    config = json.loads((ae / "config.json").read_text())
    ae_metrics = json.loads((ae / "metrics.json").read_text())
    assert config["_class_name"] == "AutoencoderKL" and ae_metrics["global_step"] == 3
    # The recorded scaling factor makes the latents the UNet sees unit-variance (measured, not the default 1.0).
    assert config["scaling_factor"] == pytest.approx(ae_metrics["scaling_factor"]) and config["scaling_factor"] != 1
    train, _ = load_splits("study")
    assert encode_latents(load_autoencoder(ae), train.images[:64]).std().item() == pytest.approx(1.0, rel=1e-4)
    for rel in ("model_index.json", "vae/config.json", "unet/diffusion_pytorch_model.safetensors",
                "scheduler/scheduler_config.json", "unet_non_ema/config.json", "figures/samples.png"):  # fmt: skip
        assert (ldm / rel).is_file(), rel
    index = json.loads((ldm / "model_index.json").read_text())
    assert index["_class_name"] == "LatentDDPMPipeline" and index["vae"] == ["diffusers", "AutoencoderKL"]
    metrics = json.loads((ldm / "metrics.json").read_text())
    assert metrics["latent_shape"] == [4, 7, 7] and metrics["global_step"] == 3
    assert metrics["test_samples"] > metrics["test_loss_samples"] == 64  # the split's size, and what was scored
    assert metrics["autoencoder_metrics"]["test_l1"] == ae_metrics["test_l1"]
    scheduler = json.loads((ldm / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["clip_sample"] is False and scheduler["num_train_timesteps"] == 4000


def test_pipeline_loads_and_samples_deterministic_digits(runs: dict[str, Path], tmp_path: Path) -> None:
    pipe = LatentDDPMPipeline.from_pretrained(runs["ldm"])
    assert type(load(runs["ldm"])) is LatentDDPMPipeline
    for sampler in (*SAMPLERS, None):  # None: the folder's own scheduler
        a, b = (pipe(batch_size=2, num_inference_steps=2, sampler=sampler, output_type="pt",
                     generator=torch.Generator().manual_seed(7)).images for _ in range(2))  # fmt: skip
        assert a.shape == (2, 1, 28, 28) and torch.equal(a, b), sampler
        assert a.min() >= 0 and a.max() <= 1 and a.std() > 0, sampler
    latents = pipe(batch_size=2, num_inference_steps=2, output_type="latent").images
    assert latents.shape == (2, *latent_shape(pipe.vae))
    pil = pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert len(pil) == 1 and pil[0].size == (28, 28)
    # Save → load round trip: same weights, same digits.
    save_latent_pipeline(pipe.vae, pipe.unet, pipe.scheduler, tmp_path / "copy")
    again = LatentDDPMPipeline.from_pretrained(tmp_path / "copy")
    x, y = (p(batch_size=2, num_inference_steps=2, sampler="ddim", output_type="pt",
              generator=torch.Generator().manual_seed(1)).images for p in (pipe, again))  # fmt: skip
    assert torch.equal(x, y)


def test_v_prediction_keeps_sampled_latents_bounded(runs: dict[str, Path]) -> None:
    """The default latent UNet predicts v. At t = T the cosine ᾱ is 1.5e-10, so an ε-model's x0 estimate multiplies
    its error by 1 / √ᾱ ≈ 81,000 and, with nothing clipping latents, the samples blow up (the first latent model's
    latents reached |z| ≈ 40,000); a v-model's x0 = √ᾱ·x_t − √(1−ᾱ)·v stays bounded even untrained."""
    pipe = LatentDDPMPipeline.from_pretrained(runs["ldm"])
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    for sampler in SAMPLERS:
        latents = pipe(batch_size=8, num_inference_steps=25, sampler=sampler, output_type="latent",
                       generator=torch.Generator().manual_seed(0)).images  # fmt: skip
        assert latents.abs().max() < 20, sampler
    eps = LatentDDPMPipeline(vae=pipe.vae, unet=pipe.unet, scheduler=make_latent_train_scheduler())
    blown = eps(batch_size=8, num_inference_steps=25, sampler="ddpm", output_type="latent",
                generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert blown.abs().max() > 1000  # the same weights read as ε: what v-prediction avoids


def test_evaluation_and_benchmark_sample_the_latent_pipeline(runs: dict[str, Path]) -> None:
    """The DDPM evaluator's sampler (what generates FID digits) and the side-by-side benchmark take a latent
    folder as they take a pixel one: same digits for the same seed, chunked generation resumable."""
    point = Point("ddpm", 2, 6, precision="fp32")
    draw = point_sampler(runs["ldm"], point)
    a, b = draw(3, 5), draw(3, 5)
    assert a.shape == (3, 1, 28, 28) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    images = generate(runs["ldm"], point, batch_size=4, log=lambda _: None)
    assert images.shape == (6, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images, generate(runs["ldm"], point, batch_size=4, log=lambda _: None))  # from the chunks
    raw = point_sampler(runs["ldm"], Point("ddpm", 2, 6, ema=False, precision="fp32"))(3, 5)
    assert not torch.equal(raw, a)  # unet_non_ema/ is another set of weights
    bench = runpy.run_path(str(REPO_ROOT / "benchmarks" / "ldm_sampling_speed.py"))
    result = bench["main"](bench["parse_args"](["--pixel", str(runs["ldm"]), "--latent", str(runs["ldm"]),
                                                "--steps", "2", "--rounds", "1", "--num_images", "2"]))  # fmt: skip
    assert result["bf16"]["pixel_over_latent_cpu"] > 0 and len(result["bf16"]["latent"]["cpu"]) == 1


def test_card_and_published_files(runs: dict[str, Path]) -> None:
    card = str(render_model_card(runs["ldm"], "someone/mnist-genlab-ldm"))
    assert 'LatentDDPMPipeline.from_pretrained("someone/mnist-genlab-ldm"' in card
    assert "4×7×7" in card and "latent-diffusion" in card
    files = published_files(runs["ldm"])
    assert "vae/diffusion_pytorch_model.safetensors" in files and "unet_non_ema/config.json" not in files


def test_bad_input_fails_with_one_clear_line(runs: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    broken = tmp_path / "no-vae"
    save_latent_pipeline(*(getattr(LatentDDPMPipeline.from_pretrained(runs["ldm"]), k)
                           for k in ("vae", "unet", "scheduler")), broken)  # fmt: skip
    for path in (broken / "vae").iterdir():
        path.unlink()
    (broken / "vae").rmdir()
    with pytest.raises(ValueError, match="missing vae/"):
        LatentDDPMPipeline.from_pretrained(broken)
    with pytest.raises(HubLoadError, match=r"vae/diffusion_pytorch_model\.safetensors"):
        load(broken)
    tampered = tmp_path / "tampered"
    shutil.copytree(runs["ldm"], tampered)
    index = json.loads((tampered / "model_index.json").read_text())
    (tampered / "model_index.json").write_text(json.dumps({**index, "vae": ["diffusers", "UNet2DModel"]}))
    with pytest.raises(HubLoadError, match="is not diffusers' AutoencoderKL"):
        load(tampered)
    with pytest.raises(ValueError, match="holds no autoencoder"):
        load_autoencoder(tmp_path)

    vae = make_autoencoder("tiny")
    wrong = UNet2DModel(sample_size=14, in_channels=4, out_channels=4, block_out_channels=(8,), norm_num_groups=4,
                        down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",))  # fmt: skip
    with pytest.raises(ValueError, match="4×7×7"):
        LatentDDPMPipeline(vae=vae, unet=wrong, scheduler=make_latent_train_scheduler())
    with pytest.raises(ValueError, match="output_type"):
        LatentDDPMPipeline.from_pretrained(runs["ldm"])(num_inference_steps=1, output_type="jpeg")
    with pytest.raises(SystemExit):  # argparse: the autoencoder is required
        _script("train_ldm.py", [*COMMON, "--output_dir", str(tmp_path / "x")], monkeypatch)


def test_the_hybrid_study_scores_both_models_alike_and_writes_its_tables(runs: dict[str, Path], trained_ddpm_run: Path,
                                                                         tmp_path: Path) -> None:
    """scripts/hybrid_study.py's library call on tiny models: the same point for the pixel and the latent model
    (the pixel one stored outside its run folder, so it never becomes the run's headline), the codec table with
    PNG beside it, and the report's markdown."""
    from hub_models.models import ConvVAE
    from hub_models.study.hybrid import run_hybrid_study

    ConvVAE(latent_dim=2, hidden_channels=(4, 8)).save_pretrained(tmp_path / "vae-conv-z2-beta1")
    speed = {"command": "python benchmarks/ldm_sampling_speed.py", "bf16": {
        "pixel": {"cpu_median": 2.0, "wall_median": 1.1}, "latent": {"cpu_median": 0.5, "wall_median": 0.3}}}
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    out = tmp_path / "hybrid"
    md = run_hybrid_study(out, pixel_dir=trained_ddpm_run, latent_dir=runs["ldm"],
                          vaes={"vae-conv-z2-beta1": tmp_path / "vae-conv-z2-beta1"},
                          speed_json=tmp_path / "speed.json", num_codec_digits=20,
                          point=Point("ddpm", 2, 8, seed=1, precision="bf16"), n_ref=20)
    result = json.loads((out / "hybrid.json").read_text())
    assert result["fids"]["pixel"]["fid"]["n_gen"] == result["fids"]["latent"]["fid"]["n_gen"] == 8
    assert (out / "pixel-ddpm" / "evaluation.json").is_file() and not (trained_ddpm_run / "evaluation" /
                                                                        "ddpm-2steps-ema-n8-seed1-bf16").exists()
    assert set(result["codec"]["models"]) == {"vae-conv-z2-beta1", "latent autoencoder"}
    assert result["codec"]["models"]["latent autoencoder"]["latent_numbers"] == 196
    text = md.read_text()
    assert "| pixel DDPM (1×28×28) |" in text and "| 2.00 | 1.10 |" in text and "Lossless PNG" in text
    assert (out / "figures" / "hybrid_fid_vs_time.png").stat().st_size > 0
