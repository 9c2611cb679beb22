"""Loading a model folder or repo never unpickles and never runs code from it.

`hub_models.hub.load`, `ConvVAE.from_pretrained` and `hub_models.diffusion.pipeline.load_ddpm`
(the DDPM loader of the Space
and the samplers) are fed folders that carry live pickles (their `__reduce__` runs `os.system`, creating a marker
file), Python modules named by the config (importing them creates the marker), unknown classes, wrong shapes and
truncated safetensors. Each gives one clear error, or loads the safetensors and ignores the rest; the marker
never appears.

Already covered in tests/test_hub.py (not repeated here): a Hub repo naming an unknown model class ("EvilModel")
or pipeline class (with a pipeline.py), a pickle-only Hub repo (the .bin is never even downloaded), truncated or
garbage safetensors through `load`.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from diffusers import DDPMPipeline
from hub_server import USER
from huggingface_hub import CommitOperationAdd, HfApi

from hub_models import ConvVAE, DenseVAE
from hub_models.diffusion.pipeline import load_ddpm
from hub_models.hub import HubLoadError, load

PICKLE_NAMES = ("diffusion_pytorch_model.bin", "model.pt", "weights.pkl")


class Payload:
    """Unpickling this runs a shell command: the classic pickle exploit."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture()
def marker(tmp_path) -> Path:
    """A path that only malicious code creates; proven live: a plain pickle.loads of the payload creates it."""
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(Payload(probe)))  # the payload works when something does unpickle it
    assert probe.exists()
    return tmp_path / "PWNED"


