"""The Space on the Hub, for real: `scripts/publish_space.py` builds it and uploads it to the offline Hub
(tests/hub_server.py), and the snapshot a Space would run is started on its own and driven through `gradio_client`.

The end-to-end test publishes the release models (`release/`, the real weights) and the Space, downloads the Space
with `snapshot_download(repo_type="space")` into an empty folder outside the checkout, and starts its `app.py` in a
subprocess that has only the venv's packages: no checkout on `sys.path` (the editable install's hook is not loaded),
`HF_ENDPOINT` pointing at the offline Hub and an empty HF cache, so every model must load by repo id. ZeroGPU's
optional `spaces` package is importable there (its PyPI wheel, never installed), as on a Space.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import numpy as np
import preloaded_python
import pytest
from hub_server import READ_TOKEN, USER
from huggingface_hub import SpaceCard, snapshot_download
from PIL import Image
from space_fixtures import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, screenshot_first_load

from hub_models.hub import NO_CHANGES, HubPushError, publish_study
from hub_models.hub.naming import published_repo_ids, release_repo_ids
from hub_models.io import cache_dir, fetch_wheel
from hub_models.reference import RELEASE
from hub_models.space.publish import SpaceSources, build_space, publish_space

pytestmark = pytest.mark.slow

SPACE_ID = f"{USER}/mnist-genlab"
SCRIPT = REPO_ROOT / "training" / "publish_space.py"
SOURCES = SpaceSources(app_dir=REPO_ROOT / "spaces_app", docs_dir=REPO_ROOT / "docs")
SPACES_WHEEL = "spaces==0.51.3"  # ZeroGPU's package, as preinstalled on Spaces (only put on sys.path)
START_TIMEOUT = 420  # seconds for the Space to load 8 models and its first results on a busy 2-core machine
PUBLIC_ENDPOINTS = {"/vae_generate", "/ddpm_generate", "/select_vae", "/decode_latent", "/latent_views",
                    "/reset_latent", "/reconstruct_drawing", "/reconstruct_upload", "/reconstruct_test_digit",
                    "/interpolate", "/pick_test_digit_a", "/pick_test_digit_b", "/select_digit", "/complete",
                    "/pick_test_digit_complete"}
EXAMPLE_DIGITS = {"drawn_4.png": 4, "photo_7.jpg": 7, "inverted_2.png": 2}
# Imported at start-up only because they are installed here, by libraries that work without them: pyarrow tries
# cloudpickle; accelerate probes `google.colab`, which imports protobuf's `google` namespace.
OPTIONAL_IMPORTS = {"cloudpickle", "protobuf"}
# Run the app the way a Space does (`python app.py` from its folder), with only the venv's site-packages: `-S`
# skips site.py, so no .pth file runs and the checkout's editable-install hook is never installed.
LAUNCHER = """
import runpy, sys
space, site_packages, *extra = sys.argv[1:4]
sys.path[:] = [space, *[p for p in extra if p], *sys.path[1:], site_packages]
sys.argv = ["app.py", *sys.argv[4:]]
runpy.run_path(space + "/app.py", run_name="__main__")
"""


# ------------------------------------------------------------------------------------------------------------
# The folder publish_space builds
# ------------------------------------------------------------------------------------------------------------
def _requirements(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.MULTILINE))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: set[str]) -> set[str]:
    """The distributions `roots` pull in (their non-optional requirements, transitively)."""
    from packaging.requirements import Requirement

    seen, todo = set(), [_norm(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_norm(req.name))
    return seen


def test_build_space_is_allow_listed_pinned_and_self_contained(tmp_path):
    # A working copy of spaces_app/ with what a run of the app leaves behind, and worse.
    app_dir = tmp_path / "spaces_app"
    shutil.copytree(SOURCES.app_dir, app_dir, ignore=shutil.ignore_patterns("__pycache__", ".gradio"))
    for junk in ("__pycache__/app.cpython-311.pyc", ".gradio/flagged/log.csv", "flagged/x.png", "runs/m.safetensors",
                 ".env", "hf_token.txt", "examples/.cache/x.png"):
        (app_dir / junk).parent.mkdir(parents=True, exist_ok=True)
        (app_dir / junk).write_text("hf_secret")
    files = build_space(tmp_path / "space", SpaceSources(app_dir, SOURCES.docs_dir), space_id=SPACE_ID,
                        models_namespace="someone")
    on_disk = sorted(p.relative_to(tmp_path / "space").as_posix() for p in (tmp_path / "space").rglob("*")
                     if p.is_file())
    assert on_disk == files
    assert {"app.py", "README.md", "requirements.txt", "models.json", "docs/REPORT.md",
            "docs/figures/rate_distortion.png", "hub_models/__init__.py", "hub_models/space/sources.py",
            "tabs/__init__.py", "tabs/generate.py", "tabs/latent.py", "tabs/reconstruct.py", "tabs/interpolate.py",
            "tabs/complete.py", "tabs/about.py", "tabs/common.py",
            "hub_models/model_cards/vae.md", "examples/photo_7.jpg"} <= set(files)
    assert not [f for f in files if re.search(r"__pycache__|\.pyc$|(^|/)\.|flagged|runs/|token|safetensors", f)]
    assert not [f for f in files if f.startswith("hub_models/") and not f.endswith((".py", ".md"))]
    space = tmp_path / "space"
    # The card: the facts a build knows, and exactly the repos the app loads.
    card = SpaceCard.load(space / "README.md").data
    expected = release_repo_ids("someone")
    assert card.models == list(expected.values()) and len(card.models) == len(RELEASE)
    assert "someone/mnist-genlab-digit-classifier" in card.models
    assert (card.sdk, card.app_file, card.suggested_hardware) == ("gradio", "app.py", "cpu-basic")
    assert card.sdk_version == importlib.metadata.version("gradio") and card.python_version == "3.11"
    assert card.datasets == ["ylecun/mnist"] and 0 < len(card.short_description) <= 60
    assert json.loads((space / "models.json").read_text()) == {"space": SPACE_ID, "models": expected}
    # Pinned to the versions installed here (the ones the tests run with), within pyproject's ranges.
    from packaging.requirements import Requirement

    text = (space / "requirements.txt").read_text()
    pins = _requirements(text)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text and "gradio" not in pins
    ranges = {_norm(Requirement(r).name): Requirement(r).specifier
              for r in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for name, version in pins.items():
        assert version == importlib.metadata.version(name).split("+")[0], name
        assert _norm(name) in ranges and ranges[_norm(name)].contains(version), (name, version)
    # Complete: every distribution the app imports at start-up comes with a pin, gradio (the SDK) or their deps.
    out = subprocess.run(
        [sys.executable, "-c", "import sys, runpy, importlib.metadata as md; sys.path.insert(0, sys.argv[1]); "
         "runpy.run_path(sys.argv[1] + '/app.py', run_name='space_app'); pd = md.packages_distributions(); "
         "print('\\n'.join(sorted({d for m in list(sys.modules) for d in pd.get(m.split('.')[0], [])})))",
         str(space)], capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg", "GENLAB_CALIBRATION_DIGITS": "0"})
    assert out.returncode == 0, out.stderr[-3000:]
    imported = {_norm(d) for d in out.stdout.split()} - {"mnist-genlab"} - OPTIONAL_IMPORTS
    missing = imported - _closure(set(pins) | {"gradio"})
    assert not missing, f"the Space imports {sorted(missing)}, which its requirements.txt does not bring"
    # ZeroGPU: CUDA torch from PyPI.
    zero = build_space(tmp_path / "zero", SOURCES, space_id=SPACE_ID, hardware="zero-gpu")
    assert "requirements.txt" in zero and "extra-index-url" not in (tmp_path / "zero" / "requirements.txt").read_text()
    assert SpaceCard.load(tmp_path / "zero" / "README.md").data.suggested_hardware == "zero-a10g"
    with pytest.raises(HubPushError, match="not empty"):
        build_space(space, SOURCES, space_id=SPACE_ID)


def test_publish_space_refuses_missing_models_and_bad_tokens(hub, tmp_path):
    missing = rf"{len(RELEASE)} model repo\(s\) that do not exist: .*mnist-genlab-vae-conv-z2"
    with pytest.raises(HubPushError, match=missing):
        publish_space(SPACE_ID, SOURCES, models_namespace=USER, max_retries=0)
    with pytest.raises(HubPushError, match="read-only"):
        publish_space(SPACE_ID, SOURCES, models_namespace=USER, token=READ_TOKEN, check_models=False, max_retries=0)
    assert ("space", SPACE_ID) not in hub.repos  # nothing was created
    # A token that found its way into a file of the Space is never uploaded.
    app_dir = tmp_path / "spaces_app"
    shutil.copytree(SOURCES.app_dir, app_dir)
    token = os.environ["HF_TOKEN"]
    (app_dir / "app.py").write_text((app_dir / "app.py").read_text() + f"\n# {token}\n")
    with pytest.raises(HubPushError, match=r"app\.py contains the Hub token"):
        publish_space(SPACE_ID, SpaceSources(app_dir, SOURCES.docs_dir), models_namespace=USER, check_models=False)
    assert ("space", SPACE_ID) not in hub.repos


# ------------------------------------------------------------------------------------------------------------
# The end-to-end test
# ------------------------------------------------------------------------------------------------------------
def _publish_release_models(namespace: str) -> dict[str, str]:
    """The release folders published the way `scripts/publish_study.py --study_dir release` does it."""
    repos = release_repo_ids(namespace)  # what the Space loads
    published = publish_study(REPO_ROOT / "release", namespace, max_retries=0)["repos"]
    assert set(published) == set(published_repo_ids(namespace).values()) >= set(repos.values())
    return repos


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, log: Path) -> float:
    import httpx

    t0 = time.time()
    while time.time() - t0 < START_TIMEOUT:
        if proc.poll() is not None:
            raise AssertionError(f"the Space exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/config", timeout=5).status_code == 200:
                return time.time() - t0
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"the Space did not start in {START_TIMEOUT} s:\n{log.read_text()[-4000:]}")


def _png(path) -> Image.Image:
    im = Image.open(path)
    assert im.format == "PNG", f"{path} is {im.format}"
    return im


def test_the_published_space_runs_from_its_own_snapshot(hub, tiny_mnist_cache, tmp_path):
    from gradio_client import Client, handle_file

    repos = _publish_release_models(USER)
    env = {**os.environ, "PYTHONPATH": ""}
    cmd = [SCRIPT, "--repo_id", SPACE_ID, "--models_namespace", USER]
    first = preloaded_python.run(cmd, timeout=600, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"{SPACE_ID}: http" in first.stdout and "/spaces/" in first.stdout
    commits, before = hub.commit_count(SPACE_ID, "space"), hub.head_files(SPACE_ID, "space")
    again = preloaded_python.run(cmd, timeout=600, env=env, cwd=tmp_path)
    changed = sorted(p for p, data in hub.head_files(SPACE_ID, "space").items() if before.get(p) != data)
    assert again.returncode == 0 and f"{SPACE_ID}: {NO_CHANGES}" in again.stdout, (again.stdout, changed)
    assert hub.commit_count(SPACE_ID, "space") == commits  # nothing changed, no commit
    remote = hub.head_files(SPACE_ID, "space")
    token = os.environ["HF_TOKEN"].encode()
    assert not [p for p in remote if re.search(r"__pycache__|\.pyc$|/\.|flagged|runs/|\.safetensors$", p)]
    assert not [p for p, data in remote.items() if token in data]

    # What a Space runs: its snapshot, in an empty folder outside the checkout, with an empty HF cache.
    space = tmp_path / "space"
    snapshot_download(SPACE_ID, repo_type="space", local_dir=space, cache_dir=tmp_path / "download-cache")
    assert (space / "app.py").is_file() and (space / "hub_models" / "__init__.py").is_file()
    assert not (space / "release").exists() and REPO_ROOT not in space.parents
    wheel = fetch_wheel(SPACES_WHEEL, "spaces-*.whl", cache_dir("wheels"))
    port, log = _free_port(), tmp_path / "space.log"
    child_env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf-empty"),
        "HF_ENDPOINT": os.environ["HF_ENDPOINT"], "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "GRADIO_ANALYTICS_ENABLED": "False",
        "MNIST_GENLAB_CACHE": str(tiny_mnist_cache), "MNIST_GENLAB_SKIP_HUB": "1",
        "GENLAB_CALIBRATION_DIGITS": "256", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "MPLBACKEND": "Agg",
    }
    site_packages = sysconfig.get_paths()["purelib"]
    t0 = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(space), site_packages, str(wheel),
                                 "--host", "127.0.0.1", "--port", str(port)],
                                cwd=space, env=child_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_ready(proc, url, log)
        text = log.read_text()
        print(f"[deploy] the Space answered {ready:.0f} s after its start ({time.time() - t0:.0f} s)")
        assert f"library: {space / 'hub_models'}; spaces: installed, ZeroGPU off" in text
        for name, repo_id in repos.items():  # every model loaded by repo id from the Hub
            assert f"loaded {name} " in text and f"from {repo_id}" in text, text[-3000:]
        assert "not loaded" not in text and "could not load" not in text
        assert re.search(r"first-visit results computed in [\d.]+ s", text)
        downloaded = {p for m, p in hub.requests if m == "GET" and "/resolve/" in p}
        for repo_id in repos.values():
            assert any(f"/{repo_id}/resolve/" in p for p in downloaded), repo_id

        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        api = client.view_api(print_info=False, return_format="dict")
        assert set(api["named_endpoints"]) == PUBLIC_ENDPOINTS
        vaes = [n for n in repos if n.startswith("vae-")]
        # The conditional VAE draws a row per digit (another layout): compared among the unconditional ones.
        grids = [np.asarray(_png(client.predict(n, 9, 1, api_name="/vae_generate"))) for n in vaes
                 if not n.endswith("-conditional")]
        assert all(g.shape == grids[0].shape for g in grids) and len({g.tobytes() for g in grids}) == len(grids)
        for n in vaes:
            *_, digit, latent_map, grid = client.predict(n, api_name="/select_vae")
            _png(digit), _png(latent_map), _png(grid)
            z = [0.5] * 4
            assert _png(client.predict(n, *z, api_name="/decode_latent")).size == (112, 112)
            _png(client.predict(n, "z1", "z2", *z, api_name="/latent_views")[1])
            assert _png(client.predict(n, api_name="/reset_latent")[-1]).size == (112, 112)
        # The default DDPM is the released class-conditional one (a row per digit unless asked otherwise); the
        # unconditional one is a choice of the model menu.
        image, status = client.predict("ddpm", 3, 4, 1, api_name="/ddpm_generate")
        assert status.startswith("done: 10 digits, ddpm, 3 steps") and "a row per digit" in status and _png(image)
        image, status = client.predict("ddpm", 3, 4, 1, "7", 2.0, api_name="/ddpm_generate")
        assert status.startswith("done: 4 digits") and status.endswith("digit 7, guidance 2") and _png(image)
        image, status = client.predict("ddpm", 3, 4, 1, "any", 1.0, "ddpm", api_name="/ddpm_generate")
        assert status.startswith("done: 4 digits, ddpm, 3 steps") and "guidance" not in status and _png(image)
        # The examples, read by the released classifier: what the Reconstruct tab offers works.
        series = ["vae-conv-z2-beta1e-3", "vae-conv-z2-beta1", "vae-conv-z2-beta20"]
        for name, digit in EXAMPLE_DIGITS.items():
            _, label, gallery, table = client.predict(handle_file(str(space / "examples" / name)), series,
                                                      api_name="/reconstruct_upload")
            assert f"the digit classifier reads **{digit}**" in label, (name, label)
            assert len(gallery) == 3 and [r[0] for r in table["data"]] == series
        drawing = {"background": handle_file(str(space / "examples" / "drawn_4.png")), "layers": [],
                   "composite": handle_file(str(space / "examples" / "drawn_4.png"))}
        assert "reads **4**" in client.predict(drawing, series[:1], api_name="/reconstruct_drawing")[1]
        _, label, *_ = client.predict("3", series[:1], api_name="/reconstruct_test_digit")
        assert "a **3**" in label and "digit classifier reads" in label
        a = client.predict("0", api_name="/pick_test_digit_a")
        b = client.predict("6", api_name="/pick_test_digit_b")
        editors = [{"background": handle_file(v["composite"]), "layers": [], "composite": handle_file(v["composite"])}
                   for v in (a, b)]
        lerp, slerp = client.predict(*editors, "vae-conv-z4-beta1", 8, api_name="/interpolate")
        assert _png(lerp).size == _png(slerp).size == (4 * (10 * 28 + 11 * 2), 4 * (28 + 2 * 2))
        # Complete: the released DDPM fills the hidden half of a test digit; the conditional VAE takes a digit.
        *_, status = client.predict(editors[0], "top half", "complete", 0.5, "vae-conv-z4-beta1", 0,
                                    api_name="/complete")
        assert "completed 392 hidden pixels" in status
        assert client.predict("2", api_name="/pick_test_digit_complete")["composite"]
        cvae = "vae-conv-z2-beta1-conditional"
        assert _png(client.predict(cvae, "z1", "z2", 0.5, 0.5, 0, 0, "7", api_name="/select_digit")[0])

        # The first visit: a result on every tab, the About tab with the study's verdicts and the repo links.
        values = {c["props"]["elem_id"]: c["props"].get("value") for c in client.config["components"]
                  if c.get("props", {}).get("elem_id")}
        assert "claims of the study, checked" in values["about-claims"] and "**confirmed**" in values["about-claims"]
        assert f"https://huggingface.co/spaces/{SPACE_ID}/blob/main/docs/REPORT.md" in values["about-claims"]
        for repo_id in repos.values():
            assert f"[{repo_id}](https://huggingface.co/{repo_id})" in values["about-models"]
        released = json.loads((REPO_ROOT / "release" / "ddpm" / "metrics.json").read_text())  # the row shows these
        row = (rf"\| ddpm \| {released['parameters']:,} \| {released['train_loss']:.4f} \| {released['test_loss']:.4f} "
               r"\| (—|[\d.]+ \(N=[\d,]+, [\w+-]+, \d+ steps\)) \|")
        assert re.search(row, values["about-models"]), values["about-models"]
        if CHROMIUM.exists():  # the deployed Space as a first visitor sees it, with the released models
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    assert len(screenshot_first_load(browser, url, "deployed")) == 6  # one per tab
                finally:
                    browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(log.read_text()[-2000:])
