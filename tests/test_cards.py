"""Model cards from model_cards/*.md: metadata the Hub understands, every field filled from the run."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from diffusers import UNet2DModel
from hub_fixtures import make_ddpm_run, make_vae_run

from hub_models import ConvVAE, DenseVAE
from hub_models.hub.cards import render_model_card
from hub_models.reference import PROJECT_INSTALL
from hub_models.reference import STUDY as STUDY_REFERENCE

REPO = "mnist-tester/mnist-genlab-vae-conv-z2-beta1"


def sections(text: str) -> dict[str, str]:
    """{heading: body} for every `#`/`##` heading of the card body (front matter removed)."""
    body = text.split("\n---\n", 1)[1]
    parts = re.split(r"^(#{1,3} .+)$", body, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def assert_complete(text: str) -> None:
    """No placeholder, no 'None', no empty section, no unrendered Jinja."""
    for bad in ("TODO", "None", "{{", "{%", "nan", "[More Information Needed]"):
        assert bad not in text.split("\n---\n", 1)[1], bad
    for heading, body in sections(text).items():
        assert body.strip(), f"empty section {heading}"


def test_vae_card_metadata_and_body_come_from_the_run(tmp_path):
    run = make_vae_run(tmp_path / "run", beta=1.0, seed=7)
    metrics = json.loads((run / "metrics.json").read_text())
    card = render_model_card(run, REPO)
    text = str(card)
    assert_complete(text)

    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "mnist-genlab" and meta["license"] == "mit"  # diffusers cannot load a VAE
    assert meta["datasets"] == ["ylecun/mnist"]
    assert meta["pipeline_tag"] == "unconditional-image-generation"
    assert {"vae", "beta-vae", "mnist", "conv-vae", "latent-dim-2"} <= set(meta["tags"])
    (entry,) = meta["model-index"]
    assert entry["name"] == "mnist-genlab-vae-conv-z2-beta1"
    got = {m["type"]: m["value"] for m in entry["results"][0]["metrics"]}
    assert got == {k: metrics["test"][k] for k in ("bce", "kld", "elbo")}
    assert entry["results"][0]["dataset"]["type"] == "ylecun/mnist"
    assert entry["results"][0]["dataset"]["split"] == "train[held-out 20%]"  # the study's held-out digits
    assert all("(held-out, N=256)" in m["name"] for m in entry["results"][0]["metrics"])

    body = sections(text)
    details = body["## Model details"]
    n_params = sum(p.numel() for p in ConvVAE.from_pretrained(run).parameters())
    assert f"**Parameters:** {n_params:,}" in details and "59,525" in details
    assert "Linear(in_features=3136, out_features=2" in details  # the exact architecture
    training = body["## Training"]
    assert "with seed 7" in training and "2 epochs (16 optimizer steps)" in training
    assert "| `--learning_rate` | 0.001 |" in training
    assert "output_dir" not in training and "hub_model_id" not in training  # no paths, no Hub plumbing
    results = body["## Results"]
    assert f"| {metrics['test']['bce']:.4g} | {metrics['train']['bce']:.4g} |" in results
    for claim in STUDY_REFERENCE["vae"]["beta"]["1"].values():
        assert claim in results
    assert STUDY_REFERENCE["vae"]["arch"]["conv"]["latent space"] in results
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body["## Figures"])
    assert sorted(links) == sorted(f"figures/{p.name}" for p in (run / "figures").glob("*.png"))
    assert all((run / link).is_file() for link in links)
    usage = body["## How to use"]
    assert f'ConvVAE.from_pretrained("{REPO}")' in usage and "vae.sample(16" in usage
    assert f"```bash\n{PROJECT_INSTALL}\n```" in usage  # how to get `hub_models`
    assert "@inproceedings" in body["## Citation"] and body["## Limitations"].count("\n- ") >= 3


def test_dense_z4_card_uses_its_own_claims(tmp_path):
    run = make_vae_run(tmp_path / "run", arch="dense", latent_dim=4, beta=1e-3)
    text = str(render_model_card(run, "me/mnist-genlab-vae-dense-z4-beta1e-3"))
    assert_complete(text)
    n_params = sum(p.numel() for p in DenseVAE.from_pretrained(run).parameters())
    assert f"**Parameters:** {n_params:,}" in text
    assert "1,068,820" not in text  # the study's count is for z=2 only
    assert "β = 1e-3: latent structure | scattered" in text
    assert "DenseVAE.from_pretrained" in text and "more overlap between classes" in text


def test_ddpm_card_metadata_and_body(tmp_path):
    run = make_ddpm_run(tmp_path / "ddpm", seed=3)
    text = str(render_model_card(run, "me/mnist-genlab-ddpm"))
    assert_complete(text)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert {"ddpm", "diffusion", "mnist"} <= set(meta["tags"])
    assert meta["pipeline_tag"] == "unconditional-image-generation" and meta["library_name"] == "diffusers"
    results = {r["metrics"][0]["type"]: r for r in meta["model-index"][0]["results"]}
    assert {k: r["metrics"][0]["value"] for k, r in results.items()} == {"train_loss": 0.0312, "test_loss": 0.0318,
                                                                          "fid": 41.5}
    # Each metric names the split it was measured on and its N.
    assert results["fid"]["dataset"]["split"] == "test"  # against the official test set
    assert results["fid"]["metrics"][0]["name"] == "FID (N=10,000 vs 10,000)"
    assert results["test_loss"]["dataset"]["split"] == "train[held-out 20%]"
    assert results["train_loss"]["dataset"]["split"] == "train[80%]"
    body = sections(text)
    assert ("N=10,000 vs 10,000 of the official MNIST test set, real-vs-real floor 2.25; dpmsolver++ sampler, 25 "
            "steps, seed 0) | 41.5 | 28.11 (protocol not stated: not comparable) |") in body["## Results"]
    assert "| Train loss (ε-prediction MSE, last epoch's running mean) | 0.0312 | 0.0278 |" in body["## Results"]
    assert "| Held-out loss (ε-prediction MSE, all 256 held-out digits) | 0.0318 | 0.028 |" in body["## Results"]
    assert "4000 training timesteps, `squaredcos_cap_v2`" in body["## Model details"]
    n_params = sum(p.numel() for p in UNet2DModel.from_pretrained(run / "unet").parameters())
    assert f"**U-Net parameters:** {n_params:,}" in body["## Model details"]
    assert "with seed 3" in body["## Training"]
    assert (
        'DDPMPipeline.from_pretrained("me/mnist-genlab-ddpm", use_safetensors=True)' in body["## How to use"]
    )
    assert "figures/samples_epoch_002.png" in body["## Figures"]


@pytest.mark.parametrize("missing", ["fid", "test_loss", "seed", "epochs", "train_samples", "ema"])
def test_ddpm_card_omits_what_the_run_did_not_record(tmp_path, missing):
    run = make_ddpm_run(tmp_path / "ddpm")
    metrics = json.loads((run / "metrics.json").read_text())
    if missing == "fid":  # never evaluated
        (run / "evaluation.json").unlink()
    else:
        del metrics[missing]
    (run / "metrics.json").write_text(json.dumps(metrics))
    if missing in ("seed", "epochs"):
        (run / "training_config.json").write_text("{}")
    text = str(render_model_card(run, "me/ddpm"))
    assert_complete(text)
    meta = yaml.safe_load(text.split("---\n")[1])
    types = {m["type"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    if missing in ("fid", "test_loss"):
        assert missing not in types
        assert ("FID" in sections(text)["## Results"]) == (missing != "fid")


@pytest.mark.parametrize("missing", ["test", "train", "seed", "seconds_per_epoch", "split", "global_step"])
def test_vae_card_omits_what_the_run_did_not_record(tmp_path, missing):
    run = make_vae_run(tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics[missing]
    (run / "metrics.json").write_text(json.dumps(metrics))
    if missing == "seed":
        (run / "training_config.json").write_text(json.dumps({"beta": 1.0}))
    text = str(render_model_card(run, REPO))
    assert_complete(text)
    meta = yaml.safe_load(text.split("---\n")[1])
    if missing == "test":  # no held-out metrics: no model-index rather than empty or made-up results
        assert "model-index" not in meta
    else:
        assert len(meta["model-index"][0]["results"][0]["metrics"]) == 3


def test_ddpm_card_fid_states_n_and_floor_and_ignores_stale_evaluations(tmp_path):
    import torch

    run = make_ddpm_run(tmp_path / "ddpm")
    results = sections(str(render_model_card(run, "me/ddpm")))["## Results"]
    assert "N=10,000 vs 10,000 of the official MNIST test set, real-vs-real floor 2.25;" in results
    assert "FID 41.50 (N=10,000 generated vs 10,000 of mnist-test, real-vs-real floor 2.25)" in results
    unet = UNet2DModel.from_pretrained(run, subfolder="unet")
    with torch.no_grad():
        unet.conv_out.bias.add_(1.0)  # more training: the evaluation no longer describes these weights
    unet.save_pretrained(run / "unet")
    assert "FID" not in sections(str(render_model_card(run, "me/ddpm")))["## Results"]


def test_cards_validate_against_the_hub(hub, tmp_path):
    for run in (make_vae_run(tmp_path / "vae"), make_ddpm_run(tmp_path / "ddpm")):
        card = render_model_card(run, "mnist-tester/x")
        card.validate()  # POST /api/validate-yaml on the offline Hub
    assert sum(1 for m, p in hub.requests if p.endswith("/api/validate-yaml")) == 2


def test_an_invalid_card_is_rejected_by_validation(hub, tmp_path):
    card = render_model_card(make_vae_run(tmp_path / "vae"), "mnist-tester/x")
    card.data.license = "not-a-license"
    with pytest.raises(ValueError, match="license"):
        card.validate()


def test_ddpm_card_snippet_and_scheduler_follow_the_measured_sampler(tmp_path):
    """An ancestral DDPM point measured in bf16 with the old resize: the card's snippet runs that sampler in bf16,
    the published scheduler is DDPMScheduler with trailing spacing, and the old-resize FID is labelled as such."""
    from hub_fixtures import ddpm_point

    from hub_models.hub.cards import published_scheduler

    run = make_ddpm_run(tmp_path / "ddpm")
    point = {**ddpm_point(run, 10.0), "sampler": "ddpm", "steps": 25, "precision": "bf16"}
    del point["fid"]["preprocessing"]  # measured before the standard resize
    (run / "evaluation.json").write_text(json.dumps({"points": {"ddpm-25steps-ema-n10000-seed0-bf16": point}}))
    text = str(render_model_card(run, "me/ddpm"))
    assert_complete(text)
    usage = sections(text)["## How to use"]
    assert 'with torch.autocast("cpu", dtype=torch.bfloat16):' in usage and "num_inference_steps=25" in usage
    assert "`DDPMScheduler` (ddpm)" in usage and 'timestep_spacing="trailing"' in usage
    scheduler = published_scheduler(run)
    assert type(scheduler).__name__ == "DDPMScheduler" and scheduler.config.timestep_spacing == "trailing"
    assert "old torch-bilinear resize, pending re-measurement" in sections(text)["## Results"]


def test_vae_card_labels_its_evaluation_with_split_and_n(tmp_path):
    from hub_models.evaluation.schema import Evaluation, HeldOut, point_key, vae_point

    run = make_vae_run(tmp_path / "vae")
    fid = {"fid": 80.0, "n_gen": 1000, "n_ref": 2000, "reference": "study-test", "floor": 9.0, "floor_n": 1000,
           "preprocessing": "tf1-bilinear"}
    point = vae_point(1000, 0, fid, {"n": 1000, "confident_share": 0.7, "kl_to_uniform": 0.1}, weights=None)
    Evaluation(kind="vae", points={point_key(point): point},
               held_out=HeldOut(split="study", n=256, bce=150.0, kld=6.0, elbo=-156.0, nll=148.0, nll_samples=1000,
                                nll_n=500)).write(run)
    text = str(render_model_card(run, REPO))
    meta = yaml.safe_load(text.split("---\n")[1])
    names = {m["type"]: m["name"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert names["fid"] == "FID of prior samples (N=1,000 vs 2,000)"
    assert names["nll"] == "NLL (importance-sampled, k=1,000, N=500)"
    results = sections(text)["## Results"]
    assert "the study's held-out 20 % of the 60,000 training digits" in results
    assert "on the first 500 digits of the study's held-out" in results