def plant_pickles(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(Payload(marker))
    for name in PICKLE_NAMES:
        (folder / name).write_bytes(blob)
    torch.save({"weights": Payload(marker)}, folder / "pytorch_model.bin")  # torch's zip format too


def plant_module(folder: Path, marker: Path, name: str = "evil") -> None:
    """A module in the repo whose import creates the marker, and the folder on sys.path (importable)."""
    code = f"open({str(marker)!r}, 'w').close()\nclass EvilModel: pass\nclass EvilUNet: pass\n"
    (folder / f"{name}.py").write_text(code)


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture()
def vae_dir(tmp_path) -> Path:
    torch.manual_seed(0)
    ConvVAE(latent_dim=2).save_pretrained(tmp_path / "vae")
    return tmp_path / "vae"


@pytest.fixture()
def ddpm_dir(ddpm_run) -> Path:
    """A copy of the session's tiny DDPM run of train_ddpm.py (conftest.py)."""
    return ddpm_run


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------------------------------------
# Pickles
# ----------------------------------------------------------------------------------------------------------
def test_vae_folder_with_only_pickled_weights_is_refused(vae_dir, marker):
    (vae_dir / "diffusion_pytorch_model.safetensors").unlink()
    plant_pickles(vae_dir, marker)

    with pytest.raises(HubLoadError, match=r"only has pickled weights \(diffusion_pytorch_model\.bin, model\.pt, "
                                           r"pytorch_model\.bin, weights\.pkl\); refusing"):  # fmt: skip
        load(vae_dir)
    with pytest.raises(OSError, match=r"no file named diffusion_pytorch_model\.safetensors"):
        ConvVAE.from_pretrained(vae_dir)
    # A caller cannot opt out of safetensors.
    with pytest.raises(ValueError, match="safetensors only"):
        ConvVAE.from_pretrained(vae_dir, use_safetensors=False)
    with pytest.raises(HubLoadError):
        load(vae_dir, use_safetensors=False)  # load() drops the flag: safetensors only
    assert not marker.exists()


def test_pickles_next_to_valid_safetensors_are_never_read(vae_dir, marker):
    plant_pickles(vae_dir, marker)
    expected = ConvVAE.from_pretrained(vae_dir)
    assert same_weights(load(vae_dir), expected)
    assert same_weights(ConvVAE.from_pretrained(vae_dir), expected)
    assert not marker.exists()


def test_ddpm_folder_with_only_pickled_unet_weights_is_refused(ddpm_dir, marker):
    for sub in ("unet", "unet_non_ema"):
        (ddpm_dir / sub / "diffusion_pytorch_model.safetensors").unlink()
        plant_pickles(ddpm_dir / sub, marker)

    with pytest.raises(HubLoadError, match=r"only has pickled weights \(unet/diffusion_pytorch_model\.bin"):
        load(ddpm_dir)
    with pytest.raises(OSError, match=r"no file named diffusion_pytorch_model\.safetensors"):
        load_ddpm(ddpm_dir)
    with pytest.raises(OSError, match=r"no file named diffusion_pytorch_model\.safetensors"):
        load_ddpm(ddpm_dir, use_ema=False)
    with pytest.raises(OSError):
        DDPMPipeline.from_pretrained(ddpm_dir, use_safetensors=True)
    assert not marker.exists()


def test_ddpm_pickles_next_to_valid_safetensors_are_never_read(ddpm_dir, marker):
    plant_pickles(ddpm_dir / "unet", marker)
    plant_pickles(ddpm_dir / "scheduler", marker)
    unet, scheduler = load_ddpm(ddpm_dir)
    assert scheduler.config.num_train_timesteps == 4000
    assert same_weights(load(ddpm_dir).unet, unet)
    assert not marker.exists()


def test_hub_repo_with_pickles_and_code_beside_the_safetensors(hub, vae_dir, marker, tmp_path):
    """From a repo, only config.json and the safetensors are downloaded: the pickles and the module never are."""
    plant_pickles(vae_dir, marker)
    plant_module(vae_dir, marker)
    api, repo_id = HfApi(), f"{USER}/booby-trapped"
    api.create_repo(repo_id)
    api.create_commit(repo_id, [CommitOperationAdd(p.name, p.read_bytes()) for p in vae_dir.iterdir()],
                      commit_message="model + traps")  # fmt: skip
    cache = tmp_path / "cache"
    assert same_weights(load(repo_id, cache_dir=cache), ConvVAE.from_pretrained(vae_dir))
    downloaded = {p.name for p in cache.rglob("*") if p.is_file() and "snapshots" in p.parts}
    assert downloaded == {"config.json", "diffusion_pytorch_model.safetensors"}
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------------------
# Classes and code named by the config
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("class_name", ["os.system", "MaliciousModel", "evil.EvilModel", "builtins.eval", None])
def test_vae_config_naming_an_unknown_class(vae_dir, marker, monkeypatch, class_name):
    plant_module(vae_dir, marker)
    monkeypatch.syspath_prepend(str(vae_dir))  # the module is importable: nobody must import it
    edit_json(vae_dir / "config.json", _class_name=class_name)
    with pytest.raises(HubLoadError, match=f"unknown model class {class_name!r} in config.json"):
        load(vae_dir)
    # from_pretrained builds the class the caller names; the config's class name is never resolved.
    if class_name is None:
        with pytest.raises(ValueError, match="Make sure that the `_class_name` is of type string"):
            ConvVAE.from_pretrained(vae_dir)
    else:
        assert isinstance(ConvVAE.from_pretrained(vae_dir), ConvVAE)
    assert not marker.exists()


def test_ddpm_config_naming_an_unknown_class_or_module(ddpm_dir, marker, monkeypatch):
    plant_module(ddpm_dir, marker)
    monkeypatch.syspath_prepend(str(ddpm_dir))
    edit_json(ddpm_dir / "unet" / "config.json", _class_name="os.system")
    with pytest.raises(HubLoadError, match=r"unet/config\.json has class 'os.system', expected UNet2DModel"):
        load(ddpm_dir)

    edit_json(ddpm_dir / "unet" / "config.json", _class_name="EvilUNet")
    edit_json(ddpm_dir / "model_index.json", unet=["evil", "EvilUNet"])
    with pytest.raises(HubLoadError, match=r"unet component \['evil', 'EvilUNet'\] is not diffusers' UNet2DModel"):
        load(ddpm_dir)
    with pytest.raises(ValueError, match="Diffusers does not import a module just because the repository names"):
        DDPMPipeline.from_pretrained(ddpm_dir, use_safetensors=True)
    unet, _ = load_ddpm(ddpm_dir)  # builds UNet2DModel itself: the names in the configs are never resolved
    assert type(unet).__name__ == "UNet2DModel"

    edit_json(ddpm_dir / "model_index.json", unet=["diffusers", "UNet2DModel"], scheduler=["os", "system"])
    with pytest.raises(HubLoadError, match=r"scheduler \['os', 'system'\] is not one of diffusers'"):
        load(ddpm_dir)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------------------
# Wrong shapes, bad values, truncated weights
# ----------------------------------------------------------------------------------------------------------
def test_vae_config_with_wrong_shapes(vae_dir):
    edit_json(vae_dir / "config.json", latent_dim=4)  # the weights are for z=2
    shapes = r"decoder_input\.weight expected shape torch\.Size\(\[3136, 4\]\), but got torch\.Size\(\[3136, 2\]\)"
    for loader in (load, ConvVAE.from_pretrained):
        with pytest.raises(ValueError, match=shapes):
            loader(vae_dir)
    edit_json(vae_dir / "config.json", latent_dim=2, _class_name="DenseVAE")  # conv weights, dense config
    for loader in (load, DenseVAE.from_pretrained):
        with pytest.raises(ValueError, match=r"decoder\.2\.bias expected shape torch\.Size\(\[512\]\)"):
            loader(vae_dir)


@pytest.mark.parametrize("latent_dim", [0, -3, "2; import os", 2.5])
def test_vae_config_with_invalid_values(vae_dir, latent_dim):
    edit_json(vae_dir / "config.json", latent_dim=latent_dim)
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        load(vae_dir)


def test_ddpm_config_with_wrong_shapes(ddpm_dir):
    edit_json(ddpm_dir / "unet" / "config.json", block_out_channels=[16, 32, 32], norm_num_groups=8)  # tiny: 8, 16, 16
    for loader in (load, load_ddpm):
        with pytest.raises(ValueError, match=r"conv_in\.\w+ expected shape torch.Size\(\[16"):
            loader(ddpm_dir)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_vae_safetensors(vae_dir):
    truncate(vae_dir / "diffusion_pytorch_model.safetensors")
    with pytest.raises(HubLoadError, match=r"diffusion_pytorch_model\.safetensors is truncated or corrupt"):
        load(vae_dir)
    with pytest.raises(OSError, match="Unable to load weights from checkpoint file"):
        ConvVAE.from_pretrained(vae_dir)


def test_truncated_ddpm_safetensors(ddpm_dir):
    truncate(ddpm_dir / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(HubLoadError, match=r"diffusion_pytorch_model\.safetensors is truncated or corrupt"):
        load(ddpm_dir)
    with pytest.raises(OSError, match="Unable to load weights from checkpoint file"):
        load_ddpm(ddpm_dir)


def test_safetensors_header_claiming_more_than_the_file(vae_dir):
    """A header length of 2⁶³ (a memory bomb for a naive reader) is refused before anything is allocated."""
    path = vae_dir / "diffusion_pytorch_model.safetensors"
    path.write_bytes((2**63).to_bytes(8, "little") + path.read_bytes()[8:])
    with pytest.raises(HubLoadError, match="not a valid safetensors file"):
        load(vae_dir)
