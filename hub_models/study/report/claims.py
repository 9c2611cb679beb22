"""Each claim of the study with our numbers and the verdict of its fixed rule (`hub_models.study.verdicts`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub_models.evaluation.ddpm import (
    missing_sweep_points,
)
from hub_models.evaluation.metrics import is_standard_fid
from hub_models.hub.naming import beta_tag
from hub_models.reference import (
    STUDY_BETAS,
    STUDY_DDPM_EPOCHS,
)
from hub_models.study.report.runs import LEGACY_MARK, Run, _get, _held, _prior
from hub_models.study.verdicts import NOT_MEASURED, RULES, judge

# The protocols a reader of the study's "FID 28.11" would try (shown next to its "not comparable" verdict).
READER_PROTOCOLS = (("ddpm", 1000), ("ddpm", 4000))


@dataclass
class Claim:
    claim: str
    measured: str
    verdict: str  # one of hub_models.study.verdicts.VERDICTS
    rule: str = ""


Adder = Callable[[str, list[Any], Callable[[], tuple[str, dict[str, Any]]]], None]


def study_claims(runs: dict[str, Run], ddpm: dict[str, Any] | None,
                 speed: dict[str, Any] | None = None) -> list[Claim]:
    """Each claim of the study with our numbers and the verdict of its fixed rule (`verdicts.RULES`).

    `speed`: a side-by-side benchmark result `{"conv_images_per_s", "dense_images_per_s", "side_by_side": True,
    "command"}`; without it the speed claim is 'not measured' (per-run wall time is never used).
    """
    claims: list[Claim] = []

    def add(key: str, needed: list[Any], measure: Callable[[], tuple[str, dict[str, Any]]]) -> None:
        rule = RULES[key]
        if any(n is None for n in needed):
            claims.append(Claim(rule.claim, "run missing", NOT_MEASURED, rule.rule))
            return
        text, numbers = measure()
        claims.append(Claim(rule.claim, text, judge(key, **numbers), rule.rule))

    conv = {b: _get(runs, "conv", 2, b) for b in STUDY_BETAS}
    dense2, conv2, conv4 = _get(runs, "dense", 2, 1.0), conv[1.0], _get(runs, "conv", 4, 1.0)
    params = {name: run.metrics["parameters"] for name, run in (("conv2", conv2), ("dense2", dense2),
                                                                 ("conv4", conv4)) if run}
    _architecture_claims(add, conv2, dense2, params)
    claims.append(_speed_claim(speed or {}))
    _beta_claims(add, conv)
    _capacity_claims(add, conv2, conv4, dense2, params)
    return claims + ddpm_claims(ddpm)


def _architecture_claims(add: Adder, conv2: Run | None, dense2: Run | None, params: dict[str, int]) -> None:
    """Conv against Dense at z = 2: parameters, held-out BCE, latent class separation."""
    add("parameters", [conv2, dense2], lambda: (
        f"{params['conv2']:,} / {params['dense2']:,}", {"conv": params["conv2"], "dense": params["dense2"]}))
    add("dense_bce", [conv2, dense2], lambda: (
        f"held-out BCE Dense {dense2.bce:.1f} vs Conv {conv2.bce:.1f}",
        {"bce_conv": conv2.bce, "bce_dense": dense2.bce}))
    knn_c, knn_d = _held(conv2, "latent_knn_accuracy"), _held(dense2, "latent_knn_accuracy")
    add("conv_latent", [knn_c, knn_d], lambda: (
        f"5-NN accuracy on latent means: Conv {knn_c:.1%}, Dense {knn_d:.1%}", {"knn_conv": knn_c, "knn_dense": knn_d}))


def _speed_claim(speed: dict[str, Any]) -> Claim:
    """Conv against Dense speed: only from a side-by-side benchmark."""
    text = (f"{speed.get('conv_images_per_s', 0):.0f} vs {speed.get('dense_images_per_s', 0):.0f} images/s "
            f"side by side (`{speed.get('command', '?')}`)" if speed.get("side_by_side") else
            "no side-by-side benchmark yet (per-run s/epoch varies 3× with machine load, so it is not used)")
    numbers = {k: speed.get(k) for k in ("conv_images_per_s", "dense_images_per_s", "side_by_side") if k in speed}
    return Claim(RULES["speed"].claim, text, judge("speed", **numbers), RULES["speed"].rule)


def _beta_claims(add: Adder, conv: dict[float, Run | None]) -> None:
    """The Conv z = 2 VAE across β: reconstructions, the latent space, separation, prior samples, the best β."""
    add("beta_bce", list(conv.values()), lambda: (
        " / ".join(f"β={beta_tag(b)}: BCE {conv[b].bce:.1f}" for b in STUDY_BETAS),
        {"bce_1e3": conv[1e-3].bce, "bce_1": conv[1.0].bce, "bce_20": conv[20.0].bce}))
    mismatch = {b: _held(conv[b], "prior_mismatch_kl") for b in STUDY_BETAS}
    active = {b: _held(conv[b], "active_units") for b in STUDY_BETAS}
    add("beta_latent", [mismatch[1e-3], mismatch[1.0], active[1.0], active[20.0]], lambda: (
        " / ".join(f"β={beta_tag(b)}: KL(q(z) ‖ prior) {mismatch[b]:.2f}, {active[b]} active units" for b in STUDY_BETAS
                   if mismatch[b] is not None and active[b] is not None),
        {"mismatch_1e3": mismatch[1e-3], "mismatch_1": mismatch[1.0], "active_1": active[1.0],
         "active_20": active[20.0]}))
    knn = {b: _held(conv[b], "latent_knn_accuracy") for b in STUDY_BETAS}
    add("beta_separation", list(knn.values()), lambda: (
        " / ".join(f"β={beta_tag(b)}: 5-NN {knn[b]:.1%}" for b in STUDY_BETAS),
        {"knn_1e3": knn[1e-3], "knn_1": knn[1.0], "knn_20": knn[20.0]}))
    _beta_sample_claims(add, conv)


def _beta_sample_claims(add: Adder, conv: dict[float, Run | None]) -> None:
    """The prior samples across β (FID, class balance) and which β samples best."""
    fids = {b: _prior(conv[b], "fid", "fid") for b in STUDY_BETAS}
    marks = {b: "" if is_standard_fid(_prior(conv[b], "fid") or {}) else LEGACY_MARK for b in STUDY_BETAS}
    kls = {b: _prior(conv[b], "classifier", "kl_to_uniform") for b in STUDY_BETAS}
    add("beta_samples", [*fids.values(), *kls.values()], lambda: (
        " / ".join(f"β={beta_tag(b)}: FID {fids[b]:.1f}{marks[b]}, KL-to-uniform {kls[b]:.3f}" for b in STUDY_BETAS),
        {"fid_1e3": fids[1e-3], "fid_1": fids[1.0], "fid_20": fids[20.0], "kl_uniform_1": kls[1.0],
         "kl_uniform_20": kls[20.0]}))
    add("beta_best", list(fids.values()), lambda: (
        f"FID β=1 {fids[1.0]:.1f}{marks[1.0]} vs β=1e-3 {fids[1e-3]:.1f}{marks[1e-3]}, "
        f"β=20 {fids[20.0]:.1f}{marks[20.0]}",
        {"fid_1e3": fids[1e-3], "fid_1": fids[1.0], "fid_20": fids[20.0]}))


def _capacity_claims(add: Adder, conv2: Run | None, conv4: Run | None, dense2: Run | None,
                     params: dict[str, int]) -> None:
    """A bigger latent against a bigger network: Conv z = 4 against Dense z = 2 and Conv z = 2."""
    add("conv4_vs_dense2", [conv4, dense2], lambda: (
        f"BCE Conv z=4 {conv4.bce:.1f} ({params['conv4']:,} params) vs Dense z=2 {dense2.bce:.1f} "
        f"({params['dense2']:,}); {params['dense2'] / params['conv4']:.1f}× fewer",
        {"bce_conv4": conv4.bce, "bce_dense2": dense2.bce, "params_conv4": params["conv4"],
         "params_dense2": params["dense2"]}))
    add("conv4_detail", [conv4, conv2], lambda: (
        f"BCE {conv4.bce:.1f} vs {conv2.bce:.1f}", {"bce_conv4": conv4.bce, "bce_conv2": conv2.bce}))


def ddpm_claims(ddpm: dict[str, Any] | None) -> list[Claim]:
    """The DDPM's three claims (parameters, losses at 20 epochs, FID)."""
    ddpm = ddpm or {}
    claims: list[Claim] = []
    rule = RULES["ddpm_parameters"]
    if ddpm.get("parameters") is None:
        claims.append(Claim(rule.claim, "run missing", NOT_MEASURED, rule.rule))
    else:
        claims.append(Claim(rule.claim, f"{ddpm['parameters']:,}", judge("ddpm_parameters",
                                                                          parameters=ddpm["parameters"]), rule.rule))
    rule = RULES["ddpm_loss"]
    if ddpm.get("train_loss") is None or ddpm.get("test_loss") is None:
        claims.append(Claim(rule.claim, "run missing", NOT_MEASURED, rule.rule))
    else:
        epochs = ddpm.get("epochs_done", 0)
        text = (f"train {ddpm['train_loss']:.4f}, test {ddpm['test_loss']:.4f} ({_held_out_loss_text(ddpm)}) "
                f"after {epochs} epochs")
        if epochs < STUDY_DDPM_EPOCHS:
            text += f"; the {STUDY_DDPM_EPOCHS}-epoch model is still training"
        claims.append(Claim(rule.claim, text, judge("ddpm_loss", train_loss=ddpm["train_loss"],
                                                    test_loss=ddpm["test_loss"], epochs=epochs), rule.rule))
    rule = RULES["ddpm_fid"]
    points = ddpm_reader_points(ddpm)
    text = "; ".join(f"{label}: {_short_fid(p)}" for label, p in points) if points else "not evaluated"
    missing = [steps for sampler, steps in READER_PROTOCOLS
               if points and not any(p["sampler"] == sampler and p["steps"] == steps for _, p in points)]
    if missing:
        text += "; ancestral " + " and ".join(f"{s:,}" for s in missing) + " steps: not measured yet"
    claims.append(Claim(rule.claim, text, judge("ddpm_fid") if points else NOT_MEASURED, rule.rule))
    return claims


