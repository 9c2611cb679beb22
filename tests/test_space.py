"""The Space: input preprocessing, the computation it relies on, and every endpoint driven through
`gradio_client` against an app launched in-process on 127.0.0.1 with tiny models saved by the fixtures."""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hub_models import ConvVAE
from hub_models.models.classifier import DigitClassifier
from hub_models.space.preprocess import InputImageError, decode_image, prepare_digit, to_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_digits(tiny_mnist_cache):
    from hub_models.data import load_splits

    _, held_out = load_splits("official", limit=64)
    return held_out


@pytest.fixture(scope="module")
def space_models(tmp_path_factory) -> dict[str, str]:
    """Random-init tiny models saved exactly as the training scripts lay them out."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    root = tmp_path_factory.mktemp("space-models")
    torch.manual_seed(0)
    ConvVAE(latent_dim=2).save_pretrained(root / "vae-conv-z2-beta1")
    (root / "vae-conv-z2-beta1" / "metrics.json").write_text(json.dumps(
        {"model": "vae", "beta": 1.0, "test": {"bce": 150.0, "kld": 6.0, "elbo": -156.0}}))
    ConvVAE(latent_dim=4).save_pretrained(root / "vae-conv-z4-beta20")
    unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    scheduler = DDPMScheduler(num_train_timesteps=4000, beta_schedule="squaredcos_cap_v2")
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(root / "ddpm")
    DigitClassifier(channels=(4, 8), hidden_dim=16).save_pretrained(root / "digit-classifier")
    return {name: str(root / name)
            for name in ("vae-conv-z2-beta1", "vae-conv-z4-beta20", "ddpm", "digit-classifier")}


def _load_app_module():
    spec = importlib.util.spec_from_file_location("space_app", REPO_ROOT / "spaces_app" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch(app, monkeypatch, sources: dict[str, str]):
    monkeypatch.setenv("GENLAB_MODELS", ",".join(f"{k}={v}" for k, v in sources.items()))
    monkeypatch.setenv("GENLAB_CALIBRATION_DIGITS", "256")
    demo = app.create_demo(config_file=None)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                **app.launch_kwargs())
    return demo


@pytest.fixture(scope="module")
def space(tiny_mnist_cache, space_models):
    from gradio_client import Client

    app = _load_app_module()
    mp = pytest.MonkeyPatch()
    demo = _launch(app, mp, space_models)
    try:
        yield demo, Client(demo.local_url, verbose=False, download_files=str(tiny_mnist_cache / "downloads"))
    finally:
        demo.close()
        mp.undo()


def _png(path) -> Image.Image:
    im = Image.open(path)
    assert im.format == "PNG", f"{path} is {im.format}, not a lossless PNG"
    return im


def _digit_png(tmp_path: Path, image: np.ndarray, name: str = "digit.png", scale: int = 1, mode: str = "L",
               invert: bool = False) -> Path:
    arr = 255 - image if invert else image
    im = Image.fromarray(arr.astype(np.uint8), mode="L")
    if scale > 1:
        im = im.resize((28 * scale, 28 * scale), Image.BILINEAR)
    im = im.convert(mode)
    path = tmp_path / name
    im.save(path)
    return path


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.flatten(), b.flatten())[0, 1])


# ------------------------------------------------------------------------------------------------------------
# Preprocessing: any image → a 28×28 digit like MNIST
# ------------------------------------------------------------------------------------------------------------
def test_mnist_digit_is_a_fixed_point_of_the_preprocessing(test_digits):
    for i in range(8):
        digit = test_digits.images[i].numpy()
        out = to_mnist(digit.astype(np.float32) / 255)
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert _corr(out, digit) > 0.85, i


def test_prepared_digit_fits_20px_box_and_is_centred_by_mass():
    ink = np.zeros((600, 300), np.float32)
    ink[100:500, 140:160] = 1.0  # a tall "1" off-centre on a large canvas
    ink[100:120, 100:160] = 1.0
    out = to_mnist(ink)
    rows, cols = np.nonzero(out > 0.05)
    assert rows.max() - rows.min() + 1 == 20  # the longer side fills the 20×20 box
    assert cols.max() - cols.min() + 1 < 20  # aspect ratio kept
    cy = (out.sum(1) * np.arange(28)).sum() / out.sum()
    cx = (out.sum(0) * np.arange(28)).sum() / out.sum()
    assert abs(cy - 14.0) <= 0.5 and abs(cx - 14.0) <= 0.5  # where MNIST has its centre of mass


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_every_image_mode_decodes_to_the_same_digit(test_digits):
    digit = test_digits.images[0].numpy()
    big = Image.fromarray(digit).resize((280, 280), Image.BILINEAR)
    paper = Image.fromarray(255 - np.asarray(big))  # dark ink on white paper
    alpha_white = Image.merge("RGBA", [Image.new("L", big.size, 255)] * 3 + [big])  # white brush, transparent
    alpha_black = Image.merge("RGBA", [Image.new("L", big.size, 0)] * 3 + [big])  # black ink, transparent
    sixteen = Image.fromarray(np.asarray(big).astype(np.uint16) * 257)  # 16-bit grey
    palette = paper.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=16)
    inputs = {
        "L png": _save(big, "PNG"),
        "paper jpeg": _save(paper.convert("RGB"), "JPEG", quality=90),
        "RGBA white brush": _save(alpha_white, "PNG"),
        "RGBA black ink": _save(alpha_black, "PNG"),
        "CMYK jpeg": _save(paper.convert("CMYK"), "JPEG"),
        "16-bit png": _save(sixteen, "PNG"),
        "palette png": _save(palette, "PNG"),
        "1-bit png": _save(big.point(lambda v: 255 if v > 96 else 0).convert("1"), "PNG"),
        "LA png": _save(big.convert("LA"), "PNG"),
        "webp": _save(big, "WEBP", lossless=True),
        "bmp": _save(paper, "BMP"),
        "tiff": _save(big, "TIFF"),
    }
    for name, data in inputs.items():
        out = prepare_digit(data)[0, 0].numpy()
        assert _corr(out, digit) > 0.8, name
    # the same through arrays (numpy, channels-first torch) and PIL objects
    assert _corr(prepare_digit(np.asarray(paper))[0, 0].numpy(), digit) > 0.8
    assert _corr(prepare_digit(torch.from_numpy(np.array(big))[None])[0, 0].numpy(), digit) > 0.8
    assert _corr(prepare_digit(alpha_white)[0, 0].numpy(), digit) > 0.8


@pytest.mark.parametrize("bad, message", [
    (None, "No image"),
    (np.zeros((280, 280), np.uint8), "empty"),
    (np.full((280, 280, 3), 255, np.uint8), "empty"),
    (b"this is not an image at all", "not an image"),
    (b"", "empty"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><rect width='10' height='10'/></svg>", "not an image"),
    (np.full((28, 28), np.nan, np.float32), "NaN"),
    (np.zeros((5, 5, 7)), "shape"),
    ("/definitely/not/here.png", "not on the server"),
    ({"path": None}, "did not arrive"),
    (12345, "Unsupported"),
])
def test_bad_inputs_raise_a_readable_error(bad, message):
    with pytest.raises(InputImageError, match=message):
        prepare_digit(bad)


def test_huge_truncated_and_bomb_images_are_refused_before_decoding(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("L", (5000, 5000)).save(huge)  # 25 MP of zeros: a tiny file, a huge image
    with pytest.raises(InputImageError, match="too large"):
        prepare_digit(str(huge))
    good = _save(Image.new("L", (64, 64), 255), "PNG")
    with pytest.raises(InputImageError, match=r"damaged|truncated|could not"):
        prepare_digit(good[: len(good) // 2])
    # A PNG header that declares 100k × 100k pixels: PIL's bomb check or ours must stop it.
    bomb = bytearray(_save(Image.new("L", (8, 8)), "PNG"))
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb[16:29] = ihdr
    bomb[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(InputImageError, match=r"too many pixels|too large"):
        prepare_digit(bytes(bomb))
    with pytest.raises(InputImageError, match="too large"):
        prepare_digit(b"\x89PNG" + b"\0" * (11 * 2**20))


def test_sketchpad_value_uses_the_drawn_composite(tmp_path):
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    canvas.paste((255, 255, 255, 255), (130, 40, 150, 240))
    path = tmp_path / "composite.png"
    canvas.save(path)
    value = {"background": {"path": str(path)}, "layers": [], "composite": {"path": str(path)}}
    ink = decode_image(value)
    assert ink.shape == (280, 280) and ink.max() == 1.0 and ink[0, 0] == 0.0


# ------------------------------------------------------------------------------------------------------------
# The computation behind the tabs
# ------------------------------------------------------------------------------------------------------------
def test_lerp_and_slerp():
    from hub_models.space.logic import lerp, slerp

    a, b, t = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0]), torch.linspace(0, 1, 5)
    for path in (lerp(a, b, t), slerp(a, b, t)):
        assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    assert torch.allclose(slerp(a, b, t).norm(dim=1), torch.full((5,), 3.0), atol=1e-5)  # on the arc
    assert lerp(a, b, t)[2].norm() < 3.0  # the chord cuts inside
    assert torch.allclose(slerp(a, 2 * a, t), lerp(a, 2 * a, t))  # parallel → lerp


def test_model_sources_from_env_config_and_local_folders(tmp_path):
    from hub_models.space.logic import resolve_model_sources

    assert resolve_model_sources(env={"GENLAB_MODELS": "a=/x/a, user/repo-b ,"}) == {"a": "/x/a",
                                                                                   "repo-b": "user/repo-b"}
    (tmp_path / "release" / "vae-one").mkdir(parents=True)
    config = tmp_path / "models.json"
    config.write_text(json.dumps({"vae-one": "org/vae-one", "vae-two": "org/vae-two"}))
    env = {"GENLAB_MODELS_DIR": str(tmp_path / "release")}
    assert resolve_model_sources(config, env) == {"vae-one": str(tmp_path / "release" / "vae-one"),
                                                  "vae-two": "org/vae-two"}
    assert resolve_model_sources(None, env) == {"vae-one": str(tmp_path / "release" / "vae-one")}


def test_registry_reads_the_ddpm_fid_from_its_model_card(space_models, tmp_path):
    """metrics.json has no FID (it is measured after training): the Space shows the card's model-index value."""
    import shutil

    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from hub_models.space import logic as sl

    ddpm = tmp_path / "ddpm"
    shutil.copytree(space_models["ddpm"], ddpm)
    assert "fid" not in sl.load_registry({"ddpm": str(ddpm)}, calibration_digits=0).ddpm.metrics
    fid = EvalResult(task_type="unconditional-image-generation", dataset_type="ylecun/mnist", dataset_name="MNIST",
                     metric_type="fid", metric_value=12.34)
    ModelCard.from_template(ModelCardData(model_name="tiny-ddpm", eval_results=[fid])).save(ddpm / "README.md")
    reg = sl.load_registry({"ddpm": str(ddpm)}, calibration_digits=0)
    assert reg.ddpm.metrics["fid"] == 12.34
    assert "| 12.34 |" in _load_app_module()._about_markdown(reg)


