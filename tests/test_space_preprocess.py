"""The Space's input preprocessing (`hub_models.space.preprocess`): any image, drawing or editor canvas → a 28×28
digit like MNIST, and the readable errors of bad inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from hub_models.space.preprocess import InputImageError, decode_image, prepare_digit, to_mnist


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.flatten(), b.flatten())[0, 1])


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
