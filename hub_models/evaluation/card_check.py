"""Does a DDPM card's "How to use" snippet reproduce the card's FID? (docs/lab/PROTOCOL.md, "Cards that reproduce
themselves".)

The snippet is taken from the card (`<run>/README.md`) as written and run with three edits, each of which must
match exactly once (otherwise the card has changed and the check says so instead of guessing): the repo id → the
local folder, `manual_seed(0)` → one seed per batch, and the batch (`batch_size=16`, or the class-conditional
snippet's `range(2)` images per digit) → a larger one. The FID of its N digits against the reference is compared
with the evaluator's point of the same settings at the same N over several seeds: it passes within 3 σ of their
mean, σ being their standard deviation.
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from hub_models.evaluation.ddpm import (
    Point,
    evaluate_point,
    evaluation_summary,
    run_dataset,
    run_num_classes,
    scoring_reference,
    update_evaluation,
)
from hub_models.evaluation.metrics import fid
from hub_models.reference import NUM_DIGITS

CARD_CHECK_SEEDS = (1, 2, 3, 4, 5)
SNIPPET_SEED_BASE = 1000  # batch k of the snippet runs with manual_seed(1000 + k): seeds no evaluator point uses
TOLERANCE_SIGMAS = 3.0


class CardSnippetError(ValueError):
    """The card has no snippet this check knows how to run (the card template changed)."""


def card_snippet(card: str) -> str:
    """The first ```python block under the card's "## How to use" heading."""
    section = card.split("## How to use", 1)
    found = re.search(r"```python\n(.*?)```", section[1], re.S) if len(section) == 2 else None
    if found is None:
        raise CardSnippetError('the card has no ```python block under "## How to use"')
    return found.group(1)


def _replace_once(code: str, pattern: str, new: str, what: str) -> str:
    code, count = re.subn(pattern, lambda _: new, code)
    if count != 1:
        raise CardSnippetError(f"the card's snippet has {count} {what} (expected exactly one); the card template "
                               "changed: update hub_models/evaluation/card_check.py with it")
    return code


def snippet_program(snippet: str, folder: str | os.PathLike, seed: int, batch_size: int,
                    num_classes: int = NUM_DIGITS) -> str:
    """The snippet with its three edits: the local `folder`, `seed`, and `batch_size` images per run (a multiple
    of `num_classes`, MNIST's 10 digits by default, for a class-conditional card, whose snippet asks for every
    class equally often)."""
    code = _replace_once(snippet, r'from_pretrained\("[^"]+"', f"from_pretrained({str(folder)!r}",
                         "from_pretrained(<repo id>) calls")
    code = _replace_once(code, r"manual_seed\(0\)", f"manual_seed({seed})", "manual_seed(0) calls")
    if "class_labels=" in code:
        if batch_size % num_classes:
            raise ValueError(f"a class-conditional check needs a batch size divisible by {num_classes} (the "
                             "run's classes)")
        return _replace_once(code, r"for _ in range\(2\)", f"for _ in range({batch_size // num_classes})",
                             "'for _ in range(2)' (images per class)")
    return _replace_once(code, r"batch_size=16\b", f"batch_size={batch_size}", "batch_size=16 arguments")


def _as_array(image: Any, channels: int) -> np.ndarray:
    """A PIL image of the snippet → uint8 `(H, W)` (greyscale, as the study's digits) or `(3, H, W)` (RGB)."""
    if channels == 1:
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


def snippet_digits(run_dir: str | os.PathLike, num_samples: int, batch_size: int = 250) -> np.ndarray:
    """`num_samples` images made by the card's own snippet, run batch by batch: uint8 `(N, 28, 28)` for MNIST's
    digits (any greyscale run: `(N, H, W)`), `(N, 3, H, W)` for a run on RGB images."""
    snippet = card_snippet((Path(run_dir) / "README.md").read_text())
    classes = run_num_classes(run_dir) or NUM_DIGITS  # unconditional: unused
    channels = (run_dataset(run_dir) or {}).get("channels", 1)
    batches = []
    for k in range(-(-num_samples // batch_size)):
        namespace: dict[str, Any] = {}
        program = snippet_program(snippet, run_dir, SNIPPET_SEED_BASE + k, batch_size, classes)
        exec(compile(program, "card-snippet", "exec"), namespace)  # the card's own code: what a Hub visitor runs
        batches.append(np.stack([_as_array(image, channels) for image in namespace["images"]]))
    return np.concatenate(batches)[:num_samples]


def card_snippet_check(run_dir: str | os.PathLike, num_samples: int = 1000, seeds: tuple[int, ...] = CARD_CHECK_SEEDS,
                       batch_size: int = 250) -> dict[str, Any]:
    """The check for `run_dir`'s card: the evaluator's FID at `num_samples` for each of `seeds` with the headline's
    settings (cached points), the snippet's FID at the same N against the same reference, and whether it lands
    within `TOLERANCE_SIGMAS` σ of their mean. Stored in evaluation.json (`settings.card_snippet_check`)."""
    if len(seeds) < 2:
        raise ValueError("σ needs at least two seeds")
    main = evaluation_summary(run_dir)["main"]
    if main is None:
        raise ValueError(f"{run_dir} has no headline FID yet (an N = 10,000 point against its report reference, "
                         "mnist-test for MNIST): the card reports none, so there is nothing to reproduce")
    reference = main["fid"]["reference"]
    fids = [evaluate_point(run_dir, Point(main["sampler"], main["steps"], num_samples, True, seed,
                                          main.get("precision", "fp32"), guidance_scale=main.get("guidance_scale")),
                           reference=reference, batch_size=batch_size, timing=False)["fid"]["fid"]
            for seed in seeds]
    snippet = fid(snippet_digits(run_dir, num_samples, batch_size), reference=scoring_reference(run_dir, reference))
    mean, sigma = statistics.mean(fids), statistics.stdev(fids)
    result = {"num_samples": num_samples, "reference": reference, "seeds": list(seeds), "evaluator_fids": fids,
              "mean": mean, "sigma": sigma, "snippet_fid": snippet["fid"], "snippet_seed_base": SNIPPET_SEED_BASE,
              "tolerance_sigmas": TOLERANCE_SIGMAS, "headline": {k: main.get(k) for k in
                                                                 ("sampler", "steps", "precision", "guidance_scale")},
              "passes": abs(snippet["fid"] - mean) <= TOLERANCE_SIGMAS * sigma}
    update_evaluation(run_dir, lambda evaluation: evaluation.setdefault("settings", {}).update(
        {"card_snippet_check": result}))
    return result


__all__ = ["CARD_CHECK_SEEDS", "CardSnippetError", "card_snippet", "card_snippet_check", "snippet_digits",
           "snippet_program"]
