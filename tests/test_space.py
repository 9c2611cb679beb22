"""The Space: input preprocessing, the computation it relies on, and every endpoint driven through
`gradio_client` against an app launched in-process on 127.0.0.1 with tiny models (tests/space_fixtures.py)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from space_fixtures import REPO_ROOT, SPACE_CDDPM, SPACE_CVAE, SPACE_VAE, SPACE_VAE4, launch_space, load_app_module

from hub_models.space.preprocess import InputImageError, decode_image, prepare_digit, to_mnist

EXAMPLES = REPO_ROOT / "spaces_app" / "examples"


@pytest.fixture(scope="module")
def test_digits(space_test_digits):
    return space_test_digits


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


def test_model_sources_from_env_config_and_the_release_list(tmp_path):
    from hub_models.hub.naming import release_repo_ids
    from hub_models.reference import RELEASE
    from hub_models.space.logic import resolve_model_sources

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
    from hub_models.space.logic import resolve_model_sources

    assert not (REPO_ROOT / "spaces_app" / "models.json").exists()
    assert set(resolve_model_sources(load_app_module().MODELS_CONFIG, {})) == set(RELEASE)


def test_registry_reads_the_ddpm_fid_from_its_evaluation_json(space_models, tmp_path):
    """metrics.json has no FID (it is measured after training): the Space reads the evaluation.json released next to
    the weights, and ignores points measured on other weights."""
    import shutil

    from hub_models.evaluation import Evaluation
    from hub_models.space import about
    from hub_models.space import logic as sl

    ddpm = tmp_path / "ddpm"
    shutil.copytree(space_models["ddpm"], ddpm)
    reg = sl.load_registry({"ddpm": str(ddpm)}, calibration_digits=0)
    metrics = reg.ddpm.metrics
    assert (metrics["fid"], metrics["fid_n"], metrics["fid_sampler"]) == (12.34, 1000, "ddpm")
    assert reg.ddpm.metrics["train_loss"] == 0.05  # metrics.json too
    assert "| 12.34 (N=1,000, ddpm, 25 steps) |" in about.models_markdown(reg, {})
    evaluation = Evaluation.read(ddpm)
    next(iter(evaluation.points.values()))["weights"] = "0" * 16  # measured on other weights: stale
    evaluation.write(ddpm)
    assert "fid" not in sl.load_registry({"ddpm": str(ddpm)}, calibration_digits=0).ddpm.metrics
    (ddpm / "evaluation.json").unlink()
    assert "fid" not in sl.load_registry({"ddpm": str(ddpm)}, calibration_digits=0).ddpm.metrics


def test_about_reads_the_claims_and_figures_of_the_report(tmp_path):
    from hub_models.space import about

    report = REPO_ROOT / "docs" / "REPORT.md"
    from hub_models.study.verdicts import VERDICTS

    claims = about.report_claims(report)
    assert len(claims) >= 10 and {c.verdict for c in claims} <= set(VERDICTS) == set(about.VERDICT_MARKS)
    assert any(c.claim.startswith("DDPM: FID") for c in claims)
    text = about.claims_markdown(claims, "https://example.org/report")
    assert f"**{len(claims)} claims" in text and "[the full report](https://example.org/report)" in text
    assert text.count("\n| ") == len(claims) + 1  # header + one row per claim
    # A bare pipe inside a cell of the report (`E[z|x]`) stays in its cell, escaped for the About table.
    md = tmp_path / "REPORT.md"
    md.write_text("## Claims of the study, checked\n\n| claim | measured here | rule | verdict |\n"
                  "|---|---|---|---|\n| a claim | 1.0 | Var E[z|x] > 0.01 | **partly** |\n\n## Next\n| x | y |\n")
    (claim,) = about.report_claims(md)
    assert (claim.claim, claim.measured, claim.verdict) == ("a claim", "1.0", "partly")
    assert claim.rule == "Var E[z\\|x] > 0.01"
    figures = about.report_figures(report)
    assert "figures/rate_distortion.png" in figures and all((report.parent / f).is_file() for f in figures)
    beta = about.beta_side_by_side(report.parent / "figures")
    assert beta is not None and beta.width > 3 * about.COLUMN_WIDTH
    assert about.report_claims(REPO_ROOT / "no-such-report.md") == []
    assert "not available" in about.claims_markdown([])


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
                "/interpolate", "/pick_test_digit_a", "/pick_test_digit_b", "/complete",
                "/pick_test_digit_complete", "/select_digit"}
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
    *slider_values, dim_x, dim_y, lat_class, digit, latent_map, grid = out
    assert len(slider_values) == 4 and all(v["value"] == 0 and v["visible"] for v in slider_values)
    assert lat_class["visible"] is False  # the digit selector: only for a conditional VAE
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
    # An empty canvas.
    Image.new("RGBA", (280, 280), (0, 0, 0, 255)).save(tmp_path / "black.png")
    black = handle_file(str(tmp_path / "black.png"))
    result = client.predict({"background": black, "layers": [], "composite": black}, ["vae-conv-z2-beta1"],
                            api_name="/reconstruct_drawing")
    # Nothing was drawn (the Sketchpad reports its blank canvas on load and after clearing): no error, and every
    # output keeps what it shows (a first visit keeps its example reconstruction).
    assert all(r == {"__type__": "update"} for r in result)
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

    app = load_app_module()
    demo = launch_space(app, monkeypatch, {"vae-conv-z2-beta1": space_models["vae-conv-z2-beta1"],
                                      "ddpm": str(tmp_path / "not-trained-yet")})
    try:
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path / "dl"))
        _png(client.predict("vae-conv-z2-beta1", 4, 0, api_name="/vae_generate"))
        with pytest.raises(_app_error(), match="DDPM is not loaded"):
            client.predict("dpmsolver++", 5, 4, 0, api_name="/ddpm_generate")
    finally:
        demo.close()
    # Nothing loadable at all: the app still starts and every tab answers with the reason.
    demo = launch_space(app, monkeypatch, {"vae-conv-z2-beta1": str(tmp_path / "gone")})
    try:
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path / "dl"))
        for args, api in [((None, 4, 0), "/vae_generate"), (("3", []), "/reconstruct_test_digit")]:
            with pytest.raises(_app_error(), match=r"No VAE is loaded\. vae-conv-z2-beta1: .*no such model folder"):
                client.predict(*args, api_name=api)
    finally:
        demo.close()


# ------------------------------------------------------------------------------------------------------------
# A first visit: every tab shows a result before any click
# ------------------------------------------------------------------------------------------------------------
def _initial_values(client) -> dict[str, object]:
    """elem_id → the initial value of each component, from the app's /config (what a browser gets on load)."""
    return {c["props"]["elem_id"]: c["props"].get("value") for c in client.config["components"]
            if c.get("props", {}).get("elem_id")}


