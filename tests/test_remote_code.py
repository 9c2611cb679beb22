"""Issue 38: every shared model loads with diffusers alone (`hub_models.hub.remote_code`), and the project's
loader still runs no code from a repo.

Tiny models of every kind are pushed to the offline Hub with the real `huggingface_hub`, then loaded in a
subprocess that cannot import the project (`python -S`, only the venv's site-packages on `sys.path`) through
`DiffusionPipeline` / `AutoModel` with `trust_remote_code=True`, run with the library's seeds, and compared with the
library's own outputs. Everything is fp32, the shipped code is the library's code and both processes use the same
number of threads; what is left is the order of float sums in two processes, which a many-step sampler amplifies:
`ATOL` = 1e-3 on outputs of order one (pixels in [0, 1]: a quarter of one grey level). The release folders are
checked the same way by path (slow).
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from diffusers import AutoModel, DDPMPipeline, UNet2DModel
from hub_server import USER
from huggingface_hub import HfApi
from safetensors.torch import load_file

from hub_models.diffusion.latent import (
    latent_unet_config,
    make_autoencoder,
    save_latent_pipeline,
)
from hub_models.diffusion.latent import make_latent_train_scheduler as make_ldm_scheduler
from hub_models.diffusion.latent_prior import (
    load_latent_prior,
    make_latent_train_scheduler,
    sample_latents,
    save_latent_prior,
)
from hub_models.diffusion.pipeline import ClassConditionalDDPMPipeline, save_pipeline
from hub_models.diffusion.sampling import make_train_scheduler, sample_images
from hub_models.hub import load
from hub_models.hub.remote.bundle import ALLOWED_PACKAGES, BundleError, bundle
from hub_models.hub.remote_code import (
    MODEL_CODE,
    PIPELINE_CODE,
    SAMPLER_FOLDER,
    SOLVER_FOLDER,
    add_remote_code,
    class_name_of,
    module_source,
    remote_code_step,
)
from hub_models.models import ConvVAE, DenseVAE, DigitClassifier, LatentPrior
from hub_models.models.unet import unet_config

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = REPO_ROOT / "release"
ATOL = 1e-3
# Run a script with the venv's packages only: `-S` skips site.py (no .pth file, so not the checkout's editable
# install), and the script's folder and the working directory are dropped from sys.path.
LAUNCHER = """
import importlib.util, runpy, sys
script, site_packages = sys.argv[1:3]
sys.path[:] = [p for p in sys.path[1:] if p and "site-packages" not in p] + [site_packages]
assert importlib.util.find_spec("hub_models") is None, "the project is importable"
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""
# The user's side: load each spec'd repo/folder with diffusers alone, run it as a card says, save the outputs.
USER_SCRIPT = r'''
import json, sys
import torch
from diffusers import AutoModel, DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from safetensors.torch import save_file

spec = json.loads(open(sys.argv[1]).read())
out = {}
gen = lambda seed=0: torch.Generator().manual_seed(seed)
for name, repo in spec.get("vae", {}).items():
    model = AutoModel.from_pretrained(repo, trust_remote_code=True)
    labels = torch.arange(4) % 10 if model.config.num_classes else None
    out[name] = model.sample(4, generator=gen(), labels=labels)
    out[name + "-rec"] = model.reconstruct(out[name], labels)
for name, repo in spec.get("classifier", {}).items():
    model = AutoModel.from_pretrained(repo, trust_remote_code=True)
    probs, features, labels = model.predict(torch.rand(4, 1, 28, 28, generator=gen(1)))
    out[name] = probs
for name, repo in spec.get("latent-prior", {}).items():
    prior = AutoModel.from_pretrained(repo, trust_remote_code=True)
    vae_id = spec.get("vae_of", {}).get(name, prior.config.vae_name_or_path)  # a release folder's VAE by path
    vae = AutoModel.from_pretrained(vae_id, trust_remote_code=True)
    scheduler = DDPMScheduler.from_pretrained(repo, subfolder="sampler")  # the library's sampler settings
    scheduler.set_timesteps(spec["prior_steps"])
    generator = gen()
    z = torch.randn(4, prior.config.latent_dim, generator=generator)
    with torch.no_grad():
        for t in scheduler.timesteps:
            z = scheduler.step(prior(z, t).sample, t, z, generator=generator).prev_sample
        out[name] = vae.decode(prior.unstandardize(z))
for name, repo in spec.get("autoencoder", {}).items():
    model = AutoModel.from_pretrained(repo)  # diffusers' own AutoencoderKL: no code, no trust_remote_code
    with torch.no_grad():
        out[name] = model(torch.rand(2, 1, 28, 28, generator=gen(1)) * 2 - 1).sample
    try:
        AutoModel.from_pretrained(repo, trust_remote_code=True)
    except ValueError as err:
        out[name + "-refuses-trust"] = torch.tensor([float("custom code" in str(err))])
for name, repo in spec.get("ddpm", {}).items():
    pipe = DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)
    out[name] = torch.from_numpy(pipe(batch_size=2, num_inference_steps=2, generator=gen(), output_type="np").images)
    pipe.scheduler = DPMSolverMultistepScheduler.from_pretrained(repo, subfolder="dpmsolver")  # the card's hint
    out[name + "-dpmsolver"] = torch.from_numpy(
        pipe(batch_size=2, num_inference_steps=3, generator=gen(), output_type="np").images)
for name, repo in spec.get("conditional", {}).items():
    pipe = DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)
    out[name] = pipe(class_labels=[0, 1, 9], guidance_scale=2.0, num_inference_steps=2, generator=gen(),
                     output_type="pt").images
    out[name + "-dpmsolver"] = pipe(class_labels=[3], guidance_scale=1.0, num_inference_steps=3, generator=gen(),
                                    output_type="pt", sampler="dpmsolver++").images
for name, repo in spec.get("ldm", {}).items():
    pipe = DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)
    out[name] = pipe(batch_size=2, num_inference_steps=2, generator=gen(), output_type="pt").images
    out[name + "-dpmsolver"] = pipe(batch_size=2, num_inference_steps=3, generator=gen(), output_type="pt",
                                    sampler="dpmsolver++").images
out["modules"] = torch.tensor([float(any(m.startswith("hub_models") for m in sys.modules))])
save_file({k: v.detach().float().contiguous() for k, v in out.items()}, spec["out"])
'''


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run_as_a_diffusers_user(tmp_path: Path, spec: dict, offline: bool = False) -> dict[str, torch.Tensor]:
    """Run USER_SCRIPT on `spec` in a process that cannot import the project; its outputs by name."""
    user = tmp_path / "user"
    user.mkdir()
    script, spec_file = user / "user.py", user / "spec.json"
    script.write_text(USER_SCRIPT)
    spec_file.write_text(json.dumps({**spec, "out": str(user / "out.safetensors")}))
    env = {k: os.environ[k] for k in ("PATH", "HF_ENDPOINT", "HF_HUB_DISABLE_XET", "NO_PROXY", "no_proxy")
           if k in os.environ}
    env.update(HOME=str(user / "home"), HF_HOME=str(user / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", DIFFUSERS_VERBOSITY="error",
               OMP_NUM_THREADS=str(torch.get_num_threads()))  # the same float-sum order as this process
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(script), sysconfig.get_paths()["purelib"],
                           str(spec_file)], cwd=user, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    out = load_file(user / "out.safetensors")
    assert out.pop("modules").item() == 0, "the user's process imported the project"
    return out


