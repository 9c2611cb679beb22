"""Model cards from model_cards/*.md: metadata the Hub understands, every field filled from the run.

The runs are the session's tiny runs of the real scripts (conftest.py: `vae_study`, `trained_ddpm_run`), so every
number a card shows is checked against what the run itself recorded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import UNet2DModel

from hub_models import ConvVAE, DenseVAE
from hub_models.evaluation.vae import EvalSettings, evaluate_vae_run
from hub_models.hub.cards import published_scheduler, render_model_card
from hub_models.hub.naming import beta_tag
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


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_vae_card_metadata_and_body_come_from_the_run(vae_study):
    run = vae_study / "vae-conv-z2-beta1"
    metrics, config = read_json(run / "metrics.json"), read_json(run / "training_config.json")
    card = render_model_card(run, REPO)
    text = str(card)
    assert_complete(text)

    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "diffusers" and meta["license"] == "mit"  # AutoModel + the shipped module
    assert meta["datasets"] == ["ylecun/mnist"]
    assert meta["pipeline_tag"] == "unconditional-image-generation"
    assert {"vae", "beta-vae", "mnist", "conv-vae", "latent-dim-2"} <= set(meta["tags"])
    (entry,) = meta["model-index"]
    assert entry["name"] == "mnist-genlab-vae-conv-z2-beta1"
    got = {m["type"]: m["value"] for m in entry["results"][0]["metrics"]}
    assert got == {k: round(metrics["test"][k], 6) for k in ("bce", "kld", "elbo")}
    assert entry["results"][0]["dataset"]["type"] == "ylecun/mnist"
    assert entry["results"][0]["dataset"]["split"] == "study-test"  # the study's held-out digits, by name
    n_test = metrics["test_samples"]  # 102: 20 % of the 512 tiny training digits
    assert all(f"(held-out, N={n_test})" in m["name"] for m in entry["results"][0]["metrics"])

    body = sections(text)
    details = body["## Model details"]
    n_params = sum(p.numel() for p in ConvVAE.from_pretrained(run).parameters())
    assert f"**Parameters:** {n_params:,}" in details and "59,525" in details
    assert "Linear(in_features=3136, out_features=2" in details  # the exact architecture
    training = body["## Training"]
    assert f"with seed {config['seed']}" in training
    assert f"{metrics['epochs']} epochs ({metrics['global_step']} optimizer steps)" in training
    assert f"| `--learning_rate` | {config['learning_rate']} |" in training
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
    assert f'AutoModel.from_pretrained("{REPO}", trust_remote_code=True)' in usage.split("```python", 2)[1]  # first
    assert f'ConvVAE.from_pretrained("{REPO}")' in usage and "vae.sample(16" in usage  # then the library's class
    assert "pip install" not in usage  # no published source: no install line, never a placeholder
    assert "@inproceedings" in body["## Citation"] and body["## Limitations"].count("\n- ") >= 3


def test_every_vae_card_uses_its_own_claims_and_counts(vae_study):
    """Each architecture × β of the study: its own claims, its own parameter count, the study's count only at z=2."""
    runs = sorted(p for p in vae_study.iterdir() if (p / "config.json").is_file())
    assert len(runs) == 6
    for run in runs:
        config, metrics = read_json(run / "config.json"), read_json(run / "metrics.json")
        arch, beta = metrics["arch"], beta_tag(metrics["beta"])
        vae_class = DenseVAE if arch == "dense" else ConvVAE
        text = str(render_model_card(run, f"me/mnist-genlab-{run.name}"))
        assert_complete(text)
        n_params = sum(p.numel() for p in vae_class.from_pretrained(run).parameters())
        assert f"**Parameters:** {n_params:,}" in text, run.name
        study_count = f"{STUDY_REFERENCE['vae']['parameters_at_z2'][arch]:,}"
        assert (f"the study reports {study_count}" in text) == (config["latent_dim"] == 2), run.name  # z=2 only
        assert f"{vae_class.__name__}.from_pretrained" in text
        for criterion, claim in STUDY_REFERENCE["vae"]["arch"][arch].items():
            assert f"| {arch} VAE: {criterion} | {claim} |" in text, run.name
        for criterion, claim in STUDY_REFERENCE["vae"]["beta"][beta].items():
            assert f"| β = {beta}: {criterion} | {claim} |" in text, run.name
        assert ("(linear-warmup schedule)" in text) == run.name.endswith("-warmup")
        if config["latent_dim"] != 2:  # no 2-D latent map: a PCA of the means instead
            assert "figures/latent_pca.png" in text and "figures/manifold.png" not in text