def test_registry_calibrates_and_degrades(tiny_mnist_cache, space_models, tmp_path):
    from hub_models.space import logic as sl

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"_class_name": "Evil", "latent_dim": 2}))
    reg = sl.load_registry({"vae-conv-z2-beta1": space_models["vae-conv-z2-beta1"], "broken": str(broken),
                            "missing": str(tmp_path / "nope")}, calibration_digits=200)
    assert list(reg.vaes) == ["vae-conv-z2-beta1"] and set(reg.errors) == {"broken", "missing"}
    assert "Evil" in reg.errors["broken"]
    with pytest.raises(sl.SpaceError, match="DDPM is not loaded"):
        reg.require_ddpm()
    entry = reg.vaes["vae-conv-z2-beta1"]
    assert entry.beta == 1.0 and entry.means.shape == (200, 2) and len(entry.calibration) == 200
    assert np.all(np.diff(entry.calibration) >= 0)
    assert sl.anomaly_percentile(entry, entry.calibration[0] - 1) == 0.0
    assert sl.anomaly_percentile(entry, entry.calibration[-1] + 1) == 100.0
    assert sl.anomaly_percentile(entry, float(np.median(entry.calibration))) == pytest.approx(50, abs=1)
    # the calibration is cached, keyed by weights and digits, and a warm start reuses it exactly
    assert sl._calibration_cache_file(entry, reg.test).is_file()
    again = sl.load_registry({"v": space_models["vae-conv-z2-beta1"]}, calibration_digits=200).vaes["v"]
    assert np.array_equal(again.calibration, entry.calibration) and np.array_equal(again.means, entry.means)
    # the map's pixel ↔ latent mapping round-trips
    m = sl.latent_map(entry, (0, 1))
    u, v = m.to_latent(*m.to_pixel(0.7, -1.2))
    assert (u, v) == pytest.approx((0.7, -1.2), abs=1e-6)
    assert m.to_latent(0, 0) is None  # outside the axes


