"""The offline Hub for tests (pytest plugin loaded by conftest.py before anything imports huggingface_hub).

`huggingface_hub` reads HF_ENDPOINT (and builds its download URL template) at import time, so this module
binds the server's two sockets and exports the environment at import; the `hub` fixture serves them and resets
the state for each test, then fails the test if the client sent a request no route knows or a handler crashed.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pytest
from hub_server import READ_TOKEN, USER, WRITE_TOKEN, HubServer, bind_socket

if "huggingface_hub" in sys.modules:  # a plugin imported it first: its endpoint would be the real Hub
    raise RuntimeError("hub_fixtures must load before huggingface_hub is imported (see tests/conftest.py)")

_API_SOCK, _LFS_SOCK = bind_socket(), bind_socket()
HUB_ENDPOINT = f"http://127.0.0.1:{_API_SOCK.getsockname()[1]}"
_HF_HOME = tempfile.mkdtemp(prefix="hf-home-")

os.environ.update(
    {
        "HF_ENDPOINT": HUB_ENDPOINT,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": _HF_HOME,
        "HF_TOKEN": WRITE_TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
)
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HF_TOKEN_PATH", None)

# Serve at once: a client that reaches HF_ENDPOINT outside the `hub` fixture gets an answer, never a hang.
_SERVER = HubServer(_API_SOCK, _LFS_SOCK).start()


@pytest.fixture(scope="session")
def hub_server() -> HubServer:
    """The running offline Hub (one per session; use `hub` in tests, it resets and checks the state)."""
    return _SERVER


@pytest.fixture()
def hub(hub_server: HubServer) -> HubServer:
    """A fresh offline Hub for one test. Fails the test on unrouted requests or server-side crashes."""
    hub_server.reset()
    yield hub_server
    unmatched, errors = list(hub_server.unmatched), list(hub_server.errors)
    hub_server.clear_faults()
    assert not unmatched, f"requests the offline Hub has no route for (client changed?): {unmatched}"
    assert not errors, "offline Hub handler crashed:\n" + "\n".join(errors)


@pytest.fixture()
def hub_tokens() -> dict[str, str]:
    return {"write": WRITE_TOKEN, "read": READ_TOKEN, "user": USER}


# ----------------------------------------------------------------------------------------------------------
# Tiny run folders laid out like training/train_vae.py and train_ddpm.py write them (nothing is trained)
# ----------------------------------------------------------------------------------------------------------
def _png(path, seed: int) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)


def _json(path, payload) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def make_vae_run(
    root, *, arch: str = "conv", latent_dim: int = 2, beta: float = 1.0, beta_schedule: str = "constant", seed: int = 0
):
    """A VAE run folder with a seeded, untrained model, plausible metrics and training-only clutter."""
    from pathlib import Path

    import torch

    from hub_models import VAE_CLASSES

    root = Path(root)
    torch.manual_seed(seed)
    model = VAE_CLASSES[arch](latent_dim=latent_dim)
    model.save_pretrained(root)
    test = {"bce": 151.25 + beta, "kld": 6.5, "elbo": -(157.75 + beta), "loss": 151.25 + beta + beta * 6.5}
    train = {"bce": 149.5, "kld": 6.75, "elbo": -156.25, "loss": 149.5 + beta * 6.75}
    _json(
        root / "metrics.json",
        {
            "model": "vae",
            "arch": arch,
            "latent_dim": latent_dim,
            "beta": beta,
            "beta_schedule": beta_schedule,
            "parameters": sum(p.numel() for p in model.parameters()),
            "test": test,
            "train": train,
            "history": [{"epoch": 1, "train": train, "test": test}],
            "train_seconds": 12.5,
            "seconds_per_epoch": 6.25,
            "seed": seed,
            "split": "study",
            "epochs": 2,
            "global_step": 16,
            "train_samples": 512,
            "test_samples": 256,
        },
    )
    _json(
        root / "training_config.json",
        {
            "arch": arch,
            "latent_dim": latent_dim,
            "beta": beta,
            "beta_schedule": beta_schedule,
            "num_epochs": 2,
            "train_batch_size": 64,
            "learning_rate": 1e-3,
            "seed": seed,
            "split": "study",
            "output_dir": str(root),
            "resume_from_checkpoint": None,
            "push_to_hub": False,
            "hub_model_id": None,
        },
    )
    for i, name in enumerate(("reconstructions", "samples", "latent_scatter", "manifold")):
        _png(root / "figures" / f"{name}.png", seed * 10 + i)
    (root / "checkpoints" / "checkpoint-16").mkdir(parents=True)
    (root / "checkpoints" / "checkpoint-16" / "optimizer.bin").write_bytes(b"optimizer state")
    (root / "logs").mkdir()
    (root / "logs" / "events.out.tfevents.0").write_bytes(b"tensorboard")
    return root


def ddpm_point(run_dir, fid: float, num_samples: int = 10_000) -> dict:
    """An evaluation.json point of `training/evaluate_ddpm.py` for the EMA weights `run_dir` holds now."""
    from hub_models.evaluation.ddpm import weights_digest

    return {"sampler": "dpmsolver++", "steps": 25, "num_samples": num_samples, "ema": True, "seed": 0,
            "weights": weights_digest(run_dir), "reference": "mnist-test", "seconds_per_16": 1.5,
            "fid": {"fid": fid, "n_gen": num_samples, "n_ref": 10_000, "reference": "mnist-test", "floor": 2.25,
                    "floor_n": num_samples, "network": "Inception-v3 pool3", "preprocessing": "tf1-bilinear"},
            "classifier": {"confident_share": 0.8}}


def make_ddpm_run(root, *, seed: int = 0):
    """A DDPM run folder: a tiny UNet2DModel + the study's 4000-step cosine DDPMScheduler, as a pipeline."""
    from pathlib import Path

    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    root = Path(root)
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    scheduler = DDPMScheduler(num_train_timesteps=4000, beta_schedule="squaredcos_cap_v2")
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(root, safe_serialization=True)
    unet.save_pretrained(root / "unet_non_ema", safe_serialization=True)
    _json(
        root / "metrics.json",
        {
            "model": "ddpm",
            "parameters": sum(p.numel() for p in unet.parameters()),
            "num_train_timesteps": 4000,
            "beta_schedule": "squaredcos_cap_v2",
            "prediction_type": "epsilon",
            "ema": True,
            "train_loss": 0.0312,
            "test_loss": 0.0318,
            "epochs": 2,
            "global_step": 8,
            "seed": seed,
            "split": "study",
            "train_samples": 512,
            "test_samples": 256,
            "history": [
                {"epoch": 1, "train_loss": 0.05, "test_loss": 0.049},
                {"epoch": 2, "train_loss": 0.0312, "test_loss": 0.0318},
            ],
        },
    )
    _json(
        root / "training_config.json",
        {
            "num_epochs": 2,
            "train_batch_size": 128,
            "learning_rate": 1e-4,
            "num_train_timesteps": 4000,
            "beta_schedule": "squaredcos_cap_v2",
            "seed": seed,
            "use_ema": True,
            "output_dir": str(root),
        },
    )
    _json(root / "evaluation.json", {"points": {"dpmsolver++-25steps-ema-n10000-seed0": ddpm_point(root, 41.5)}})
    _png(root / "figures" / "samples.png", seed + 100)
    _png(root / "figures" / "samples_epoch_002.png", seed + 100)
    (root / "checkpoints" / "checkpoint-8").mkdir(parents=True)
    (root / "checkpoints" / "checkpoint-8" / "optimizer.bin").write_bytes(b"optimizer state")
    return root


@pytest.fixture()
def vae_run(tmp_path):
    return make_vae_run(tmp_path / "vae-conv-z2-beta1")


@pytest.fixture()
def ddpm_run(tmp_path):
    return make_ddpm_run(tmp_path / "ddpm")
