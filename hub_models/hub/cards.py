"""Model cards (README.md) for published runs, rendered from the Jinja templates in `model_cards/` with
`huggingface_hub.ModelCard` / `ModelCardData`, so the YAML metadata (tags, license, `model-index`) is built by
the library and validated by the Hub rather than string-formatted by hand.

Every number in a card comes from the run folder (metrics.json, training_config.json, config.json, the
safetensors headers); the study's claims for the same configuration sit next to them (`STUDY`).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from hub_models.diffusion.latent import is_latent_run
from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE, make_scheduler
from hub_models.evaluation import format_fid
from hub_models.evaluation.ddpm import describe_point, evaluation_summary
from hub_models.evaluation.metrics import LEGACY_FID_NOTE, is_standard_fid
from hub_models.evaluation.schema import Evaluation
from hub_models.hub.naming import beta_tag, hub_repo_name
from hub_models.models.registry import VAE_CLASSES, arch_of, config_class_name, kind_of
from hub_models.reference import PROJECT_GIT_URL, PROJECT_INSTALL, PROJECT_NAME, STUDY

# hub_models/model_cards links to the top-level model_cards/ (shipped in the wheel as package data)
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "model_cards"
DATASET_ID = "ylecun/mnist"
PIPELINE_TAG = "unconditional-image-generation"
# The VAEs and the classifier load with this library (as PyTorchModelHubMixin repos name theirs); DDPMs with diffusers.
LIBRARY_NAME = PROJECT_NAME
# Where each metric was measured: a reference set or training split → (model-index `dataset.split`, in words).
SPLITS = {
    "mnist-test": ("test", "the official MNIST test set"),
    "official": ("test", "the official MNIST test set"),
    "study-test": ("train[held-out 20%]", "the study's held-out 20 % of the 60,000 training digits"),
    "study": ("train[held-out 20%]", "the study's held-out 20 % of the 60,000 training digits"),
}

FIGURE_CAPTIONS = {  # in the order the card shows them
    "samples": "New digits: {how}.",
    "reconstructions": "Held-out digits (top) and their reconstructions from the posterior mean (bottom).",
    "latent_scatter": "Posterior means of held-out digits in the 2-D latent space, coloured by class.",
    "manifold": "Decoder outputs on a regular grid of the 2-D latent space (the learned manifold).",
    "latent_pca": "2-D PCA projection of the posterior means of held-out digits, coloured by class.",
    "samples_standard_normal": "The same VAE's digits from z ~ N(0, I), for comparison (same seed).",
    "style_grid": "Digit × style: each row is one latent z ~ N(0, I) decoded as every digit 0–9 (conditional VAE).",
}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def run_kind(run_dir: str | os.PathLike) -> str:
    """'vae', 'classifier', 'latent-prior', 'ddpm' or 'ldm' from the run folder's files (the config's class)."""
    run_dir = Path(run_dir)
    if (run_dir / "model_index.json").is_file():
        return "ldm" if is_latent_run(run_dir) else "ddpm"
    if (run_dir / "config.json").is_file():
        kind = kind_of(config_class_name(run_dir))
        return kind if kind in ("vae", "classifier", "latent-prior") else "vae"
    raise ValueError(f"{run_dir} is neither a model run (config.json) nor a DDPM run (model_index.json)")


def split_label(split: str | None) -> tuple[str, str]:
    """A reference set (`mnist-test`, `study-test`) or training split (`official`, `study`) → (model-index split,
    description)."""
    return SPLITS.get(split or "study", SPLITS["study"])


def safetensors_parameters(path: Path) -> int:
    """Number of parameters stored in a safetensors file (read from its header, no weights loaded)."""
    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.1f}"


def _figures(run_dir: Path, how: str) -> list[dict]:
    """Every figures/*.png with a caption, known figures first (relative links: they are uploaded too)."""
    order = list(FIGURE_CAPTIONS)
    paths = sorted(
        (run_dir / "figures").glob("*.png"),
        key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.name),
    )
    figures = []
    for path in paths:
        stem = path.stem
        if m := re.fullmatch(r"samples_epoch_(\d+)", stem):
            caption = f"Samples after epoch {int(m.group(1))}."
        else:
            caption = FIGURE_CAPTIONS.get(stem, stem.replace("_", " ").capitalize() + ".").format(how=how)
        figures.append({"path": f"figures/{path.name}", "caption": caption, "name": stem})
    return figures


def _recipe_rows(config: dict) -> list[tuple[str, str]]:
    """training_config.json as (flag, value) rows: every CLI argument with a value; no paths, no secrets."""
    skip = re.compile(r"token|output_dir|logging_dir|cache|push_to_hub|hub_|resume|report_to", re.IGNORECASE)
    rows = []
    for key, value in sorted(config.items()):
        if value is None or value == "" or skip.search(key):
            continue
        rows.append((f"--{key}", json.dumps(value) if isinstance(value, list | dict) else str(value)))
    return rows


def _split_text(split: str | None, metrics: dict) -> tuple[str, str]:
    """(dataset split for model-index, human description)."""
    n_train, n_test = metrics.get("train_samples"), metrics.get("test_samples")
    sizes = (
        f" ({n_train:,} / {n_test:,} digits)" if isinstance(n_train, int) and isinstance(n_test, int) else ""
    )
    if split == "official":
        return split_label("official")[0], f"the official MNIST train / test split{sizes}"
    return split_label("study")[0], f"the study's 80/20 split of the 60,000 MNIST training digits{sizes}"


def _trained_sentence(metrics: dict, train_cfg: dict, split_text: str) -> str:
    """'Trained for 20 epochs (15,000 optimizer steps) with seed 0 on …' from whatever the run recorded."""
    epochs = next(
        (
            v
            # `epochs`: only the VAE runs released before the trainers took diffusers' flag names (release/)
            for v in (metrics.get("epochs"), train_cfg.get("num_epochs"), train_cfg.get("epochs"))
            if v is not None
        ),
        None,
    )
    seed = metrics.get("seed", train_cfg.get("seed"))
    steps = metrics.get("global_step")
    text = "Trained"
    if epochs is not None:
        text += f" for {epochs} epoch{'s' if epochs != 1 else ''}"
    if isinstance(steps, int):
        text += f" ({steps:,} optimizer steps)"
    if seed is not None:
        text += f" with seed {seed}"
    return f"{text} on {split_text}."


def _eval(metric_type: str, name: str, value: float, split: str, model_name: str) -> EvalResult:
    return EvalResult(
        task_type=PIPELINE_TAG,
        task_name="Unconditional image generation",
        dataset_type=DATASET_ID,
        dataset_name="MNIST",
        dataset_split=split,
        metric_type=metric_type,
        metric_name=name,
        metric_value=round(value, 6),
    )


def _vae_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict]:

    config = read_json(run_dir / "config.json")
    metrics, train_cfg = read_json(run_dir / "metrics.json"), read_json(run_dir / "training_config.json")
    class_name = config.get("_class_name")
    arch = arch_of(class_name)
    if arch is None:
        raise ValueError(f"{run_dir}/config.json: unknown VAE class {class_name!r}")
    model = VAE_CLASSES[arch].from_config({k: v for k, v in config.items() if not k.startswith("_")})
    parameters = safetensors_parameters(run_dir / "diffusion_pytorch_model.safetensors")
    latent_dim = int(config.get("latent_dim", model.config.latent_dim))
    beta = metrics.get("beta", train_cfg.get("beta"))
    if beta is None:
        raise ValueError(f"{run_dir}: neither metrics.json nor training_config.json records beta")
    beta_txt = beta_tag(float(beta))
    model_name = repo_id.split("/")[-1]
    split_id, split_text = _split_text(metrics.get("split", train_cfg.get("split")), metrics)

    labels = {
        "bce": "Reconstruction BCE (nats/image, summed over 784 pixels)",
        "kld": "KL divergence to N(0, I) (nats/image)",
        "elbo": "ELBO (nats/image, higher is better)",
        "loss": "Training objective BCE + β·KLD (nats/image)",
    }
    n_test = metrics.get("test_samples")
    held_out_n = f", N={n_test:,}" if isinstance(n_test, int) else ""
    results, evals = [], []
    for key, label in labels.items():
        test_v = _num((metrics.get("test") or {}).get(key))
        train_v = _num((metrics.get("train") or {}).get(key))
        if test_v is None and train_v is None:
            continue
        results.append(
            {
                "label": label,
                "test": _fmt(test_v) if test_v is not None else "not measured",
                "train": _fmt(train_v) if train_v is not None else "not measured",
            }
        )
        if test_v is not None and key != "loss":
            evals.append(_eval(key, f"{label.split(' (')[0]} (held-out{held_out_n})", test_v, split_id, model_name))

    evaluation_lines = []
    evaluation = Evaluation.read(run_dir, kind="vae") or Evaluation(kind="vae")
    held = evaluation.held_out or {}
    if held.get("nll") is not None:
        held_split, held_words = split_label(held.get("split"))
        evaluation_lines.append(f"Importance-sampled NLL (k = {held['nll_samples']:,}) on the first "
                                f"{held['nll_n']:,} digits of {held_words}: {held['nll']:.2f} nats/image")
        evals.append(_eval("nll", f"NLL (importance-sampled, k={held['nll_samples']:,}, N={held['nll_n']:,})",
                           held["nll"], held_split, model_name))
    prior = evaluation.prior
    if prior:
        f = prior["fid"]
        fid_split, fid_words = split_label(f.get("reference"))
        evaluation_lines.append(f"Prior samples (seed {prior['seed']}) against {fid_words}: {format_fid(f)}")
        evals.append(_eval("fid", f"FID of prior samples (N={f['n_gen']:,} vs {f['n_ref']:,})", f["fid"],
                           fid_split, model_name))
        c = prior.get("classifier") or {}
        if c:
            evaluation_lines.append(f"Prior samples our digit classifier recognises (confidence > 0.9): "
                                    f"{c['confident_share']:.1%} of {c['n']:,}; KL(class histogram ‖ uniform) "
                                    f"{c['kl_to_uniform']:.3f}")

    num_classes = int(config.get("num_classes") or 0)  # a conditional VAE (docs/HYBRID.md)
    if (cond := metrics.get("conditional")) is not None:
        evaluation_lines.append(f"Generated digits (z ~ N(0, I), {cond['per_class']} per requested class, seed "
                                f"{cond['seed']}) our digit classifier reads as the requested class: "
                                f"{cond['accuracy']:.1%} (per class 0–9: "
                                f"{', '.join(f'{a:.0%}' for a in cond['accuracy_by_class'])})")
    claims = [
        (f"{arch} VAE: {criterion}", claim)
        for criterion, claim in STUDY["vae"]["arch"][arch].items()
    ]
    claims += [
        (f"β = {beta_txt}: {criterion}", claim)
        for criterion, claim in STUDY["vae"]["beta"].get(beta_txt, {}).items()
    ]

    timing = []
    if (v := _num(metrics.get("seconds_per_epoch"))) is not None:
        timing.append(f"{v:.1f} s per epoch")
    if (v := _num(metrics.get("train_seconds"))) is not None:
        timing.append(f"{v:.0f} s in total")

    tags = [
        "vae",
        "beta-vae",
        "mnist",
        "image-generation",
        "pytorch",
        "mnist-genlab",
        f"{arch}-vae",
        f"latent-dim-{latent_dim}",
        *(["conditional-vae"] if num_classes else []),
    ]
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        license="mit",
        tags=tags,
        datasets=[DATASET_ID],
        pipeline_tag=PIPELINE_TAG,
        model_name=model_name,
        eval_results=evals or None,
    )
    context = {
        "repo_id": repo_id,
        "model_name": model_name,
        "arch": arch,
        "class_name": class_name,
        "latent_dim": latent_dim,
        "num_classes": num_classes,
        "beta": beta_txt,
        "beta_schedule": metrics.get("beta_schedule", train_cfg.get("beta_schedule")),
        "parameters": f"{parameters:,}",
        "architecture": repr(model),
        "config": config,
        "trained": _trained_sentence(metrics, train_cfg, split_text),
        "recipe_rows": _recipe_rows(train_cfg),
        "results": results,
        "evaluation_lines": evaluation_lines,
        "claims": claims,
        "timing": ", ".join(timing),
        "figures": _figures(run_dir, "decoded from latents z ~ N(0, I)"),
        "study_recipe": STUDY["vae"]["recipe"],
        "reference_params": STUDY["vae"]["parameters_at_z2"][arch],
        "held_out_words": split_label(metrics.get("split", train_cfg.get("split")))[1]
        + (f", N={n_test:,}" if isinstance(n_test, int) else ""),
        **_install_context(),
    }
    return card_data, context


def _install_context() -> dict[str, str]:
    return {"library_name": LIBRARY_NAME, "install": PROJECT_INSTALL, "project_url": PROJECT_GIT_URL}


def _sampler_text(sampler: Any) -> str:
    """How the run drew its sample grids, e.g. 'generated from pure noise with the dpmsolver++ sampler in 25
    steps'."""
    text = "generated from pure noise by the learned reverse process"
    if isinstance(sampler, dict) and sampler.get("name"):
        text = f"generated from pure noise with the {sampler['name']} sampler"
        if isinstance(sampler.get("steps"), int):
            text += f" in {sampler['steps']} steps"
    return text


def _ddpm_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict]:
    metrics, train_cfg = read_json(run_dir / "metrics.json"), read_json(run_dir / "training_config.json")
    unet_cfg = read_json(run_dir / "unet" / "config.json")
    sched_cfg = read_json(run_dir / "scheduler" / "scheduler_config.json")
    parameters = safetensors_parameters(run_dir / "unet" / "diffusion_pytorch_model.safetensors")
    model_name = repo_id.split("/")[-1]
    split_id, split_text = _split_text(metrics.get("split", train_cfg.get("split")), metrics)
    ref = STUDY["ddpm"]

    evaluation = evaluation_summary(run_dir)
    main = evaluation["main"]
    fid_split = split_label(main["fid"]["reference"]) if main else (split_id, split_text)
    fid_label = "FID (lower is better)" if main is None else (
        f"FID (lower is better; N={main['fid']['n_gen']:,} vs {main['fid']['n_ref']:,} of {fid_split[1]}, "
        f"real-vs-real floor {main['fid']['floor']:.2f}; {_point_words(main)}"
        f"{'' if is_standard_fid(main['fid']) else '; ' + LEGACY_FID_NOTE})")
    n_loss, n_test = metrics.get("test_loss_samples"), metrics.get("test_samples")
    loss_n = (f"first {n_loss:,} of the {n_test:,} held-out digits" if isinstance(n_loss, int) and
              isinstance(n_test, int) and n_loss < n_test else
              f"all {n_test:,} held-out digits" if isinstance(n_test, int) else "the held-out digits")
    results, evals = [], []
    rows = [
        ("train_loss", "Train loss (ε-prediction MSE, last epoch's running mean)", metrics.get("train_loss"),
         ref["train_loss"], "train" if split_id == "test" else "train[80%]"),
        ("test_loss", f"Held-out loss (ε-prediction MSE, {loss_n})", metrics.get("test_loss"), ref["test_loss"],
         split_id),
        ("test_loss_ema", f"Held-out loss, EMA weights ({loss_n})", metrics.get("test_loss_ema"), None, split_id),
        ("fid", fid_label, main["fid"]["fid"] if main else None, None, fid_split[0]),
    ]
    for key, label, value, study, split in rows:
        value = _num(value)
        if value is None:
            continue
        study_text = _fmt(study) if study else "not reported"
        if key == "fid":
            study_text = f"{ref['fid']} (protocol not stated: not comparable)"
        results.append({"label": label, "value": _fmt(value), "study": study_text})
        evals.append(_eval(key, label.split(" (")[0] + _n_suffix(key, main, n_loss), value, split, model_name))

    blocks = [
        f"{d} ({c} ch)"
        for d, c in zip(
            unet_cfg.get("down_block_types", []), unet_cfg.get("block_out_channels", []), strict=False
        )
    ]
    timesteps = sched_cfg.get("num_train_timesteps", metrics.get("num_train_timesteps"))
    sampler = published_sampler(run_dir)
    published = published_scheduler(run_dir)
    card_data = ModelCardData(
        library_name="diffusers",
        license="mit",
        tags=[
            "ddpm",
            "diffusion",
            "mnist",
            "unconditional-image-generation",
            "pytorch",
            "mnist-genlab",
            "diffusers:DDPMPipeline",
        ],
        datasets=[DATASET_ID],
        pipeline_tag=PIPELINE_TAG,
        model_name=model_name,
        eval_results=evals or None,
    )
    context = {
        "repo_id": repo_id,
        "model_name": model_name,
        "parameters": f"{parameters:,}",
        "sample_size": unet_cfg.get("sample_size"),
        "blocks": blocks,
        "layers_per_block": unet_cfg.get("layers_per_block"),
        "unet_class": unet_cfg.get("_class_name"),
        "timesteps": timesteps,
        "beta_schedule": sched_cfg.get("beta_schedule"),
        "prediction_type": sched_cfg.get("prediction_type", "epsilon"),
        "scheduler_class": type(published).__name__,
        "timestep_spacing": published.config.get("timestep_spacing"),
        "ema": metrics.get("ema"),
        "trained": _trained_sentence(metrics, train_cfg, split_text),
        "recipe_rows": _recipe_rows(train_cfg),
        "results": results,
        "evaluation_lines": [describe_point(p) for p in (main, evaluation["raw"], *evaluation["others"]) if p],
        "card_check": _card_check_text(evaluation["card_check"]),
        "figures": _figures(run_dir, _sampler_text(metrics.get("sampler"))),
        "study_recipe": ref["recipe"],
        "study_parameters": ref["parameters"],
        "sampler": sampler,
        "conditional": False,
    }
    if unet_cfg.get("num_class_embeds") is not None:
        _conditional_context(card_data, context, unet_cfg, train_cfg, evaluation)
    return card_data, context


def _conditional_context(card_data: ModelCardData, context: dict[str, Any], unet_cfg: dict[str, Any],
                         train_cfg: dict[str, Any], evaluation: dict[str, Any]) -> None:
    """A class-conditional DDPM: its pipeline class is this library's, its snippet asks for digits with the
    guidance the FID was measured with, and its card shows the guidance table."""
    card_data.library_name = LIBRARY_NAME
    card_data.pipeline_tag = None  # the Hub has no class-conditional generation task
    card_data.tags = [t for t in card_data.tags if t not in (PIPELINE_TAG, "diffusers:DDPMPipeline")] + [
        "class-conditional", "classifier-free-guidance"]
    guidance = evaluation["guidance_scale"]
    context.update(
        _install_context(),
        conditional=True,
        num_class_embeds=unet_cfg["num_class_embeds"],
        label_dropout=f"{train_cfg.get('label_dropout', 0.1):.0%}",
        guidance=f"{DEFAULT_GUIDANCE_SCALE if guidance is None else guidance:g}",
        guidance_rows=[{"w": f"{p['guidance_scale']:g}", "fid": format_fid(p["fid"]),
                        "accuracy": f"{p['classifier']['class_accuracy']:.1%}",
                        "recognisable": f"{p['classifier']['confident_share']:.1%}"}
                       for p in evaluation["guidance"]],
    )


def _point_words(point: dict[str, Any]) -> str:
    precision = ", U-Net in bf16" if point.get("precision", "fp32") != "fp32" else ""
    guidance = "" if point.get("guidance_scale") is None else f", guidance w = {point['guidance_scale']:g}"
    return f"{point['sampler']} sampler, {point['steps']} steps{precision}{guidance}, seed {point['seed']}"


def _n_suffix(key: str, main: dict[str, Any] | None, n_loss: Any) -> str:
    if key == "fid" and main:
        return f" (N={main['fid']['n_gen']:,} vs {main['fid']['n_ref']:,})"
    if key.startswith("test_loss") and isinstance(n_loss, int):
        return f" (N={n_loss:,})"
    return ""


def _card_check_text(check: dict[str, Any] | None) -> str | None:
    """One sentence on docs/PROTOCOL.md's card check of the headline, or None before it ran."""
    if check is None:
        return None
    seeds = check["seeds"]
    return (f"Checked (`python training/evaluate_ddpm.py --run_dir <this folder> --check_card_snippet`): the snippet "
            f"above, run as written for {check['num_samples']:,} digits (one seed per batch), scores FID "
            f"{check['snippet_fid']:.2f} against {check['reference']}; the evaluator at the same settings over seeds "
            f"{seeds[0]}–{seeds[-1]} scores {check['mean']:.2f} ± {check['sigma']:.2f}, so the snippet "
            f"{'reproduces' if check['passes'] else 'does NOT reproduce'} it (the rule: within "
            f"{check['tolerance_sigmas']:g} σ).")


def published_sampler(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The sampler a DDPM repo ships in `scheduler/` and its card's snippet runs: the one its reported FID was
    measured with (the evaluation's main point), else the training scheduler with all its steps.

    Returns `{"name", "steps", "precision", "measured"}`; `name` is a `hub_models.diffusion.sampling.SAMPLERS`
    entry or None (the training scheduler as saved).
    """
    main = evaluation_summary(run_dir)["main"]
    if main:
        return {"name": main["sampler"], "steps": main["steps"], "precision": main.get("precision", "fp32"),
                "measured": True}
    timesteps = read_json(Path(run_dir) / "scheduler" / "scheduler_config.json").get("num_train_timesteps", 1000)
    return {"name": None, "steps": timesteps, "precision": "fp32", "measured": False}


def published_scheduler(run_dir: str | os.PathLike) -> SchedulerMixin:
    """The scheduler a DDPM repo ships in `scheduler/`: the card's sampler (`published_sampler`) built from the run's
    training schedule, or the training scheduler itself when nothing was measured."""
    config = read_json(Path(run_dir) / "scheduler" / "scheduler_config.json")
    name = published_sampler(run_dir)["name"]
    if name is None:
        return DDPMScheduler.from_config(config)
    return make_scheduler(name, config)


def classifier_model_card(metrics: dict[str, Any], repo_id: str = "mnist-genlab-digit-classifier"):
    """The model card (README.md) of a trained classifier, with validated `model-index` metadata."""
    accuracy = metrics["test_accuracy"]
    split = metrics.get("split", "official")
    test_split, test_words = split_label(split)
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        license="mit",
        tags=["mnist", "image-classification", "evaluation", "mnist-genlab"],
        datasets=[DATASET_ID],
        metrics=["accuracy"],
        pipeline_tag="image-classification",
        model_name=repo_id.split("/")[-1],
        eval_results=[EvalResult(
            task_type="image-classification", task_name="Digit classification",
            dataset_type=DATASET_ID, dataset_name="MNIST", dataset_split=test_split,
            metric_type="accuracy", metric_name=f"Test accuracy (N={metrics['test_size']:,})",
            metric_value=round(accuracy, 4),
        )],
    )
    cfg = metrics.get("config", {})
    note = f" ({metrics['train_note']})" if metrics.get("train_note") else ""
    split_text = "official MNIST" if split == "official" else "the study's 80/20"
    content = f"""---
{data.to_yaml()}
---

# MNIST digit classifier (mnist-genlab)

A small CNN ({metrics["parameters"]:,} parameters) that judges generated digits in the mnist-genlab
project (β-VAEs and DDPMs on MNIST): it is the classifier behind the *recognisable share*
(confidence > 0.9), the *class histogram / KL to uniform* (mode coverage) and the **FD-classifier**
(a Fréchet distance on its {cfg.get("hidden_dim", 128)}-d penultimate features — MNIST-specific, not an FID).

| | |
|---|---|
| test accuracy ({test_words}, N={metrics["test_size"]:,}) | **{accuracy:.2%}** |
| test loss (cross-entropy, same digits) | {metrics["test_loss"]:.4f} |
| training data | {split_text} train set ({metrics["train_size"]:,} digits) |
| epochs / batch | {metrics["epochs"]} / {metrics["batch_size"]} |
| optimiser | AdamW, one-cycle schedule, peak lr {metrics["learning_rate"]} |
| training time | {metrics["train_seconds"]:.0f} s wall, CPU, {metrics.get("torch_threads", "?")} threads{note} |

Architecture: 2 × [conv3×3–BN–ReLU, conv3×3–BN–ReLU, max-pool] with channels {cfg.get("channels")} →
FC({cfg.get("hidden_dim")}) + ReLU (penultimate features) → dropout → FC(10).

## How to use

The model class lives in the {LIBRARY_NAME} library ({PROJECT_GIT_URL}); install it first:

```bash
{PROJECT_INSTALL}
```

```python
import torch
from hub_models import DigitClassifier

clf = DigitClassifier.from_pretrained("{repo_id}")
images = torch.rand(4, 1, 28, 28)  # grey digits (N, 1, 28, 28) in [0, 1], white on black like MNIST
probs, features, labels = clf.predict(images)  # (N, 10), (N, {cfg.get("hidden_dim", 128)}), (N,)
```

Trained with `training/train_classifier.py --seed {metrics["seed"]}`.
"""
    return ModelCard(content)


def _ldm_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict]:
    """The DDPM card's facts about the latent U-Net and its schedule, plus the autoencoder's (model_cards/ldm.md)."""
    card_data, context = _ddpm_context(run_dir, repo_id)
    vae_cfg, metrics = read_json(run_dir / "vae" / "config.json"), read_json(run_dir / "metrics.json")
    card_data.tags = [t for t in card_data.tags if not t.startswith("diffusers:")] + ["latent-diffusion"]
    card_data.library_name = LIBRARY_NAME  # the pipeline class is this library's
    ae = metrics.get("autoencoder_metrics", {})
    target = {"epsilon": "ε", "v_prediction": "v", "sample": "x0"}.get(context["prediction_type"], "ε")
    loss_words = f"{target}-prediction MSE on latents"
    results = [{**row, "label": row["label"].replace("ε-prediction MSE", loss_words)} for row in context["results"]]
    sampler = context["sampler"] if context["sampler"]["measured"] else {  # the pipeline's own default otherwise
        "name": "ddpm", "steps": 25, "precision": "bf16", "measured": False}
    context.update(
        _install_context(),
        results=results,
        sampler=sampler,
        loss_target=target,
        vae_parameters=f"{safetensors_parameters(run_dir / 'vae' / 'diffusion_pytorch_model.safetensors'):,}",
        latent_shape="×".join(str(n) for n in metrics.get("latent_shape", [])),
        vae_blocks=[f"{d} ({c} ch)" for d, c in zip(vae_cfg.get("down_block_types", []),
                                                    vae_cfg.get("block_out_channels", []), strict=False)],
        scaling_factor=_fmt(vae_cfg.get("scaling_factor", 1.0)),
        kl_weight=ae.get("kl_weight", "a small weight"),
        vae_results=", ".join(f"{k.removeprefix('test_').upper()} {_fmt(ae[k])}" for k in ("test_l1", "test_mse")
                              if _num(ae.get(k)) is not None),
    )
    return card_data, context


def published_vae_id(vae_name_or_path: str, repo_id: str) -> str:
    """The repo id a latent prior's VAE is published under: a `release/<name>` folder becomes
    `<namespace of repo_id>/mnist-genlab-<name>`; a repo id or another path is kept."""
    name = Path(vae_name_or_path).name
    if Path(vae_name_or_path).parent.name == "release" and "/" in repo_id:
        return f"{repo_id.split('/')[0]}/{hub_repo_name(name)}"
    return vae_name_or_path


def _latent_prior_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict]:
    """A learned prior over a VAE's latents (model_cards/latent_prior.md): its VAE, recipe and the FIDs of the
    VAE's digits with z ~ N(0, I) and with z from the prior, under one protocol."""
    config, metrics = read_json(run_dir / "config.json"), read_json(run_dir / "metrics.json")
    train_cfg = read_json(run_dir / "training_config.json") if (run_dir / "training_config.json").exists() else {}
    scheduler = read_json(run_dir / "scheduler" / "scheduler_config.json")
    model_name = repo_id.split("/")[-1]
    vae_id = published_vae_id(config.get("vae_name_or_path", ""), repo_id)
    sampler = metrics.get("sampler") or {"name": "ddpm", "steps": 100}
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
            split = split_label(fid_result.get("reference"))[0]
            eval_results.append(_eval("fid", f"FID (N={fid_result['n_gen']:,}, decoded prior samples)",
                                      fid_result["fid"], split, model_name))
    card_data = ModelCardData(
        library_name=LIBRARY_NAME, license="mit", datasets=[DATASET_ID], pipeline_tag=PIPELINE_TAG,
        tags=["latent-prior", "two-stage-vae", "diffusion", "mnist", "safetensors"], model_name=model_name,
        base_model=vae_id if "/" in vae_id and not Path(vae_id).exists() else None,
        eval_results=eval_results or None)
    split_text = _split_text(train_cfg.get("split"), metrics)[1]
    context = dict(
        _install_context(), model_name=model_name, repo_id=repo_id, vae_id=vae_id,
        latent_dim=config.get("latent_dim"), hidden_dim=config.get("hidden_dim"),
        num_blocks=config.get("num_blocks"), parameters=f"{metrics.get('parameters', 0):,}",
        timesteps=scheduler.get("num_train_timesteps"), beta_schedule=scheduler.get("beta_schedule"),
        prediction_type=scheduler.get("prediction_type"), sampler=sampler["name"], steps=sampler.get("steps", 100),
        trained=_trained_sentence(metrics, train_cfg, split_text), recipe_rows=_recipe_rows(train_cfg),
        test_loss=_fmt(metrics["test_loss"]) if _num(metrics.get("test_loss")) is not None else None,
        rows=rows, figures=_figures(run_dir, f"z from this prior ({sampler['name']}, {sampler.get('steps')} "
                                             "steps), decoded by the VAE"),
    )
    return card_data, context


def render_model_card(run_dir: str | os.PathLike, repo_id: str) -> ModelCard:
    """The README.md of `run_dir` published as `repo_id`, from `model_cards/<kind>.md`."""
    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    if kind == "classifier":
        return classifier_model_card(read_json(run_dir / "metrics.json"), repo_id)
    contexts = {"vae": _vae_context, "ldm": _ldm_context, "latent-prior": _latent_prior_context}
    card_data, context = contexts.get(kind, _ddpm_context)(run_dir, repo_id)
    template = TEMPLATES_DIR / f"{kind.replace('-', '_')}.md"
    card = ModelCard.from_template(card_data, template_path=str(template), **context)
    return card


__all__ = [
    "LIBRARY_NAME",
    "STUDY",
    "classifier_model_card",
    "published_sampler",
    "published_scheduler",
    "published_vae_id",
    "render_model_card",
    "run_kind",
    "safetensors_parameters",
    "split_label",
]
