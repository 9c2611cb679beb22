"""The Reconstruct tab (spaces_app/tabs/reconstruct.py, `hub_models.space.reconstruct`): drawings, uploads and test
digits reconstructed and scored, bad inputs refused with a message, and the examples."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from space_fixtures import REPO_ROOT, SPACE_VAE, SPACE_VAE4, app_error, digit_png, load_app_module, png

EXAMPLES = REPO_ROOT / "spaces_app" / "examples"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.flatten(), b.flatten())[0, 1])


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
    assert png(prepared).size == (280, 280)
    assert len(gallery) == 2 and all(png(item["image"]) for item in gallery)
    rows = table["data"]
    assert [r[0] for r in rows] == models
    for _, bce, kld, neg_elbo, pct in rows:
        assert bce > 0 and kld >= 0 and neg_elbo == pytest.approx(bce + kld, abs=0.02) and 0 <= pct <= 100

    # Uploads of any mode and size.
    digit = test_digits.images[0].numpy()
    paper = digit_png(tmp_path, digit, "paper.jpg", scale=20, mode="CMYK", invert=True)
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(digit.astype(np.uint16) * 257).save(sixteen)
    for path in (paper, sixteen):
        prepared, *_ = client.predict(handle_file(str(path)), models[:1], api_name="/reconstruct_upload")
        assert _corr(np.asarray(png(prepared).convert("L").resize((28, 28), Image.NEAREST)), digit) > 0.8

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
        with pytest.raises(app_error(), match=message):
            client.predict(handle_file(str(path)), ["vae-conv-z2-beta1"], api_name="/reconstruct_upload")
    with pytest.raises(app_error(), match="at least one model"):
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
        assert png(prepared).size == (280, 280) and len(gallery) == 2 and len(table["data"]) == 2, path.name
        assert "digit classifier reads" in label