def _initial_png(client, value: dict, tmp_path: Path, name: str) -> np.ndarray:
    import httpx

    data = httpx.get(value["url"], timeout=30).content
    (tmp_path / name).write_bytes(data)
    return np.asarray(_png(tmp_path / name))


def test_first_visit_shows_a_result_on_every_tab(space, tmp_path):
    """The Generate grids, the latent explorer, a reconstructed test digit, two digits and their interpolation, and
    the About tab are all in the page on load; the grids are what the buttons give with the default settings."""
    _, client = space
    values = _initial_values(client)
    for elem_id in ("vae-samples", "ddpm-samples", "decoded-digit", "latent-map", "prepared-input",
                    "interp-lerp", "interp-slerp"):
        assert isinstance(values.get(elem_id), dict) and values[elem_id].get("url"), elem_id
    assert "Made at start-up" in values["ddpm-status"] and "seed 0" in values["ddpm-status"]
    assert "test digit" in values["rec-label"] and "a **7**" in values["rec-label"]
    # By the models of the study's β series (Conv, z = 2) that are loaded: here only the tiny β = 1 one.
    assert len(values["reconstructions"]) == 1 and [row[0] for row in values["rec-table"]["data"]] == [SPACE_VAE]
    for side in ("interp-A", "interp-B"):
        assert values[side]["composite"]["url"], side  # a test digit in each editor
    # Same settings, same digits: the first view is what pressing Generate gives.
    vae = _png(client.predict(SPACE_VAE, 16, 0, api_name="/vae_generate"))
    assert np.array_equal(np.asarray(vae), _initial_png(client, values["vae-samples"], tmp_path, "vae.png"))
    from hub_models.space.logic import DEFAULT_DDPM_STEPS, DEFAULT_SAMPLER

    ddpm, status = client.predict(DEFAULT_SAMPLER, DEFAULT_DDPM_STEPS, 16, 0, api_name="/ddpm_generate")
    assert "done: 16 digits" in status
    assert np.array_equal(np.asarray(_png(ddpm)), _initial_png(client, values["ddpm-samples"], tmp_path, "ddpm.png"))
    # Complete: a test 2 with its top half hidden, completed by the DDPM beside the VAE.
    for elem_id in ("complete-input", "complete-ddpm", "complete-vae"):
        assert isinstance(values.get(elem_id), dict) and values[elem_id].get("url"), elem_id
    assert values["complete-editor"]["composite"]["url"]
    assert "Made at start-up" in values["complete-status"] and "a **2**" in values["complete-status"]


