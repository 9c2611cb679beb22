"""What every model card shares: the dataset and its splits, figure captions, the training recipe and sentence,
`model-index` results, the install line."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult
from safetensors import safe_open

from hub_models.reference import PROJECT_NAME

# hub_models/model_cards links to the top-level model_cards/ (shipped in the wheel as package data)
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "model_cards"
DATASET_ID = "ylecun/mnist"
PIPELINE_TAG = "unconditional-image-generation"
# The Hub has no pipeline tag for generation that takes a class label: such cards set no `pipeline_tag` (neither
# the unconditional task nor text-to-image describes them) and name this task in their tags and `model-index`.
CONDITIONAL_TASK = "class-conditional-image-generation"
TASK_NAMES = {PIPELINE_TAG: "Unconditional image generation", CONDITIONAL_TASK: "Class-conditional image generation",
              "image-classification": "Digit classification"}
LIBRARY_NAME = PROJECT_NAME  # the library a card's second snippet uses
# Every repo loads with diffusers alone (`DiffusionPipeline` / `AutoModel`, trust_remote_code): the metadata says so.
HUB_LIBRARY = "diffusers"
# Where each metric was measured: a reference set or training split → (model-index `dataset.split`, in words). The
# study's split is a seeded random 80/20 split of MNIST's training digits, not a slice of it: its parts get names of
# their own (`study-train`, `study-test`) rather than `datasets` slice syntax.
SPLITS = {
    "mnist-test": ("test", "the official MNIST test set"),
    "official": ("test", "the official MNIST test set"),
    "study-test": ("study-test", "the study's held-out 20 % of the 60,000 training digits"),
    "study": ("study-test", "the study's held-out 20 % of the 60,000 training digits"),
}
STUDY_TRAIN_SPLIT = "study-train"  # the other 80 % (what the study's runs train on)
PLACEHOLDER_SOURCES = ("github.com/mnist-genlab/mnist-genlab",)  # an address nothing publishes

FIGURE_CAPTIONS = {  # in the order the card shows them
    "samples": "New digits: {how}.",
    "reconstructions": "Held-out digits (top) and their reconstructions from the posterior mean (bottom).",
    "latent_scatter": "Posterior means of held-out digits in the 2-D latent space, coloured by class.",
    "manifold": "Decoder outputs on a regular grid of the 2-D latent space (the learned manifold).",
    "latent_pca": "2-D PCA projection of the posterior means of held-out digits, coloured by class.",
    "samples_standard_normal": "The same VAE's digits from z ~ N(0, I), for comparison (same seed).",
    "style_grid": "Digit × style: each row is one latent z ~ N(0, I) decoded as every digit 0–9 (conditional VAE).",
}


@dataclass(frozen=True)
class CardDataset:
    """The data a run trained on, as its card names it: training_config.json's `dataset` (what
    `hub_models.image_datasets.ImageDatasetInfo.to_dict` wrote), MNIST when the run records none (the released
    runs). `hub_id` is None for a local image folder: the card then names no dataset in its metadata."""

    mnist: bool = True
    hub_id: str | None = DATASET_ID
    channels: int = 1
    resolution: int = 28
    label_names: tuple[str, ...] | None = tuple(str(d) for d in range(10))
    held_out_from: str = "train"

    @property
    def title(self) -> str:
        """How the text names the data: "MNIST", the Hub id, or "a local image folder"."""
        return "MNIST" if self.mnist else self.hub_id or "a local image folder"

    @property
    def metadata_ids(self) -> list[str] | None:
        """The card's `datasets:` metadata: the Hub id, none for a folder."""
        return [self.hub_id] if self.hub_id else None

    @property
    def model_index_type(self) -> str:
        return self.hub_id or "imagefolder"

    def template_context(self) -> dict[str, Any]:
        """What the templates say about the data (`data.*`): MNIST's words stay the cards' own."""
        colour = "grey" if self.channels == 1 else "RGB"
        return {"mnist": self.mnist, "title": self.title, "hub_id": self.hub_id,
                "images": "digits" if self.mnist else "images", "image": "digit" if self.mnist else "image",
                "shape": f"{self.resolution}×{self.resolution} {colour}", "channels": self.channels,
                "one": "28×28 MNIST digit" if self.mnist else f"{self.resolution}×{self.resolution} {colour} image "
                       f"of {self.title}",
                "resolution": self.resolution, "label_names": list(self.label_names or []),
                "classes": "digit" if self.mnist else "class", "class_plural": "digits" if self.mnist else "classes",
                "class_words": "digit class" if self.mnist else "class"}


MNIST_DATASET = CardDataset()


def card_dataset(train_cfg: dict[str, Any]) -> CardDataset:
    """The `CardDataset` of a run from its training_config.json (MNIST when it records no other data)."""
    info = train_cfg.get("dataset")
    folder = train_cfg.get("train_data_dir")
    if not isinstance(info, dict) or (info.get("name") in (None, DATASET_ID) and not folder):
        return MNIST_DATASET
    name = str(info.get("name"))
    # A folder (--train_data_dir, or a local dataset folder given as --dataset_name) names no Hub dataset.
    local = info["source"] == "folder" if "source" in info else (  # runs record it; else the name's form tells
        bool(folder) or name.startswith(("/", ".", "~")) or name.count("/") != 1 or Path(name).expanduser().exists())
    labels = info.get("label_names")
    return CardDataset(mnist=False, hub_id=None if local else name, channels=int(info.get("channels") or 1),
                       resolution=int(info.get("resolution") or 28),
                       label_names=tuple(str(n) for n in labels) if labels else None,
                       held_out_from=str(info.get("held_out_from") or "train"))