# ------------------------------------------------------------------------------------------------------------
# The app, in-process, through gradio_client
# ------------------------------------------------------------------------------------------------------------
def _app_error():
    from gradio_client.exceptions import AppError

    return AppError


def test_api_lists_every_public_endpoint(space):
    _, client = space
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    expected = {"/vae_generate", "/ddpm_generate", "/select_vae", "/decode_latent", "/latent_views",
                "/reset_latent", "/reconstruct_drawing", "/reconstruct_upload", "/reconstruct_test_digit",
                "/interpolate", "/pick_test_digit_a", "/pick_test_digit_b"}
    assert expected <= names, expected - names


def test_vae_generate(space):
    _, client = space
    a = _png(client.predict("vae-conv-z2-beta1", 16, 3, api_name="/vae_generate"))
    b = _png(client.predict("vae-conv-z2-beta1", 16, 3, api_name="/vae_generate"))
    c = _png(client.predict("vae-conv-z2-beta1", 16, 4, api_name="/vae_generate"))
    assert a.size == (4 * (4 * 28 + 5 * 2),) * 2  # 4×4 grid, 4× nearest upscale
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))
    with pytest.raises(_app_error(), match=r"greater than maximum|between"):
        client.predict("vae-conv-z2-beta1", 10_000, 0, api_name="/vae_generate")
    with pytest.raises(_app_error(), match=r"not in the list of choices|Unknown VAE"):
        client.predict("no-such-model", 4, 0, api_name="/vae_generate")


