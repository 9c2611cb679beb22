"""The second diffusion recipe's levers (issue 39): min-SNR-γ loss weighting, v-prediction, the zero-terminal-SNR
schedule rescale, and the flags of train_ddpm.py that set them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from hub_models.diffusion import SAMPLERS, make_train_scheduler, sample_images
from hub_models.diffusion.sampling import load_ddpm
from hub_models.diffusion.training import diffusion_loss, min_snr_weights, to_model_range
from hub_models.training.ddpm import make_ddpm_unet

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS = torch.tensor([0, 10, 500, 2000, 3500, 3999])


def _hand_snr(scheduler: DDPMScheduler, t: torch.Tensor) -> torch.Tensor:
    alpha_bar = scheduler.alphas_cumprod[t].double()
    return alpha_bar / (1 - alpha_bar)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_min_snr_weights_match_a_hand_computation(prediction_type: str) -> None:
    scheduler = make_train_scheduler(prediction_type=prediction_type)
    snr = _hand_snr(scheduler, STEPS)
    expected = {"epsilon": snr.clamp(max=5) / snr, "v_prediction": snr.clamp(max=5) / (snr + 1),
                "sample": snr.clamp(max=5)}[prediction_type]
    got = min_snr_weights(scheduler, STEPS, 5.0).double()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    if prediction_type == "epsilon":  # low-noise steps (SNR ≫ γ) are down-weighted, high-noise ones keep weight 1
        assert got[0] < 1e-3 and got[-1] == pytest.approx(1.0)


def test_zero_terminal_snr_rescale_and_its_weights() -> None:
    plain = make_train_scheduler(prediction_type="v_prediction")
    rescaled = make_train_scheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True)
    assert plain.alphas_cumprod[-1] > 0
    assert rescaled.alphas_cumprod[-1] == 0  # the last step is pure noise
    weights = min_snr_weights(rescaled, STEPS, 5.0)
    assert weights[-1] == 0 and torch.isfinite(weights).all()  # v at SNR 0: min(0, γ) / (0 + 1)
    with pytest.raises(ValueError, match="v_prediction"):
        make_train_scheduler(prediction_type="epsilon", rescale_betas_zero_snr=True)


def test_weighted_loss_is_the_weighted_mean_of_per_image_errors() -> None:
    torch.manual_seed(0)
    unet = make_ddpm_unet("tiny")
    scheduler = make_train_scheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True)
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    got = diffusion_loss(unet, scheduler, images, torch.Generator().manual_seed(3), snr_gamma=5.0)
    # The same draws by hand: noise first, then the timesteps.
    gen = torch.Generator().manual_seed(3)
    x0 = to_model_range(images)
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, 4000, (6,), generator=gen)
    pred = unet(scheduler.add_noise(x0, noise, t), t).sample
    target = scheduler.get_velocity(x0, noise, t)
    per_image = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
    snr = _hand_snr(scheduler, t).float()
    expected = (per_image * snr.clamp(max=5) / (snr + 1)).mean()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    plain = diffusion_loss(unet, scheduler, images, torch.Generator().manual_seed(3))
    torch.testing.assert_close(plain, per_image.mean(), rtol=1e-5, atol=1e-6)
    assert not torch.isclose(got, plain)


def _train(run_script, tmp_path: Path, *flags: str) -> str:
    """train_ddpm.py at tiny size, in-process (`run_script`); what it logged."""
    return run_script("training/train_ddpm.py", "--model_config", "tiny", "--train_batch_size", "32",
                      "--max_train_steps", "3", "--num_sample_images", "4", "--sample_steps", "2", "--logger", "none",
                      "--output_dir", str(tmp_path / "run"), *flags)  # fmt: skip


def test_v_prediction_run_saves_loads_and_samples_with_every_sampler(tiny_mnist_cache, tmp_path: Path,
                                                                     run_script) -> None:
    _train(run_script, tmp_path, "--prediction_type", "v_prediction", "--rescale_betas_zero_snr", "--snr_gamma", "5",
           "--lr_scheduler", "cosine", "--lr_warmup_steps", "1")
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["prediction_type"], metrics["rescale_betas_zero_snr"], metrics["snr_gamma"]) == (
        "v_prediction", True, 5.0)
    unet, scheduler = load_ddpm(run)
    assert isinstance(unet, UNet2DModel)
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.rescale_betas_zero_snr
    for sampler in SAMPLERS:
        images = sample_images(unet, scheduler.config, sampler, 3, 2, generator=torch.Generator().manual_seed(0))
        assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all(), sampler
        assert images.min() >= 0 and images.max() <= 1, sampler


@pytest.mark.parametrize(("flags", "message"), [
    (["--rescale_betas_zero_snr"], "needs --prediction_type v_prediction"),
    (["--prediction_type", "v_prediction", "--snr_gamma", "0"], "--snr_gamma must be > 0"),
])  # fmt: skip
def test_bad_recipe_flags_get_one_clear_line(tmp_path: Path, flags: list[str], message: str, load_script,
                                             capsys) -> None:
    parse_args = load_script("training/train_ddpm.py").parse_args  # in-process: argparse stops before any work
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--output_dir", str(tmp_path / "run"), *flags])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_cpu_hour_budget_stops_the_run_and_snapshots_each_multiple(tiny_mnist_cache, tmp_path: Path,
                                                                     run_script) -> None:
    every, budget = 0.0002, 0.0006  # CPU-hours: 0.72 s and 2.16 s of the updates' own CPU time
    flags = ["--max_train_steps", "100000", "--num_epochs", "1000", "--max_train_cpu_hours", str(budget),
             "--snapshot_every_cpu_hours", str(every), "--checkpointing_steps", "none"]  # fmt: skip
    _train(run_script, tmp_path, *flags)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert budget * 3600 <= metrics["train_cpu_seconds"] and metrics["global_step"] < 100000
    snapshots = sorted((run / "snapshots").iterdir(), key=lambda p: float(p.name.removeprefix("cpu_hours_")))
    assert [p.name for p in snapshots] == [f"cpu_hours_{k * every:g}" for k in (1, 2, 3)]
    steps = []
    for k, snap in enumerate(snapshots, start=1):
        clock = json.loads((snap / "metrics.json").read_text())
        assert k * every * 3600 <= clock["train_cpu_seconds"] < (k + 1) * every * 3600
        steps.append(clock["global_step"])
        unet, scheduler = load_ddpm(snap)  # a pipeline folder the evaluation scores, with the run's flags
        assert scheduler.config.num_train_timesteps == 4000 and isinstance(unet, UNet2DModel)
        assert json.loads((snap / "training_config.json").read_text())["max_train_cpu_hours"] == budget
    assert steps == sorted(steps) and steps[-1] <= metrics["global_step"]


def test_adamw_is_the_optimizer_asked_for(tiny_mnist_cache, tmp_path: Path, load_script) -> None:
    parse_args = load_script("training/train_ddpm.py").parse_args
    from hub_models.training.ddpm import DDPMTrainer

    base = ["--model_config", "tiny", "--output_dir", str(tmp_path / "run"), "--adam_weight_decay", "0.01"]
    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        _, optimizer, _ = DDPMTrainer(parse_args([*base, "--optimizer", name])).build()
        assert type(optimizer) is cls and optimizer.defaults["weight_decay"] == 0.01
