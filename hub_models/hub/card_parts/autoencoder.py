"""The card of latent diffusion's autoencoder (`training/train_autoencoder.py`): diffusers' `AutoencoderKL`, so it
loads with diffusers alone; no template file, its card is this module's `TEMPLATE`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

from hub_models.hub.card_parts.common import (
    card_dataset,
    eval_result,
    figures,
    fmt,
    num,
    recipe_rows,
    split_text,
    trained_sentence,
)
from hub_models.io import read_json_or_empty

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

The autoencoder of mnist-genlab's latent diffusion model: diffusers' `AutoencoderKL` ({{ parameters }} parameters)
that maps a {{ data.one }} to a {{ latent_shape }} latent and back. Loss: L1 reconstruction on [-1, 1] pixels
plus {{ kl_weight }} × KL of the posterior; `scaling_factor` = {{ scaling_factor }} (1 / std of the training latents).

## How to use

```python
{{ usage_snippet }}
```

The same with diffusers' class, encoding and decoding apart:

```python
import torch
from diffusers import AutoencoderKL

vae = AutoencoderKL.from_pretrained("{{ repo_id }}", use_safetensors=True)
images = torch.rand(4, {{ shape }}) * 2 - 1  # {{ input_words }}
latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
reconstructions = vae.decode(latents / vae.config.scaling_factor).sample  # (4, {{ shape }}) in about [-1, 1]
```

## Training

{{ trained }}

| flag | value |
|---|---|
{% for flag, value in recipe_rows %}| `{{ flag }}` | {{ value }} |
{% endfor %}

## Results

Held-out reconstruction ({{ scored }} {{ data.images }}, posterior mean decoded, pixels in [0, 1]): {{ results }}.

{% for fig in figures %}**{{ fig.caption }}**

![{{ fig.name }}]({{ fig.path }})

{% endfor %}"""


# The card's first "How to use" block (hub_models.hub.kinds): diffusers alone. AutoencoderKL is diffusers' own class,
# so the repo ships no code, and AutoModel refuses `trust_remote_code=True` on a repo without code.
SNIPPET = """import torch
from diffusers import AutoModel

model = AutoModel.from_pretrained("{{ repo_id }}")
reconstructions = model(torch.rand(4, {{ shape }}) * 2 - 1).sample  # 4 {{ images }} in [-1, 1], encoded and decoded"""


def autoencoder_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """The card data and template context of an autoencoder run."""
    config, metrics = read_json_or_empty(run_dir / "config.json"), read_json_or_empty(run_dir / "metrics.json")
    train_cfg = read_json_or_empty(run_dir / "training_config.json")
    dataset = card_dataset(train_cfg)
    split_id, split_words = split_text(train_cfg.get("split"), metrics, dataset)
    measured = {k: v for k in ("test_l1", "test_mse") if (v := num(metrics.get(k))) is not None}
    evals = [eval_result(k.removeprefix("test_"), f"Held-out {k.removeprefix('test_').upper()}", v, split_id,
                         task="image-to-image", dataset=dataset) for k, v in measured.items()]
    model_name = repo_id.split("/")[-1]
    data = ModelCardData(library_name="diffusers", license="mit", datasets=dataset.metadata_ids, model_name=model_name,
                         tags=["autoencoder", "autoencoder-kl", "latent-diffusion",
                               *(["mnist"] if dataset.mnist else []), "mnist-genlab"],
                         eval_results=evals or None)
    context = {
        "repo_id": repo_id, "model_name": model_name, "parameters": f"{metrics.get('parameters', 0):,}",
        "latent_shape": "×".join(str(n) for n in metrics.get("latent_shape", [])) or "small",
        "kl_weight": metrics.get("kl_weight", "a small weight"),
        "scaling_factor": fmt(config.get("scaling_factor", 1.0)),
        "trained": trained_sentence(metrics, train_cfg, split_words), "recipe_rows": recipe_rows(train_cfg),
        "scored": metrics.get("test_samples_scored", "the"),
        "results": ", ".join(f"{k.removeprefix('test_').upper()} {fmt(v)}" for k, v in measured.items())
        or "not measured",
        "figures": figures(run_dir, "reconstructions", dataset=dataset),
        "data": dataset.template_context(), "images": "digits" if dataset.mnist else "images",
        # the model's input shape from its config (MNIST's where the config predates issue 37)
        "shape": ", ".join(str(n) for n in (config.get("in_channels", 1), *[config.get("sample_size", 28)] * 2)),
        "input_words": "digits in [-1, 1], white on black like MNIST" if dataset.mnist else "images in [-1, 1]",
    }
    return data, context