def test_decode_latent_live_slider(space):
    _, client = space
    base = ["vae-conv-z2-beta1", 0.0, 0.0] + [0.0] * 2
    img0 = _png(client.predict(*base, api_name="/decode_latent"))
    assert img0.size == (112, 112)
    moved = list(base)
    moved[1] = 2.5
    img1 = _png(client.predict(*moved, api_name="/decode_latent"))
    assert not np.array_equal(np.asarray(img0), np.asarray(img1))
    for bad, message in [(1e9, "between"), ("nan", "finite"), ("-inf", "finite"), ("abc", "number"),
                         (None, "number")]:
        values = list(base)
        values[1] = bad
        with pytest.raises(_app_error(), match=message):
            client.predict(*values, api_name="/decode_latent")
    # The 4-D model uses all four sliders.
    four = _png(client.predict("vae-conv-z4-beta20", 0.0, 0.0, 0.0, 1.5, api_name="/decode_latent"))
    four0 = _png(client.predict("vae-conv-z4-beta20", 0.0, 0.0, 0.0, 0.0, api_name="/decode_latent"))
    assert not np.array_equal(np.asarray(four), np.asarray(four0))


def test_latent_explorer_views(space):
    _, client = space
    out = client.predict("vae-conv-z4-beta20", api_name="/select_vae")
    *slider_values, dim_x, dim_y, digit, latent_map, grid = out
    assert len(slider_values) == 4 and all(v["value"] == 0 and v["visible"] for v in slider_values)
    assert (dim_x["value"], dim_y["value"], dim_x["visible"]) == ("z1", "z2", True)
    _png(digit), _png(latent_map)
    assert _png(grid).size == (15 * 28 * 2,) * 2
    _, g13 = client.predict("vae-conv-z4-beta20", "z1", "z3", 0.5, 0.0, -0.5, 0.0, api_name="/latent_views")
    _, g12 = client.predict("vae-conv-z4-beta20", "z1", "z2", 0.5, 0.0, -0.5, 0.0, api_name="/latent_views")
    assert not np.array_equal(np.asarray(_png(g13)), np.asarray(_png(g12)))
    with pytest.raises(_app_error(), match="two different dimensions"):
        client.predict("vae-conv-z4-beta20", "z2", "z2", 0, 0, 0, 0, api_name="/latent_views")
    reset = client.predict("vae-conv-z2-beta1", api_name="/reset_latent")
    assert _png(reset[-1]).size == (112, 112)