def _held_out_loss_text(ddpm: dict[str, Any]) -> str:
    n, total = ddpm.get("test_loss_samples"), ddpm.get("test_samples")
    if n and total and n < total:
        return f"held-out loss on the first {n:,} of the {total:,} held-out digits"
    return "held-out loss on all held-out digits"


def _short_fid(point: dict[str, Any]) -> str:
    f = point["fid"]
    precision = ", bf16" if point.get("precision", "fp32") != "fp32" else ""
    legacy = "" if is_standard_fid(f) else ", old resize: pending re-measurement"
    return (f"FID {f['fid']:.2f} ({point['sampler']} {point['steps']} steps{precision}, N={f['n_gen']:,} vs "
            f"{f['n_ref']:,} of {f['reference']}, floor {f.get('floor') or 0:.2f}{legacy})")


def ddpm_reader_points(ddpm: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Our FID under the protocols a reader of "FID 28.11" would try: the card's sampler, ancestral DDPM with
    1000 and 4000 steps (when measured) and our best point."""
    out: list[tuple[str, dict[str, Any]]] = []
    if ddpm.get("fid_point"):
        out.append(("the card's sampler", ddpm["fid_point"]))
    candidates = [p for p in [ddpm.get("fid_point"), *ddpm.get("other_points", []), *ddpm.get("sweep", [])] if p]
    for sampler, steps in READER_PROTOCOLS:
        found = [p for p in candidates if p["sampler"] == sampler and p["steps"] == steps]
        if found:
            out.append((f"ancestral {steps} steps", max(found, key=lambda p: p["num_samples"])))
    if candidates:
        best = min(candidates, key=lambda p: (p["fid"]["fid"] - (p["fid"].get("floor") or 0)))
        if all(best is not p for _, p in out):
            partial = " so far (the sweep is incomplete)" if missing_sweep_points(ddpm.get("sweep", [])) else ""
            out.append((f"our best{partial} (lowest FID above its floor)", best))
    return out


def _old_claim(row: str) -> Claim:
    """A claim row of an existing report (3 or 4 columns) read back."""
    cells = row.strip().strip("|").split(" | ")
    cells = [c.strip() for c in cells]
    verdict = cells[-1].strip("*")
    return Claim(cells[0], cells[1], verdict, cells[2] if len(cells) == 4 else "")


def _cell(text: str) -> str:
    """A Markdown table cell: a bare `|` (as in E[z|x]) would split it."""
    return re.sub(r"(?<!\\)\|", r"\\|", text)


def _claim_row(claim: Claim) -> str:
    return f"| {_cell(claim.claim)} | {_cell(claim.measured)} | {_cell(claim.rule)} | **{claim.verdict}** |"


def _claims_table(claims: list[Claim]) -> list[str]:
    return ["Each verdict follows the rule beside it, fixed in `hub_models/study/verdicts.py` before the numbers "
            "were re-scored ([PROTOCOL.md](PROTOCOL.md)).", "",
            "| claim ([STUDY.md](STUDY.md)) | measured here | rule | verdict |", "|---|---|---|---|",
            *map(_claim_row, claims)]
