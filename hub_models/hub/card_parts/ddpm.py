"""The facts of a pixel DDPM card (`model_cards/ddpm.md`) — unconditional, class-conditional or a distilled
student — and of a latent diffusion card (`model_cards/ldm.md`), and the scheduler such a repo ships."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from huggingface_hub import ModelCardData

from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE, make_scheduler
from hub_models.evaluation import format_fid
from hub_models.evaluation.ddpm import describe_point, evaluation_summary
from hub_models.evaluation.metrics import LEGACY_FID_NOTE, is_standard_fid
from hub_models.hub.card_parts.common import (
    CONDITIONAL_TASK,
    MNIST_DATASET,
    PIPELINE_TAG,
    STUDY_TRAIN_SPLIT,
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
from hub_models.io import read_json_or_empty
from hub_models.reference import STUDY

SWEEP_FIGURE = "sampler_sweep"  # evaluate_ddpm.py's plot of the sampler sweep
# The card's first "How to use" block (hub_models.hub.kinds): diffusers alone. `card_check` runs it as written with
# three edits: the repo id, `manual_seed(0)` and the batch (`batch_size=16` / `range(2)` per digit).
SNIPPET = """import torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{{ repo_id }}", trust_remote_code=True)
generator = torch.Generator().manual_seed(0)
{% if conditional -%}
images = pipe(
    class_labels=[d for d in range({{ num_labels }}) for _ in range(2)],  # two of each {{ data.classes }}
    guidance_scale={{ guidance }}, num_inference_steps={{ sampler.steps }}, generator=generator,
    {%- if sampler.precision == "bf16" %} autocast_dtype=torch.bfloat16,{% endif %}
).images  # 20 PIL images
{%- elif sampler.precision == "bf16" -%}
with torch.autocast("cpu", dtype=torch.bfloat16):  # the U-Net in bf16, as the FID was measured
    images = pipe(batch_size=16, num_inference_steps={{ sampler.steps }}, generator=generator).images
{%- else -%}
images = pipe(batch_size=16, num_inference_steps={{ sampler.steps }}, generator=generator).images  # 16 PIL images
{%- endif %}"""
LDM_SNIPPET = """import torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{{ repo_id }}", trust_remote_code=True)
generator = torch.Generator().manual_seed(0)
images = pipe(
    batch_size=16, num_inference_steps={{ sampler.steps }}, sampler="{{ sampler.name }}", generator=generator,
    {%- if sampler.precision == "bf16" %} autocast_dtype=torch.bfloat16,{% endif %}
).images  # 16 PIL images"""


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


def _sampler_text(sampler: Any) -> str:
    """How the run drew its sample grids, e.g. 'generated from pure noise with the dpmsolver++ sampler in 25
    steps'."""
    text = "generated from pure noise by the learned reverse process"
    if isinstance(sampler, dict) and sampler.get("name"):
        text = f"generated from pure noise with the {sampler['name']} sampler"
        if isinstance(sampler.get("steps"), int):
            text += f" in {sampler['steps']} steps"
    return text


