"""The facts of a β-VAE card (`model_cards/vae.md`): architecture, losses, the evaluation, the study's claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from hub_models.evaluation import format_fid
from hub_models.evaluation.schema import Evaluation
from hub_models.hub.card_parts.common import (
    CONDITIONAL_TASK,
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
    safetensors_parameters,
    split_label,
    split_text,
    trained_sentence,
)
from hub_models.hub.naming import beta_tag
from hub_models.io import read_json_or_empty
from hub_models.models.registry import VAE_CLASSES, arch_of
from hub_models.reference import STUDY

LOSS_LABELS = {
    "bce": "Reconstruction BCE (nats/image, summed over 784 pixels)",
    "kld": "KL divergence to N(0, I) (nats/image)",
    "elbo": "ELBO (nats/image, higher is better)",
    "loss": "Training objective BCE + β·KLD (nats/image)",
}


def _loss_labels(dataset: CardDataset) -> dict[str, str]:
    """LOSS_LABELS with the data's pixel count (784 for MNIST)."""
    pixels = dataset.channels * dataset.resolution**2
    return {**LOSS_LABELS, "bce": LOSS_LABELS["bce"].replace("784", f"{pixels:,}")}


def _loss_results(metrics: dict, split: str, task: str, dataset: CardDataset = MNIST_DATASET
                  ) -> tuple[list[dict], list[EvalResult]]:
    """The card's loss table (held-out and train) and its `model-index` entries (held-out only)."""
    n_test = metrics.get("test_samples")
    held_out_n = f", N={n_test:,}" if isinstance(n_test, int) else ""
    results, evals = [], []
    for key, label in _loss_labels(dataset).items():
        test_v = num((metrics.get("test") or {}).get(key))
        train_v = num((metrics.get("train") or {}).get(key))
        if test_v is None and train_v is None:
            continue
        results.append({"label": label, "test": fmt(test_v) if test_v is not None else "not measured",
                        "train": fmt(train_v) if train_v is not None else "not measured"})
        if test_v is not None and key != "loss":
            evals.append(eval_result(key, f"{label.split(' (')[0]} (held-out{held_out_n})", test_v, split, task,
                                     dataset))
    return results, evals


def _evaluation_lines(run_dir: Path, metrics: dict, task: str, dataset: CardDataset = MNIST_DATASET
                      ) -> tuple[list[str], list[EvalResult]]:
    """evaluation.json's NLL and prior-sample FID, and a conditional VAE's class accuracy, as sentences and results."""
    lines, evals = [], []
    images = "digits" if dataset.mnist else "images"
    # the classifier that judges the samples: MNIST's own, or the one trained on this data (train_classifier.py)
    judge = "our digit classifier" if dataset.mnist else "the classifier trained on this data"
    evaluation = Evaluation.read(run_dir, kind="vae") or Evaluation(kind="vae")
    held = evaluation.held_out or {}
    if held.get("nll") is not None:
        held_split, held_words = split_label(held.get("split"), dataset)
        lines.append(f"Importance-sampled NLL (k = {held['nll_samples']:,}) on the first "
                     f"{held['nll_n']:,} {images} of {held_words}: {held['nll']:.2f} nats/image")
        evals.append(eval_result("nll", f"NLL (importance-sampled, k={held['nll_samples']:,}, N={held['nll_n']:,})",
                                 held["nll"], held_split, task, dataset))
    if prior := evaluation.prior:
        f = prior["fid"]
        fid_split, fid_words = split_label(f.get("reference"), dataset)
        lines.append(f"Prior samples (seed {prior['seed']}) against {fid_words}: {format_fid(f)}")
        evals.append(eval_result("fid", f"FID of prior samples (N={f['n_gen']:,} vs {f['n_ref']:,})", f["fid"],
                                 fid_split, task, dataset))
        if c := prior.get("classifier") or {}:
            lines.append(f"Prior samples {judge} recognises (confidence > 0.9): "
                         f"{c['confident_share']:.1%} of {c['n']:,}; KL(class histogram ‖ uniform) "
                         f"{c['kl_to_uniform']:.3f}")
    if (cond := metrics.get("conditional")) is not None:
        classes = "0–9" if dataset.mnist else ", ".join(dataset.label_names or ())
        lines.append(f"Generated {images} (z ~ N(0, I), {cond['per_class']} per requested class, seed "
                     f"{cond['seed']}) {judge} reads as the requested class: "
                     f"{cond['accuracy']:.1%} (per class {classes}: "
                     f"{', '.join(f'{a:.0%}' for a in cond['accuracy_by_class'])})")
    return lines, evals


def _timing(metrics: dict) -> str:
    timing = []
    if (v := num(metrics.get("seconds_per_epoch"))) is not None:
        timing.append(f"{v:.1f} s per epoch")
    if (v := num(metrics.get("train_seconds"))) is not None:
        timing.append(f"{v:.0f} s in total")
    return ", ".join(timing)


