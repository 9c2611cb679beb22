"""Publishing runs and loading them back through the real huggingface_hub client and the offline Hub.

The runs are the session's tiny runs of the real scripts (conftest.py); a test that changes one works on a copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import preloaded_python
import pytest
import torch
from diffusers import DDPMPipeline, UNet2DModel
from hub_server import DROP, READ_TOKEN, USER, WRITE_TOKEN
from huggingface_hub import HfApi, ModelCard

from hub_models import ConvVAE, DenseVAE
from hub_models.hub import (
    NO_CHANGES,
    HubLoadError,
    HubPushError,
    load,
    publish_study,
    push_run,
    push_run_in_background,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = {"backoff": 0.01}
VAE_FILES = {
    ".gitattributes",
    "README.md",
    "config.json",
    "diffusion_pytorch_model.safetensors",
    "metrics.json",
    "training_config.json",
    "figures/reconstructions.png",
    "figures/samples.png",
    "figures/latent_scatter.png",
    "figures/manifold.png",
    "conv_vae.py",  # the model's code for diffusers' AutoModel (hub_models.hub.remote_code)
}
DDPM_FILES = {
    ".gitattributes",
    "README.md",
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "scheduler/scheduler_config.json",
    "evaluation.json",
    "metrics.json",
    "training_config.json",
    "figures/loss_curve.png",
    "figures/samples.png",
    "figures/samples_epoch_001.png",
    "figures/samples_epoch_002.png",
}


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file (and mtime-independent): to prove a folder was left untouched."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ----------------------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------------------
def test_push_vae_run_then_from_pretrained_from_empty_cache(hub, vae_run, tmp_path):
    repo_id = f"{USER}/mnist-genlab-vae-conv-z2-beta1"
    before = tree_digest(vae_run)
    url = push_run(vae_run, repo_id, **FAST)

    assert url.startswith(f"{hub.endpoint}/{repo_id}/commit/")
    assert set(hub.head_files(repo_id)) == VAE_FILES  # no checkpoints/, logs/, optimizer state
    assert hub.commit_count(repo_id) == 2  # the repo's initial commit + exactly one push commit
    assert tree_digest(vae_run) == before

    local = ConvVAE.from_pretrained(vae_run)
    cache = tmp_path / "empty-cache"
    remote = ConvVAE.from_pretrained(repo_id, cache_dir=cache)
    assert any(cache.rglob("diffusion_pytorch_model.safetensors"))  # really downloaded, not a local path
    assert_same_weights(local, remote)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(
        local.sample(8, generator=torch.Generator().manual_seed(0)),
        remote.sample(8, generator=torch.Generator().manual_seed(0)),
    )
    assert torch.equal(local.reconstruct(x), remote.reconstruct(x))

    loaded = load(repo_id, cache_dir=tmp_path / "another-empty-cache")
    assert isinstance(loaded, ConvVAE)
    assert_same_weights(local, loaded)


def test_push_dense_vae_and_load_by_repo_id(hub, vae_study, tmp_path):
    run = vae_study / "vae-dense-z4-beta20-warmup"  # pushing reads the run, never writes it
    repo_id = f"{USER}/mnist-genlab-vae-dense-z4-beta20-warmup"
    push_run(run, repo_id, **FAST)
    model = load(repo_id, cache_dir=tmp_path / "cache")
    assert isinstance(model, DenseVAE) and model.config.latent_dim == 4
    assert_same_weights(DenseVAE.from_pretrained(run), model)


def test_push_ddpm_run_then_pipeline_from_pretrained(hub, ddpm_run, tmp_path):
    repo_id = f"{USER}/mnist-genlab-ddpm"
    before = tree_digest(ddpm_run)
    push_run(ddpm_run, repo_id, **FAST)
    assert set(hub.head_files(repo_id)) == DDPM_FILES  # no unet_non_ema/, checkpoints/
    assert tree_digest(ddpm_run) == before

    local = DDPMPipeline.from_pretrained(ddpm_run, use_safetensors=True)
    remote = DDPMPipeline.from_pretrained(repo_id, cache_dir=tmp_path / "empty", use_safetensors=True)
    assert_same_weights(local.unet, remote.unet)
    # scheduler/ is the sampler the card's FID was measured with (evaluate_ddpm.py's point: DPM-Solver++, trailing),
    # built from the training schedule.
    assert type(remote.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert remote.scheduler.config.timestep_spacing == "trailing"
    assert remote.scheduler.config.num_train_timesteps == 4000
    assert remote.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    local.scheduler = type(remote.scheduler).from_config(remote.scheduler.config)

    def run(pipe):
        return pipe(
            batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np"
        ).images

    np.testing.assert_array_equal(run(local), run(remote))

    unet = UNet2DModel.from_pretrained(repo_id, subfolder="unet", cache_dir=tmp_path / "empty2", use_safetensors=True)
    assert_same_weights(local.unet, unet)
    pipe = load(repo_id, cache_dir=tmp_path / "empty3")
    assert isinstance(pipe, DDPMPipeline)
    np.testing.assert_array_equal(run(local), run(pipe))


def test_model_card_on_the_hub_holds_the_metrics(hub, vae_run, ddpm_run):
    push_run(vae_run, f"{USER}/vae", **FAST)
    push_run(ddpm_run, f"{USER}/ddpm", **FAST)

    card = ModelCard.load(f"{USER}/vae")
    card.validate()  # against the offline Hub's /api/validate-yaml
    assert card.data.library_name == "diffusers" and card.data.license == "mit"  # AutoModel + the shipped module
    assert card.data.datasets == ["ylecun/mnist"]
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert {"vae", "beta-vae", "mnist"} <= set(card.data.tags)
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    test = json.loads((vae_run / "metrics.json").read_text())["test"]
    assert values == {k: round(test[k], 6) for k in ("bce", "kld", "elbo")}

    info = HfApi().model_info(f"{USER}/ddpm")
    assert info.card_data["library_name"] == "diffusers"
    ddpm_card = ModelCard.load(f"{USER}/ddpm")
    values = {r.metric_type: r.metric_value for r in ddpm_card.data.eval_results}
    metrics = json.loads((ddpm_run / "metrics.json").read_text())
    (point,) = json.loads((ddpm_run / "evaluation.json").read_text())["points"].values()
    expected = {k: metrics[k] for k in ("train_loss", "test_loss", "test_loss_ema")} | {"fid": point["fid"]["fid"]}
    assert values == {k: round(v, 6) for k, v in expected.items()}


def test_card_usage_snippet_runs_against_the_hub(hub, vae_run, tmp_path, monkeypatch):
    repo_id = f"{USER}/snippet-vae"
    push_run(vae_run, repo_id, **FAST)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    text = ModelCard.load(repo_id).text
    snippet = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    scope: dict = {}
    exec(compile(snippet, "card-snippet", "exec"), scope)
    assert scope["images"].shape == (16, 1, 28, 28)
    expected = ConvVAE.from_pretrained(vae_run).sample(16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(scope["images"], expected)


# ----------------------------------------------------------------------------------------------------------
# Idempotence, retries, failures
# ----------------------------------------------------------------------------------------------------------
def test_repush_is_a_no_op(hub, vae_run):
    repo_id = f"{USER}/again"
    push_run(vae_run, repo_id, **FAST)
    head = hub.repos[("model", repo_id)].branches["main"]
    n_commits = hub.commit_count(repo_id)
    commit_posts = sum(1 for m, p in hub.requests if p.endswith("/commit/main"))

    assert push_run(vae_run, repo_id, **FAST) == NO_CHANGES
    assert hub.repos[("model", repo_id)].branches["main"] == head
    assert hub.commit_count(repo_id) == n_commits
    assert sum(1 for m, p in hub.requests if p.endswith("/commit/main")) == commit_posts  # nothing sent


def test_changed_run_replaces_stale_files_in_one_commit(hub, vae_run):
    repo_id = f"{USER}/changes"
    push_run(vae_run, repo_id, **FAST)
    (vae_run / "figures" / "manifold.png").unlink()
    (vae_run / "figures" / "latent_pca.png").write_bytes((vae_run / "figures" / "samples.png").read_bytes())
    url = push_run(vae_run, repo_id, commit_message="Retrained", **FAST)
    assert url != NO_CHANGES
    files = hub.head_files(repo_id)
    assert "figures/manifold.png" not in files and "figures/latent_pca.png" in files
    assert b"latent_pca.png" in files["README.md"] and b"manifold.png" not in files["README.md"]
    assert hub.commit_count(repo_id) == 3
    assert HfApi().list_repo_commits(repo_id)[0].title == "Retrained"


def test_commit_500_then_success_is_retried_into_one_complete_commit(hub, vae_run):
    repo_id = f"{USER}/flaky"
    hub.fail("POST", r"/commit/", status=500, times=1)
    push_run(vae_run, repo_id, **FAST)
    assert sum(1 for m, p in hub.requests if m == "POST" and "/commit/" in p) == 2
    assert hub.commit_count(repo_id) == 2
    assert set(hub.head_files(repo_id)) == VAE_FILES


def test_5xx_and_dropped_connections_are_retried(hub, vae_run):
    repo_id = f"{USER}/flaky-503"
    hub.fail("POST", r"/commit/", status=503, times=1)
    hub.fail("POST", r"/commit/", status=DROP, times=1)  # a broken connection, not an HTTP error
    hub.fail("POST", r"/commit/", status=412, times=1)  # someone else committed meanwhile
    hub.fail("GET", r"/api/models/.*/revision/", status=502, times=1)
    hub.fail("GET", r"/api/whoami", status=DROP, times=1)
    push_run(vae_run, repo_id, **FAST)
    assert sum(1 for m, p in hub.requests if m == "POST" and "/commit/" in p) == 4
    assert set(hub.head_files(repo_id)) == VAE_FILES and hub.commit_count(repo_id) == 2


def test_dropped_connections_everywhere_give_a_clear_error(hub, vae_run):
    hub.fail("*", r"^/api/whoami", status=DROP, times=None)
    with pytest.raises(HubPushError, match="Could not reach the Hub"):
        push_run(vae_run, f"{USER}/unreachable", max_retries=2, **FAST)
    assert hub.repos == {}


def test_always_failing_server_gives_a_clear_error_and_writes_nothing(hub, vae_run, capfd):
    repo_id = f"{USER}/down"
    before = tree_digest(vae_run)
    hub.fail("POST", r"/commit/", status=500, times=None)
    with pytest.raises(HubPushError, match=r"failed after 3 retries: HTTP 500.*run folder is unchanged"):
        push_run(vae_run, repo_id, max_retries=3, **FAST)
    assert sum(1 for m, p in hub.requests if m == "POST" and "/commit/" in p) == 4
    assert hub.commit_count(repo_id) == 1 and set(hub.head_files(repo_id)) == {".gitattributes"}
    assert tree_digest(vae_run) == before

    hub.clear_faults()  # the Hub is back: the same push now succeeds
    push_run(vae_run, repo_id, **FAST)
    assert set(hub.head_files(repo_id)) == VAE_FILES


def test_missing_token_fails_before_any_network_call(hub, vae_run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    hub.requests.clear()
    with pytest.raises(HubPushError, match="No Hugging Face token"):
        push_run(vae_run, f"{USER}/no-token", **FAST)
    # The client may fetch its agent registry in the background; nothing else may reach the server.
    assert [r for r in hub.requests if "agent-harnesses" not in r[1]] == []
    assert hub.repos == {}


def test_read_only_token_is_refused_before_any_upload(hub, vae_run):
    with pytest.raises(HubPushError, match="read-only"):
        push_run(vae_run, f"{USER}/read-only", token=READ_TOKEN, **FAST)
    assert hub.repos == {}
    assert [p for m, p in hub.requests if m != "GET"] == []


def test_invalid_token_is_refused(hub, vae_run):
    with pytest.raises(HubPushError, match="rejected the token"):
        push_run(vae_run, f"{USER}/bad-token", token="hf_not_a_real_token", **FAST)
    assert hub.repos == {}


def test_no_rights_on_the_namespace_is_a_clear_error(hub, vae_run):
    with pytest.raises(HubPushError, match=r"failed: HTTP 403 from POST /api/repos/create"):
        push_run(vae_run, "someone-else/model", **FAST)
    assert sum(1 for m, p in hub.requests if p.endswith("/api/repos/create")) == 1  # 403 is not retried


def test_incomplete_run_is_refused_before_any_network_call(hub, vae_run):
    (vae_run / "diffusion_pytorch_model.safetensors").unlink()
    hub.requests.clear()
    with pytest.raises(HubPushError, match=r"missing diffusion_pytorch_model\.safetensors"):
        push_run(vae_run, f"{USER}/incomplete", **FAST)
    assert [r for r in hub.requests if "agent-harnesses" not in r[1]] == []


def test_token_never_appears_in_outputs_or_published_files(hub, vae_run, tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    run = vae_run
    config = json.loads((run / "training_config.json").read_text())
    (run / "training_config.json").write_text(json.dumps({**config, "hub_token": WRITE_TOKEN}))
    hub.fail("POST", r"/commit/", status=500, times=1)  # the retry path logs too
    push_run(run, f"{USER}/secret", **FAST)
    with pytest.raises(HubPushError) as err:
        push_run(run, f"{USER}/secret2", token=READ_TOKEN, **FAST)
    published = hub.head_files(f"{USER}/secret")
    assert "hub_token" not in published["training_config.json"].decode()
    ConvVAE.from_pretrained(f"{USER}/secret", cache_dir=tmp_path / "cache")
    out, errs = capfd.readouterr()
    for token in (WRITE_TOKEN, READ_TOKEN):
        assert token not in out + errs + caplog.text + str(err.value)
        assert not any(token.encode() in blob for blob in hub.stored_bytes())
        assert not any(token.encode() in p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_push_to_a_branch_and_as_a_pull_request(hub, vae_run):
    repo_id = f"{USER}/branches"
    push_run(vae_run, repo_id, revision="dev", **FAST)
    repo = hub.repos[("model", repo_id)]
    assert set(hub.head_files(repo_id, rev="dev")) == VAE_FILES
    assert set(hub.head_files(repo_id, rev="main")) == {".gitattributes"}
    url = push_run(vae_run, repo_id, create_pr=True, **FAST)
    assert url.endswith("/discussions/1") and 1 in repo.prs
    assert set(hub.head_files(repo_id, rev="refs/pr/1")) == VAE_FILES


def test_private_repo(hub, vae_run, tmp_path, monkeypatch):
    repo_id = f"{USER}/private"
    push_run(vae_run, repo_id, private=True, **FAST)
    assert hub.repos[("model", repo_id)].private
    assert HfApi().model_info(repo_id).private
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(OSError, match="not a valid model identifier"):
        ConvVAE.from_pretrained(repo_id, cache_dir=tmp_path / "anon", token=False)


def test_push_in_background_returns_a_future(hub, vae_run):
    future = push_run_in_background(vae_run, f"{USER}/background", backoff=0.01)
    assert future.result(timeout=120).startswith(hub.endpoint)
    failed = push_run_in_background(vae_run, f"{USER}/background-ro", token=READ_TOKEN, backoff=0.01)
    assert isinstance(failed.exception(timeout=60), HubPushError)


# ----------------------------------------------------------------------------------------------------------
# load() refuses what it should
# ----------------------------------------------------------------------------------------------------------
def _upload(repo_id: str, files: dict[str, bytes]) -> None:
    from huggingface_hub import CommitOperationAdd

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.create_commit(
        repo_id, [CommitOperationAdd(p, data) for p, data in files.items()], commit_message="test fixture"
    )


def test_load_refuses_unknown_classes(hub, vae_run, ddpm_run, tmp_path):
    weights = (vae_run / "diffusion_pytorch_model.safetensors").read_bytes()
    _upload(
        f"{USER}/evil",
        {
            "config.json": b'{"_class_name": "EvilModel", "latent_dim": 2}',
            "diffusion_pytorch_model.safetensors": weights,
        },
    )
    with pytest.raises(HubLoadError, match="unknown model class 'EvilModel'"):
        load(f"{USER}/evil", cache_dir=tmp_path / "c1")

    index = (ddpm_run / "model_index.json").read_text().replace('"DDPMPipeline"', '"MyCustomPipeline"')
    _upload(f"{USER}/evil-pipe", {"model_index.json": index.encode(), "pipeline.py": b"import os\n"})
    with pytest.raises(HubLoadError, match="unknown pipeline class 'MyCustomPipeline'"):
        load(f"{USER}/evil-pipe", cache_dir=tmp_path / "c2")

    index = (ddpm_run / "model_index.json").read_text().replace('"UNet2DModel"', '"MyUNet"')
    (ddpm_run / "model_index.json").write_text(index)
    with pytest.raises(HubLoadError, match="not diffusers' UNet2DModel"):
        load(ddpm_run)


def test_load_refuses_pickle_only_repos(hub, vae_run, tmp_path):
    _upload(
        f"{USER}/pickled",
        {
            "config.json": (vae_run / "config.json").read_bytes(),
            "diffusion_pytorch_model.bin": b"\x80\x04pickle",
        },
    )
    with pytest.raises(HubLoadError, match=r"only has pickled weights \(diffusion_pytorch_model.bin\)"):
        load(f"{USER}/pickled", cache_dir=tmp_path / "c")
    assert not any(p.name.endswith(".bin") for p in (tmp_path / "c").rglob("*"))  # never even downloaded


def test_load_refuses_truncated_safetensors(hub, vae_run, tmp_path):
    weights = (vae_run / "diffusion_pytorch_model.safetensors").read_bytes()
    _upload(
        f"{USER}/truncated",
        {
            "config.json": (vae_run / "config.json").read_bytes(),
            "diffusion_pytorch_model.safetensors": weights[: len(weights) - 1000],
        },
    )
    with pytest.raises(HubLoadError, match="truncated or corrupt"):
        load(f"{USER}/truncated", cache_dir=tmp_path / "c")
    (vae_run / "diffusion_pytorch_model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(HubLoadError, match="not a valid safetensors file"):
        load(vae_run)


def test_load_from_a_local_run_folder(vae_run, ddpm_run):
    assert isinstance(load(vae_run), ConvVAE)
    assert isinstance(load(ddpm_run), DDPMPipeline)


# ----------------------------------------------------------------------------------------------------------
# A whole study
# ----------------------------------------------------------------------------------------------------------
def test_publish_study_is_idempotent_and_fills_a_collection(hub, vae_study, trained_ddpm_run):
    """The layouts of scripts/run_study.py (a folder of VAE runs) and train_ddpm.py; publishing only reads them."""
    expected = {f"{USER}/mnist-genlab-{run.name}" for run in vae_study.iterdir()} | {f"{USER}/mnist-genlab-ddpm"}
    assert len(expected) == 7 and f"{USER}/mnist-genlab-vae-dense-z4-beta20-warmup" in expected

    first = publish_study([vae_study, trained_ddpm_run], USER, collection_title="MNIST genlab test", **FAST)
    assert set(first["repos"]) == expected
    assert all(url.startswith(hub.endpoint) for url in first["repos"].values())
    api = HfApi()
    collection = api.get_collection(first["collection"])
    assert collection.title == "MNIST genlab test"
    assert {item.item_id for item in collection.items} == expected
    assert all(item.item_type == "model" for item in collection.items)

    heads = {r: hub.repos[("model", r)].branches["main"] for r in expected}
    second = publish_study([vae_study, trained_ddpm_run], USER, collection_title="MNIST genlab test", **FAST)
    assert second["collection"] == first["collection"]
    assert set(second["repos"].values()) == {NO_CHANGES}
    assert {r: hub.repos[("model", r)].branches["main"] for r in expected} == heads
    assert len(hub.collections) == 1
    assert len(api.get_collection(first["collection"]).items) == 7


def test_publish_study_refuses_two_runs_with_the_same_name(hub, vae_study, copy_run, tmp_path):
    for name in ("a", "b"):
        copy_run(vae_study / "vae-conv-z2-beta1", tmp_path / "study" / name)
    with pytest.raises(HubPushError, match="would both be published"):
        publish_study(tmp_path / "study", USER, **FAST)
    assert hub.repos == {}


# ----------------------------------------------------------------------------------------------------------
# Command lines
# ----------------------------------------------------------------------------------------------------------
def _cli(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    return preloaded_python.run([REPO_ROOT / "training" / script, *args], timeout=300, env=env, cwd=REPO_ROOT)


def test_push_to_hub_cli(hub, vae_run):
    repo_id = f"{USER}/cli"
    done = _cli("push_to_hub.py", "--run_dir", str(vae_run), "--repo_id", repo_id, "--commit_message", "CLI push")
    assert done.returncode == 0, done.stderr
    assert f"{hub.endpoint}/{repo_id}/commit/" in done.stdout
    assert HfApi().list_repo_commits(repo_id)[0].title == "CLI push"
    no_token = _cli("push_to_hub.py", "--run_dir", str(vae_run), "--repo_id", repo_id, env={"HF_TOKEN": ""})
    assert no_token.returncode == 1
    assert "No Hugging Face token" in no_token.stderr and "Traceback" not in no_token.stderr
    for proc in (done, no_token):
        assert WRITE_TOKEN not in proc.stdout + proc.stderr


def test_publish_study_cli(hub, vae_study, copy_run, tmp_path):
    copy_run(vae_study / "vae-conv-z2-beta1", tmp_path / "study" / "vae-conv-z2-beta1")
    done = _cli(
        "publish_study.py",
        "--study_dir",
        str(tmp_path / "study"),
        "--namespace",
        USER,
        "--collection_title",
        "CLI study",
    )
    assert done.returncode == 0, done.stderr
    assert f"{USER}/mnist-genlab-vae-conv-z2-beta1" in done.stdout
    assert [c["title"] for c in hub.collections.values()] == ["CLI study"]


@pytest.mark.slow
def test_train_vae_push_to_hub_flag_publishes_the_real_run_layout(hub, tiny_mnist_cache, tmp_path):
    """The contract with training/train_vae.py: its run folder pushes as is and loads back bit-identical."""
    out, repo_id = tmp_path / "run", f"{USER}/trained"
    done = preloaded_python.run(
        [REPO_ROOT / "training" / "train_vae.py", "--output_dir", out, "--max_train_steps", "2", "--batch_size", "32",
         "--num_figure_samples", "4", "--push_to_hub", "--hub_model_id", repo_id],
        timeout=600, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Pushed to {hub.endpoint}/{repo_id}/commit/" in done.stdout + done.stderr  # the trainer's log
    files = set(hub.head_files(repo_id))
    assert {"config.json", "diffusion_pytorch_model.safetensors", "README.md", "figures/samples.png"} <= files
    assert not any(f.startswith(("checkpoints/", "logs/")) for f in files)
    assert_same_weights(ConvVAE.from_pretrained(out), ConvVAE.from_pretrained(repo_id, cache_dir=tmp_path / "c"))


def _snippet(card_text: str) -> str:
    """The python block of the card's "How to use" section, as written."""
    section = card_text.split("## How to use", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_ddpm_card_usage_snippet_runs_as_written_against_the_hub(hub, ddpm_run, tmp_path, monkeypatch):
    """The card's snippet, copied verbatim, samples with the settings its FID was measured with."""
    repo_id = f"{USER}/snippet-ddpm"
    push_run(ddpm_run, repo_id, **FAST)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    text = ModelCard.load(repo_id).text
    snippet = _snippet(text)
    assert "num_inference_steps=25" in snippet  # the evaluated point's steps, not the 4000 training timesteps
    scope: dict = {}
    exec(compile(snippet, "card-snippet", "exec"), scope)
    assert len(scope["images"]) == 16 and scope["images"][0].size == (28, 28)
    assert type(scope["pipe"].scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scope["pipe"].scheduler.config.timestep_spacing == "trailing"


def test_conditional_ddpm_card_shows_guidance_and_its_snippet_draws_the_requested_digits(
        hub, conditional_ddpm_run, copy_run, tmp_path, monkeypatch):
    """A class-conditional run with its guidance table and main point: its card declares this library, tabulates
    guidance, and its snippet, copied verbatim, runs against the offline Hub with the measured sampler and w."""
    from hub_models.hub.cards import render_model_card

    run = copy_run(conditional_ddpm_run)
    card = render_model_card(run, f"{USER}/snippet-cond")
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag is None
    assert "class-conditional" in card.data.tags and "diffusers:DDPMPipeline" not in card.data.tags
    results = card.text.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert "| guidance w | FID | read as the requested digit | recognisable |" in results
    rows = re.findall(r"^\| (\d) \| FID .*\| \d+\.\d% \| \d+\.\d% \|$", results, re.MULTILINE)
    assert rows == ["0", "2"]
    assert "guidance w = 2, seed 1" in results  # the main FID's label
    assert "pip install" not in card.text  # no published source given: no install line, never a placeholder

    repo_id = f"{USER}/snippet-cond"
    push_run(run, repo_id, **FAST)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    snippet = _snippet(ModelCard.load(repo_id).text)
    assert "guidance_scale=2," in snippet and "num_inference_steps=3" in snippet and "torch.bfloat16" in snippet
    scope: dict = {}
    exec(compile(snippet, "card-snippet", "exec"), scope)
    assert len(scope["images"]) == 20 and scope["images"][0].size == (28, 28)
    scheduler = scope["pipe"].scheduler
    assert type(scheduler).__name__ == "DDPMScheduler" and scheduler.config.timestep_spacing == "trailing"


def test_classifier_card_declares_the_library_and_its_snippet_runs(hub, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "digit-classifier"
    shutil.copytree(REPO_ROOT / "release" / "digit-classifier", run)
    repo_id = f"{USER}/mnist-genlab-digit-classifier"
    push_run(run, repo_id, **FAST)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    card = ModelCard.load(repo_id)
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == "image-classification"
    assert "pip install" not in card.text
    (result,) = card.data.eval_results
    assert result.dataset_split == "test" and "N=10,000" in result.metric_name
    scope: dict = {}
    exec(compile(_snippet(card.text), "card-snippet", "exec"), scope)
    assert scope["probs"].shape == (4, 10) and scope["labels"].shape == (4,)


@pytest.mark.slow
def test_publish_the_release_folder(hub, tmp_path):
    """`publish_study.py --study_dir release`: every folder (the Space's eight, the conditional VAE included, and the
    three hybrids the Space does not show: two latent priors and the latent diffusion pipeline), named as
    hub_models.hub.naming.published_repo_ids names them; a re-push deletes what a run no longer has,
    evaluation.json included."""
    import shutil

    from hub_models.hub.naming import published_repo_ids, release_repo_ids

    release = tmp_path / "release"
    shutil.copytree(REPO_ROOT / "release", release)
    done = _cli("publish_study.py", "--study_dir", str(release), "--namespace", USER, "--collection_title", "R")
    assert done.returncode == 0, done.stderr
    expected = set(published_repo_ids(USER).values())
    assert len(expected) == 12 and f"{USER}/mnist-genlab-digit-classifier" in expected
    assert {f"{USER}/mnist-genlab-ddpm", f"{USER}/mnist-genlab-ddpm-conditional"} <= expected
    assert f"{USER}/mnist-genlab-vae-conv-z2-beta1-conditional" in expected
    assert {f"{USER}/mnist-genlab-ldm", f"{USER}/mnist-genlab-latent-prior-conv-z4-beta1"} <= expected
    assert "vae/diffusion_pytorch_model.safetensors" in hub.head_files(f"{USER}/mnist-genlab-ldm")
    from hub_models.diffusion.latent import LatentDDPMPipeline

    ldm = load(f"{USER}/mnist-genlab-ldm", cache_dir=tmp_path / "cache")  # the released latent pipeline, by repo id
    assert isinstance(ldm, LatentDDPMPipeline) and ldm.scheduler.config.prediction_type == "v_prediction"
    assert ldm(batch_size=2, num_inference_steps=2, sampler="ddpm", output_type="pt").images.shape == (2, 1, 28, 28)
    assert {r for (kind, r) in hub.repos if kind == "model"} == expected
    assert all(f"{repo_id}:" in done.stdout for repo_id in expected)
    ddpm_repo = release_repo_ids(USER)["ddpm"]
    evaluation = release / "ddpm" / "evaluation.json"
    if not evaluation.exists():  # the released DDPM is not evaluated yet: give the first push one
        evaluation.write_text(json.dumps({"schema_version": 2, "kind": "ddpm", "points": {}}))
        assert publish_study(release, USER, collection_title="R", **FAST)["repos"][ddpm_repo] != NO_CHANGES
    assert "evaluation.json" in hub.head_files(ddpm_repo)

    evaluation.unlink()  # e.g. retrained, not evaluated yet
    assert publish_study(release, USER, collection_title="R", **FAST)["repos"][ddpm_repo] != NO_CHANGES
    files = hub.head_files(ddpm_repo)
    assert "evaluation.json" not in files and "unet/diffusion_pytorch_model.safetensors" in files


def test_latent_prior_publishes_with_its_vae_and_the_card_snippet_runs(hub, vae_run, tiny_mnist_cache, tmp_path,
                                                                       monkeypatch, load_script):
    """A learned prior trained on a `release/` VAE: its pushed config names the VAE's repo id, `load` returns the
    LatentPrior, and its card's snippet, copied verbatim, decodes prior samples with the VAE it names."""
    import shutil

    release = tmp_path / "release"
    vae_dir = release / "vae-conv-z2-beta1"
    shutil.copytree(vae_run, vae_dir)
    script = load_script("training/train_latent_prior.py")
    prior_dir = tmp_path / "prior"
    monkeypatch.chdir(tmp_path)  # the VAE is named by its path relative to the checkout, as in the real release
    script.LatentPriorTrainer.main(script.parse_args([
        "--vae_name_or_path", "release/vae-conv-z2-beta1", "--hidden_dim", "16", "--num_blocks", "1",
        "--max_train_steps", "2", "--logger", "none", "--sample_steps", "3", "--num_figure_samples", "4",
        "--classifier_samples", "4", "--fid_reference_n", "50", "--output_dir", str(prior_dir)]))  # fmt: skip
    vae_repo, prior_repo = f"{USER}/mnist-genlab-vae-conv-z2-beta1", f"{USER}/mnist-genlab-latent-prior-conv-z2-beta1"
    push_run(vae_dir, vae_repo, **FAST)
    push_run(prior_dir, prior_repo, **FAST)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    from hub_models.models import LatentPrior

    prior = load(prior_repo)
    assert isinstance(prior, LatentPrior) and prior.config.vae_name_or_path == vae_repo
    card = ModelCard.load(prior_repo)
    assert card.data.library_name == "diffusers" and card.data.base_model == vae_repo
    assert "| z ~ N(0, I) (the VAE alone) |" in card.text and "| z from this prior |" in card.text
    scope: dict = {}
    exec(compile(_snippet(card.text), "card-snippet", "exec"), scope)  # diffusers alone: latents of the VAE
    digits = load(vae_repo).decode(scope["z"])
    assert digits.shape == (16, 1, 28, 28) and 0 <= digits.min() and digits.max() <= 1