def assert_close(name: str, remote: torch.Tensor, library: torch.Tensor) -> None:
    library = library.detach().float().cpu()
    assert remote.shape == library.shape, name
    diff = (remote - library).abs().max().item()
    assert diff <= ATOL, f"{name}: remote code differs from the library by {diff}"


# ------------------------------------------------------------------------------------------------------------
# Tiny models of every kind, saved as a run would be, with the push step applied


def _tiny_unet(**extra) -> UNet2DModel:
    return UNet2DModel(**{**unet_config("tiny"), **extra})


def tiny_folders(root: Path, vae_repo: str) -> dict[str, tuple[str, Path]]:
    """name → (kind, folder) of tiny models, each with `remote_code_step` applied as a push does."""
    torch.manual_seed(0)
    folders: dict[str, tuple[str, Path]] = {}

    def add(name: str, kind: str, save) -> None:
        folder = root / name
        save(folder)
        remote_code_step(folder, folder, f"{USER}/{name}")
        folders[name] = (kind, folder)

    add("conv", "vae", ConvVAE(latent_dim=2, hidden_channels=(4, 8)).save_pretrained)
    add("conv-cond", "vae", ConvVAE(latent_dim=2, hidden_channels=(4, 8), num_classes=10).save_pretrained)
    add("dense", "vae", DenseVAE(latent_dim=3, hidden_sizes=(16, 8)).save_pretrained)
    add("clf", "classifier", DigitClassifier(channels=(4, 8), hidden_dim=16).eval().save_pretrained)

    def prior(folder: Path) -> None:
        model = LatentPrior(latent_dim=2, hidden_dim=16, num_blocks=1, time_embed_dim=8, vae_name_or_path=vae_repo)
        save_latent_prior(model, make_latent_train_scheduler(), folder)
        (folder / "metrics.json").write_text(json.dumps({"sampler": {"name": "ddpm", "steps": 3}}))

    add("prior", "latent-prior", prior)
    add("ae", "autoencoder", make_autoencoder("tiny").save_pretrained)
    add("ddpm", "ddpm", lambda f: save_pipeline(_tiny_unet(), make_train_scheduler(), f))
    add("cddpm", "conditional", lambda f: save_pipeline(_tiny_unet(num_class_embeds=11), make_train_scheduler(), f))

    def ldm(folder: Path) -> None:
        vae = make_autoencoder("tiny")
        save_latent_pipeline(vae, UNet2DModel(**latent_unet_config("tiny", vae)), make_ldm_scheduler(), folder)

    add("ldm", "ldm", ldm)
    return folders


