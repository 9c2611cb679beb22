"""The second-stage models on other image data than MNIST (issue 37): an autoencoder + class-conditional LDM on the
32×32 RGB folder, a latent prior over a VAE of the 28×28 greyscale folder, a distilled student of an RGB DDPM.
Each second stage takes its upstream run's data when given no data flags, and refuses other data in one line.

The scripts run in this process (their `parse_args` + the library's `main`), tiny models, a few updates, on a
cache of this module's own (tests/test_ddpm_other_data.py does the same).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

from hub_models.diffusion.latent import LatentDDPMPipeline
from hub_models.diffusion.latent_prior import load_latent_prior
from hub_models.hub import load
from hub_models.image_datasets import ImageDataError, ImageDatasetInfo, mnist_info
from hub_models.training.ldm import check_upstream_data, upstream_data_args

TINY_LATENT = ["--model_config", "tiny", "--train_batch_size", "8", "--max_train_steps", "2", "--logger", "none",
               "--max_eval_samples", "16", "--eval_batch_size", "16", "--checkpointing_steps", "none"]  # fmt: skip
TINY_LDM = ["--num_sample_images", "3", "--sample_steps", "1"]
TINY_DDPM = ["--model_config", "tiny", "--max_train_steps", "2", "--train_batch_size", "4", "--eval_batch_size", "32",
             "--num_sample_images", "3", "--sample_steps", "1", "--logger", "none", "--checkpointing_steps", "none",
             "--seed", "3"]  # fmt: skip
TINY_VAE = ["--max_train_steps", "3", "--num_epochs", "1", "--report_to", "none", "--num_figure_samples", "6",
            "--train_batch_size", "8", "--checkpointing_steps", "1000"]  # fmt: skip
TINY_PRIOR = ["--hidden_dim", "16", "--num_blocks", "1", "--max_train_steps", "2", "--train_batch_size", "16",
              "--logger", "none", "--sample_steps", "2", "--num_figure_samples", "4", "--checkpointing_steps",
              "none"]  # fmt: skip
TINY_DISTILL = ["--start_steps", "8", "--num_rounds", "1", "--max_train_steps", "1", "--train_batch_size", "8",
                "--num_sample_images", "3", "--logger", "none", "--checkpointing_steps", "none"]  # fmt: skip


def _config(folder: Path) -> dict:
    return json.loads((folder / "training_config.json").read_text())


@pytest.fixture(scope="module")
def train(load_script, own_cache):
    """`train("train_ldm.py", *argv)`: a training script's parse_args + main, in this process."""

    def run(script_name: str, *argv: str) -> dict | None:
        script = load_script(f"training/{script_name}")
        trainer = next(getattr(script, name) for name in ("AutoencoderTrainer", "LDMTrainer", "VAETrainer",
                                                          "LatentPriorTrainer", "DistillTrainer", "DDPMTrainer")
                       if hasattr(script, name))
        return trainer.main(script.parse_args(list(argv)))

    return run