def _card_check_text(check: dict[str, Any] | None) -> str | None:
    """One sentence on docs/lab/PROTOCOL.md's card check of the headline, or None before it ran."""
    if check is None:
        return None
    seeds = check["seeds"]
    return (f"Checked (`python scripts/evaluate_ddpm.py --run_dir <this folder> --check_card_snippet`): the snippet "
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
    config = read_json_or_empty(Path(run_dir) / "scheduler" / "scheduler_config.json")
    return {"name": None, "steps": config.get("num_train_timesteps", 1000), "precision": "fp32", "measured": False}


def published_scheduler(run_dir: str | os.PathLike) -> SchedulerMixin:
    """The scheduler a DDPM repo ships in `scheduler/`: the card's sampler (`published_sampler`) built from the run's
    training schedule, or the training scheduler itself when nothing was measured."""
    config = read_json_or_empty(Path(run_dir) / "scheduler" / "scheduler_config.json")
    name = published_sampler(run_dir)["name"]
    if name is None:
        return DDPMScheduler.from_config(config)
    return make_scheduler(name, config)


def _call(cls: str, settings: dict[str, Any]) -> str:
    args = "".join(f", {key}={value!r}" for key, value in settings.items())
    return f"{cls}.from_config(config{args})"


def sampler_hints(run_dir: Path) -> dict[str, str]:
    """For each other sampler, the code that builds it from `config`, the shipped scheduler's config
    (`pipe.scheduler.config`), with the settings the library samples with (`make_scheduler`: trailing spacing, x0
    thresholding, …): a card never hands out a configuration the library does not sample with."""
    shipped = published_scheduler(run_dir).config
    train = read_json_or_empty(run_dir / "scheduler" / "scheduler_config.json")
    hints = {}
    for name in ("dpmsolver++", "unipc", "ddim"):
        built = make_scheduler(name, train)
        plain = type(built).from_config(shipped)  # what `from_config(pipe.scheduler.config)` alone gives
        settings = {k: v for k, v in built.config.items() if not k.startswith("_") and plain.config.get(k) != v}
        hints[name] = _call(type(built).__name__, settings)
    return hints


def _results(run_dir: Path, metrics: dict, split_id: str, evaluation: dict, task: str,
             dataset: CardDataset = MNIST_DATASET) -> tuple[list, list]:
    """The card's results table (this run next to the study) and its `model-index` entries."""
    ref, main = STUDY["ddpm"], evaluation["main"]
    fid_split = split_label(main["fid"]["reference"], dataset) if main else (split_id, "")
    images = "digits" if dataset.mnist else "images"
    fid_label = "FID (lower is better)" if main is None else (
        f"FID (lower is better; N={main['fid']['n_gen']:,} vs {main['fid']['n_ref']:,} of {fid_split[1]}, "
        f"real-vs-real floor {main['fid']['floor']:.2f}; {_point_words(main)}"
        f"{'' if is_standard_fid(main['fid']) else '; ' + LEGACY_FID_NOTE})")
    n_loss, n_test = metrics.get("test_loss_samples"), metrics.get("test_samples")
    loss_n = (f"first {n_loss:,} of the {n_test:,} held-out {images}" if isinstance(n_loss, int) and
              isinstance(n_test, int) and n_loss < n_test else
              f"all {n_test:,} held-out {images}" if isinstance(n_test, int) else f"the held-out {images}")
    rows = [
        ("train_loss", "Train loss (ε-prediction MSE, last epoch's running mean)", metrics.get("train_loss"),
         ref["train_loss"], "train" if split_id == "test" else STUDY_TRAIN_SPLIT),
        ("test_loss", f"Held-out loss (ε-prediction MSE, {loss_n})", metrics.get("test_loss"), ref["test_loss"],
         split_id),
        ("test_loss_ema", f"Held-out loss, EMA weights ({loss_n})", metrics.get("test_loss_ema"), None, split_id),
        ("fid", fid_label, main["fid"]["fid"] if main else None, None, fid_split[0]),
    ]
    results, evals = [], []
    for key, label, value, study, split in rows:
        if (value := num(value)) is None:
            continue
        study_text = f"{ref['fid']} (protocol not stated: not comparable)" if key == "fid" else (
            fmt(study) if study else "not reported")
        if not dataset.mnist:  # the study's numbers are MNIST's
            study_text = "— (the study is on MNIST)"
        results.append({"label": label, "value": fmt(value), "study": study_text})
        evals.append(eval_result(key, label.split(" (")[0] + _n_suffix(key, main, n_loss), value, split, task,
                                 dataset))
    return results, evals


def _card_data(model_name: str, evals: list, dataset: CardDataset = MNIST_DATASET) -> ModelCardData:
    return ModelCardData(
        library_name="diffusers", license="mit",
        tags=["ddpm", "diffusion", *(["mnist"] if dataset.mnist else []), PIPELINE_TAG, "pytorch", "mnist-genlab",
              "diffusers:DDPMPipeline"],
        datasets=dataset.metadata_ids, pipeline_tag=PIPELINE_TAG, model_name=model_name, eval_results=evals or None)


def ddpm_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """The card data and template context of a pixel DDPM run (class-conditional when its U-Net has class
    embeddings)."""
    metrics = read_json_or_empty(run_dir / "metrics.json")
    train_cfg = read_json_or_empty(run_dir / "training_config.json")
    unet_cfg = read_json_or_empty(run_dir / "unet" / "config.json")
    sched_cfg = read_json_or_empty(run_dir / "scheduler" / "scheduler_config.json")
    model_name = repo_id.split("/")[-1]
    dataset = card_dataset(train_cfg)
    split_id, split_words = split_text(metrics.get("split", train_cfg.get("split")), metrics, dataset)
    evaluation = evaluation_summary(run_dir)
    conditional = unet_cfg.get("num_class_embeds") is not None
    results, evals = _results(run_dir, metrics, split_id, evaluation, CONDITIONAL_TASK if conditional else PIPELINE_TAG,
                              dataset)
    published = published_scheduler(run_dir)
    main = evaluation["main"]
    context = {
        "repo_id": repo_id, "model_name": model_name,
        "parameters": f"{safetensors_parameters(run_dir / 'unet' / 'diffusion_pytorch_model.safetensors'):,}",
        "sample_size": unet_cfg.get("sample_size"), "in_channels": unet_cfg.get("in_channels", 1),
        "data": dataset.template_context(), "num_labels": len(dataset.label_names or ()),
        "blocks": [f"{d} ({c} ch)" for d, c in zip(unet_cfg.get("down_block_types", []),
                                                   unet_cfg.get("block_out_channels", []), strict=False)],
        "layers_per_block": unet_cfg.get("layers_per_block"), "unet_class": unet_cfg.get("_class_name"),
        "timesteps": sched_cfg.get("num_train_timesteps", metrics.get("num_train_timesteps")),
        "beta_schedule": sched_cfg.get("beta_schedule"),
        "prediction_type": sched_cfg.get("prediction_type", "epsilon"),
        "scheduler_class": type(published).__name__, "timestep_spacing": published.config.get("timestep_spacing"),
        "ema": metrics.get("ema"), "trained": trained_sentence(metrics, train_cfg, split_words),
        "recipe_rows": recipe_rows(train_cfg), "results": results,
        "evaluation_lines": [describe_point(p) for p in (main, evaluation["raw"], *evaluation["others"]) if p],
        "card_check": _card_check_text(evaluation["card_check"]),
        # the sweep plot only where the evaluation holds a sweep (a guidance table is not one)
        "figures": figures(run_dir, _sampler_text(metrics.get("sampler")),
                           skip=() if evaluation["sweep"] else (SWEEP_FIGURE,), dataset=dataset),
        "study_recipe": STUDY["ddpm"]["recipe"], "study_parameters": STUDY["ddpm"]["parameters"],
        "sampler": published_sampler(run_dir), "conditional": False, "sampler_hints": sampler_hints(run_dir),
    }
    card_data = _card_data(model_name, evals, dataset)
    if conditional:
        _conditional_context(card_data, context, unet_cfg, train_cfg, evaluation)
    return card_data, context


def _conditional_context(card_data: ModelCardData, context: dict[str, Any], unet_cfg: dict[str, Any],
                         train_cfg: dict[str, Any], evaluation: dict[str, Any]) -> None:
    """A class-conditional DDPM: its pipeline class is this library's, its snippet asks for digits with the
    guidance the FID was measured with, and its card shows the guidance table."""
    card_data.pipeline_tag = None  # the Hub has no class-conditional generation task (common.CONDITIONAL_TASK)
    card_data.tags = [t for t in card_data.tags if t not in (PIPELINE_TAG, "diffusers:DDPMPipeline")] + [
        "class-conditional", CONDITIONAL_TASK, "classifier-free-guidance"]
    guidance = evaluation["guidance_scale"]
    context.update(
        conditional=True,
        num_class_embeds=unet_cfg["num_class_embeds"],
        label_dropout=f"{train_cfg.get('label_dropout', 0.1):.0%}",
        guidance=f"{DEFAULT_GUIDANCE_SCALE if guidance is None else guidance:g}",
        guidance_rows=[{"w": f"{p['guidance_scale']:g}", "fid": format_fid(p["fid"]),
                        "accuracy": _share(p["classifier"].get("class_accuracy")),
                        "recognisable": _share(p["classifier"].get("confident_share"))}
                       for p in evaluation["guidance"]],
    )


def _share(value: float | None) -> str:
    """A classifier share for a table cell; "–" where no classifier of the model's data was given."""
    return "—" if value is None else f"{value:.1%}"


def student_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """A distilled student (`training/distill_ddpm.py`): the DDPM card, sampled with the DDIM scheduler it ships at
    its own step count."""
    card_data, context = ddpm_context(run_dir, repo_id)
    distillation = read_json_or_empty(run_dir / "metrics.json").get("distillation") or {}
    steps = distillation.get("student_steps")
    scheduler = read_json_or_empty(run_dir / "model_index.json").get("scheduler") or [None, None]
    # a student ships the scheduler it was distilled for (kinds.py: no rewrite), whatever was measured
    context["scheduler_class"] = scheduler[1]
    context["sampler"] = {"name": distillation.get("sampler", "ddim"), "steps": steps, "precision": "fp32",
                          "measured": False}
    card_data.tags = [*card_data.tags, "progressive-distillation"]
    context.update(distillation=distillation, student_steps=steps)
    return card_data, context


def ldm_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """The DDPM card's facts about the latent U-Net and its schedule, plus the autoencoder's (model_cards/ldm.md)."""
    card_data, context = ddpm_context(run_dir, repo_id)
    vae_cfg, metrics = read_json_or_empty(run_dir / "vae" / "config.json"), read_json_or_empty(run_dir / "metrics.json")
    card_data.tags = [t for t in card_data.tags if not t.startswith("diffusers:")] + ["latent-diffusion"]
    ae = metrics.get("autoencoder_metrics", {})
    target = {"epsilon": "ε", "v_prediction": "v", "sample": "x0"}.get(context["prediction_type"], "ε")
    loss_words = f"{target}-prediction MSE on latents"
    results = [{**row, "label": row["label"].replace("ε-prediction MSE", loss_words)} for row in context["results"]]
    sampler = context["sampler"] if context["sampler"]["measured"] else {  # the pipeline's own default otherwise
        "name": "ddpm", "steps": 25, "precision": "bf16", "measured": False}
    context.update(
        results=results,
        sampler=sampler,
        loss_target=target,
        vae_parameters=f"{safetensors_parameters(run_dir / 'vae' / 'diffusion_pytorch_model.safetensors'):,}",
        latent_shape="×".join(str(n) for n in metrics.get("latent_shape", [])),
        vae_blocks=[f"{d} ({c} ch)" for d, c in zip(vae_cfg.get("down_block_types", []),
                                                    vae_cfg.get("block_out_channels", []), strict=False)],
        scaling_factor=fmt(vae_cfg.get("scaling_factor", 1.0)),
        kl_weight=ae.get("kl_weight", "a small weight"),
        vae_results=", ".join(f"{k.removeprefix('test_').upper()} {fmt(ae[k])}" for k in ("test_l1", "test_mse")
                              if num(ae.get(k)) is not None),
    )
    return card_data, context
