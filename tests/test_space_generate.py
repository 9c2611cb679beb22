"""The Generate tab (spaces_app/tabs/generate.py, `hub_models.space.latent.vae_generate`,
`hub_models.space.diffusion`): the VAE grid, the DDPM's checked requests, streaming, Stop and its CPU precision."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from space_fixtures import SPACE_CDDPM, app_error, png


def test_vae_generate(space):
    _, client = space
    a = png(client.predict("vae-conv-z2-beta1", 16, 3, api_name="/vae_generate"))
    b = png(client.predict("vae-conv-z2-beta1", 16, 3, api_name="/vae_generate"))
    c = png(client.predict("vae-conv-z2-beta1", 16, 4, api_name="/vae_generate"))
    assert a.size == (4 * (4 * 28 + 5 * 2),) * 2  # 4×4 grid, 4× nearest upscale
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))
    with pytest.raises(app_error(), match=r"greater than maximum|between"):
        client.predict("vae-conv-z2-beta1", 10_000, 0, api_name="/vae_generate")
    with pytest.raises(app_error(), match=r"not in the list of choices|Unknown VAE"):
        client.predict("no-such-model", 4, 0, api_name="/vae_generate")


def test_ddpm_streams_and_validates(space):
    _, client = space
    job = client.submit("dpmsolver++", 6, 4, 0, api_name="/ddpm_generate")
    updates = list(job)  # every streamed (image, status)
    assert len(updates) >= 3
    final_image, final_status = job.result()
    assert "done" in final_status and png(final_image).size == (3 * (2 * 28 + 3 * 2),) * 2
    for args, message in [(("euler", 5, 4, 0), "sampler|choices|Value"), (("ddim", 0, 4, 0), "minimum"),
                          (("ddim", 5, 4, -1), "minimum|seed")]:
        with pytest.raises(app_error(), match=message):
            client.predict(*args, api_name="/ddpm_generate")


def test_ddpm_cancel_stops_the_sampling_thread(space):
    _, client = space
    job = client.submit("ddpm", 1000, 16, 0, api_name="/ddpm_generate")
    deadline = time.time() + 60
    while not (any(t.name == "ddpm-sampling" for t in threading.enumerate()) and job.outputs()) \
            and time.time() < deadline:
        time.sleep(0.05)
    assert any(t.name == "ddpm-sampling" for t in threading.enumerate())
    job.cancel()  # what the UI's Stop button does
    deadline = time.time() + 30
    while any(t.name == "ddpm-sampling" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(t.name == "ddpm-sampling" for t in threading.enumerate()), "sampling kept running"
    assert "done" not in job.outputs()[-1][1]


def test_the_ddpm_request_checks_digit_and_guidance(space_models, space_conditional_models):
    from hub_models.space.checks import SpaceError
    from hub_models.space.diffusion import EVERY_DIGIT, ddpm_request
    from hub_models.space.sources import load_registry

    cond = load_registry({"c": space_conditional_models[SPACE_CDDPM]}, calibration_digits=0).ddpm
    plain = load_registry({"ddpm": space_models["ddpm"]}, calibration_digits=0).ddpm
    assert cond.conditional and not plain.conditional
    req = ddpm_request(cond, "ddpm", 5, 8, 3, "7", 2.5)
    assert (req.class_labels, req.guidance, req.count) == ([7] * 8, 2.5, 8)
    every = ddpm_request(cond, "ddpm", 5, 20, 0, EVERY_DIGIT, 1)
    assert every.class_labels == [d for d in range(10) for _ in range(2)] and every.nrow == 2
    assert ddpm_request(cond, count=64, digit=EVERY_DIGIT).count == 60  # 6 per digit at most
    assert ddpm_request(cond, digit="any").class_labels is None  # unconditional (the null class)
    assert ddpm_request(plain, digit=None, guidance=3).class_labels is None
    for digit, message in [(10, "between 0 and 9"), ("-1", "between 0 and 9"), (2.5, "whole number"),
                           ("seven", "must be a number"), (True, "whole number"), ([3], "must be a number")]:
        with pytest.raises(SpaceError, match=message):
            ddpm_request(cond, digit=digit)
    for guidance, message in [(-1, "between 0 and 10"), (11, "between 0 and 10"), ("strong", "number"),
                              ("nan", "finite"), (float("inf"), "finite"), ([1], "number")]:
        with pytest.raises(SpaceError, match=f"The guidance scale must be (a )?{message}"):
            ddpm_request(cond, digit="3", guidance=guidance)
    with pytest.raises(SpaceError, match="unconditional: it cannot be asked for a digit"):
        ddpm_request(plain, digit="3")


def test_the_unet_precision_on_the_cpu(space_models, monkeypatch):
    """bf16 only where it pays: set by GENLAB_DDPM_PRECISION, or timed against fp32 at start-up ("auto"); the
    sampler then runs the U-Net in that dtype (the sweep measures its FIDs in bf16)."""
    from hub_models.space import diffusion
    from hub_models.space.checks import SpaceError
    from hub_models.space.sources import load_registry

    monkeypatch.setenv(diffusion.PRECISION_ENV, "bf16")
    entry = load_registry({"ddpm": space_models["ddpm"]}, calibration_digits=0).ddpm
    assert entry.cpu_dtype is torch.bfloat16
    assert diffusion.cpu_precision(entry.unet, "fp32") is None
    assert diffusion.cpu_precision(entry.unet, "BF16") is torch.bfloat16
    assert diffusion.cpu_precision(entry.unet, "auto", repeats=1) in (None, torch.bfloat16)
    with pytest.raises(SpaceError, match="must be auto, bf16 or fp32"):
        diffusion.cpu_precision(entry.unet, "fp16")
    calls = []
    real = diffusion.sample_images
    monkeypatch.setattr(diffusion, "sample_images",
                        lambda *a, **kw: calls.append(kw["autocast_dtype"]) or real(*a, **kw))
    bf16, _ = diffusion.ddpm_grid(entry, steps=2, count=2)
    entry.cpu_dtype = None
    fp32, _ = diffusion.ddpm_grid(entry, steps=2, count=2)
    assert calls == [torch.bfloat16, None] and bf16.size == fp32.size


def test_without_native_bf16_the_space_keeps_fp32_without_timing(monkeypatch):
    """On a CPU where bf16 is emulated (no AVX512/AMX: one call of the full-size U-Net takes seconds) "auto" picks
    fp32 without timing; an explicit GENLAB_DDPM_PRECISION still wins."""
    from hub_models.space import diffusion

    class Untimed:
        def __call__(self, *args, **kwargs):
            raise AssertionError("the U-Net was timed")

    monkeypatch.setattr(diffusion, "native_cpu_bf16", lambda: False)
    assert diffusion.cpu_precision(Untimed(), "auto") is None
    assert diffusion.cpu_precision(Untimed(), "bf16") is torch.bfloat16


def test_an_unconditional_ddpm_refuses_a_digit(space):
    _, client = space
    with pytest.raises(app_error(), match="unconditional: it cannot be asked for a digit"):
        client.predict("ddpm", 2, 2, 0, "3", 1.0, api_name="/ddpm_generate")
    image, status = client.predict("ddpm", 2, 2, 0, api_name="/ddpm_generate")  # digit and guidance omitted
    assert status.startswith("done: 2 digits") and png(image)


def test_a_v_prediction_model_samples_with_its_own_parameterisation(space_v_models):
    """Issue 39's recipe in the Space: every sampler of the Generate tab builds its scheduler from the model's own
    config (v-prediction, zero terminal SNR): the grid is the library's `sample_images` with that config, and not
    what the same UNet gives read as an ε-model."""
    from hub_models.diffusion.sampling import SAMPLERS, sample_images
    from hub_models.figures import to_pil
    from hub_models.space.diffusion import ddpm_grid, ddpm_request
    from hub_models.space.sources import load_registry

    v = load_registry({"v": space_v_models["v"]}, calibration_digits=0).ddpm
    eps = load_registry({"eps": space_v_models["eps"]}, calibration_digits=0).ddpm
    assert v.scheduler_config["prediction_type"] == "v_prediction" and v.scheduler_config["rescale_betas_zero_snr"]
    assert eps.scheduler_config["prediction_type"] == "epsilon"
    for sampler in SAMPLERS:
        image, status = ddpm_grid(v, sampler, 3, 4, 5)
        req = ddpm_request(v, sampler, 3, 4, 5)
        for entry, same in ((v, True), (eps, False)):
            digits = sample_images(entry.unet, entry.scheduler_config, sampler=sampler, num_inference_steps=3,
                                   num_images=4, generator=torch.Generator().manual_seed(5))
            assert torch.isfinite(digits).all(), (sampler, entry.name)
            expected = np.asarray(to_pil(digits, nrow=req.nrow, scale=3))
            assert np.array_equal(np.asarray(image), expected) is same, (sampler, entry.name, status)