@pytest.fixture(scope="module")
def rgb_autoencoder(train, rgb_image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rgb-ae")
    train("train_autoencoder.py", *TINY_LATENT, "--train_data_dir", str(rgb_image_folder), "--resolution", "32",
          "--output_dir", str(out))
    return out


@pytest.fixture(scope="module")
def rgb_ldm(train, rgb_autoencoder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rgb-ldm")  # no data flags: the autoencoder's images
    train("train_ldm.py", *TINY_LATENT, *TINY_LDM, "--pretrained_vae_model_name_or_path", str(rgb_autoencoder),
          "--class_conditional", "--output_dir", str(out))
    return out


def test_an_rgb_autoencoder_takes_the_data_shape(rgb_autoencoder, rgb_image_folder):
    config = json.loads((rgb_autoencoder / "config.json").read_text())
    assert (config["in_channels"], config["out_channels"], config["sample_size"]) == (3, 3, 32)
    metrics = json.loads((rgb_autoencoder / "metrics.json").read_text())
    assert metrics["latent_shape"] == [4, 8, 8] and metrics["global_step"] == 2
    dataset = _config(rgb_autoencoder)["dataset"]
    assert (dataset["name"], dataset["channels"], dataset["resolution"]) == (str(rgb_image_folder), 3, 32)
    assert (rgb_autoencoder / "figures" / "reconstructions.png").stat().st_size > 0


def test_a_class_conditional_ldm_on_the_autoencoders_images_loads_and_samples(rgb_ldm, rgb_autoencoder,
                                                                              rgb_image_folder):
    recorded = _config(rgb_ldm)
    assert recorded["train_data_dir"] == str(rgb_image_folder) and recorded["resolution"] == 32  # inherited
    assert recorded["dataset"] == _config(rgb_autoencoder)["dataset"]
    unet = json.loads((rgb_ldm / "unet" / "config.json").read_text())
    assert unet["num_class_embeds"] == 3 + 1 and unet["sample_size"] == 8 and unet["in_channels"] == 4
    for pipe in (LatentDDPMPipeline.from_pretrained(rgb_ldm), load(rgb_ldm)):
        images = pipe(num_inference_steps=2, sampler="ddim", class_labels=[0, 1, 2], guidance_scale=2.0,
                      generator=torch.Generator().manual_seed(0), output_type="pt").images
        assert images.shape == (3, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    array = pipe(batch_size=2, num_inference_steps=1, sampler="ddim", class_labels=[2, 0],
                 generator=torch.Generator().manual_seed(0), output_type="np").images
    assert array.shape == (2, 32, 32, 3)
    assert (rgb_ldm / "figures" / "samples.png").stat().st_size > 0


def test_other_data_than_the_autoencoders_is_one_line(train, rgb_autoencoder, grey_image_folder, tmp_path):
    with pytest.raises(SystemExit, match=r"error: the autoencoder .* was trained on .*rgb-images") as caught:
        train("train_ldm.py", *TINY_LATENT, *TINY_LDM, "--pretrained_vae_model_name_or_path", str(rgb_autoencoder),
              "--train_data_dir", str(grey_image_folder), "--output_dir", str(tmp_path / "ldm"))
    assert "channels 3 vs 1 here" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "ldm" / "training_config.json").exists()


def test_a_resolution_the_autoencoder_cannot_halve_names_working_sizes(train, rgb_image_folder, tmp_path):
    with pytest.raises(SystemExit, match=r"--resolution 30 .* multiple of 4 \(e\.g\. 28 or 32\)"):
        train("train_autoencoder.py", *TINY_LATENT, "--train_data_dir", str(rgb_image_folder), "--resolution", "30",
              "--output_dir", str(tmp_path / "ae"))


@pytest.fixture(scope="module")
def grey_vae(train, grey_image_folder, own_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grey-vae")
    train("train_vae.py", *TINY_VAE, "--train_data_dir", str(grey_image_folder), "--output_dir", str(out))
    return out


def test_a_latent_prior_over_a_grey_folder_vae_uses_its_images(train, grey_vae, grey_image_folder, tmp_path):
    out = tmp_path / "prior"
    metrics = train("train_latent_prior.py", *TINY_PRIOR, "--vae_name_or_path", str(grey_vae),
                    "--classifier_samples", "4", "--fid_samples", "6", "--fid_reference_n", "4",
                    "--output_dir", str(out))
    assert metrics["global_step"] == 2
    recorded = _config(out)
    assert recorded["train_data_dir"] == str(grey_image_folder)
    assert recorded["dataset"] == _config(grey_vae)["dataset"]
    # The classifier points are MNIST's protocol: left out here, never scored with the digit classifier.
    assert "prior_samples_classifier" not in metrics
    # Its FID points are scored against the VAE's own held-out images (the floor from its train images).
    assert [p["prior"] for p in metrics["prior_samples"]] == ["N(0, I)", "learned"]
    for point in metrics["prior_samples"]:
        assert "classifier" not in point and point["fid"]["reference"] == "held-out"
        assert point["fid"]["n_gen"] == 6 and point["fid"]["fid"] >= 0
    prior, _ = load_latent_prior(out)
    assert prior.config.latent_dim == 2
    for name in ("samples", "samples_standard_normal", "prior_samples_latent"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    with pytest.raises(SystemExit, match=r"error: the VAE .* was trained on .*resolution 28 vs 32 here"):
        train("train_latent_prior.py", *TINY_PRIOR, "--vae_name_or_path", str(grey_vae), "--train_data_dir",
              str(grey_image_folder), "--resolution", "32", "--output_dir", str(tmp_path / "other"))


def test_a_student_of_an_rgb_ddpm_keeps_its_classes_and_images(train, rgb_image_folder, tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    train("train_ddpm.py", *TINY_DDPM, "--train_data_dir", str(rgb_image_folder), "--resolution", "32",
          "--class_conditional", "--output_dir", str(teacher))
    train("distill_ddpm.py", *TINY_DISTILL, "--teacher_model_name_or_path", str(teacher), "--output_dir",
          str(student))
    assert _config(student)["dataset"] == _config(teacher)["dataset"]
    unet = UNet2DModel.from_pretrained(student, subfolder="unet")
    assert (unet.config.in_channels, unet.config.sample_size, unet.config.num_class_embeds) == (3, 32, 4)
    assert (student / "figures" / "samples.png").stat().st_size > 0


def test_the_upstream_data_rules_without_training():
    folder = ImageDatasetInfo("imgs", None, 3, 32, ["a", "b"], "study", 0, "train")
    check_upstream_data(folder, None, "the VAE v", (3, 32))  # no record (a bare model folder): its shape decides
    with pytest.raises(ImageDataError, match=r"the VAE v takes 1×28×28 images, but this run's data \(imgs\) is 3×32"):
        check_upstream_data(folder, None, "the VAE v", (1, 28))
    old_run = {"seed": 0, "split": "study"}  # recorded before the `dataset` field: the study's MNIST
    check_upstream_data(mnist_info(), old_run, "the VAE v", (1, 28))
    with pytest.raises(ImageDataError, match="the VAE v was trained on ylecun/mnist, not on this run's imgs"):
        check_upstream_data(folder, old_run, "the VAE v", (3, 32))
    # No data flags: the upstream run's are taken; any data flag given: the user's stay (then checked).
    upstream = {"train_data_dir": "imgs", "resolution": 32, "num_channels": None, "cache_dir": "/c", "seed": 7}
    mine = argparse.Namespace(dataset_name=None, train_data_dir=None, resolution=None, num_channels=None,
                              cache_dir=None, seed=0)
    taken = upstream_data_args(mine, upstream)
    assert (taken.train_data_dir, taken.resolution, taken.cache_dir, taken.seed) == ("imgs", 32, None, 0)
    assert mine.train_data_dir is None and upstream_data_args(mine, None) is mine
    given = argparse.Namespace(**{**vars(mine), "train_data_dir": "other"})
    assert upstream_data_args(given, upstream) is given
