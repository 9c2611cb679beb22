"""The digit classifier's card: the classifier has no template file, its card is this module's `TEMPLATE`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

from hub_models.hub.card_parts.common import DATASET_ID, HUB_LIBRARY, eval_result, split_label
from hub_models.io import read_json_or_empty

TEMPLATE = """---
{{ card_data }}
---

# MNIST digit classifier (mnist-genlab)

A small CNN ({{ parameters }} parameters) that judges generated digits in the mnist-genlab
project (β-VAEs and DDPMs on MNIST): it is the classifier behind the *recognisable share*
(confidence > 0.9), the *class histogram / KL to uniform* (mode coverage) and the **FD-classifier**
(a Fréchet distance on its {{ hidden_dim }}-d penultimate features — MNIST-specific, not an FID).

| | |
|---|---|
| test accuracy ({{ test_words }}, N={{ test_size }}) | **{{ accuracy }}** |
| test loss (cross-entropy, same digits) | {{ test_loss }} |
| training data | {{ split_text }} train set ({{ train_size }} digits) |
| epochs / batch | {{ epochs }} / {{ batch_size }} |
| optimiser | AdamW, one-cycle schedule, peak lr {{ learning_rate }} |
| training time | {{ train_seconds }} s wall, CPU, {{ threads }} threads{{ note }} |

Architecture: 2 × [conv3×3–BN–ReLU, conv3×3–BN–ReLU, max-pool] with channels {{ channels }} →
FC({{ hidden }}) + ReLU (penultimate features) → dropout → FC(10).

## How to use

```python
{{ usage_snippet }}
```

{% if install_line %}With the {{ library_name }} library ({{ project_url }}):

```bash
{{ install_line }}
```

{% else %}With the {{ library_name }} library installed, the same model is its own class:

{% endif %}```python
import torch
from hub_models import DigitClassifier

clf = DigitClassifier.from_pretrained("{{ repo_id }}")
images = torch.rand(4, 1, 28, 28)  # grey digits (N, 1, 28, 28) in [0, 1], white on black like MNIST
probs, features, labels = clf.predict(images)  # (N, 10), (N, {{ hidden_dim }}), (N,)
```

Trained with `training/train_classifier.py --seed {{ seed }}`.
"""


# The card's first "How to use" block (hub_models.hub.kinds): diffusers alone, the module shipped in the repo.
SNIPPET = """import torch
from diffusers import AutoModel

model = AutoModel.from_pretrained("{{ repo_id }}", trust_remote_code=True)
images = torch.rand(4, 1, 28, 28)  # grey digits in [0, 1], white on black like MNIST
probs, features, labels = model.predict(images)  # (4, 10), (4, {{ hidden_dim }}), (4,)"""


def classifier_card_context(metrics: dict[str, Any], repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """The card data (validated `model-index`) and template context of a trained classifier's metrics."""
    accuracy, split = metrics["test_accuracy"], metrics.get("split", "official")
    test_split, test_words = split_label(split)
    result = eval_result("accuracy", f"Test accuracy (N={metrics['test_size']:,})", accuracy, test_split,
                         task="image-classification")
    result.metric_value = round(accuracy, 4)
    data = ModelCardData(library_name=HUB_LIBRARY, license="mit", datasets=[DATASET_ID], metrics=["accuracy"],
                         tags=["mnist", "image-classification", "evaluation", "mnist-genlab"],
                         pipeline_tag="image-classification", model_name=repo_id.split("/")[-1],
                         eval_results=[result])
    cfg = metrics.get("config", {})
    context = {
        "repo_id": repo_id, "parameters": f"{metrics['parameters']:,}", "hidden_dim": cfg.get("hidden_dim", 128),
        "hidden": cfg.get("hidden_dim"), "channels": cfg.get("channels"), "test_words": test_words,
        "test_size": f"{metrics['test_size']:,}", "accuracy": f"{accuracy:.2%}",
        "test_loss": f"{metrics['test_loss']:.4f}", "train_size": f"{metrics['train_size']:,}",
        "split_text": "official MNIST" if split == "official" else "the study's 80/20",
        "epochs": metrics["epochs"], "batch_size": metrics["batch_size"], "learning_rate": metrics["learning_rate"],
        "train_seconds": f"{metrics['train_seconds']:.0f}", "threads": metrics.get("torch_threads", "?"),
        "note": f" ({metrics['train_note']})" if metrics.get("train_note") else "", "seed": metrics["seed"],
    }
    return data, context


def classifier_context(run_dir: Path, repo_id: str) -> tuple[ModelCardData, dict[str, Any]]:
    """`classifier_card_context` of the run folder's metrics.json (the table's card builder)."""
    return classifier_card_context(read_json_or_empty(run_dir / "metrics.json"), repo_id)
