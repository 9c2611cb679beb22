"""Class-conditional sampling with classifier-free guidance: the loop, the pipeline class, saving and loading."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DiffusionPipeline, UNet2DModel
from hub_server import USER
from huggingface_hub import HfApi

from hub_models.diffusion import (
    SAMPLERS,
    ClassConditionalDDPMPipeline,
    check_guidance_scale,
    load_ddpm,
    make_train_scheduler,
    sample_images,
    save_pipeline,
)
from hub_models.hub import HubLoadError, load
from hub_models.models.unet import unet_config

NULL = 10


def make_conditional_unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(**{**unet_config("tiny"), "num_class_embeds": 11}).eval()


@pytest.fixture(scope="module")
def cond_unet() -> UNet2DModel:
    return make_conditional_unet()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LabelInjector(torch.nn.Module):
    """Looks unconditional to the loop (no num_class_embeds) and calls the UNet with fixed labels: the reference
    for "w = 1 is the conditional model" and "w = 0 is the null class"."""

    def __init__(self, unet: UNet2DModel, labels: torch.Tensor):
        super().__init__()
        self.unet, self.labels = unet, labels
        self.config = SimpleNamespace(sample_size=28, in_channels=1)

    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    def forward(self, x, t):
        return self.unet(x, t, class_labels=self.labels)


class TwoCallGuidance(LabelInjector):
    """ε_∅ + w(ε_c − ε_∅) from two separate UNet calls: the reference for the batched implementation."""

    def __init__(self, unet, labels, w):
        super().__init__(unet, labels)
        self.w = w

    def forward(self, x, t):
        cond = self.unet(x, t, class_labels=self.labels).sample
        uncond = self.unet(x, t, class_labels=torch.full_like(self.labels, NULL)).sample
        return SimpleNamespace(sample=uncond + self.w * (cond - uncond))


def count_calls(unet, monkeypatch) -> list[tuple[int, list[int] | None, torch.dtype]]:
    """Patch `unet.forward` to record (batch size, labels, output dtype) of every call."""
    calls = []
    forward = unet.forward

    def spy(sample, timestep, *args, class_labels=None, **kwargs):
        out = forward(sample, timestep, *args, class_labels=class_labels, **kwargs)
        calls.append((sample.shape[0], None if class_labels is None else class_labels.tolist(), out.sample.dtype))
        return out

    monkeypatch.setattr(unet, "forward", spy)
    return calls


LABELS = torch.tensor([0, 3, 9])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_cfg_with_each_sampler_shapes_determinism_and_one_batched_call_per_step(sampler, cond_unet, monkeypatch):
    calls = count_calls(cond_unet, monkeypatch)
    kwargs = dict(sampler=sampler, num_inference_steps=4, class_labels=LABELS, guidance_scale=2.5)
    a = sample_images(cond_unet, None, generator=gen(1), **kwargs)
    assert len(calls) == 4  # one UNet call per step, both branches in it
    assert all(n == 6 and labels == [0, 3, 9, NULL, NULL, NULL] for n, labels, _ in calls)
    b = sample_images(cond_unet, None, generator=gen(1), **kwargs)
    c = sample_images(cond_unet, None, generator=gen(2), **kwargs)
    other = sample_images(cond_unet, None, generator=gen(1), **{**kwargs, "class_labels": torch.tensor([5, 5, 5])})
    assert a.shape == (3, 1, 28, 28) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, other)  # the labels reach the UNet


@pytest.mark.parametrize("sampler", ["ddpm", "unipc"])
def test_guidance_zero_is_the_null_class_and_one_is_the_conditional_model(sampler, cond_unet, monkeypatch):
    calls = count_calls(cond_unet, monkeypatch)
    run = lambda model, **kw: sample_images(model, None, sampler, 3, generator=gen(4), **kw)  # noqa: E731
    w0 = run(cond_unet, class_labels=LABELS, guidance_scale=0)
    assert [(n, labels) for n, labels, _ in calls] == [(3, [NULL] * 3)] * 3  # one call, null branch only
    no_labels = run(cond_unet, num_images=3)
    null_reference = run(LabelInjector(cond_unet, torch.full((3,), NULL)), num_images=3)
    assert torch.equal(w0, no_labels) and torch.equal(w0, null_reference)

    calls.clear()
    w1 = run(cond_unet, class_labels=LABELS, guidance_scale=1)
    assert [(n, labels) for n, labels, _ in calls] == [(3, [0, 3, 9])] * 3  # one call, conditional branch only
    assert torch.equal(w1, run(LabelInjector(cond_unet, LABELS), num_images=3))
    assert not torch.equal(w0, w1)


@pytest.mark.parametrize("w", [0.5, 3.0])
def test_batched_guidance_equals_two_separate_calls(w, cond_unet):
    batched = sample_images(cond_unet, None, "dpmsolver++", 4, class_labels=LABELS, guidance_scale=w,
                            generator=gen(5))
    separate = sample_images(TwoCallGuidance(cond_unet, LABELS, w), None, "dpmsolver++", 4, 3, generator=gen(5))
    torch.testing.assert_close(batched, separate, atol=1e-4, rtol=0)  # batch-size rounding only


def test_bf16_autocast_with_guidance(cond_unet, monkeypatch):
    calls = count_calls(cond_unet, monkeypatch)
    kwargs = dict(sampler="dpmsolver++", num_inference_steps=3, class_labels=LABELS, guidance_scale=2.0)
    fp32 = sample_images(cond_unet, None, generator=gen(3), **kwargs)
    bf16 = sample_images(cond_unet, None, generator=gen(3), autocast_dtype=torch.bfloat16, **kwargs)
    assert [d for _, _, d in calls] == [torch.float32] * 3 + [torch.bfloat16] * 3
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert (bf16 - fp32).abs().mean() < 0.02


class ConditionalOracle(torch.nn.Module):
    """The exact denoiser of data that is one image per class (`targets[c]`; the null class has its own image),
    in any of the three parametrisations diffusers knows."""

    def __init__(self, targets: torch.Tensor, alphas_cumprod: torch.Tensor, prediction_type: str) -> None:
        super().__init__()
        self.targets, self.alphas_cumprod, self.prediction_type = targets, alphas_cumprod, prediction_type
        self.config = SimpleNamespace(sample_size=28, in_channels=1, num_class_embeds=len(targets),
                                      class_embed_type=None)
        self.dtype, self.device = torch.float32, torch.device("cpu")

    def forward(self, x, t, class_labels):
        a = self.alphas_cumprod[int(t)]
        x0 = self.targets[class_labels]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        out = {"epsilon": eps, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "sample": x0}
        return SimpleNamespace(sample=out[self.prediction_type])


def oracle_targets() -> torch.Tensor:
    ramp = torch.linspace(-0.6, 0.6, 28 * 28).reshape(1, 28, 28)
    return torch.stack([ramp * (1 if c % 2 else -1) + 0.03 * c for c in range(11)])  # (11, 1, 28, 28)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_exact_conditional_denoiser_lands_on_the_requested_class(sampler):
    train = make_train_scheduler()
    targets = oracle_targets()
    oracle = ConditionalOracle(targets, train.alphas_cumprod, "epsilon")
    labels = torch.tensor([2, 7])
    cond = sample_images(oracle, train.config, sampler, 10, class_labels=labels, guidance_scale=1, generator=gen())
    assert (cond - (targets[labels] / 2 + 0.5)).abs().max() < 0.02
    null = sample_images(oracle, train.config, sampler, 10, 2, generator=gen())
    assert (null - (targets[[NULL, NULL]] / 2 + 0.5)).abs().max() < 0.02


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++"])
def test_guidance_is_the_same_in_every_parametrisation(prediction_type, sampler):
    """Guiding v or x0 is guiding ε (affine in ε, weights summing to one): the same images up to rounding."""
    targets = oracle_targets()
    eps_train = make_train_scheduler()
    other_train = make_train_scheduler(prediction_type=prediction_type)
    kwargs = dict(num_inference_steps=8, class_labels=torch.tensor([1, 4]), guidance_scale=3.0)
    eps = sample_images(ConditionalOracle(targets, eps_train.alphas_cumprod, "epsilon"), eps_train.config,
                        sampler, generator=gen(6), **kwargs)
    other = sample_images(ConditionalOracle(targets, other_train.alphas_cumprod, prediction_type),
                          other_train.config, sampler, generator=gen(6), **kwargs)
    torch.testing.assert_close(eps, other, atol=2e-3, rtol=0)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([0, 10], r"class_labels must be digits 0–9, got \[10\]"),
        ([-1, 2], r"class_labels must be digits 0–9, got \[-1\]"),
        ([1.5, 2], "class_labels must be whole numbers 0–9"),
        ("seven", "class_labels must be whole numbers 0–9"),
        ([[1, 2]], "1-D list of digits"),
        ([], "1-D list of digits"),
    ],
)
def test_labels_outside_the_digits_get_a_clear_error(labels, message, cond_unet):
    with pytest.raises(ValueError, match=message):
        sample_images(cond_unet, None, "ddim", 2, class_labels=labels)


def test_bad_guidance_counts_and_unconditional_models_get_clear_errors(cond_unet):
    for w in (-1, float("nan"), float("inf"), "strong", [2.0], True):
        with pytest.raises(ValueError, match="guidance_scale must be"):
            sample_images(cond_unet, None, "ddim", 2, class_labels=[1], guidance_scale=w)
    assert check_guidance_scale("2.5") == 2.5
    with pytest.raises(ValueError, match="3 class_labels for num_images=2"):
        sample_images(cond_unet, None, "ddim", 2, 2, class_labels=[1, 2, 3])
    single = sample_images(cond_unet, None, "ddim", 2, 4, class_labels=7, generator=gen())
    assert torch.equal(single, sample_images(cond_unet, None, "ddim", 2, class_labels=[7] * 4, generator=gen()))
    torch.manual_seed(0)
    plain = UNet2DModel(**unet_config("tiny")).eval()
    with pytest.raises(ValueError, match="this UNet is unconditional"):
        sample_images(plain, None, "ddim", 2, class_labels=[1])
    with pytest.raises(ValueError, match="this UNet is unconditional"):
        sample_images(plain, None, "ddim", 2, guidance_scale=2)


def test_save_then_from_pretrained_round_trip(tmp_path, cond_unet):
    save_pipeline(cond_unet, make_train_scheduler(), tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "ClassConditionalDDPMPipeline"
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DDPMScheduler"]
    assert not list(tmp_path.glob("*.py"))  # no code in the folder

    pipe = ClassConditionalDDPMPipeline.from_pretrained(tmp_path)
    assert pipe.unet.config.num_class_embeds == 11
    for a, b in zip(pipe.unet.state_dict().values(), cond_unet.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # Its own scheduler (ancestral DDPM, trailing spacing) is the library's "ddpm" sampler.
    images = pipe([3, 8], guidance_scale=2, num_inference_steps=3, generator=gen(9), output_type="pt").images
    expected = sample_images(cond_unet, None, "ddpm", 3, class_labels=[3, 8], guidance_scale=2, generator=gen(9))
    assert torch.equal(images, expected)
    unipc = pipe([3, 8], guidance_scale=2, num_inference_steps=3, generator=gen(9), output_type="pt",
                 sampler="unipc").images
    assert torch.equal(unipc, sample_images(cond_unet, None, "unipc", 3, class_labels=[3, 8], guidance_scale=2,
                                            generator=gen(9)))
    as_np = pipe([3, 8], guidance_scale=2, num_inference_steps=3, generator=gen(9), output_type="np").images
    assert as_np.shape == (2, 28, 28, 1) and np.allclose(as_np[..., 0], expected[:, 0].numpy())
    pil = pipe([3, 8], guidance_scale=2, num_inference_steps=3, generator=gen(9)).images
    assert [(im.mode, im.size) for im in pil] == [("L", (28, 28))] * 2
    (unconditional,) = pipe(batch_size=3, num_inference_steps=2, output_type="pt", return_dict=False)
    assert unconditional.shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown output_type"):
        pipe([1], output_type="latent")

    unet, scheduler = load_ddpm(tmp_path)
    assert unet.config.num_class_embeds == 11 and scheduler.config.num_train_timesteps == 4000
    # A diffusers user without our class gets an immediate error that names it.
    with pytest.raises(AttributeError, match="ClassConditionalDDPMPipeline"):
        DiffusionPipeline.from_pretrained(tmp_path)


def test_save_picks_the_pipeline_class_from_the_unet(tmp_path):
    torch.manual_seed(0)
    save_pipeline(UNet2DModel(**unet_config("tiny")), make_train_scheduler(), tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    assert isinstance(DiffusionPipeline.from_pretrained(tmp_path), DDPMPipeline)


def test_loading_never_runs_code_from_the_folder(tmp_path, cond_unet):
    save_pipeline(cond_unet, make_train_scheduler(), tmp_path)
    marker = tmp_path / "ran"
    for name in ("pipeline.py", "ClassConditionalDDPMPipeline.py"):
        (tmp_path / name).write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    assert isinstance(ClassConditionalDDPMPipeline.from_pretrained(tmp_path), ClassConditionalDDPMPipeline)
    assert isinstance(load(tmp_path), ClassConditionalDDPMPipeline)
    assert not marker.exists()


def test_hub_load_accepts_only_our_class_by_its_exact_name(tmp_path, cond_unet):
    save_pipeline(cond_unet, make_train_scheduler(), tmp_path)
    pipe = load(tmp_path)
    assert isinstance(pipe, ClassConditionalDDPMPipeline)
    images = pipe([5], guidance_scale=1.5, num_inference_steps=2, generator=gen(), output_type="pt").images
    assert torch.equal(images, sample_images(cond_unet, None, "ddpm", 2, class_labels=[5], guidance_scale=1.5,
                                             generator=gen()))
    index_path = tmp_path / "model_index.json"
    index = json.loads(index_path.read_text())
    for name in ("ClassConditionalDDPMPipelin", ["pipeline", "OtherPipeline"]):
        index_path.write_text(json.dumps({**index, "_class_name": name}))
        with pytest.raises(HubLoadError, match="unknown pipeline class"):
            load(tmp_path)


def test_conditional_pipeline_through_the_offline_hub(hub, tmp_path, cond_unet):
    folder, repo_id = tmp_path / "run", f"{USER}/mnist-genlab-ddpm-conditional"
    save_pipeline(cond_unet, make_train_scheduler(), folder)
    api = HfApi()
    api.create_repo(repo_id)
    api.upload_folder(repo_id=repo_id, folder_path=folder)
    call = dict(class_labels=[0, 9], guidance_scale=3, num_inference_steps=2, output_type="pt")
    local = ClassConditionalDDPMPipeline.from_pretrained(folder)(generator=gen(2), **call).images
    remote = ClassConditionalDDPMPipeline.from_pretrained(repo_id, cache_dir=tmp_path / "c1")
    loaded = load(repo_id, cache_dir=tmp_path / "c2")
    assert isinstance(loaded, ClassConditionalDDPMPipeline)
    assert torch.equal(local, remote(generator=gen(2), **call).images)
    assert torch.equal(local, loaded(generator=gen(2), **call).images)