def test_the_about_tab_tells_the_study(space):
    _, client = space
    values = _initial_values(client)
    claims = values["about-claims"]
    from hub_models.space.about import report_claims

    report = report_claims(REPO_ROOT / "docs" / "REPORT.md")
    assert f"{len(report)} claims of the study, checked" in claims
    assert all(c.claim in claims and f"**{c.verdict}**" in claims for c in report)
    assert values["about-rate-distortion"]["url"] and values["about-beta"]["url"]
    models = values["about-models"]
    assert "| 12.34 (N=1,000, ddpm, 25 steps) |" in models and "| 123.4 |" in models  # evaluation.json FIDs
    assert "served from a local folder" in models


def test_reconstruct_examples(space):
    """gr.Examples on Reconstruct: a drawn 4, a photo of a 7 on paper, an inverted digit; each goes through the same
    endpoint as an upload."""
    from gradio_client import handle_file

    app = load_app_module()
    _, client = space
    examples = [EXAMPLES / name for name in app.EXAMPLES]
    assert len(examples) == 3 and all(p.is_file() for p in examples)
    for path in examples:
        prepared, label, gallery, table = client.predict(handle_file(str(path)), [SPACE_VAE, SPACE_VAE4],
                                                         api_name="/reconstruct_upload")
        assert _png(prepared).size == (280, 280) and len(gallery) == 2 and len(table["data"]) == 2, path.name
        assert "digit classifier reads" in label


def test_without_the_spaces_package_the_handlers_are_plain_functions():
    """ZeroGPU's `spaces` is optional: without it, `gpu()` returns the handler unchanged (CPU)."""
    import importlib.util

    app = load_app_module()
    if importlib.util.find_spec("spaces") is None:
        assert app.spaces is None
    handler = lambda: None  # noqa: E731
    assert app.gpu(handler) is handler  # no package, or a non-ZeroGPU machine: nothing changes


# ------------------------------------------------------------------------------------------------------------
# A class-conditional DDPM: a digit (or a row per digit) and the guidance scale
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conditional_space(tiny_mnist_cache, space_conditional_models):
    from gradio_client import Client

    app = load_app_module()
    mp = pytest.MonkeyPatch()
    demo = launch_space(app, mp, space_conditional_models, calibration_digits=64)
    try:
        yield demo, Client(demo.local_url, verbose=False, download_files=str(tiny_mnist_cache / "downloads"))
    finally:
        demo.close()
        mp.undo()


