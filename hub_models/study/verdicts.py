"""The verdict rules of the report, fixed in one table before any number is re-scored (docs/lab/PROTOCOL.md).

Each claim of the study (docs/STUDY.md, `hub_models.reference.STUDY`) has exactly one rule here: what is
measured, the tolerance, and which verdict each outcome gives. The report only gathers numbers and calls
`judge`; it never decides a verdict itself. Changing a tolerance after seeing results is not allowed: a change
goes through docs/lab/PROTOCOL.md first.

Verdicts:
- **confirmed** / **refuted**: the measurement falls on one side of the rule's threshold;
- **partly**: a compound claim (several parts joined by "and") of which some parts hold and others do not;
- **inconclusive**: an ordering claim whose two sides differ by less than the stated margin;
- **not comparable**: the study gives a number without the protocol that produced it;
- **pending**: the measurement the rule needs is not done yet (e.g. the DDPM has not reached 20 epochs);
- **not measured**: the runs or the benchmark the rule needs are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub_models.reference import STUDY, STUDY_DDPM, STUDY_DDPM_EPOCHS, STUDY_PARAMETERS

CONFIRMED, PARTLY, REFUTED = "confirmed", "partly", "refuted"
INCONCLUSIVE, NOT_COMPARABLE, PENDING, NOT_MEASURED = "inconclusive", "not comparable", "pending", "not measured"
VERDICTS = (CONFIRMED, PARTLY, REFUTED, INCONCLUSIVE, NOT_COMPARABLE, PENDING, NOT_MEASURED)

# ---- tolerances (fixed before re-scoring; docs/lab/PROTOCOL.md) ----------------------------------------------------
BCE_MARGIN = 0.01  # relative: two test BCEs differ when the gap exceeds 1 % of the larger
KNN_MARGIN = 0.02  # absolute: 2 points of 5-NN accuracy (≈ 2 standard errors on 2,500 scored digits)
FID_MARGIN = 0.05  # relative: two FIDs at N = 1,000 differ when the gap exceeds 5 % of the larger
KL_UNIFORM_MARGIN = 0.10  # nats: "little diversity" = KL(class histogram ‖ uniform) higher by more than this
PRIOR_MISMATCH_MARGIN = 0.10  # relative: "scattered" = the aggregate posterior is ≥ 10 % further from N(0, I)
SIMILAR_BCE = 0.05  # "about as well": Conv z=4's BCE at most 5 % above Dense z=2's
PARAMETER_RATIO = 18.0  # the study's "18× fewer parameters"
PARAMETER_RATIO_TOLERANCE = 0.10  # symmetric, relative: 16.2× … 19.8× counts as 18×
DDPM_PARAMETERS = 3.3e6  # "3.3M": two significant figures
DDPM_PARAMETERS_TOLERANCE = 0.05e6  # what rounds to 3.3M
DDPM_LOSS_TOLERANCE = 0.10  # symmetric, relative, around the study's train 0.0278 / test 0.0280
OVERFIT_GAP = 0.05  # "no over-fitting": test loss at most 5 % above train loss
SPEED_MARGIN = 1.10  # "faster": ≥ 1.10× the images/s of the other, measured side by side in one process


@dataclass(frozen=True)
class Rule:
    """One claim of the study and the one rule that judges it."""

    key: str
    claim: str  # the study's claim as the report prints it
    rule: str  # the rule in words (printed in the report and docs/lab/PROTOCOL.md)
    judge: Callable[..., str]  # numbers → verdict


# ---- building blocks ---------------------------------------------------------------------------------------------
def relative_gap(a: float, b: float) -> float:
    """(b − a) / max(|a|, |b|): positive when a is below b."""
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else (b - a) / scale


def ordering(lower: float, higher: float, margin: float, *, relative: bool = True) -> str:
    """Is `lower` < `higher` by more than `margin`? confirmed / inconclusive (within the margin) / refuted."""
    gap = relative_gap(lower, higher) if relative else higher - lower
    return CONFIRMED if gap > margin else REFUTED if gap < -margin else INCONCLUSIVE


def compound(*parts: bool) -> str:
    """All parts hold → confirmed; some → partly; none → refuted."""
    return CONFIRMED if all(parts) else PARTLY if any(parts) else REFUTED


def within(value: float, target: float, tolerance: float, *, relative: bool = True) -> bool:
    """|value − target| ≤ tolerance (× |target| when relative): a symmetric tolerance around the study's number."""
    return abs(value - target) <= (tolerance * abs(target) if relative else tolerance)


# ---- one judge per claim ---------------------------------------------------------------------------------------
def judge_parameters(conv: int, dense: int) -> str:
    return compound(conv == STUDY_PARAMETERS["conv"], dense == STUDY_PARAMETERS["dense"])