def test_reconstruct_drawing_upload_and_test_digit(space, test_digits, tmp_path):
    from gradio_client import handle_file

    _, client = space
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    canvas.paste((255, 255, 255, 255), (130, 40, 150, 240))  # a drawn "1"
    canvas.save(tmp_path / "composite.png")
    drawing = {"background": handle_file(str(tmp_path / "composite.png")), "layers": [],
               "composite": handle_file(str(tmp_path / "composite.png"))}
    models = ["vae-conv-z2-beta1", "vae-conv-z4-beta20"]
    prepared, label, gallery, table = client.predict(drawing, models, api_name="/reconstruct_drawing")
    assert _png(prepared).size == (280, 280)
    assert len(gallery) == 2 and all(_png(item["image"]) for item in gallery)
    rows = table["data"]
    assert [r[0] for r in rows] == models
    for _, bce, kld, neg_elbo, pct in rows:
        assert bce > 0 and kld >= 0 and neg_elbo == pytest.approx(bce + kld, abs=0.02) and 0 <= pct <= 100

    # Uploads of any mode and size.
    digit = test_digits.images[0].numpy()
    paper = _digit_png(tmp_path, digit, "paper.jpg", scale=20, mode="CMYK", invert=True)
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(digit.astype(np.uint16) * 257).save(sixteen)
    for path in (paper, sixteen):
        prepared, *_ = client.predict(handle_file(str(path)), models[:1], api_name="/reconstruct_upload")
        assert _corr(np.asarray(_png(prepared).convert("L").resize((28, 28), Image.NEAREST)), digit) > 0.8

    prepared, label, *_ = client.predict("3", models[:1], api_name="/reconstruct_test_digit")
    assert "a **3**" in label and "digit classifier reads" in label