def test_the_ddpm_request_checks_digit_and_guidance(space_models, space_conditional_models):
    from hub_models.space import logic as sl

    cond = sl.load_registry({"c": space_conditional_models[SPACE_CDDPM]}, calibration_digits=0).ddpm
    plain = sl.load_registry({"ddpm": space_models["ddpm"]}, calibration_digits=0).ddpm
    assert cond.conditional and not plain.conditional
    req = sl.ddpm_request(cond, "ddpm", 5, 8, 3, "7", 2.5)
    assert (req.class_labels, req.guidance, req.count) == ([7] * 8, 2.5, 8)
    every = sl.ddpm_request(cond, "ddpm", 5, 20, 0, sl.EVERY_DIGIT, 1)
    assert every.class_labels == [d for d in range(10) for _ in range(2)] and every.nrow == 2
    assert sl.ddpm_request(cond, count=64, digit=sl.EVERY_DIGIT).count == 60  # 6 per digit at most
    assert sl.ddpm_request(cond, digit="any").class_labels is None  # unconditional (the null class)
    assert sl.ddpm_request(plain, digit=None, guidance=3).class_labels is None
    for digit, message in [(10, "between 0 and 9"), ("-1", "between 0 and 9"), (2.5, "whole number"),
                           ("seven", "must be a number"), (True, "whole number"), ([3], "must be a number")]:
        with pytest.raises(sl.SpaceError, match=message):
            sl.ddpm_request(cond, digit=digit)
    for guidance, message in [(-1, "between 0 and 10"), (11, "between 0 and 10"), ("strong", "number"),
                              ("nan", "finite"), (float("inf"), "finite"), ([1], "number")]:
        with pytest.raises(sl.SpaceError, match=f"The guidance scale must be (a )?{message}"):
            sl.ddpm_request(cond, digit="3", guidance=guidance)
    with pytest.raises(sl.SpaceError, match="unconditional: it cannot be asked for a digit"):
        sl.ddpm_request(plain, digit="3")


def test_a_conditional_ddpm_generates_the_chosen_digits(conditional_space):
    _, client = conditional_space
    values = _initial_values(client)
    assert "a row per digit" in values["ddpm-status"]  # the first visit: one row per digit
    assert values["ddpm-digit"] == "0–9 (a row each)"
    job = client.submit("ddpm", 4, 20, 0, "0–9 (a row each)", 2.0, api_name="/ddpm_generate")
    assert len(list(job)) >= 2  # streamed
    image, status = job.result()
    assert status.startswith("done: 20 digits, ddpm, 4 steps") and status.endswith("a row per digit, guidance 2")
    assert _png(image).size == (3 * (2 * 28 + 3 * 2), 3 * (10 * 28 + 11 * 2))  # 10 rows of 2
    threes, status = client.predict("ddpm", 4, 4, 0, "3", 1.0, api_name="/ddpm_generate")
    sevens, _ = client.predict("ddpm", 4, 4, 0, "7", 1.0, api_name="/ddpm_generate")
    unguided, _ = client.predict("ddpm", 4, 4, 0, "7", 0.0, api_name="/ddpm_generate")
    assert status.endswith("digit 3, guidance 1")
    a, b, c = (np.asarray(_png(x)) for x in (threes, sevens, unguided))
    assert not np.array_equal(a, b) and not np.array_equal(b, c)  # the label and the guidance both matter
    for args, message in [(("3", 11), "maximum|between"), (("3", -1), "minimum|between"),
                          (("3", "strong"), "float|number"), (("11", 1), "not in the list of choices"),
                          (("x", 1), "not in the list of choices")]:
        with pytest.raises(_app_error(), match=message):
            client.predict("ddpm", 2, 2, 0, *args, api_name="/ddpm_generate")


def test_the_ddpm_model_is_chosen_by_name(conditional_space, space_conditional_models):
    """Two DDPMs: the conditional one is the default; the unconditional one is asked for by name (the last input)."""
    from hub_models.space import logic as sl

    _, client = conditional_space
    image, status = client.predict("ddpm", 2, 3, 0, "any", 1.0, "ddpm", api_name="/ddpm_generate")
    assert status.startswith("done: 3 digits") and _png(image)
    with pytest.raises(_app_error(), match="unconditional: it cannot be asked for a digit"):
        client.predict("ddpm", 2, 2, 0, "3", 1.0, "ddpm", api_name="/ddpm_generate")
    _, status = client.predict("ddpm", 2, 2, 0, "3", 1.0, SPACE_CDDPM, api_name="/ddpm_generate")
    assert status.endswith("digit 3, guidance 1")
    for bad in ("nope", ""):
        with pytest.raises(_app_error(), match="not in the list of choices"):
            client.predict("ddpm", 2, 2, 0, "any", 1.0, bad, api_name="/ddpm_generate")
    reg = sl.load_registry(space_conditional_models, calibration_digits=0)
    assert list(reg.ddpms) == [SPACE_CDDPM, "ddpm"] and reg.ddpm.name == SPACE_CDDPM
    assert reg.require_ddpm("ddpm").conditional is False and reg.require_ddpm(None) is reg.ddpm
    for bad in ("nope", ["ddpm"], 3):
        with pytest.raises(sl.SpaceError, match="Unknown DDPM"):
            reg.require_ddpm(bad)