def judge_dense_bce(bce_conv: float, bce_dense: float) -> str:
    return ordering(bce_dense, bce_conv, BCE_MARGIN)


def judge_conv_latent(knn_conv: float, knn_dense: float) -> str:
    return ordering(knn_dense, knn_conv, KNN_MARGIN, relative=False)


def judge_speed(conv_images_per_s: float | None = None, dense_images_per_s: float | None = None,
                side_by_side: bool = False) -> str:
    """Only a side-by-side benchmark (both architectures alternating in one process) counts: per-run wall time
    varies 3× with machine load."""
    if not side_by_side or conv_images_per_s is None or dense_images_per_s is None:
        return NOT_MEASURED
    ratio = conv_images_per_s / dense_images_per_s
    return CONFIRMED if ratio >= SPEED_MARGIN else REFUTED if ratio <= 1 / SPEED_MARGIN else INCONCLUSIVE


def judge_beta_bce(bce_1e3: float, bce_1: float, bce_20: float) -> str:
    return compound(ordering(bce_1e3, bce_1, BCE_MARGIN) == CONFIRMED, ordering(bce_1, bce_20, BCE_MARGIN) == CONFIRMED)


def judge_beta_latent(mismatch_1e3: float, mismatch_1: float, active_1: int, active_20: int) -> str:
    """Not the KLD: it falls as β grows by construction of the objective. 'Scattered' = the aggregate posterior is
    further from the prior at β=1e-3 than at β=1; 'over-compressed' = fewer active latent units at β=20."""
    scattered = ordering(mismatch_1, mismatch_1e3, PRIOR_MISMATCH_MARGIN) == CONFIRMED
    return compound(scattered, active_20 < active_1)


def judge_beta_separation(knn_1e3: float, knn_1: float, knn_20: float) -> str:
    return compound(ordering(knn_1e3, knn_1, KNN_MARGIN, relative=False) == CONFIRMED,
                    ordering(knn_20, knn_1, KNN_MARGIN, relative=False) == CONFIRMED)


def judge_beta_samples(fid_1e3: float, fid_1: float, fid_20: float, kl_uniform_1: float,
                       kl_uniform_20: float) -> str:
    coherent = ordering(fid_1, min(fid_1e3, fid_20), FID_MARGIN) == CONFIRMED
    little_diversity = ordering(kl_uniform_1, kl_uniform_20, KL_UNIFORM_MARGIN, relative=False) == CONFIRMED
    return compound(coherent, little_diversity)


def judge_beta_best(fid_1e3: float, fid_1: float, fid_20: float) -> str:
    return ordering(fid_1, min(fid_1e3, fid_20), FID_MARGIN)


def judge_conv4_vs_dense2(bce_conv4: float, bce_dense2: float, params_conv4: int, params_dense2: int) -> str:
    as_well = bce_conv4 <= (1 + SIMILAR_BCE) * bce_dense2
    ratio = within(params_dense2 / params_conv4, PARAMETER_RATIO, PARAMETER_RATIO_TOLERANCE)
    return compound(as_well, ratio)


def judge_conv4_detail(bce_conv4: float, bce_conv2: float) -> str:
    return ordering(bce_conv4, bce_conv2, BCE_MARGIN)


def judge_ddpm_parameters(parameters: int) -> str:
    return CONFIRMED if within(parameters, DDPM_PARAMETERS, DDPM_PARAMETERS_TOLERANCE, relative=False) else REFUTED


def judge_ddpm_loss(train_loss: float, test_loss: float, epochs: int) -> str:
    """Judged at the study's 20 epochs only: a model still training is 'pending'."""
    if epochs < STUDY_DDPM_EPOCHS:
        return PENDING
    matches = within(train_loss, STUDY_DDPM["train_loss"], DDPM_LOSS_TOLERANCE) and \
        within(test_loss, STUDY_DDPM["test_loss"], DDPM_LOSS_TOLERANCE)
    return compound(matches, test_loss <= (1 + OVERFIT_GAP) * train_loss)


def judge_ddpm_fid(**_: Any) -> str:
    """The study's 28.11 comes with no N, reference set, Inception code or sampler: no FID of ours can confirm
    or refute it. The report shows ours under the protocols a reader would try instead."""
    return NOT_COMPARABLE


