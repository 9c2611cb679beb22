"""hub_models.diffusion.sampling: every sampler on a tiny random UNet and on an exact ε-oracle."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline

import hub_models.io as hub_io
from hub_models.diffusion.pipeline import load_ddpm, make_train_scheduler, save_pipeline
from hub_models.diffusion.sampling import SAMPLERS, make_scheduler, sample_images
from hub_models.evaluation.ddpm import Point, epsilon_error_by_timestep
from hub_models.models.unet import UNET_CONFIGS, count_parameters, make_unet


@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(0)
    return make_unet("tiny").eval()


def test_default_unet_matches_the_study_size_and_divides_28():
    config = UNET_CONFIGS["default"]
    assert len(config["block_out_channels"]) == 3  # 28 → 14 → 7, no 7 → 4 level
    params = count_parameters(make_unet("default"))
    assert 3.2e6 < params < 3.4e6, params  # the study: "3.3M parameters"


def test_unet_config_from_json(tmp_path, tiny_unet):
    tiny_unet.save_pretrained(tmp_path / "u")
    model = make_unet(tmp_path / "u" / "config.json")
    assert count_parameters(model) == count_parameters(tiny_unet)
    with pytest.raises(ValueError, match="unknown UNet config"):
        make_unet("no-such-config")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampler_shape_range_determinism_and_callback(sampler, tiny_unet):
    calls = []

    def callback(i, n, sample_t, pred_x0):
        calls.append((i, n))
        assert sample_t.shape == pred_x0.shape == (3, 1, 28, 28)
        assert torch.isfinite(sample_t).all() and pred_x0.abs().max() <= 1.0

    config = make_train_scheduler().config
    kwargs = dict(sampler=sampler, num_inference_steps=4, num_images=3)
    a = sample_images(tiny_unet, config, generator=torch.Generator().manual_seed(7), callback=callback, **kwargs)
    b = sample_images(tiny_unet, config, generator=torch.Generator().manual_seed(7), **kwargs)
    c = sample_images(tiny_unet, config, generator=torch.Generator().manual_seed(8), **kwargs)
    assert a.shape == (3, 1, 28, 28) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert calls == [(i, 4) for i in range(4)]


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_run_resumed_from_a_step_gives_the_same_digits(sampler, tiny_unet):
    """What a callback sees after step k, with the generator's state then, resumes the run at step k + 1 exactly
    (a long chunk can then survive its process); a multistep solver, which keeps earlier outputs, refuses."""
    config = make_train_scheduler().config
    kwargs = dict(sampler=sampler, num_inference_steps=6, num_images=3)
    saved = {}

    def callback(i, n, sample_t, pred_x0):
        if i == 2:
            saved.update(sample=sample_t.clone(), state=generator.get_state())

    generator = torch.Generator().manual_seed(7)
    whole = sample_images(tiny_unet, config, generator=generator, callback=callback, **kwargs)
    resumed_generator = torch.Generator()
    resumed_generator.set_state(saved["state"])
    resumed = sample_images(tiny_unet, config, generator=resumed_generator, latents=saved["sample"], first_step=3,
                            **kwargs)
    assert torch.equal(resumed, whole)
    assert not torch.equal(sample_images(tiny_unet, config, generator=torch.Generator().manual_seed(7),
                                         latents=saved["sample"], first_step=2, **kwargs), whole)
    with pytest.raises(ValueError, match="outside the schedule"):
        sample_images(tiny_unet, config, latents=saved["sample"], first_step=7, **kwargs)
    with pytest.raises(ValueError, match="expected"):
        sample_images(tiny_unet, config, latents=saved["sample"][:2], first_step=3, **kwargs)
    with pytest.raises(ValueError, match="cannot start at step 3"):
        sample_images(tiny_unet, config, latents=saved["sample"], first_step=3,
                      **{**kwargs, "sampler": "dpmsolver++"})


def test_bf16_autocast_runs_the_unet_in_bf16_and_stays_close_to_fp32(tiny_unet, monkeypatch):
    seen = []
    forward = tiny_unet.forward

    def spy(sample, timestep, *args, **kwargs):
        out = forward(sample, timestep, *args, **kwargs)
        seen.append(out.sample.dtype)
        return out

    monkeypatch.setattr(tiny_unet, "forward", spy)
    config = make_train_scheduler().config
    kwargs = dict(sampler="dpmsolver++", num_inference_steps=5, num_images=4)
    fp32 = sample_images(tiny_unet, config, generator=torch.Generator().manual_seed(3), **kwargs)
    bf16 = sample_images(tiny_unet, config, generator=torch.Generator().manual_seed(3),
                         autocast_dtype=torch.bfloat16, **kwargs)
    again = sample_images(tiny_unet, config, generator=torch.Generator().manual_seed(3),
                          autocast_dtype=torch.bfloat16, **kwargs)
    assert seen == [torch.float32] * 5 + [torch.bfloat16] * 10
    assert bf16.dtype == torch.float32 and torch.equal(bf16, again) and not torch.equal(bf16, fp32)
    assert (bf16 - fp32).abs().mean() < 0.02


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.conv2d(x, w, b, padding=1)


def test_without_native_bf16_a_convolution_keeps_bf16_arithmetic_at_fp32_speed(monkeypatch):
    """Where the CPU has no bf16 units, `autocast` computes bf16 autocast's convolutions as fp32 kernels on the
    bf16-rounded inputs, rounding the output to bf16: torch's own bf16 kernel up to the order of its fp32 sums."""
    torch.manual_seed(0)
    x, w, b = torch.randn(4, 32, 14, 14), 0.1 * torch.randn(64, 32, 3, 3), torch.randn(64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        native = _conv(x, w, b)  # torch's own bf16 kernel (emulated, slowly, on such a CPU)
    monkeypatch.setattr(hub_io, "native_cpu_bf16", lambda: False)
    with hub_io.autocast("cpu", torch.bfloat16):
        emulated = _conv(x, w, b)
    with torch.inference_mode(), hub_io.autocast("cpu", torch.bfloat16):  # as the evaluator samples
        assert torch.equal(_conv(x, w, b), emulated)
    rounded = _conv(*(t.bfloat16().float() for t in (x, w, b))).bfloat16()
    assert emulated.dtype == torch.bfloat16 and torch.equal(emulated, rounded)
    assert (emulated == native).float().mean() > 0.999  # bit for bit but where an fp32 sum's order flips a rounding
    torch.testing.assert_close(emulated.float(), native.float(), rtol=2 ** -7, atol=1e-5)  # ≤ 2 bf16 ulps
    assert (_conv(x, w, b).bfloat16() == native).float().mean() < 0.9  # fp32, rounded after, is another result

    monkeypatch.setattr(hub_io, "native_cpu_bf16", lambda: True)  # a CPU with bf16 units: plain autocast
    with hub_io.autocast("cpu", torch.bfloat16):
        assert torch.equal(_conv(x, w, b), native)
    with hub_io.autocast("cpu", None):
        assert _conv(x, w, b).dtype == torch.float32


@pytest.mark.parametrize("native", [True, False])
def test_sampling_in_bf16_computes_convolutions_in_fp32_only_without_native_bf16(native, tiny_unet, monkeypatch):
    entered = []
    mode = hub_io._convolutions_in_fp32

    def spy():
        entered.append(1)
        return mode()

    monkeypatch.setattr(hub_io, "native_cpu_bf16", lambda: native)
    monkeypatch.setattr(hub_io, "_convolutions_in_fp32", spy)
    kwargs = dict(sampler="ddpm", num_inference_steps=3, num_images=2)
    sample_images(tiny_unet, make_train_scheduler().config, **kwargs)  # fp32: never
    images = sample_images(tiny_unet, make_train_scheduler().config, autocast_dtype=torch.bfloat16, **kwargs)
    assert len(entered) == (0 if native else 3) and images.dtype == torch.float32


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_few_step_schedules_start_from_pure_noise(sampler):
    scheduler = make_scheduler(sampler, make_train_scheduler().config)
    scheduler.set_timesteps(10)
    timesteps = scheduler.timesteps.tolist()
    assert len(timesteps) == 10 and timesteps == sorted(timesteps, reverse=True)
    assert timesteps[0] == 3999  # DPM-Solver++ too: no lambda_min_clipped (docs/lab/DDPM.md#why-the-ode-samplers-stall)
    assert scheduler.config.num_train_timesteps == 4000
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"


def test_ddim_trailing_starts_at_3999():
    scheduler = make_scheduler("ddim", make_train_scheduler().config)
    scheduler.set_timesteps(25)
    assert scheduler.timesteps[0].item() == 3999 and scheduler.timesteps[-1].item() == 159


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("euler")


class EpsilonOracle(torch.nn.Module):
    """The exact ε-predictor for a data distribution concentrated on one image `target`."""

    def __init__(self, target: torch.Tensor, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target)
        self.register_buffer("alphas_cumprod", alphas_cumprod)
        self.config = SimpleNamespace(sample_size=28, in_channels=1)
        self.dtype, self.device = torch.float32, torch.device("cpu")

    def forward(self, x, t):
        a = self.alphas_cumprod[int(t)]
        return SimpleNamespace(sample=(x - a.sqrt() * self.target) / (1 - a).sqrt())


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_reaches_the_data_with_an_exact_denoiser(sampler):
    """With a perfect ε-model, every sampler must land on the only data point: catches wrong timesteps, a
    missing scale_model_input, a wrong noise scale or a swapped x0/ε."""
    train = make_train_scheduler()
    target = torch.linspace(-0.9, 0.9, 28 * 28).reshape(1, 1, 28, 28)
    oracle = EpsilonOracle(target, train.alphas_cumprod)
    images = sample_images(oracle, train.config, sampler, 10, 2, generator=torch.Generator().manual_seed(0))
    assert (images - (target / 2 + 0.5)).abs().max() < 0.02


def test_accepts_a_pipeline_and_a_run_folder(tmp_path, tiny_unet):
    scheduler = make_train_scheduler()
    save_pipeline(tiny_unet, scheduler, tmp_path)
    tiny_unet.save_pretrained(tmp_path / "unet_non_ema")
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    direct = sample_images(tiny_unet, scheduler.config, "ddim", 3, 2, generator=generator())
    from_pipe = sample_images(DDPMPipeline.from_pretrained(tmp_path), None, "ddim", 3, 2, generator=generator())
    from_dir = sample_images(str(tmp_path), None, "ddim", 3, 2, generator=generator())
    assert torch.equal(direct, from_pipe) and torch.equal(direct, from_dir)
    unet, loaded_scheduler = load_ddpm(tmp_path, use_ema=False)
    assert loaded_scheduler.config.num_train_timesteps == 4000
    assert count_parameters(unet) == count_parameters(tiny_unet)


def test_saved_scheduler_is_the_library_ddpm_sampler(tmp_path, tiny_unet):
    """The folder's own `DDPMPipeline` (trailing spacing) gives the images of `sample_images(..., "ddpm")`, so a
    card's diffusers snippet reproduces the library's ancestral sampler."""
    save_pipeline(tiny_unet, make_train_scheduler(), tmp_path)
    pipe = DDPMPipeline.from_pretrained(tmp_path)
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    theirs = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(1),
                  output_type="np").images
    ours = sample_images(tiny_unet, None, "ddpm", 4, 2, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(theirs[..., 0], ours[:, 0].numpy(), atol=1e-6)


def test_make_scheduler_overrides_one_setting():
    scheduler = make_scheduler("dpmsolver++", None, thresholding=False, final_sigmas_type="sigma_min")
    assert scheduler.config.thresholding is False and scheduler.config.final_sigmas_type == "sigma_min"
    assert scheduler.config.algorithm_type == "dpmsolver++"  # the other settings stay
    assert scheduler.config.timestep_spacing == "trailing" and scheduler.config.sample_max_value == 1.0


def test_a_point_with_overrides_samples_with_them_and_has_its_own_key(tiny_unet):
    plain = Point("dpmsolver++", 3, 4, precision="fp32")
    changed = Point("dpmsolver++", 3, 4, precision="fp32", overrides=(("thresholding", False),))
    assert changed.key == plain.key + "-thresholding=False"
    config = make_train_scheduler().config
    expected = sample_images(tiny_unet, config, make_scheduler("dpmsolver++", config, thresholding=False), 3, 4,
                             generator=torch.Generator().manual_seed(5))
    assert torch.equal(changed.sample(tiny_unet, config, 4, 5), expected)
    assert not torch.equal(plain.sample(tiny_unet, config, 4, 5), expected)  # thresholding acts on a random UNet


def test_a_step_option_reaches_every_step_of_the_loop(tiny_unet):
    """`use_clipped_model_output` is an argument of DDIM's step(), not of its config: the library's DDIM sets it
    (ε re-derived from the clipped x0, docs/DDPM.md) at every step, which is what diffusers' own step gives with
    it; as an override (False: diffusers' default) it reaches every step too."""
    config = make_train_scheduler().config

    def diffusers_loop(**step_kwargs) -> torch.Tensor:
        reference = make_scheduler("ddim", config)
        reference.set_timesteps(3)
        sample = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * reference.init_noise_sigma
        with torch.no_grad():
            for t in reference.timesteps:
                eps = tiny_unet(sample, t).sample
                sample = reference.step(eps, t, sample, **step_kwargs).prev_sample
        return (sample / 2 + 0.5).clamp(0, 1)

    ours = sample_images(tiny_unet, config, "ddim", 3, 2, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours, diffusers_loop(use_clipped_model_output=True), rtol=0, atol=1e-6)
    raw_eps = make_scheduler("ddim", config, use_clipped_model_output=False)
    plain = sample_images(tiny_unet, config, raw_eps, 3, 2, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(plain, diffusers_loop(), rtol=0, atol=1e-6)
    assert (ours - plain).abs().max() > 1e-3  # clipping acts on a random UNet: the option changes the digits
    with pytest.raises(ValueError, match=r"DPMSolverMultistepScheduler\.step takes no use_clipped_model_output"):
        make_scheduler("dpmsolver++", config, use_clipped_model_output=True)


def test_the_cards_ddim_hint_gives_the_librarys_ddim(tiny_unet):
    """A DDPM card tells diffusers users to run DDIM as `DDIMPipeline(unet, DDIMScheduler.from_config(<scheduler/>
    config))` with `use_clipped_model_output=True`: that gives the library's DDIM digits."""
    train = make_train_scheduler().config
    published = make_scheduler("ddpm", train).config  # what a release's scheduler/ holds
    pipe = DDIMPipeline(tiny_unet, DDIMScheduler.from_config(published))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                  use_clipped_model_output=True, output_type="np").images
    ours = sample_images(tiny_unet, train, "ddim", 3, 2, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(theirs[..., 0], ours[:, 0].numpy(), rtol=0, atol=1e-6)


class BatchedEpsilonOracle(EpsilonOracle):
    def forward(self, x, t):
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return SimpleNamespace(sample=(x - a.sqrt() * self.target) / (1 - a).sqrt())


def test_epsilon_error_by_timestep_is_zero_for_the_exact_denoiser_and_one_for_zero():
    train = make_train_scheduler()
    digits = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8).repeat(6, 1, 1)
    oracle = BatchedEpsilonOracle(digits[:1].unsqueeze(1).float() / 127.5 - 1, train.alphas_cumprod)
    exact = epsilon_error_by_timestep(oracle, train.config, digits, [10, 2000, 3990], batch_size=4)
    assert list(exact) == [10, 2000, 3990] and max(exact.values()) < 1e-6

    class Zero(BatchedEpsilonOracle):
        def forward(self, x, t):
            return SimpleNamespace(sample=torch.zeros_like(x))

    zero = epsilon_error_by_timestep(Zero(oracle.target, train.alphas_cumprod), train.config, digits, [5, 500])
    assert all(0.9 < v < 1.1 for v in zero.values())  # E ε² = 1