def test_the_unet_precision_on_the_cpu(space_models, monkeypatch):
    """bf16 only where it pays: set by GENLAB_DDPM_PRECISION, or timed against fp32 at start-up ("auto"); the
    sampler then runs the U-Net in that dtype (the sweep measures its FIDs in bf16)."""
    from hub_models.space import logic as sl

    monkeypatch.setenv(sl.PRECISION_ENV, "bf16")
    entry = sl.load_registry({"ddpm": space_models["ddpm"]}, calibration_digits=0).ddpm
    assert entry.cpu_dtype is torch.bfloat16
    assert sl.cpu_precision(entry.unet, "fp32") is None and sl.cpu_precision(entry.unet, "BF16") is torch.bfloat16
    assert sl.cpu_precision(entry.unet, "auto", repeats=1) in (None, torch.bfloat16)
    with pytest.raises(sl.SpaceError, match="must be auto, bf16 or fp32"):
        sl.cpu_precision(entry.unet, "fp16")
    calls = []
    real = sl.sample_images
    monkeypatch.setattr(sl, "sample_images", lambda *a, **kw: calls.append(kw["autocast_dtype"]) or real(*a, **kw))
    bf16, _ = sl.ddpm_grid(entry, steps=2, count=2)
    entry.cpu_dtype = None
    fp32, _ = sl.ddpm_grid(entry, steps=2, count=2)
    assert calls == [torch.bfloat16, None] and bf16.size == fp32.size


def test_without_native_bf16_the_space_keeps_fp32_without_timing(monkeypatch):
    """On a CPU where bf16 is emulated (no AVX512/AMX: one call of the full-size U-Net takes seconds) "auto" picks
    fp32 without timing; an explicit GENLAB_DDPM_PRECISION still wins."""
    from hub_models.space import logic as sl

    class Untimed:
        def __call__(self, *args, **kwargs):
            raise AssertionError("the U-Net was timed")

    monkeypatch.setattr(sl, "native_cpu_bf16", lambda: False)
    assert sl.cpu_precision(Untimed(), "auto") is None
    assert sl.cpu_precision(Untimed(), "bf16") is torch.bfloat16


def test_an_unconditional_ddpm_refuses_a_digit(space):
    _, client = space
    with pytest.raises(_app_error(), match="unconditional: it cannot be asked for a digit"):
        client.predict("ddpm", 2, 2, 0, "3", 1.0, api_name="/ddpm_generate")
    image, status = client.predict("ddpm", 2, 2, 0, api_name="/ddpm_generate")  # digit and guidance omitted
    assert status.startswith("done: 2 digits") and _png(image)


# ------------------------------------------------------------------------------------------------------------
# The Complete tab
# ------------------------------------------------------------------------------------------------------------
def _editor_file(tmp_path: Path, image: Image.Image, name: str) -> dict:
    from gradio_client import handle_file

    image.save(tmp_path / name)
    return {"background": handle_file(str(tmp_path / name)), "layers": [],
            "composite": handle_file(str(tmp_path / name))}