def _claims(arch: str, beta_txt: str) -> list[tuple[str, str]]:
    """The study's qualitative claims for this architecture and this β."""
    claims = [(f"{arch} VAE: {criterion}", claim) for criterion, claim in STUDY["vae"]["arch"][arch].items()]
    return claims + [(f"β = {beta_txt}: {criterion}", claim)
                     for criterion, claim in STUDY["vae"]["beta"].get(beta_txt, {}).items()]


def vae_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """The card data and template context of a VAE run (conditional or not)."""
    config = read_json_or_empty(run_dir / "config.json")
    metrics = read_json_or_empty(run_dir / "metrics.json")
    train_cfg = read_json_or_empty(run_dir / "training_config.json")
    class_name = config.get("_class_name")
    arch = arch_of(class_name)
    if arch is None:
        raise ValueError(f"{run_dir}/config.json: unknown VAE class {class_name!r}")
    # `auto_map` points diffusers at the shipped module (hub_models.hub.remote_code): not an argument of the class
    init = {k: v for k, v in config.items() if not k.startswith("_") and k != "auto_map"}
    model = VAE_CLASSES[arch].from_config(init)
    beta = metrics.get("beta", train_cfg.get("beta"))
    if beta is None:
        raise ValueError(f"{run_dir}: neither metrics.json nor training_config.json records beta")
    beta_txt, latent_dim = beta_tag(float(beta)), int(config.get("latent_dim", model.config.latent_dim))
    num_classes = int(config.get("num_classes") or 0)  # a conditional VAE (docs/lab/HYBRID.md)
    task = CONDITIONAL_TASK if num_classes else PIPELINE_TAG
    model_name, split = repo_id.split("/")[-1], metrics.get("split", train_cfg.get("split"))
    dataset = card_dataset(train_cfg)
    split_id, split_words = split_text(split, metrics, dataset)
    results, evals = _loss_results(metrics, split_id, task, dataset)
    evaluation_lines, more = _evaluation_lines(run_dir, metrics, task, dataset)
    tags = ["vae", "beta-vae", *(["mnist"] if dataset.mnist else []), "image-generation", "pytorch", "mnist-genlab",
            f"{arch}-vae",
            f"latent-dim-{latent_dim}", *(["conditional-vae", CONDITIONAL_TASK] if num_classes else [])]
    card_data = ModelCardData(library_name=HUB_LIBRARY, license="mit", tags=tags, datasets=dataset.metadata_ids,
                              pipeline_tag=None if num_classes else PIPELINE_TAG, model_name=model_name,
                              eval_results=(evals + more) or None)
    n_test = metrics.get("test_samples")
    # the shape `sample` returns, from the config (VAEs trained before issue 37 have none: MNIST's)
    shape = ", ".join(str(n) for n in (config.get("in_channels", 1), *[config.get("sample_size", 28)] * 2))
    context = {
        "repo_id": repo_id, "model_name": model_name, "arch": arch, "class_name": class_name,
        "latent_dim": latent_dim, "num_classes": num_classes, "beta": beta_txt,
        "beta_schedule": metrics.get("beta_schedule", train_cfg.get("beta_schedule")),
        "parameters": f"{safetensors_parameters(run_dir / 'diffusion_pytorch_model.safetensors'):,}",
        "architecture": repr(model), "config": config,
        "trained": trained_sentence(metrics, train_cfg, split_words), "recipe_rows": recipe_rows(train_cfg),
        "results": results, "evaluation_lines": evaluation_lines, "claims": _claims(arch, beta_txt),
        "timing": _timing(metrics), "figures": figures(run_dir, "decoded from latents z ~ N(0, I)", dataset=dataset),
        "study_recipe": STUDY["vae"]["recipe"], "reference_params": STUDY["vae"]["parameters_at_z2"][arch],
        "held_out_words": split_label(split, dataset)[1] + (f", N={n_test:,}" if isinstance(n_test, int) else ""),
        "data": dataset.template_context(),
        "shape": shape, "returns": f"(16, {shape}) in [0, 1]",
    }
    return card_data, context


# The card's first "How to use" block (hub_models.hub.kinds): diffusers alone, the module shipped in the repo.
SNIPPET = """import torch
from diffusers import AutoModel

model = AutoModel.from_pretrained("{{ repo_id }}", trust_remote_code=True)
generator = torch.Generator().manual_seed(0)
{% if num_classes -%}
images = model.sample(16, generator=generator, labels=torch.arange(16) % {{ num_classes }})  # {{ returns }}
{%- else -%}
images = model.sample(16, generator=generator)  # {{ returns }}
{%- endif %}"""