def split_label(split: str | None, dataset: CardDataset = MNIST_DATASET) -> tuple[str, str]:
    """A reference set (`mnist-test`, `study-test`) or training split (`official`, `study`) → (model-index split,
    description)."""
    if not dataset.mnist:
        if SPLITS.get(split or "", ("",))[0] == "test" or split == "test":
            return "test", f"the test split of {dataset.title}"
        return "study-test", f"the held-out 20 % of the train split of {dataset.title}"
    return SPLITS.get(split or "study", SPLITS["study"])


def safetensors_parameters(path: Path) -> int:
    """Number of parameters stored in a safetensors file (read from its header, no weights loaded)."""
    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def num(value: Any) -> float | None:
    """`value` as a float when it is a finite number, else None (a metric the run did not record)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.1f}"


def _data_words(caption: str, dataset: CardDataset) -> str:
    """A caption written for MNIST's digits, said of another dataset's images."""
    if dataset.mnist:
        return caption
    caption = caption.replace("every digit 0–9", "every class").replace("Digit × style", "Class × style")
    return re.sub(r"\bdigits\b", "images", caption)


def figures(run_dir: Path, how: str, skip: tuple[str, ...] = (), dataset: CardDataset = MNIST_DATASET) -> list[dict]:
    """Every figures/*.png but `skip` (stems) with a caption, known figures first (relative links: they are
    uploaded too)."""
    order = list(FIGURE_CAPTIONS)
    paths = sorted(
        (p for p in (run_dir / "figures").glob("*.png") if p.stem not in skip),
        key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.name),
    )
    found = []
    for path in paths:
        stem = path.stem
        if m := re.fullmatch(r"samples_epoch_(\d+)", stem):
            caption = f"Samples after epoch {int(m.group(1))}."
        else:
            caption = FIGURE_CAPTIONS.get(stem, stem.replace("_", " ").capitalize() + ".").format(how=how)
        found.append({"path": f"figures/{path.name}", "caption": _data_words(caption, dataset), "name": stem})
    return found


def recipe_rows(config: dict) -> list[tuple[str, str]]:
    """training_config.json as (flag, value) rows: every CLI argument with a value; no paths, no secrets."""
    # `dataset` is what the run recorded about its data (not a flag), `train_data_dir` a local path
    skip = re.compile(r"token|output_dir|logging_dir|cache|push_to_hub|hub_|resume|report_to|^dataset$|train_data_dir",
                      re.IGNORECASE)
    rows = []
    for key, value in sorted(config.items()):
        if value is None or value == "" or skip.search(key):
            continue
        rows.append((f"--{key}", json.dumps(value) if isinstance(value, list | dict) else str(value)))
    return rows


def split_text(split: str | None, metrics: dict, dataset: CardDataset = MNIST_DATASET) -> tuple[str, str]:
    """(dataset split for model-index, human description) of the split a run trained on."""
    n_train, n_test = metrics.get("train_samples"), metrics.get("test_samples")
    what = "digits" if dataset.mnist else "images"
    sizes = (
        f" ({n_train:,} / {n_test:,} {what})" if isinstance(n_train, int) and isinstance(n_test, int) else ""
    )
    if not dataset.mnist:
        if dataset.held_out_from == "test":
            return "test", f"the train / test splits of {dataset.title}{sizes}"
        return "study-test", f"a seeded 80/20 split of the train split of {dataset.title}{sizes}"
    if split == "official":
        return split_label("official")[0], f"the official MNIST train / test split{sizes}"
    return split_label("study")[0], f"the study's 80/20 split of the 60,000 MNIST training digits{sizes}"


def trained_sentence(metrics: dict, train_cfg: dict, split_words: str) -> str:
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
    return f"{text} on {split_words}."


def eval_result(metric_type: str, name: str, value: float, split: str, task: str = PIPELINE_TAG,
                dataset: CardDataset = MNIST_DATASET) -> EvalResult:
    """One `model-index` result on the run's data (MNIST by default); the study's splits are named as such
    (`study-test`, `study-train`)."""
    study = split.startswith("study-")
    if dataset.mnist:
        dataset_name = "MNIST (the study's seeded 80/20 split of the training digits)" if study else "MNIST"
    else:
        dataset_name = f"{dataset.title} (a seeded 80/20 split of its train split)" if study else dataset.title
    return EvalResult(
        task_type=task,
        task_name=TASK_NAMES.get(task, task),
        dataset_type=dataset.model_index_type,
        dataset_name=dataset_name,
        dataset_split=split,
        metric_type=metric_type,
        metric_name=name,
        metric_value=round(value, 6),
    )


def package_homepage() -> str | None:
    """The `Homepage` URL of the installed package's metadata, or None (not installed, or none given)."""
    try:
        urls = metadata.metadata(PROJECT_NAME).get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "homepage" and url.strip():
            return url.strip()
    return None


def install_line(source_url: str | None = None) -> str:
    """`pip install "mnist-genlab @ git+<source>"` for a real source (`source_url`, else the installed package's
    `Homepage`), or "" when there is none: a card never tells users to install from an address nothing publishes."""
    source = (source_url or package_homepage() or "").strip().removesuffix("/")
    if not source or any(p in source for p in PLACEHOLDER_SOURCES):
        return ""
    if source.startswith(("https://", "http://")) and not source.endswith((".whl", ".tar.gz", ".zip")):
        source = "git+" + source
    return f'pip install "{PROJECT_NAME} @ {source}"'


def install_context(source_url: str | None = None) -> dict[str, str]:
    """What the templates say about installing the library: `install_line` ("" without a real source), and the
    older `install` / `project_url` names for the templates that still use them (same values)."""
    line = install_line(source_url)
    url = (source_url or package_homepage() or "") if line else ""
    return {"library_name": LIBRARY_NAME, "install_line": line, "install": line, "project_url": url}