def test_reconstruct_rejects_bad_input_with_a_message(space, tmp_path):
    from gradio_client import handle_file

    _, client = space
    (tmp_path / "notes.txt").write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("L", (5000, 5000)).save(huge)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (280, 280), (255, 255, 255)).save(blank)
    for path, message in [(tmp_path / "notes.txt", "not an image"), (huge, "too large"), (blank, "empty")]:
        with pytest.raises(_app_error(), match=message):
            client.predict(handle_file(str(path)), ["vae-conv-z2-beta1"], api_name="/reconstruct_upload")
    with pytest.raises(_app_error(), match="at least one model"):
        client.predict("3", [], api_name="/reconstruct_test_digit")
    # An empty canvas (the Sketchpad reports its blank canvas on load) gets a message beside the result.
    Image.new("RGBA", (280, 280), (0, 0, 0, 255)).save(tmp_path / "black.png")
    black = handle_file(str(tmp_path / "black.png"))
    result = client.predict({"background": black, "layers": [], "composite": black}, ["vae-conv-z2-beta1"],
                            api_name="/reconstruct_drawing")
    prepared, label, gallery, table = result  # the message in place, every other output unchanged
    assert "empty" in label and all(r == {"__type__": "update"} for r in (prepared, gallery, table))
    # Bigger than max_file_size: refused at upload.
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (11 * 2**20))
    with pytest.raises(Exception, match=r"(?i)too large|maximum|size"):
        client.predict(handle_file(str(big)), ["vae-conv-z2-beta1"], api_name="/reconstruct_upload")


def test_interpolate(space, test_digits, tmp_path):
    from gradio_client import handle_file

    _, client = space
    a = _digit_png(tmp_path, test_digits.images[0].numpy(), "a.png", scale=10)
    b = _digit_png(tmp_path, test_digits.images[1].numpy(), "b.png", scale=10)
    ed = [{"background": handle_file(str(p)), "layers": [], "composite": handle_file(str(p))} for p in (a, b)]
    lerp_strip, slerp_strip = client.predict(*ed, "vae-conv-z2-beta1", 6, api_name="/interpolate")
    width = 4 * (8 * 28 + 9 * 2)  # A + 6 steps + B, 4× upscale
    assert _png(lerp_strip).size[0] == width and _png(slerp_strip).size[0] == width
    picked = client.predict("7", api_name="/pick_test_digit_a")
    assert _png(picked["composite"]).size == (280, 280)
    with pytest.raises(_app_error(), match="steps"):
        client.predict(*ed, "vae-conv-z2-beta1", 1000, api_name="/interpolate")


def test_ddpm_streams_and_validates(space):
    _, client = space
    job = client.submit("dpmsolver++", 6, 4, 0, api_name="/ddpm_generate")
    updates = list(job)  # every streamed (image, status)
    assert len(updates) >= 3
    final_image, final_status = job.result()
    assert "done" in final_status and _png(final_image).size == (3 * (2 * 28 + 3 * 2),) * 2
    for args, message in [(("euler", 5, 4, 0), "sampler|choices|Value"), (("ddim", 0, 4, 0), "minimum"),
                          (("ddim", 5, 4, -1), "minimum|seed")]:
        with pytest.raises(_app_error(), match=message):
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


def test_missing_models_degrade_with_a_message(tiny_mnist_cache, space_models, tmp_path, monkeypatch):
    from gradio_client import Client

    app = _load_app_module()
    demo = _launch(app, monkeypatch, {"vae-conv-z2-beta1": space_models["vae-conv-z2-beta1"],
                                      "ddpm": str(tmp_path / "not-trained-yet")})
    try:
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path / "dl"))
        _png(client.predict("vae-conv-z2-beta1", 4, 0, api_name="/vae_generate"))
        with pytest.raises(_app_error(), match="DDPM is not loaded"):
            client.predict("dpmsolver++", 5, 4, 0, api_name="/ddpm_generate")
    finally:
        demo.close()
    # Nothing loadable at all: the app still starts and every tab answers with the reason.
    demo = _launch(app, monkeypatch, {"vae-conv-z2-beta1": str(tmp_path / "gone")})
    try:
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path / "dl"))
        for args, api in [((None, 4, 0), "/vae_generate"), (("3", []), "/reconstruct_test_digit")]:
            with pytest.raises(_app_error(), match=r"No VAE is loaded\. vae-conv-z2-beta1: .*no such model folder"):
                client.predict(*args, api_name=api)
    finally:
        demo.close()
