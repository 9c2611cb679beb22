"""The anchor benchmarks' machinery (benchmarks/anchor.py, ddpm_throughput.py, vae_throughput.py), run without the
third-party example scripts: the patches on minimal fakes of the lines they target, the data writers, and the
subprocess timer on a fake training script. Nothing here asserts a speed."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets.mnist import read_image_file, read_label_file

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    """A benchmark script as a module (`benchmarks/` is not a package; its scripts import `anchor` by name)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def anchor():
    return _load("anchor")


def test_patcher_refuses_a_script_without_the_line(anchor, tmp_path):
    script = tmp_path / "train_unconditional.py"
    script.write_text("print('a different version')\n")
    ddpm = _load("ddpm_throughput")
    with pytest.raises(ValueError, match=r"expected line 'image.convert\(\"RGB\"\)' not found"):
        anchor.write_patched(script, ddpm.ONE_CHANNEL_PATCH, tmp_path / "out.py")
    assert not (tmp_path / "out.py").exists()
    assert script.read_text() == "print('a different version')\n"  # the given file is never changed
    with pytest.raises(FileNotFoundError, match="no such example script"):
        anchor.write_patched(tmp_path / "missing.py", ddpm.ONE_CHANNEL_PATCH, tmp_path / "out.py")


def test_one_channel_patch_turns_the_examples_transform_to_grayscale(anchor, tmp_path):
    fake = tmp_path / "train_unconditional.py"
    fake.write_text(
        textwrap.dedent("""
        def transform_images(examples):
            return [image.convert("RGB") for image in examples["image"]]
    """)
    )
    out = anchor.write_patched(fake, _load("ddpm_throughput").ONE_CHANNEL_PATCH, tmp_path / "patched.py")
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    [converted] = namespace["transform_images"]({"image": [Image.new("RGB", (28, 28))]})
    assert converted.mode == "L"
    assert "RGB" in fake.read_text()


def test_vae_patch_swaps_in_the_study_conv_vae(anchor, tmp_path):
    vae = _load("vae_throughput")
    fake = tmp_path / "main.py"
    fake.write_text("import torch\nfrom torch import nn\ndevice = torch.device('cpu')\nmodel = VAE().to(device)\n")
    out = anchor.write_patched(fake, vae.STUDY_MODEL_PATCH, tmp_path / "patched.py")
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    model = namespace["model"]
    assert type(model.vae).__name__ == "ConvVAE" and model.vae.config.latent_dim == 2
    recon, mu, logvar = model(torch.rand(3, 784))  # what the example's loop passes and expects
    assert recon.shape == (3, 784) and mu.shape == logvar.shape == (3, 2)
    assert 0 <= recon.min() and recon.max() <= 1  # probabilities for the example's F.binary_cross_entropy


def test_data_writers_round_trip(anchor, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    folder = anchor.write_imagefolder(images, tmp_path / "digits")
    files = sorted(folder.glob("*.png"))
    assert len(files) == 5
    for path, image in zip(files, images, strict=True):
        with Image.open(path) as png:
            assert png.mode == "L" and np.array_equal(np.asarray(png), image)

    labels = np.arange(5, dtype=np.uint8)
    _load("vae_throughput").write_mnist_idx(images, labels, tmp_path / "raw", "train")
    assert torch.equal(read_image_file(str(tmp_path / "raw/train-images-idx3-ubyte")), torch.from_numpy(images))
    assert read_label_file(str(tmp_path / "raw/train-labels-idx1-ubyte")).tolist() == labels.tolist()


def test_timed_run_stops_the_child_after_the_timed_steps(anchor, tmp_path):
    child = tmp_path / "fake_train.py"
    child.write_text(
        textwrap.dedent("""
        import sys, time
        print("loading", flush=True)
        for step in range(1, 7):
            time.sleep(0.02)
            sys.stderr.write(f"\\rEpoch 0: | {step}/50 [00:01<00:02]"); sys.stderr.flush()
        time.sleep(60)
        print("late", flush=True)
    """)
    )
    side = anchor.Side(
        "fake", [sys.executable, str(child)], _load("ddpm_throughput").EXAMPLE_PROGRESS, lambda m: int(m.group(1))
    )
    rate = anchor.timed_run(side, batch_size=4, warmup=2, steps=3, log_path=tmp_path / "fake.log")
    assert rate > 0
    log = (tmp_path / "fake.log").read_text()
    assert "5/50" in log and "late" not in log  # stopped once step 2 + 3 was seen, not left to finish

    side.argv = [sys.executable, "-c", "print('step 1/9 epoch 1')"]
    side.pattern = _load("ddpm_throughput").OURS_PROGRESS
    with pytest.raises(RuntimeError, match="exited with code 0 before 2 \\+ 3 steps"):
        anchor.timed_run(side, batch_size=4, warmup=2, steps=3, log_path=tmp_path / "short.log")


@pytest.mark.slow
def test_vae_arch_speed_times_both_architectures_alternating_and_feeds_the_speed_verdict(tiny_mnist_cache, tmp_path):
    from hub_models.study.verdicts import NOT_MEASURED, judge

    bench = _load("vae_arch_speed")
    out = tmp_path / "speed.json"
    result = bench.main(bench.parse_args(["--steps", "2", "--warmup_steps", "1", "--rounds", "2", "--output",
                                          str(out)]))
    assert set(result["rounds"]) == {"conv", "dense"} and all(len(r) == 2 for r in result["rounds"].values())
    assert result["side_by_side"] and result["command"].startswith("python benchmarks/vae_arch_speed.py")
    assert result["conv_images_per_s"] > 0 and result["dense_images_per_s"] > 0
    saved = json.loads(out.read_text())
    assert judge("speed", **{k: saved[k] for k in ("conv_images_per_s", "dense_images_per_s", "side_by_side")}) \
        != NOT_MEASURED  # what run_study.py --speed_benchmark reads is enough for a verdict


@pytest.mark.slow
@pytest.mark.parametrize("native_bf16", [True, False])
def test_unet_runtime_compares_every_installed_runtime_with_the_spaces_torch_path(capsys, monkeypatch, native_bf16):
    """The baseline is what the Space runs on this CPU: torch bf16 where bf16 is native, else fp32 (emulated bf16
    is not timed at all)."""
    bench = _load("unet_runtime")
    monkeypatch.setattr(bench, "native_cpu_bf16", lambda: native_bf16)
    medians = bench.main(bench.parse_args(["--model_config", "tiny", "--rounds", "2", "--repeats", "1"]))
    assert "torch fp32" in medians and ("torch bf16" in medians) == native_bf16
    assert all(s > 0 for s in medians.values())
    space = "torch bf16" if native_bf16 else "torch fp32"
    table = capsys.readouterr().out
    assert f"speed vs {space} (the Space's path here)" in table
    assert any(line.startswith(f"| {space} |") and "| 1.00× |" in line for line in table.splitlines())
