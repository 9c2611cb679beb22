"""train_ddpm.py, train_classifier.py and evaluate_ddpm.py on other image data than MNIST (issue 37): a greyscale
28×28 image folder and an RGB 32×32 one (3 classes each, tests/image_fixtures.py), tiny UNet, a few updates.

The scripts run in this process (their `parse_args` + the library's `main`), on a cache of their own, so the FID
statistics of the folders' held-out images are made here and never mixed with MNIST's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import DDPMPipeline
from PIL import Image

TINY_DDPM = ["--model_config", "tiny", "--max_train_steps", "2", "--train_batch_size", "4", "--eval_batch_size", "32",
             "--num_sample_images", "3", "--sample_steps", "1", "--logger", "none", "--checkpointing_steps", "none",
             "--seed", "3"]  # fmt: skip
TINY_CLASSIFIER = ["--num_epochs", "2", "--train_batch_size", "8", "--channels", "4", "8", "--hidden_dim", "16",
                   "--logger", "none", "--checkpointing_steps", "none"]  # fmt: skip
TINY_EVAL = ["--num_samples", "3", "--batch_size", "3", "--sampler", "ddpm", "--steps", "1"]


@pytest.fixture(scope="module")
def train_ddpm(load_script, own_cache):
    script = load_script("training/train_ddpm.py")

    def run(*argv: str) -> dict:
        return script.DDPMTrainer.main(script.parse_args([*TINY_DDPM, *argv]))

    return run


@pytest.fixture(scope="module")
def grey_run(train_ddpm, grey_image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grey-ddpm")
    train_ddpm("--train_data_dir", str(grey_image_folder), "--output_dir", str(out))
    return out


@pytest.fixture(scope="module")
def rgb_run(train_ddpm, rgb_image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rgb-ddpm")
    train_ddpm("--train_data_dir", str(rgb_image_folder), "--resolution", "32", "--class_conditional",
               "--output_dir", str(out))
    return out


@pytest.fixture(scope="module")
def rgb_classifier(load_script, own_cache, rgb_image_folder, tmp_path_factory) -> Path:
    script = load_script("training/train_classifier.py")
    out = tmp_path_factory.mktemp("rgb-classifier")
    script.ClassifierTrainer.main(script.parse_args([*TINY_CLASSIFIER, "--train_data_dir", str(rgb_image_folder),
                                                     "--resolution", "32", "--output_dir", str(out)]))
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_batches_and_the_unet_take_any_image_shape():
    from hub_models.diffusion.training import to_model_range
    from hub_models.models.unet import make_unet

    rgb = torch.tensor([0, 255], dtype=torch.uint8).repeat(2, 3, 16, 1)  # (2, 3, 16, 2)
    assert to_model_range(rgb).shape == (2, 3, 16, 2) and to_model_range(rgb).unique().tolist() == [-1.0, 1.0]
    assert to_model_range(rgb[:, 0]).shape == (2, 1, 16, 2)  # MNIST's (N, H, W)
    unet = make_unet("tiny", channels=3, resolution=32)
    assert (unet.config.in_channels, unet.config.out_channels, unet.config.sample_size) == (3, 3, 32)
    with pytest.raises(ValueError, match=r"multiple of 4 \(e\.g\. 28 or 32\)"):
        make_unet("tiny", channels=3, resolution=30)


def test_inception_takes_rgb_as_three_channels_and_repeats_grey():
    from hub_models.evaluation.inception import preprocess, to_uint8

    grey = torch.randint(0, 256, (2, 8, 8), dtype=torch.uint8)
    rgb = torch.stack([grey, 255 - grey, grey // 2], dim=1)
    assert torch.equal(to_uint8(rgb), rgb) and torch.equal(to_uint8(grey.unsqueeze(1)), grey)
    assert torch.equal(preprocess(grey.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()), preprocess(grey))
    x = preprocess(rgb)
    assert x.shape == (2, 3, 299, 299) and torch.equal(x[:, 0], preprocess(grey)[:, 0])
    assert torch.equal(x[:, 1], preprocess(255 - grey)[:, 0]) and not torch.equal(x[:, 0], x[:, 1])


def test_grey_folder_trains_an_unconditional_ddpm_of_its_shape(grey_run, grey_image_folder):
    import hub_models

    config = _json(grey_run / "unet" / "config.json")
    assert (config["in_channels"], config["out_channels"], config["sample_size"]) == (1, 1, 28)
    assert config["num_class_embeds"] is None
    dataset = _json(grey_run / "training_config.json")["dataset"]
    assert dataset["name"] == str(grey_image_folder) and (dataset["channels"], dataset["resolution"]) == (1, 28)
    assert len(dataset["label_names"]) == 3
    pipe = hub_models.load(grey_run)
    assert isinstance(pipe, DDPMPipeline)
    images = pipe(batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                  output_type="np").images
    assert images.shape == (2, 28, 28, 1)


def test_rgb_folder_trains_a_class_conditional_ddpm_with_its_classes(rgb_run, rgb_image_folder):
    import hub_models
    from hub_models.diffusion import ClassConditionalDDPMPipeline

    config = _json(rgb_run / "unet" / "config.json")
    assert (config["in_channels"], config["out_channels"], config["sample_size"]) == (3, 3, 32)
    assert config["num_class_embeds"] == 4  # 3 classes + the null class, last
    dataset = _json(rgb_run / "training_config.json")["dataset"]
    assert dataset["name"] == str(rgb_image_folder) and (dataset["channels"], dataset["resolution"]) == (3, 32)
    assert sorted(dataset["label_names"]) == ["bar", "cross", "square"]
    assert _json(rgb_run / "metrics.json")["num_class_embeds"] == 4

    pipe = hub_models.load(rgb_run)
    assert isinstance(pipe, ClassConditionalDDPMPipeline)
    out = pipe(class_labels=[0, 1, 2], num_inference_steps=2, generator=torch.Generator().manual_seed(0),
               output_type="pt").images
    assert out.shape == (3, 3, 32, 32) and 0 <= out.min() <= out.max() <= 1
    with pytest.raises(ValueError, match="0–2"):  # 3 is the null class, not a class to ask for
        pipe(class_labels=[3], num_inference_steps=2)
    # One row per class (3 images asked: 1 per row, 3 rows), in colour: 32 px + 2 px padding, drawn 3×.
    grid = Image.open(rgb_run / "figures" / "samples.png")
    assert grid.mode == "RGB" and grid.size == (3 * (34 + 2), 3 * (3 * 34 + 2))


def test_a_resolution_the_unet_cannot_halve_or_labels_the_data_lacks_stop_with_the_fix(
        train_ddpm, rgb_image_folder, tmp_path):
    with pytest.raises(SystemExit, match=r"--resolution 30 .*multiple of 4 \(e\.g\. 28 or 32\)"):
        train_ddpm("--train_data_dir", str(rgb_image_folder), "--resolution", "30", "--output_dir",
                   str(tmp_path / "bad"))
    assert not (tmp_path / "bad" / "training_config.json").exists()
    flat = tmp_path / "unlabelled"  # images without class sub-folders: no labels
    flat.mkdir()
    for i, png in enumerate(sorted(rgb_image_folder.rglob("*.png"))[:8]):
        shutil.copy(png, flat / f"{i}.png")
    with pytest.raises(SystemExit, match="--class_conditional needs labelled images"):
        train_ddpm("--train_data_dir", str(flat), "--class_conditional", "--output_dir", str(tmp_path / "c"))


def test_classifier_trains_on_rgb_images_with_their_shape_and_classes(rgb_classifier, rgb_image_folder):
    from hub_models.models.classifier import DigitClassifier

    model = DigitClassifier.from_pretrained(rgb_classifier)
    assert (model.config.in_channels, model.config.sample_size, model.config.num_classes) == (3, 32, 3)
    assert model.logits(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    assert _json(rgb_classifier / "training_config.json")["dataset"]["name"] == str(rgb_image_folder)


def test_evaluation_scores_against_the_runs_own_held_out_images_and_its_own_classifier(
        load_script, rgb_run, rgb_classifier, own_cache, capsys):
    from hub_models.evaluation.ddpm import describe_point, evaluation_summary

    script = load_script("scripts/evaluate_ddpm.py")
    assert script.main(script.parse_args(["--run_dir", str(rgb_run), *TINY_EVAL])) == 0
    assert "class metrics left out" in capsys.readouterr().out
    (point,) = _json(rgb_run / "evaluation.json")["points"].values()
    held_out = round(24 * 0.2)  # the folder's seeded 80/20 split
    assert point["reference"] == "held-out" and point["fid"]["reference"] == "held-out"
    assert point["fid"]["n_ref"] == held_out and point["fid"]["n_gen"] == point["fid"]["floor_n"] == 3
    assert point["fid"]["fid"] > 0 and point["fid"]["floor"] is not None
    assert point["classifier"] == {}  # never the MNIST digit classifier on other data
    assert evaluation_summary(rgb_run)["main"] == point  # the headline: the run's own held-out images
    assert "no class metrics" in describe_point(point)
    # The reference statistics are keyed by the folder's dataset identity (name + a digest of it), not MNIST's sets.
    stats = [p.name for p in (own_cache / "fid" / "stats").glob("ref-*.safetensors")]
    assert stats and all(name.startswith("ref-held-out-") for name in stats)

    argv = ["--run_dir", str(rgb_run), *TINY_EVAL, "--classifier_dir", str(rgb_classifier)]
    assert script.main(script.parse_args(argv)) == 0
    (judged,) = _json(rgb_run / "evaluation.json")["points"].values()
    assert judged["fid"] == point["fid"]  # the same images, scored again with class metrics
    assert judged["classifier"]["n"] == 3 and len(judged["classifier"]["class_counts"]) == 3
    per_class = judged["classifier"]["class_accuracy_per_digit"]  # classes 0, 1, 2 were asked for, one each
    assert len(per_class) == 3 and all(a in (0.0, 1.0) for a in per_class)
    assert judged["classifier_weights"]

    assert script.main(script.parse_args([*argv, "--reference", "mnist-test"])) == 2
    assert "its FID reference is its own held-out images" in capsys.readouterr().err