def library_outputs(kind: str, folder: Path, name: str, prior_steps: int = 3,
                    vae_folder: Path | None = None) -> dict[str, torch.Tensor]:
    """What the library computes for USER_SCRIPT's calls, from the same folder (`hub_models.hub.load`); a latent
    prior decodes with the VAE in `vae_folder`."""
    if kind == "vae":
        model = load(folder)
        labels = torch.arange(4) % 10 if model.num_classes else None
        images = model.sample(4, generator=gen(), labels=labels)
        return {name: images, f"{name}-rec": model.reconstruct(images, labels)}
    if kind == "classifier":
        return {name: DigitClassifier.from_pretrained(folder).predict(torch.rand(4, 1, 28, 28, generator=gen(1)))[0]}
    if kind == "latent-prior":
        prior, scheduler = load_latent_prior(folder)
        z = sample_latents(prior, scheduler, "ddpm", prior_steps, 4, generator=gen())
        return {name: load(vae_folder).decode(z)}
    if kind == "autoencoder":
        model = AutoModel.from_pretrained(str(folder)).eval()
        with torch.no_grad():
            return {name: model(torch.rand(2, 1, 28, 28, generator=gen(1)) * 2 - 1).sample,
                    f"{name}-refuses-trust": torch.tensor([1.0])}
    if kind == "ddpm":
        pipe = load(folder)
        cfg = pipe.scheduler.config
        return {name: torch.from_numpy(pipe(batch_size=2, num_inference_steps=2, generator=gen(),
                                            output_type="np").images),
                f"{name}-dpmsolver": sample_images(pipe.unet, cfg, "dpmsolver++", 3, 2, generator=gen())
                .permute(0, 2, 3, 1)}
    pipe = load(folder)
    if kind == "conditional":
        return {name: pipe(class_labels=[0, 1, 9], guidance_scale=2.0, num_inference_steps=2, generator=gen(),
                           output_type="pt").images,
                f"{name}-dpmsolver": pipe(class_labels=[3], guidance_scale=1.0, num_inference_steps=3,
                                          generator=gen(), output_type="pt", sampler="dpmsolver++").images}
    return {name: pipe(batch_size=2, num_inference_steps=2, generator=gen(), output_type="pt").images,
            f"{name}-dpmsolver": pipe(batch_size=2, num_inference_steps=3, generator=gen(), output_type="pt",
                                      sampler="dpmsolver++").images}


def compare(remote: dict[str, torch.Tensor], folders: dict[str, tuple[str, Path]], vae_of: dict[str, Path],
            prior_steps: int = 3) -> None:
    """Every output of the user's process equals the library's (custom pipelines once the library reads them)."""
    checked = set()
    for name, (kind, folder) in folders.items():
        if kind in ("conditional", "ldm") and not _library_ignores_shipped_pipelines():
            checked |= {k for k in remote if k.split("-dpmsolver")[0] == name}  # loaded and ran; compared once patched
            continue
        for key, expected in library_outputs(kind, folder, name, prior_steps, vae_of.get(name)).items():
            assert_close(key, remote[key], expected)
            checked.add(key)
    assert checked == set(remote), set(remote) - checked


