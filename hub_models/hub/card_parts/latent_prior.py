"""The facts of a learned latent prior's card (`model_cards/latent_prior.md`): its VAE, recipe and the FIDs of the
VAE's digits with z ~ N(0, I) and with z from the prior, under one protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

from hub_models.diffusion.latent_prior import latent_sampler
from hub_models.evaluation import format_fid
from hub_models.evaluation.metrics import is_standard_fid
from hub_models.hub.card_parts.common import (
    HUB_LIBRARY,
    MNIST_DATASET,
    PIPELINE_TAG,
    CardDataset,
    card_dataset,
    eval_result,
    figures,
    fmt,
    num,
    recipe_rows,
    split_label,
    split_text,
    trained_sentence,
)
from hub_models.hub.naming import published_vae_id
from hub_models.hub.remote_code import SAMPLER_FOLDER
from hub_models.io import read_json_or_empty


def _rows(metrics: dict, dataset: CardDataset = MNIST_DATASET) -> tuple[list[dict], list]:
    """The card's FID table (the VAE alone vs this prior) and the prior's `model-index` entry."""
    points = {p["prior"]: p for p in metrics.get("prior_samples", [])}
    classifier = {p["prior"]: p["classifier"] for p in metrics.get("prior_samples_classifier", [])}
    rows, eval_results = [], []
    for prior, label in (("N(0, I)", "z ~ N(0, I) (the VAE alone)"), ("learned", "z from this prior")):
        fid_result, cls = (points.get(prior) or {}).get("fid"), classifier.get(prior)
        if fid_result is None and cls is None:
            continue
        rows.append({"label": label, "fid": format_fid(fid_result) if fid_result else "not measured",
                     "recognisable": f"{cls['confident_share']:.1%}" if cls else "—"})
        if fid_result and prior == "learned" and is_standard_fid(fid_result):
            split = split_label(fid_result.get("reference"), dataset)[0]
            eval_results.append(eval_result("fid", f"FID (N={fid_result['n_gen']:,}, decoded prior samples)",
                                            fid_result["fid"], split, dataset=dataset))
    return rows, eval_results


def latent_prior_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """The card data and template context of a latent prior run."""
    config, metrics = read_json_or_empty(run_dir / "config.json"), read_json_or_empty(run_dir / "metrics.json")
    train_cfg = read_json_or_empty(run_dir / "training_config.json")
    scheduler = read_json_or_empty(run_dir / "scheduler" / "scheduler_config.json")
    model_name = repo_id.split("/")[-1]
    vae_id = published_vae_id(config.get("vae_name_or_path", ""), repo_id)
    sampler = metrics.get("sampler") or {"name": "ddpm", "steps": 100}
    dataset = card_dataset(train_cfg)
    rows, eval_results = _rows(metrics, dataset)
    card_data = ModelCardData(
        library_name=HUB_LIBRARY, license="mit", datasets=dataset.metadata_ids, pipeline_tag=PIPELINE_TAG,
        tags=["latent-prior", "two-stage-vae", "diffusion", *(["mnist"] if dataset.mnist else []), "safetensors"],
        model_name=model_name,
        base_model=vae_id if "/" in vae_id and not Path(vae_id).exists() else None,
        eval_results=eval_results or None)
    split_words = split_text(train_cfg.get("split"), metrics, dataset)[1]
    context = dict(
        model_name=model_name, repo_id=repo_id, vae_id=vae_id,
        latent_dim=config.get("latent_dim"), hidden_dim=config.get("hidden_dim"),
        num_blocks=config.get("num_blocks"), parameters=f"{metrics.get('parameters', 0):,}",
        timesteps=scheduler.get("num_train_timesteps"), beta_schedule=scheduler.get("beta_schedule"),
        prediction_type=scheduler.get("prediction_type"), sampler=sampler["name"], steps=sampler.get("steps", 100),
        trained=trained_sentence(metrics, train_cfg, split_words), recipe_rows=recipe_rows(train_cfg),
        test_loss=fmt(metrics["test_loss"]) if num(metrics.get("test_loss")) is not None else None,
        sampler_class=type(latent_sampler(sampler["name"], scheduler or None)).__name__,
        sampler_folder=SAMPLER_FOLDER, data=dataset.template_context(),
        rows=rows, figures=figures(run_dir, f"z from this prior ({sampler['name']}, {sampler.get('steps')} "
                                            "steps), decoded by the VAE", dataset=dataset),
    )
    return card_data, context


# The card's first "How to use" block (hub_models.hub.kinds): diffusers alone, the module shipped in the repo and
# the sampler as the library runs it (`remote_code.SAMPLER_FOLDER`).
SNIPPET = """import torch
from diffusers import AutoModel, {{ sampler_class }}

model = AutoModel.from_pretrained("{{ repo_id }}", trust_remote_code=True)
scheduler = {{ sampler_class }}.from_pretrained("{{ repo_id }}", subfolder="{{ sampler_folder }}")
scheduler.set_timesteps({{ steps }})
z = torch.randn(16, {{ latent_dim }}, generator=torch.Generator().manual_seed(0))
for t in scheduler.timesteps:  # z: (16, {{ latent_dim }}) latents of {{ vae_id }}, which decodes them
    z = scheduler.step(model(scheduler.scale_model_input(z, t), t).sample, t, z).prev_sample"""
