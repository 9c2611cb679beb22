"""Hostile input to the Space (issue 7, item 3): a corpus of bad inputs driven through `gradio_client`
against the app launched in-process with the tiny models of `tests/space_fixtures.py`.

For every bad input: the server answers with a readable message (a `gr.Error`, never the generic "Something
went wrong" fallback nor a raw Python exception), and right after it still answers a good request. Over the
whole corpus, the peak memory of the server process (this process: the app runs in-process) stays bounded.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # the hostile corpus goes through a launched Space


@pytest.fixture(scope="module")
def test_digits(space_test_digits):
    """`space` (tests/space_fixtures.py) is the app launched in-process for this module, with its own queue."""
    return space_test_digits


VAE = "vae-conv-z2-beta1"
GOOD_DECODE = (VAE, 0.5, -0.5, 0.0, 0.0)
NOT_UPLOADED = "did not arrive as an upload|not uploaded by a user"  # the app's check, or gradio's
PEAK_GROWTH_LIMIT = 1.5 * 2**30  # bytes of resident memory the corpus may add to the server's peak
MAX_MESSAGE_CHARS = 500  # a message a person can read: long hostile strings must not be echoed back
# Messages that mean the app did not handle the input itself: the app's generic fallback, gradio's wrapper
# of an exception raised while preprocessing, or a raw Python error leaking through.
UNHANDLED = ("Something went wrong", "Traceback", "object has no attribute", "unsupported operand",
             "NoneType", "could not convert", "invalid literal", "KeyError", "IndexError")
# Gradio's own checks of a value's type, made before the app sees it (the UI never sends such values): they
# name the input and the expected type, which is readable for an API caller.
GRADIO_TYPE_CHECK = re.compile(r"^(Could not preprocess input component at index \d+ .*Expected a|"
                               r"1 validation error for (ImageData|EditorData))", re.DOTALL)
# Known limit: gradio's Dropdown check repeats the whole refused value ("Value: xxx… is not in the list of
# choices"), however long. Only the sender gets it back, and the app never sees the value.
GRADIO_CHOICES_ECHO = re.compile(r"^\W?Value: .* is not in the list of choices", re.DOTALL)


def _status(field: str) -> int:
    """A `kB` field of /proc/self/status, in bytes (VmRSS: now; VmHWM: the peak since the process began)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _png_bytes(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid tiny PNG whose header declares width × height pixels (a decompression bomb's header)."""
    data = bytearray(_png_bytes(Image.new("L", (8, 8))))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _zlib_bomb_png() -> bytes:
    """A real decompression bomb: 4000×4000 (16 MP, under the pixel limit) of zeros, ~16 KB compressed,
    so the file passes the size checks and only decoding reveals 16 MB of pixels."""
    return _png_bytes(Image.new("L", (4000, 4000)), optimize=True)


def _text_bomb_png() -> bytes:
    """A PNG with a 64 MB zTXt chunk that compresses to ~64 KB (PIL's MAX_TEXT_CHUNK guard must refuse it)."""
    base = _png_bytes(Image.new("L", (28, 28), 0))
    payload = b"comment\0\0" + zlib.compress(b"A" * (64 * 2**20), 9)
    chunk = struct.pack(">I", len(payload)) + b"zTXt" + payload + struct.pack(">I", zlib.crc32(b"zTXt" + payload))
    return base[:33] + chunk + base[33:]  # right after IHDR


def _animated_gif(digit: np.ndarray) -> bytes:
    frames = [Image.fromarray(digit).resize((112, 112)), Image.new("L", (112, 112), 0),
              Image.fromarray(255 - digit).resize((112, 112))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


@dataclass
class Case:
    name: str
    api: str
    args: tuple[Any, ...]
    expect: str | None  # a regex the error message must match; None: a valid answer or any readable error
    files: dict[str, bytes] | None = None  # written to tmp files and sent with handle_file, by placeholder
    answer: str | None = None  # the drawing tab answers (not raises) with its message: a regex for its label
    raw: bool = False  # sent by hand through the REST API (NaN/Infinity tokens, which httpx refuses to encode)


def _file(name: str) -> str:
    return f"@file:{name}"


def _corpus(digit: np.ndarray) -> list[Case]:
    big = Image.fromarray(digit).resize((280, 280))
    good_png = _png_bytes(big)
    strip = np.zeros((1, 10000), np.uint8)
    strip[0, 4000:6000] = 255
    tall = np.zeros((3000, 2), np.uint8)
    tall[1000:2000] = 255
    nan_tiff = _png_bytes(Image.fromarray(np.full((28, 28), np.nan, np.float32), mode="F"), "TIFF")
    files = {
        "huge.png": _png_bytes(Image.new("L", (5000, 5000))),
        "empty.png": b"",
        "truncated.png": good_png[: len(good_png) // 2],
        "truncated_header.png": good_png[:20],
        "notes.png": b"this is not an image at all, just text",
        "svg.png": b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg' width='28' height='28'>"
                   b"<script>alert(1)</script><rect width='28' height='28' fill='white'/></svg>",
        "html.png": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)><h1>7</h1></body></html>",
        "bomb_header.png": _bomb_png(100_000, 100_000),
        "bomb_zlib.png": _zlib_bomb_png(),
        "bomb_text.png": _text_bomb_png(),
        "one_pixel.png": _png_bytes(Image.new("L", (1, 1), 255)),
        "strip.png": _png_bytes(Image.fromarray(strip)),
        "tall.png": _png_bytes(Image.fromarray(tall)),
        "animated.gif": _animated_gif(digit),
        "transparent.png": _png_bytes(Image.new("RGBA", (64, 64), (255, 255, 255, 0))),
        "nan.tiff": nan_tiff,
        "cmyk_blank.jpg": _png_bytes(Image.new("CMYK", (64, 64), (0, 0, 0, 0)), "JPEG"),
        "broken_jpeg.jpg": _png_bytes(big.convert("RGB"), "JPEG")[:600] + b"\xff\xd9",
        "wrong_ext.png": _png_bytes(big, "BMP"),  # a BMP named .png: readable, should just work
        "palette_alpha.png": _png_bytes(Image.new("P", (32, 32), 0), transparency=0),
    }
    up = "/reconstruct_upload"
    long = "x" * 200_000
    cases = [
        # --- files through the upload endpoint
        Case("huge PNG (25 MP)", up, (_file("huge.png"), [VAE]), "too large"),
        Case("zero-byte file", up, (_file("empty.png"), [VAE]), "empty"),
        Case("truncated PNG", up, (_file("truncated.png"), [VAE]), "damaged|truncated|could not"),
        Case("PNG cut inside its header", up, (_file("truncated_header.png"), [VAE]),
             "damaged|truncated|could not|not an image"),
        Case("text posing as PNG", up, (_file("notes.png"), [VAE]), "not an image"),
        Case("SVG posing as PNG", up, (_file("svg.png"), [VAE]), "not an image"),
        Case("HTML posing as PNG", up, (_file("html.png"), [VAE]), "not an image"),
        Case("bomb: header declares 100k×100k", up, (_file("bomb_header.png"), [VAE]), "too many pixels|too large"),
        Case("bomb: 16 MP of zeros in 16 KB", up, (_file("bomb_zlib.png"), [VAE]), "empty"),
        Case("bomb: 64 MB zTXt chunk", up, (_file("bomb_text.png"), [VAE]), "damaged|truncated|could not|empty"),
        Case("1×1 image", up, (_file("one_pixel.png"), [VAE]), "empty"),
        Case("10000×1 strip", up, (_file("strip.png"), [VAE]), None),
        Case("2×3000 strip", up, (_file("tall.png"), [VAE]), None),
        Case("animated GIF", up, (_file("animated.gif"), [VAE]), None),
        Case("fully transparent RGBA", up, (_file("transparent.png"), [VAE]), "transparent|empty"),
        Case("float TIFF of NaN", up, (_file("nan.tiff"), [VAE]), "NaN|empty"),
        Case("blank CMYK JPEG", up, (_file("cmyk_blank.jpg"), [VAE]), "empty"),
        Case("JPEG cut short", up, (_file("broken_jpeg.jpg"), [VAE]), None),
        Case("BMP named .png", up, (_file("wrong_ext.png"), [VAE]), None),
        Case("transparent palette PNG", up, (_file("palette_alpha.png"), [VAE]), "transparent|empty"),
        # --- wrong JSON types where a file is expected, and paths that are not uploads
        Case("server path as a string", up, ("/etc/passwd", [VAE]), "valid dictionary|did not arrive|upload", raw=True),
        Case("server path as a file dict", up, ({"path": "/etc/hostname"}, [VAE]), NOT_UPLOADED, raw=True),
        Case("server path with FileData meta", up,
             ({"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}, [VAE]), NOT_UPLOADED, raw=True),
        Case("server image outside the uploads", up, ({"path": "@outside"}, [VAE]), NOT_UPLOADED, raw=True),
        Case("missing server file", up, ({"path": "/nonexistent/x.png"}, [VAE]), NOT_UPLOADED, raw=True),
        Case("drawing: server image as composite", "/reconstruct_drawing",
             ({"background": None, "layers": [], "composite": {"path": "@outside", "meta": {
                 "_type": "gradio.FileData"}}}, [VAE]), "not uploaded by a user", raw=True),
        Case("interpolate: server image as layer", "/interpolate",
             ({"background": None, "layers": [{"path": "@outside", "meta": {"_type": "gradio.FileData"}}],
               "composite": None}, None, VAE, 5), "not uploaded by a user", raw=True),
        Case("a number instead of a file", up, (12345, [VAE]), "Unsupported|image|file"),
        Case("a list instead of a file", up, ([1, 2, 3], [VAE]), "Unsupported|image|file|empty"),
        Case("file dict without a path", up, ({"url": "http://127.0.0.1:1/x.png"}, [VAE]), "did not arrive|image"),
        Case("drawing: layers is a string", "/reconstruct_drawing",
             ({"background": None, "layers": "oops", "composite": None}, [VAE]), None),
        Case("drawing: composite is a number", "/reconstruct_drawing",
             ({"background": None, "layers": [], "composite": 7}, [VAE]), None),
        Case("models: a string, not a list", up, (_file("wrong_ext.png"), VAE), None),
        Case("models: 10000 unknown names", up, (_file("wrong_ext.png"), [long[:50]] * 10000),
             "Unknown VAE|not in the list|choices|model"),
        Case("models: nested JSON", up, (_file("wrong_ext.png"), [{"a": [1]}, None]), "model|choices|not in"),
        # --- numbers through the API
        Case("count negative", "/vae_generate", (VAE, -5, 0), "minimum|between|greater|less"),
        Case("count zero", "/vae_generate", (VAE, 0, 0), "minimum|between|greater|less"),
        Case("count 1e9", "/vae_generate", (VAE, 1e9, 0), "maximum|between|greater|less"),
        Case("count NaN", "/vae_generate", (VAE, "nan", 0), "finite|number|NaN|minimum|maximum"),
        Case("count NaN (a bare JSON NaN)", "/vae_generate", (VAE, float("nan"), 0), "finite|number|JSON",
             raw=True),
        Case("slider Infinity (bare JSON)", "/decode_latent", (VAE, float("inf"), 0.0, 0.0, 0.0, "0"),
             "finite|number|JSON", raw=True),
        Case("not JSON at all", "/decode_latent", (), "JSON|body|data|decode", raw=True),
        Case("count 2.5", "/vae_generate", (VAE, 2.5, 0), "whole|step|number|integer"),
        Case("count a string", "/vae_generate", (VAE, "16; rm -rf /", 0), "number|float"),
        Case("seed negative", "/vae_generate", (VAE, 4, -1), "minimum|seed|between"),
        Case("seed 1e30", "/vae_generate", (VAE, 4, 1e30), "seed|between|maximum"),
        Case("seed inf", "/vae_generate", (VAE, 4, "inf"), "finite|seed|number"),
        Case("seed a dict", "/vae_generate", (VAE, 4, {"a": 1}), "number|seed|float"),
        Case("model name 200k chars", "/vae_generate", (long, 4, 0), "Unknown VAE|not in the list|choices"),
        Case("model name a list", "/vae_generate", ([VAE], 4, 0), "Unknown VAE|not in the list|choices|model"),
        Case("slider 1e308", "/decode_latent", (VAE, 1e308, 0.0, 0.0, 0.0), "between"),
        Case("slider NaN", "/decode_latent", (VAE, "nan", 0.0, 0.0, 0.0), "finite"),
        Case("slider -inf", "/decode_latent", (VAE, 0.0, "-inf", 0.0, 0.0), "finite"),
        Case("slider a list", "/decode_latent", (VAE, [1.0, 2.0], 0.0, 0.0, 0.0), "number"),
        Case("slider a 200k string", "/decode_latent", (VAE, long, 0.0, 0.0, 0.0), "number"),
        Case("slider model unknown", "/decode_latent", ("../../etc/passwd", 0.0, 0.0, 0.0, 0.0), "Unknown VAE"),
        Case("slider digit 11 (an unconditional VAE ignores it)", "/decode_latent", (VAE, 0.0, 0.0, 0.0, 0.0, "11"),
             None),
        Case("views: dimension z99", "/latent_views", ("vae-conv-z4-beta20", "z99", "z1", 0, 0, 0, 0),
             "dimension|z99|choices"),
        Case("views: dimension None", "/latent_views", ("vae-conv-z4-beta20", None, {"x": 1}, 0, 0, 0, 0),
             "dimension|choices"),
        Case("DDPM steps 0", "/ddpm_generate", ("ddim", 0, 4, 0), "minimum|between"),
        Case("DDPM steps 1e6", "/ddpm_generate", ("ddim", 1e6, 4, 0), "maximum|between"),
        Case("DDPM steps NaN", "/ddpm_generate", ("ddim", "nan", 4, 0), "finite|number|minimum|maximum"),
        Case("DDPM count -1", "/ddpm_generate", ("ddim", 5, -1, 0), "minimum|between"),
        Case("DDPM count inf", "/ddpm_generate", ("ddim", 5, "inf", 0), "finite|number|maximum"),
        Case("DDPM seed -1", "/ddpm_generate", ("ddim", 5, 4, -1), "minimum|seed"),
        Case("DDPM sampler 200k chars", "/ddpm_generate", (long, 5, 4, 0), "sampler|choices|not in"),
        Case("DDPM sampler a list", "/ddpm_generate", (["ddim"], 5, 4, 0), "sampler|choices|not in"),
        Case("DDPM sampler None", "/ddpm_generate", (None, 5, 4, 0), "sampler|choices|not in"),
        Case("interpolate steps 1e9", "/interpolate",
             (_editor("wrong_ext.png"), _editor("wrong_ext.png"), VAE, 1e9), "maximum|between|steps"),
        Case("interpolate text and SVG", "/interpolate",
             (_editor("notes.png"), _editor("svg.png"), VAE, 5), "not an image"),
        Case("interpolate a bomb", "/interpolate",
             (_editor("bomb_header.png"), _editor("wrong_ext.png"), VAE, 5), "too many pixels|too large"),
        Case("test digit '11'", "/reconstruct_test_digit", ("11", [VAE]), "choices|digit|not in"),
        # --- the Complete tab: the same image checks, then its own values
        Case("complete a bomb", "/complete", (_editor("bomb_header.png"), "top half", "complete", 0.5, VAE, 0),
             "too many pixels|too large"),
        Case("complete text posing as PNG", "/complete", (_editor("notes.png"), "top half", "complete", 0.5, VAE, 0),
             "not an image"),
        Case("complete: no image", "/complete", (None, "top half", "complete", 0.5, VAE, 0), "No image"),
        Case("complete: server image as composite", "/complete",
             ({"background": None, "layers": [], "composite": {"path": "@outside", "meta": {
                 "_type": "gradio.FileData"}}}, "top half", "complete", 0.5, VAE, 0, "any"), "not uploaded by a user",
             raw=True),
        Case("complete: hide 200k chars", "/complete", (_editor("wrong_ext.png"), long, "complete", 0.5, VAE, 0),
             "part to hide"),
        Case("complete: nothing hidden", "/complete",
             (_editor("wrong_ext.png"), "red paint only", "complete", 0.5, VAE, 0), "Nothing to complete"),
        Case("complete: mode a list", "/complete", (_editor("wrong_ext.png"), "top half", ["x"], 0.5, VAE, 0),
             "mode"),
        Case("complete: level NaN", "/complete", (_editor("wrong_ext.png"), "top half", "denoise", "nan", VAE, 0),
             "finite"),
        Case("complete: level 5", "/complete", (_editor("wrong_ext.png"), "top half", "denoise", 5, VAE, 0),
             "between"),
        Case("complete: unknown VAE", "/complete", (_editor("wrong_ext.png"), "top half", "complete", 0.5, long, 0),
             "Unknown VAE"),
        Case("complete: seed -1", "/complete", (_editor("wrong_ext.png"), "top half", "complete", 0.5, VAE, -1),
             "seed|between"),
        Case("complete: a digit for an unconditional DDPM", "/complete",
             (_editor("wrong_ext.png"), "top half", "complete", 0.5, VAE, 0, "3"), "unconditional"),
        Case("test digit a dict", "/reconstruct_test_digit", ({"d": 3}, [VAE]), "choices|digit|not in"),
    ]
    for case in cases:
        case.files = files
    return cases


def _editor(name: str) -> dict[str, Any]:
    """An ImageEditor value whose background and composite are the file `name`."""
    return {"background": _file(name), "layers": [], "composite": _file(name)}


def _materialise(value: Any, files: dict[str, bytes], folder: Path) -> Any:
    """Replace "@file:NAME" by an uploaded file and "@outside" by the path of a valid digit PNG that exists on
    the server but was never uploaded (the test's tmp folder, outside gradio's upload folder)."""
    from gradio_client import handle_file

    if isinstance(value, str) and value.startswith("@file:"):
        path = folder / value.removeprefix("@file:")
        if not path.exists():
            path.write_bytes(files[path.name])
        return handle_file(str(path))
    if value == "@outside":
        path = folder / "outside.png"
        path.write_bytes(files["wrong_ext.png"])
        return str(path)
    if isinstance(value, dict):
        return {k: _materialise(v, files, folder) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and len(value) < 100:
        return type(value)(_materialise(v, files, folder) for v in value)
    return value


def _send_raw(url: str, case: Case, args: tuple[Any, ...]) -> tuple[bool, Any]:
    """POST /gradio_api/call/<name> with a hand-written body (Python's json writes NaN/Infinity as bare
    tokens; the client would upload a local file that a FileData dict names), then read the event stream:
    (True, the outputs) on `complete`, else (False, the message of its `error` event)."""
    import httpx

    body = json.dumps({"data": list(args)}).encode() if args else b"{not json"
    name = case.api.strip("/")
    with httpx.Client(base_url=url.rstrip("/") + "/gradio_api/call", timeout=60) as http:
        response = http.post(f"/{name}", content=body, headers={"content-type": "application/json"})
        if response.status_code != 200:
            return False, f"HTTP {response.status_code}: {response.text[:300]}"
        event_id = response.json()["event_id"]
        stream = http.get(f"/{name}/{event_id}").text
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", stream, re.MULTILINE)
    data = events[-1][1] if events else stream
    try:
        data = json.loads(data)
    except ValueError:
        pass
    if events and events[-1][0] == "complete":
        return True, data
    if isinstance(data, dict) and "error" in data:
        data = data["error"]
    return False, "" if data is None else str(data)


def _send(client, case: Case, folder: Path) -> tuple[bool, str]:
    """(ok, message): ok is True when the endpoint answered; otherwise the error text the user sees. An
    endpoint that answers with its message in place (the drawing tab) gives (False, that message)."""
    from gradio_client.exceptions import AppError

    args = _materialise(case.args, case.files or {}, folder)
    try:
        if case.raw:
            ok, out = _send_raw(client.src, case, args)
            if not ok:
                return False, out
        elif case.api == "/ddpm_generate":
            job = client.submit(*args, api_name=case.api)
            job.result(timeout=60)
            out = None
        else:
            out = client.predict(*args, api_name=case.api)
            if case.answer is not None and isinstance(out, (list, tuple)) and re.search(case.answer, str(out[1])):
                return False, str(out[1])
        return True, ""
    except AppError as err:
        return False, str(err)


def test_hostile_corpus_gives_readable_errors_and_never_breaks_the_server(space, test_digits, tmp_path, capsys):
    from gradio_client.exceptions import AppError

    _, client = space
    client.predict(*GOOD_DECODE, api_name="/decode_latent")  # warm: the model and PNG encoder are loaded
    client.predict(VAE, 4, 0, api_name="/vae_generate")
    rss0, peak0 = _status("VmRSS"), _status("VmHWM")
    corpus = _corpus(test_digits.images[0].numpy())
    assert len(corpus) >= 30
    failures, report = [], []
    for case in corpus:
        ok, message = _send(client, case, tmp_path)
        report.append(f"{case.name:38s} {case.api:24s} {'answered' if ok else message[:110]!s}")
        if (case.expect is not None or case.answer is not None) and ok:
            failures.append(f"{case.name}: accepted, expected an error matching {case.expect!r}")
        if not ok:
            if not message.strip() or message.strip() == "Error":
                failures.append(f"{case.name}: an error without a message")
            elif any(marker in message for marker in UNHANDLED) or (
                    "Original error" in message and not GRADIO_TYPE_CHECK.match(message)):
                failures.append(f"{case.name}: not handled by the app: {message[:300]}")
            elif len(message) > MAX_MESSAGE_CHARS and not GRADIO_CHOICES_ECHO.match(message):
                failures.append(f"{case.name}: a {len(message)}-character message: {message[:120]}…")
            elif not re.search(case.expect or case.answer or "", message, re.IGNORECASE):
                failures.append(f"{case.name}: message {message[:200]!r} does not match {case.expect!r}")
        # The server still answers a good request after every bad one.
        try:
            client.predict(*GOOD_DECODE, api_name="/decode_latent")
        except AppError as err:  # pragma: no cover - the failure message says it all
            failures.append(f"{case.name}: the next good request failed: {err}")
    rss1, peak1 = _status("VmRSS"), _status("VmHWM")
    with capsys.disabled():
        print(f"\nhostile corpus: {len(corpus)} inputs; server RSS {rss0 / 2**20:.0f} → {rss1 / 2**20:.0f} MiB, "
              f"peak (VmHWM) {peak0 / 2**20:.0f} → {peak1 / 2**20:.0f} MiB "
              f"(+{(peak1 - peak0) / 2**20:.0f} MiB)")
        if os.environ.get("HOSTILE_VERBOSE"):
            print("\n".join(report))
    assert not failures, "\n".join(failures)
    assert peak1 - peak0 < PEAK_GROWTH_LIMIT, f"peak memory grew by {(peak1 - peak0) / 2**20:.0f} MiB"


def test_max_file_size_is_enforced_at_upload(space, tmp_path):
    """A file over max_file_size is refused by the upload route itself (HTTP 413), before any handler runs,
    and nothing of it is left in gradio's upload folder."""
    import httpx
    from gradio.utils import get_upload_folder
    from gradio_client import handle_file

    from hub_models.space.preprocess import MAX_UPLOAD_BYTES

    demo, client = space
    assert demo.max_file_size == MAX_UPLOAD_BYTES
    before = {p.name for p in Path(get_upload_folder()).rglob("*") if p.is_file()}
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_UPLOAD_BYTES + 1024))
    with big.open("rb") as f:
        response = httpx.post(demo.local_url.rstrip("/") + "/gradio_api/upload", files={"files": f}, timeout=60)
    assert response.status_code == 413, (response.status_code, response.text[:200])
    assert "big.png" not in {p.name for p in Path(get_upload_folder()).rglob("*") if p.is_file()} - before
    with pytest.raises(Exception, match=r"(?i)too large|maximum|size"):
        client.predict(handle_file(str(big)), [VAE], api_name="/reconstruct_upload")
    # just under the limit is accepted by the upload route (and then refused by the handler as not an image)
    ok = tmp_path / "ok.png"
    ok.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_UPLOAD_BYTES - 1024))
    with ok.open("rb") as f:
        response = httpx.post(demo.local_url.rstrip("/") + "/gradio_api/upload", files={"files": f}, timeout=60)
    assert response.status_code == 200, response.text[:200]
    client.predict(*GOOD_DECODE, api_name="/decode_latent")