def _library_ignores_shipped_pipelines() -> bool:
    """Whether the installed pipeline classes read a `["module", "Class"]` model_index.json as their own class
    (the library-side half of issue 38, outside this test's files)."""
    return getattr(ClassConditionalDDPMPipeline._dict_from_json_file, "__qualname__", "").startswith(
        "ClassConditionalDDPMPipeline")


needs_library_patch = pytest.mark.xfail(
    not _library_ignores_shipped_pipelines(), strict=True,
    reason="hub_models.load and the pipeline classes do not yet read a list `_class_name` (issue 38 report)")


# ------------------------------------------------------------------------------------------------------------
# The shipped modules


@pytest.mark.parametrize("cls", [*MODEL_CODE.values(), *PIPELINE_CODE.values()], ids=lambda c: c.__name__)
def test_the_shipped_module_is_the_librarys_source_and_imports_only_what_diffusers_users_have(cls):
    what = "pipeline" if cls in PIPELINE_CODE.values() else "model"
    text = module_source(cls, what)
    assert inspect.getsource(cls) in text  # copied, not rewritten
    tree = ast.parse(text)
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not roots - ALLOWED_PACKAGES - set(sys.stdlib_module_names) - {"__future__"}
    assert "hub_models" not in {r for r in roots}
    assert len(text.splitlines()) < 650, "small enough to read on the Hub page"
    namespace: dict = {}
    exec(compile(text, f"<{cls.__name__}>", "exec"), namespace)  # runs alone
    assert namespace[cls.__name__].__name__ == cls.__name__


def test_the_bundler_refuses_what_a_user_cannot_import():
    with pytest.raises(BundleError, match="may not have"):
        bundle([("hub_models.data", "load_mnist")], "x")  # needs `datasets`


def release_folders() -> list[Path]:
    return sorted(p for p in RELEASE.iterdir() if p.is_dir() and not p.name.endswith("-training-state"))


def _index_of(folder: Path) -> dict:
    index = folder / "model_index.json"
    return json.loads((index if index.is_file() else folder / "config.json").read_text())


def _is_custom_pipeline(folder: Path) -> bool:
    return class_name_of(_index_of(folder)) in PIPELINE_CODE


