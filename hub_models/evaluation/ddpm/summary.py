"""What a run's evaluation says: the headline, the raw-weights point, the sweep, the guidance table, one line each."""

from __future__ import annotations

import os
from typing import Any

from hub_models.evaluation.ddpm.protocol import _how, _sweep_group, guidance_group, select_guidance, select_point
from hub_models.evaluation.ddpm.run_data import MNIST_REFERENCES, RUN_REFERENCE
from hub_models.evaluation.ddpm.scoring import current_points, load_evaluation
from hub_models.evaluation.metrics import format_fid


def evaluation_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The current evaluation of a run: `main` (the headline: the EMA point against the official test digits with
    the most digits, the sweep's selected sampler first, then fp32 ancestral DDPM; None before there is one),
    `raw` (the non-EMA point with the most digits), `sweep` (the timed EMA points on the held-out split of the
    most common N and seed, if there are several), `others` (the remaining EMA points, most digits first), a
    conditional model's guidance table, its choice and the w to use it with (`guidance_scale`), and `card_check`
    (the card snippet check of this headline, whose evaluator points are not in `others`); None/[] if absent."""
    # Points sampled with settings other than the library's (`overrides`: the sampler study's, or DDIM's raw-ε step
    # before the library changed it) are kept in evaluation.json but are not the model's evaluation.
    points = [p for p in current_points(run_dir) if not p.get("overrides")]
    guided = {id(p) for p in guidance_group(points)}
    # MNIST selects on the study's held-out split and reports on the official test set; a run on other data has
    # its own held-out images for both (told by its points: a pushed folder may not carry training_config.json).
    other_data = any(p.get("reference") == RUN_REFERENCE for p in points)
    selection, report = (RUN_REFERENCE, RUN_REFERENCE) if other_data else MNIST_REFERENCES
    ema = [p for p in points if p["ema"] and id(p) not in guided]
    raw = [p for p in points if not p["ema"]]
    # The sweep: the timed points on the selection split of the most common N, seed and reference (a card check's
    # other seeds at the same N are not sweep points, nor are the paths reported on the test digits).
    timed = [p for p in ema if p.get("seconds_per_16") is not None and p.get("reference") == selection]
    groups = [_sweep_group(p) for p in timed]
    group = max(set(groups), key=groups.count) if groups else None
    sweep = [p for p in timed if _sweep_group(p) == group]
    sweep = sorted(sweep, key=_how) if len(sweep) > 1 else []
    # The headline is never a selection point (docs/lab/PROTOCOL.md): not a sweep point and never scored against the
    # held-out split that selects (a finalist re-scored at N = 2,000 is one); points older than the reference
    # field were all against the official test digits.
    candidates = [p for p in ema if not any(p is q for q in sweep) and p.get("reference", "mnist-test") == report]
    # Other paths reported at the headline's N (the Space's default, the best point) never displace the sampler
    # the protocol selected on the held-out split (a class-conditional model's: its guidance table's).
    table = guidance_group(points)
    choice = select_guidance(table)
    chosen = select_point(sweep) or choice
    selected = _how(chosen) if chosen else None
    main = max(candidates, key=lambda p: (p["num_samples"], _how(p) == selected, p["sampler"] == "ddpm",
                                          p.get("precision", "fp32") == "fp32")) if candidates else None
    # The card check (evaluation/card_check.py) of this headline: its evaluator points are one line, not five.
    check = load_evaluation(run_dir).get("settings", {}).get("card_snippet_check")
    if main is None or check is None or any(main.get(k) != v for k, v in check["headline"].items()):
        check = None

    def checked(p: dict[str, Any]) -> bool:
        return check is not None and p["num_samples"] == check["num_samples"] and p["seed"] in check["seeds"] \
            and p.get("reference") == check["reference"] and all(p.get(k) == v for k, v in check["headline"].items())

    others = sorted((p for p in ema if p is not main and p not in sweep and not checked(p)),
                    key=lambda p: -p["num_samples"])
    # The w a conditional model is used with: its headline's (measured at the chosen w), else the table's choice.
    w = main.get("guidance_scale") if main else None
    w = choice["guidance_scale"] if w is None and choice else w
    return {"main": main, "raw": max(raw, key=lambda p: p["num_samples"]) if raw else None, "sweep": sweep,
            "others": others, "guidance": table, "guidance_choice": choice, "guidance_scale": w, "card_check": check}

def describe_point(point: dict[str, Any]) -> str:
    """One line: the FID with N, reference and floor, how the digits were sampled, how many are recognisable."""

    precision = ", UNet in bf16" if point.get("precision", "fp32") != "fp32" else ""
    guidance = "" if point.get("guidance_scale") is None else (
        f", guidance w = {point['guidance_scale']:g}, classes balanced")
    how = (f"{format_fid(point['fid'])}; {point['sampler']} with {point['steps']} steps{precision}{guidance}, "
           f"{'EMA' if point['ema'] else 'raw (non-EMA)'} weights")
    if not point["classifier"]:  # a run on other data, scored without a classifier of that data
        return f"{how}; no class metrics (no classifier of this data was given)"
    accuracy = "" if "class_accuracy" not in point["classifier"] else (
        f"; {point['classifier']['class_accuracy']:.1%} read as the requested digit")
    return (f"{how}; {point['classifier']['confident_share']:.1%} "
            f"of the digits recognisable (classifier confidence > 0.9){accuracy}")