_VAE = STUDY["vae"]
RULES: dict[str, Rule] = {r.key: r for r in (
    Rule("parameters", f"Parameters: Conv {STUDY_PARAMETERS['conv']:,}, Dense {STUDY_PARAMETERS['dense']:,} (z=2)",
         "each count equals the study's exactly; both → confirmed, one → partly", judge_parameters),
    Rule("dense_bce", "Dense reconstructs better than Conv at z=2 (lower BCE)",
         f"held-out BCE Dense < Conv by > {BCE_MARGIN:.0%} (within → inconclusive)", judge_dense_bce),
    Rule("conv_latent", "Conv's latent space is more structured; Dense's classes overlap more (z=2, β=1)",
         f"5-NN accuracy on latent means Conv > Dense by > {KNN_MARGIN * 100:.0f} points (within → inconclusive)",
         judge_conv_latent),
    Rule("speed", "Conv trains faster than Dense",
         f"images/s Conv ≥ {SPEED_MARGIN:.2f}× Dense in a side-by-side benchmark (both alternating in one process; "
         "within → inconclusive); per-run wall time is never used", judge_speed),
    Rule("beta_bce", "Reconstruction: β=1e-3 excellent > β=1 good > β=20 blurry (Conv z=2)",
         f"held-out BCE β=1e-3 < β=1 < β=20, each gap > {BCE_MARGIN:.0%}; both → confirmed, one → partly",
         judge_beta_bce),
    Rule("beta_latent", "Latent structure: β=1e-3 scattered, β=1 structured, β=20 over-compressed (Conv z=2)",
         f"scattered: KL(aggregate posterior ‖ N(0, I)) at β=1e-3 > β=1 by > {PRIOR_MISMATCH_MARGIN:.0%}; "
         "over-compressed: fewer active units (Var E[z|x] > 0.01) at β=20 than at β=1; both → confirmed, one → "
         "partly (not the KLD: it falls with β by construction)", judge_beta_latent),
    Rule("beta_separation", "Class separation: weak at β=1e-3, good at β=1, poor at β=20 (Conv z=2)",
         f"5-NN accuracy at β=1 above both others by > {KNN_MARGIN * 100:.0f} points; both → confirmed, one → "
         "partly", judge_beta_separation),
    Rule("beta_samples", "Generated digits: erratic at β=1e-3, coherent at β=1, smooth but little diversity at "
         "β=20 (Conv z=2)",
         f"coherent: prior-sample FID at β=1 below both others by > {FID_MARGIN:.0%}; little diversity: KL(class "
         f"histogram ‖ uniform) at β=20 above β=1 by > {KL_UNIFORM_MARGIN} nats; both → confirmed, one → partly",
         judge_beta_samples),
    Rule("beta_best", "β = 1 is the best compromise (Conv z=2: best prior-sample FID of the three β)",
         f"FID at β=1 below both others by > {FID_MARGIN:.0%} (within → inconclusive)", judge_beta_best),
    Rule("conv4_vs_dense2", "Conv z=4 reconstructs about as well as Dense z=2 with 18× fewer parameters",
         f"BCE Conv z=4 ≤ (1 + {SIMILAR_BCE:.0%}) × Dense z=2, and parameter ratio within {PARAMETER_RATIO:.0f}× ± "
         f"{PARAMETER_RATIO_TOLERANCE:.0%}; both → confirmed, one → partly", judge_conv4_vs_dense2),
    Rule("conv4_detail", "Conv z=4 keeps more detail than Conv z=2 (lower BCE)",
         f"held-out BCE z=4 < z=2 by > {BCE_MARGIN:.0%} (within → inconclusive)", judge_conv4_detail),
    Rule("ddpm_parameters", f"DDPM: U-Net with {STUDY['ddpm']['parameters']} parameters",
         "parameters round to 3.3M (3.25M ≤ n ≤ 3.35M)", judge_ddpm_parameters),
    Rule("ddpm_loss", f"DDPM: train loss {STUDY_DDPM['train_loss']:.4f}, test loss {STUDY_DDPM['test_loss']:.4f}, "
         "no over-fitting",
         f"at {STUDY_DDPM_EPOCHS} epochs (before: pending): both losses within ± {DDPM_LOSS_TOLERANCE:.0%} of the "
         f"study's, and test ≤ (1 + {OVERFIT_GAP:.0%}) × train; both → confirmed, one → partly", judge_ddpm_loss),
    Rule("ddpm_fid", f"DDPM: FID {STUDY_DDPM['fid']}",
         "not comparable: the study states no N, reference set, Inception code or sampler; our FID is shown under "
         "the protocols a reader would try", judge_ddpm_fid),
)}


def judge(key: str, **numbers: Any) -> str:
    """The verdict of claim `key` for the measured `numbers` (the keyword arguments of its judge)."""
    return RULES[key].judge(**numbers)


__all__ = [
    "CONFIRMED",
    "INCONCLUSIVE",
    "NOT_COMPARABLE",
    "NOT_MEASURED",
    "PARTLY",
    "PENDING",
    "REFUTED",
    "RULES",
    "VERDICTS",
    "Rule",
    "compound",
    "judge",
    "ordering",
    "within",
]