def _check_ships_current_code(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.safetensors", "figures", "README.md", "*.py"))
    written = remote_code_step(copy, copy, "x")
    for rel in written:
        assert (folder / rel).is_file(), f"{folder.name}/{rel} is missing"
        assert (folder / rel).read_text() == (copy / rel).read_text(), f"{folder.name}/{rel} is stale"
    ships = any(rel.endswith(".py") for rel in written)
    assert ships == (class_name_of(_index_of(folder)) in {*MODEL_CODE, *PIPELINE_CODE}), folder.name


def test_the_release_folders_ship_the_current_code(tmp_path):
    """release/ holds what a push writes now: regenerate with `python -m hub_models.hub.remote_code release/*`."""
    for folder in release_folders():
        _check_ships_current_code(folder, tmp_path)
        if _is_custom_pipeline(folder):
            assert isinstance(_index_of(folder)["_class_name"], list), folder.name


# ------------------------------------------------------------------------------------------------------------
# The project's loader runs no code from the repo


def _tamper(module: Path, marker: Path) -> None:
    future = "from __future__ import annotations\n"
    module.write_text(module.read_text().replace(future, f"{future}open({str(marker)!r}, 'w').write('ran')\n", 1))


def test_load_ignores_a_tampered_model_module_that_only_trust_remote_code_runs(tmp_path):
    folder, marker = tmp_path / "vae", tmp_path / "ran"
    ConvVAE(latent_dim=2, hidden_channels=(4, 8)).save_pretrained(folder)
    add_remote_code(folder)
    _tamper(folder / "conv_vae.py", marker)
    model = load(folder)
    assert type(model) is ConvVAE and not marker.exists()  # the installed class, the file never ran
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModel.from_pretrained(str(folder))
    assert not marker.exists()
    remote = AutoModel.from_pretrained(str(folder), trust_remote_code=True)
    assert marker.exists() and type(remote) is not ConvVAE  # only an explicit trust runs the shipped code


@needs_library_patch
def test_load_ignores_a_tampered_pipeline_module(tmp_path):
    folder, marker = tmp_path / "cddpm", tmp_path / "ran"
    save_pipeline(_tiny_unet(num_class_embeds=11), make_train_scheduler(), folder)
    add_remote_code(folder)
    _tamper(folder / "class_conditional_ddpm_pipeline.py", marker)
    assert type(load(folder)) is ClassConditionalDDPMPipeline
    assert type(ClassConditionalDDPMPipeline.from_pretrained(folder)) is ClassConditionalDDPMPipeline
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------------------
# Through the offline Hub, as a diffusers user


def test_every_kind_loads_from_the_hub_with_diffusers_alone_and_matches_the_library(hub, tmp_path):
    api = HfApi()
    vae_repo = f"{USER}/tiny-conv"
    folders = tiny_folders(tmp_path / "runs", vae_repo)
    spec: dict = {"prior_steps": 3}
    for name, (kind, folder) in folders.items():
        repo_id = f"{USER}/tiny-{name}"
        api.create_repo(repo_id)
        api.upload_folder(repo_id=repo_id, folder_path=folder)
        spec.setdefault(kind, {})[name] = repo_id
    remote = run_as_a_diffusers_user(tmp_path, spec)
    compare(remote, folders, {"prior": folders["conv"][1]})


# ------------------------------------------------------------------------------------------------------------
# The release folders by path


@pytest.mark.slow
def test_the_release_folders_load_by_path_with_diffusers_alone(tmp_path):
    kinds = {"ConvVAE": "vae", "DenseVAE": "vae", "DigitClassifier": "classifier", "LatentPrior": "latent-prior",
             "DDPMPipeline": "ddpm", "ClassConditionalDDPMPipeline": "conditional", "LatentDDPMPipeline": "ldm"}
    spec: dict = {"prior_steps": 20, "vae_of": {}}
    folders = {}
    for folder in release_folders():
        index = folder / ("model_index.json" if (folder / "model_index.json").is_file() else "config.json")
        kind = kinds[class_name_of(json.loads(index.read_text()))]
        spec.setdefault(kind, {})[folder.name] = str(folder)
        folders[folder.name] = (kind, folder)
        if kind == "latent-prior":
            vae_id = json.loads(index.read_text())["vae_name_or_path"]  # the VAE's repo id: its release folder
            spec["vae_of"][folder.name] = str(RELEASE / vae_id.split("/mnist-genlab-")[-1])
    remote = run_as_a_diffusers_user(tmp_path, spec, offline=True)
    compare(remote, folders, {name: Path(p) for name, p in spec["vae_of"].items()}, prior_steps=20)


@pytest.mark.slow
def test_the_ddpm_cards_solver_hint_samples_recognisable_digits():
    """release/ddpm's "other samplers" hint loads `dpmsolver/`: the library's DPM-Solver++ (x0 thresholding on),
    not `from_config(pipe.scheduler.config)`'s thresholding-off solver (FID ≈ 356 in the sampler study). The
    classifier does not tell the two apart (9 of these 16 digits pass with either): that the stored config is the
    library's is checked exactly by test_the_release_folders_ship_the_current_code, and that it samples as the
    library does by the Hub test (`ddpm-dpmsolver`)."""
    from diffusers import DPMSolverMultistepScheduler

    pipe = DDPMPipeline.from_pretrained(RELEASE / "ddpm", use_safetensors=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_pretrained(RELEASE / "ddpm", subfolder=SOLVER_FOLDER)
    assert pipe.scheduler.config.thresholding and pipe.scheduler.config.timestep_spacing == "trailing"
    images = pipe(batch_size=16, num_inference_steps=25, generator=gen(), output_type="pt").images
    images = torch.as_tensor(images).permute(0, 3, 1, 2) if images.shape[-1] == 1 else torch.as_tensor(images)
    probs, _, _ = DigitClassifier.from_pretrained(RELEASE / "digit-classifier").predict(images)
    assert (probs.max(1).values > 0.9).sum() >= 8  # recognisable: classifier confidence > 0.9


def test_the_latent_priors_sampler_folder_is_the_librarys_sampler(tmp_path):
    folder = tmp_path / "prior"
    save_latent_prior(LatentPrior(latent_dim=2, hidden_dim=8, num_blocks=1, time_embed_dim=8),
                      make_latent_train_scheduler(), folder)
    remote_code_step(folder, folder, "x")
    stored = json.loads((folder / SAMPLER_FOLDER / "scheduler_config.json").read_text())
    assert stored["timestep_spacing"] == "trailing" and stored["_class_name"] == "DDPMScheduler"
    assert json.loads((folder / "scheduler" / "scheduler_config.json").read_text())["timestep_spacing"] == "leading"