def test_prepare_canvas_keeps_the_position_and_reads_red_as_the_mask(test_digits):
    from hub_models.space.preprocess import prepare_canvas

    digit = test_digits.images[0].numpy()
    big = Image.fromarray(digit).resize((280, 280), Image.NEAREST).convert("RGBA")
    x, painted = prepare_canvas({"background": None, "layers": [], "composite": big})
    assert np.array_equal((x[0, 0].numpy() * 255).round(), digit) and not painted.any()  # no re-centring
    big.paste((255, 0, 0, 255), (0, 0, 280, 100))  # the red brush over the top 10 rows
    x, painted = prepare_canvas({"background": None, "layers": [], "composite": big})
    assert painted[:10].all() and not painted[10:].any() and not x[0, 0, :10].any()
    paper = Image.fromarray(255 - digit).resize((56, 56), Image.NEAREST)  # dark ink on light paper: inverted
    assert float(prepare_canvas(paper)[0].sum()) == pytest.approx(float(digit.sum()) / 255, rel=0.02)
    with pytest.raises(InputImageError, match="No image"):
        prepare_canvas({"background": None, "layers": [], "composite": None})


def test_complete_and_denoise_endpoints(space, test_digits, tmp_path):
    _, client = space
    digit = test_digits.images[1].numpy()
    big = Image.fromarray(digit).resize((280, 280), Image.NEAREST).convert("RGBA")
    editor = _editor_file(tmp_path, big, "digit.png")
    shown, ddpm, vae, status = client.predict(editor, "top half", "complete", 0.5, SPACE_VAE, 0, api_name="/complete")
    assert "completed 392 hidden pixels" in status and SPACE_VAE in status
    out, original = np.asarray(_png(ddpm)), np.asarray(big.convert("L"))
    assert out.shape == (280, 280) and _png(vae).size == (280, 280)
    assert np.abs(out[140:].astype(int) - original[140:]).max() <= 1  # the known half, kept
    assert np.abs(out[:140].astype(int) - original[:140]).mean() > 5  # the hidden half, generated
    assert np.asarray(_png(shown).convert("RGB"))[0, 0].tolist() == [115, 20, 20]  # hidden: shown in red
    # Red paint only: the painted corner is completed, everything else kept.
    painted = big.copy()
    painted.paste((255, 0, 0, 255), (0, 0, 140, 140))
    _, ddpm, _, status = client.predict(_editor_file(tmp_path, painted, "painted.png"), "red paint only",
                                        "complete", 0.5, SPACE_VAE, 0, api_name="/complete")
    out = np.asarray(_png(ddpm)).astype(int)
    assert "completed 196 hidden pixels" in status
    assert np.abs(out[140:] - original[140:]).max() <= 1 and np.abs(out[:140, 140:] - original[:140, 140:]).max() <= 1
    # Denoise: level 0 gives the digit back; a level adds noise and takes it away again.
    _, ddpm, _, status = client.predict(editor, "top half", "denoise", 0, SPACE_VAE, 0, api_name="/complete")
    assert np.abs(np.asarray(_png(ddpm)).astype(int) - original).max() <= 1 and "noised for 0 of 4000" in status
    noisy, ddpm, vae, status = client.predict(editor, "top half", "denoise", 0.3, SPACE_VAE, 0, api_name="/complete")
    assert "noised for 1200 of 4000 steps" in status
    assert np.abs(np.asarray(_png(noisy)).astype(int) - original).mean() > 5
    # A test digit picked into the editor.
    picked = client.predict("5", api_name="/pick_test_digit_complete")
    assert picked["composite"]


def test_complete_refuses_bad_values_with_a_message(space, tmp_path):
    _, client = space
    blank = _editor_file(tmp_path, Image.new("RGBA", (280, 280), (0, 0, 0, 255)), "blank.png")
    for args, message in [(("middle", "complete", 0.5, SPACE_VAE, 0), "Unknown part to hide"),
                          (("red paint only", "complete", 0.5, SPACE_VAE, 0), "Nothing to complete"),
                          (("top half", "inpaint", 0.5, SPACE_VAE, 0), "Unknown mode"),
                          (("top half", "denoise", 1.5, SPACE_VAE, 0), "between 0 and 1"),
                          (("top half", "complete", 0.5, "nope", 0), "Unknown VAE"),
                          (("top half", "complete", 0.5, SPACE_VAE, 0, "3"), "unconditional")]:
        with pytest.raises(_app_error(), match=message):
            client.predict(blank, *args, api_name="/complete")
    # An empty canvas with a hidden half is fine: the DDPM draws the half from nothing.
    *_, status = client.predict(blank, "top half", "complete", 0.5, SPACE_VAE, 0, api_name="/complete")
    assert "completed 392" in status