def test_ddpm_card_metadata_and_body(trained_ddpm_run):
    run = trained_ddpm_run
    metrics, config = read_json(run / "metrics.json"), read_json(run / "training_config.json")
    (point,) = read_json(run / "evaluation.json")["points"].values()  # evaluate_ddpm.py's one tiny point
    fid = point["fid"]
    text = str(render_model_card(run, "me/mnist-genlab-ddpm"))
    assert_complete(text)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert {"ddpm", "diffusion", "mnist"} <= set(meta["tags"])
    assert meta["pipeline_tag"] == "unconditional-image-generation" and meta["library_name"] == "diffusers"
    # {metric type: (metric, dataset split)}; metrics measured on the same split share one result.
    results = {m["type"]: (m, r["dataset"]["split"]) for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    expected = {k: metrics[k] for k in ("train_loss", "test_loss", "test_loss_ema")} | {"fid": fid["fid"]}
    assert {k: m["value"] for k, (m, _) in results.items()} == {k: round(v, 6) for k, v in expected.items()}
    # Each metric names the split it was measured on and its N.
    assert fid["reference"] == "mnist-test" and results["fid"][1] == "test"  # against the official test set
    assert results["fid"][0]["name"] == f"FID (N={fid['n_gen']} vs {fid['n_ref']})"  # 12 vs 256
    n_loss = metrics["test_loss_samples"]
    assert results["test_loss"][0]["name"] == f"Held-out loss (N={n_loss})"
    assert results["test_loss"][1] == "study-test"  # the study's seeded split, named as the card's text does
    assert results["train_loss"][1] == "study-train"
    body = sections(text)
    study = STUDY_REFERENCE["ddpm"]
    assert (
        f"N={fid['n_gen']} vs {fid['n_ref']} of the official MNIST test set, real-vs-real floor "
        f"{fid['floor']:.2f}; {point['sampler']} sampler, {point['steps']} steps, seed {point['seed']}) | "
        f"{fid['fid']:.4g} | {study['fid']} (protocol not stated: not comparable) |"
    ) in body["## Results"]
    assert (
        f"| Train loss (ε-prediction MSE, last epoch's running mean) | {metrics['train_loss']:.4g} | "
        f"{study['train_loss']:.4g} |"
    ) in body["## Results"]
    assert (
        f"| Held-out loss (ε-prediction MSE, all {metrics['test_samples']} held-out digits) | "
        f"{metrics['test_loss']:.4g} | {study['test_loss']:.4g} |"
    ) in body["## Results"]
    assert "4000 training timesteps, `squaredcos_cap_v2`" in body["## Model details"]
    n_params = sum(p.numel() for p in UNet2DModel.from_pretrained(run / "unet").parameters())
    assert f"**U-Net parameters:** {n_params:,}" in body["## Model details"]
    assert f"with seed {config['seed']}" in body["## Training"] and config["seed"] == 3
    assert 'DiffusionPipeline.from_pretrained("me/mnist-genlab-ddpm", trust_remote_code=True)' in body["## How to use"]
    assert "figures/samples_epoch_002.png" in body["## Figures"]


@pytest.mark.parametrize("missing", ["fid", "test_loss", "seed", "epochs", "train_samples", "ema"])
def test_ddpm_card_omits_what_the_run_did_not_record(ddpm_run, missing):
    run = ddpm_run
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
    types = {m["type"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    if missing in ("fid", "test_loss"):
        assert missing not in types
        assert ("FID" in sections(text)["## Results"]) == (missing != "fid")


@pytest.mark.parametrize("missing", ["test", "train", "seed", "seconds_per_epoch", "split", "global_step"])
def test_vae_card_omits_what_the_run_did_not_record(vae_run, missing):
    run = vae_run
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


def test_ddpm_card_fid_states_n_and_floor_and_ignores_stale_evaluations(ddpm_run):
    run = ddpm_run
    (point,) = read_json(run / "evaluation.json")["points"].values()
    fid = point["fid"]
    results = sections(str(render_model_card(run, "me/ddpm")))["## Results"]
    assert f"N=12 vs 256 of the official MNIST test set, real-vs-real floor {fid['floor']:.2f};" in results
    assert (f"FID {fid['fid']:.2f} (N=12 generated vs 256 of mnist-test, real-vs-real floor {fid['floor']:.2f})"
            in results)  # fmt: skip
    unet = UNet2DModel.from_pretrained(run, subfolder="unet")
    with torch.no_grad():
        unet.conv_out.bias.add_(1.0)  # more training: the evaluation no longer describes these weights
    unet.save_pretrained(run / "unet")
    assert "FID" not in sections(str(render_model_card(run, "me/ddpm")))["## Results"]


def test_cards_validate_against_the_hub(hub, vae_study, trained_ddpm_run):
    for run in (vae_study / "vae-conv-z2-beta1", trained_ddpm_run):
        card = render_model_card(run, "mnist-tester/x")
        card.validate()  # POST /api/validate-yaml on the offline Hub
    assert sum(1 for m, p in hub.requests if p.endswith("/api/validate-yaml")) == 2


def test_an_invalid_card_is_rejected_by_validation(hub, vae_study):
    card = render_model_card(vae_study / "vae-conv-z2-beta1", "mnist-tester/x")
    card.data.license = "not-a-license"
    with pytest.raises(ValueError, match="license"):
        card.validate()


def test_ddpm_card_snippet_and_scheduler_follow_the_measured_sampler(ddpm_run):
    """An ancestral DDPM point measured in bf16 with the old resize: the card's snippet runs that sampler in bf16,
    the published scheduler is DDPMScheduler with trailing spacing, and the old-resize FID is labelled as such.

    The evaluator no longer measures with the old resize, so the run's real point is relabelled as one that was
    (the releases evaluated before the standard resize carry such points)."""
    run = ddpm_run
    (point,) = read_json(run / "evaluation.json")["points"].values()
    point = {**point, "sampler": "ddpm", "steps": 25, "precision": "bf16"}
    del point["fid"]["preprocessing"]  # measured before the standard resize
    (run / "evaluation.json").write_text(json.dumps({"points": {"ddpm-25steps-ema-n12-seed1-bf16": point}}))
    text = str(render_model_card(run, "me/ddpm"))
    assert_complete(text)
    usage = sections(text)["## How to use"]
    assert 'with torch.autocast("cpu", dtype=torch.bfloat16):' in usage and "num_inference_steps=25" in usage
    assert "`DDPMScheduler` (ddpm)" in usage and 'timestep_spacing="trailing"' in usage
    scheduler = published_scheduler(run)
    assert type(scheduler).__name__ == "DDPMScheduler" and scheduler.config.timestep_spacing == "trailing"
    assert "old torch-bilinear resize, pending re-measurement" in sections(text)["## Results"]


def test_vae_card_labels_its_evaluation_with_split_and_n(vae_run):
    """The report's evaluator (FID of prior samples, importance-sampled NLL) at test_report.py's tiny sizes, so the
    Inception statistics of the reference and the floor are computed once per session."""
    evaluate_vae_run(vae_run, EvalSettings(fid_samples=24, fid_reference_n=40, nll_samples=8, nll_images=16,
                                           latent_points=60))  # fmt: skip
    text = str(render_model_card(vae_run, REPO))
    assert_complete(text)
    meta = yaml.safe_load(text.split("---\n")[1])
    names = {m["type"]: m["name"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert names["fid"] == "FID of prior samples (N=24 vs 40)"
    assert names["nll"] == "NLL (importance-sampled, k=8, N=16)"
    results = sections(text)["## Results"]
    assert "the study's held-out 20 % of the 60,000 training digits" in results
    assert "on the first 16 digits of the study's held-out" in results