def test_a_conditional_ddpm_completes_towards_a_digit(conditional_space, tmp_path):
    _, client = conditional_space
    blank = _editor_file(tmp_path, Image.new("RGBA", (280, 280), (0, 0, 0, 255)), "blank.png")
    threes = client.predict(blank, "top half", "complete", 0.5, SPACE_VAE, 0, "3", api_name="/complete")
    sevens = client.predict(blank, "top half", "complete", 0.5, SPACE_VAE, 0, "7", api_name="/complete")
    assert "guided to 3" in threes[3] and "guided to 7" in sevens[3]
    assert not np.array_equal(np.asarray(_png(threes[1])), np.asarray(_png(sevens[1])))


# ------------------------------------------------------------------------------------------------------------
# A conditional VAE: Generate (a row per digit) and the latent explorer (a digit selector); not in the other tabs
# ------------------------------------------------------------------------------------------------------------
def test_a_conditional_vae_in_generate_and_the_latent_explorer(conditional_space):
    from hub_models.space import logic as sl

    demo, client = conditional_space
    model = demo.registry.vaes[SPACE_CVAE].model
    # Generate: a row per digit (16 digits asked: 2 per row, 10 rows).
    grid = _png(client.predict(SPACE_CVAE, 16, 0, api_name="/vae_generate"))
    assert grid.size == (4 * (2 * 28 + 3 * 2), 4 * (10 * 28 + 11 * 2))
    # The explorer: the digit selector appears; the same style decodes as each chosen digit.
    *_, lat_class, digit, latent_map, grid = client.predict(SPACE_CVAE, "3", api_name="/select_vae")
    assert lat_class["visible"] is True and _png(latent_map) and _png(grid)
    threes = np.asarray(_png(client.predict(SPACE_CVAE, 0.5, -0.5, "3", api_name="/decode_latent")))
    eights = np.asarray(_png(client.predict(SPACE_CVAE, 0.5, -0.5, "8", api_name="/decode_latent")))
    assert not np.array_equal(threes, eights)
    with torch.inference_mode():
        want = model.decode(torch.tensor([[0.5, -0.5]]), torch.tensor([8]))[0, 0].numpy()
    assert np.abs(eights[::4, ::4] / 255 - want).max() <= 1 / 255 + 1e-6  # the digit the Python decoder gives
    digit, grid = client.predict(SPACE_CVAE, "z1", "z2", 0.5, -0.5, "8", api_name="/select_digit")
    assert np.array_equal(np.asarray(_png(digit)), eights) and _png(grid)
    _, grid = client.predict(SPACE_CVAE, "z1", "z2", 0.5, -0.5, "8", api_name="/latent_views")
    assert _png(grid)
    for digit, message in [("11", "not in the list of choices|between 0 and 9"), ("x", "choices|number")]:
        with pytest.raises(_app_error(), match=message):
            client.predict(SPACE_CVAE, 0.5, -0.5, digit, api_name="/decode_latent")
    # Switching back to an unconditional VAE hides the selector; its decodes ignore the digit.
    *_, lat_class, _, _, _ = client.predict(SPACE_VAE, "3", api_name="/select_vae")
    assert lat_class["visible"] is False
    # Reconstruct and Interpolate (which have no digit to give) list only unconditional VAEs and refuse it by name.
    values = {c["props"].get("label"): c["props"] for c in client.config["components"] if "props" in c}
    assert [name for _, name in values["models"]["choices"]] == [SPACE_VAE]
    with pytest.raises(_app_error(), match="not in the list of choices"):
        client.predict(1, [SPACE_CVAE], api_name="/reconstruct_test_digit")
    x = torch.zeros(1, 1, 28, 28)
    for call in (lambda e: sl.reconstruct(e, x), lambda e: sl.interpolate(e, x, x)):
        with pytest.raises(sl.SpaceError, match="is a conditional VAE"):
            call(demo.registry.vaes[SPACE_CVAE])
