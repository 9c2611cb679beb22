"""The reproduced study: evaluate every run of a study folder, check each claim of the study, write docs/REPORT.md.

Numbers come from `hub_models.evaluation` (cached in each run's `evaluation.json`, so regenerating the report is
cheap); verdicts come from the fixed rules in `hub_models.study.verdicts`, never from here.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub_models.evaluation.ddpm import (
    describe_point,
    evaluation_summary,
    missing_sweep_points,
    sweep_plot,
    timed_at_fp32_speed,
)
from hub_models.evaluation.metrics import is_standard_fid
from hub_models.evaluation.schema import Evaluation
from hub_models.evaluation.vae import EvalSettings, evaluate_vae_run
from hub_models.figures import figure_to_pil, save_png
from hub_models.hub.naming import beta_tag, vae_run_name
from hub_models.reference import (
    STUDY_ARCHS,
    STUDY_BETAS,
    STUDY_DDPM_EPOCHS,
    STUDY_LATENT_DIMS,
)
from hub_models.study.hybrid import HYBRID_HEADING
from hub_models.study.verdicts import NOT_MEASURED, RULES, judge

ANOMALY_HEADING = "## Anomaly detection"
# The protocols a reader of the study's "FID 28.11" would try (shown next to its "not comparable" verdict).
READER_PROTOCOLS = (("ddpm", 1000), ("ddpm", 4000))


# --------------------------------------------------------------------------------------------------------------
# Collecting runs
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    path: Path
    metrics: dict[str, Any]
    evaluation: Evaluation | None

    @property
    def test(self) -> dict[str, float]:
        """Held-out metrics: the report's own evaluation when there is one, else the training script's."""
        return (self.evaluation.held_out if self.evaluation else None) or self.metrics["test"]

    @property
    def bce(self) -> float:
        return self.test["bce"]

    @property
    def kld(self) -> float:
        return self.test["kld"]


def collect_runs(study_dir: Path, evaluate: bool, settings: EvalSettings) -> dict[str, Run]:
    runs = {}
    for path in sorted(p for p in study_dir.iterdir() if (p / "metrics.json").exists()):
        metrics = json.loads((path / "metrics.json").read_text())
        if metrics.get("model") != "vae":
            continue
        evaluation = evaluate_vae_run(path, settings) if evaluate else Evaluation.read(path, kind="vae")
        runs[path.name] = Run(path.name, path, metrics, evaluation)
    return runs


# --------------------------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Claim:
    claim: str
    measured: str
    verdict: str  # one of hub_models.study.verdicts.VERDICTS
    rule: str = ""


def _get(runs: dict[str, Run], arch: str, z: int, beta: float) -> Run | None:
    return runs.get(vae_run_name(arch, z, beta))


def _held(run: Run | None, key: str) -> float | None:
    """A held-out metric of the report's evaluation (None when not evaluated)."""
    if run is None or run.evaluation is None or not run.evaluation.held_out:
        return None
    return run.evaluation.held_out.get(key)


def _prior(run: Run | None, *path: str) -> float | None:
    """A number of the prior-sample point, e.g. `_prior(run, "fid", "fid")`."""
    value: Any = run.evaluation.prior if run is not None and run.evaluation is not None else None
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


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

    add("parameters", [conv2, dense2], lambda: (
        f"{params['conv2']:,} / {params['dense2']:,}", {"conv": params["conv2"], "dense": params["dense2"]}))
    add("dense_bce", [conv2, dense2], lambda: (
        f"held-out BCE Dense {dense2.bce:.1f} vs Conv {conv2.bce:.1f}",
        {"bce_conv": conv2.bce, "bce_dense": dense2.bce}))
    knn_c, knn_d = _held(conv2, "latent_knn_accuracy"), _held(dense2, "latent_knn_accuracy")
    add("conv_latent", [knn_c, knn_d], lambda: (
        f"5-NN accuracy on latent means: Conv {knn_c:.1%}, Dense {knn_d:.1%}", {"knn_conv": knn_c, "knn_dense": knn_d}))
    speed = speed or {}
    speed_text = (f"{speed.get('conv_images_per_s', 0):.0f} vs {speed.get('dense_images_per_s', 0):.0f} images/s "
                  f"side by side (`{speed.get('command', '?')}`)" if speed.get("side_by_side") else
                  "no side-by-side benchmark yet (per-run s/epoch varies 3× with machine load, so it is not used)")
    claims.append(Claim(RULES["speed"].claim, speed_text, judge("speed", **{
        k: speed.get(k) for k in ("conv_images_per_s", "dense_images_per_s", "side_by_side") if k in speed}),
        RULES["speed"].rule))
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
    add("conv4_vs_dense2", [conv4, dense2], lambda: (
        f"BCE Conv z=4 {conv4.bce:.1f} ({params['conv4']:,} params) vs Dense z=2 {dense2.bce:.1f} "
        f"({params['dense2']:,}); {params['dense2'] / params['conv4']:.1f}× fewer",
        {"bce_conv4": conv4.bce, "bce_dense2": dense2.bce, "params_conv4": params["conv4"],
         "params_dense2": params["dense2"]}))
    add("conv4_detail", [conv4, conv2], lambda: (
        f"BCE {conv4.bce:.1f} vs {conv2.bce:.1f}", {"bce_conv4": conv4.bce, "bce_conv2": conv2.bce}))
    claims += ddpm_claims(ddpm)
    return claims


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


# --------------------------------------------------------------------------------------------------------------
# Figures and the markdown
# --------------------------------------------------------------------------------------------------------------
def rate_distortion_plot(runs: dict[str, Run]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    markers = {"conv": "o", "dense": "s"}
    colors = {2: "tab:blue", 4: "tab:orange"}
    for run in runs.values():
        m = run.metrics
        warm = m.get("beta_schedule") == "linear-warmup"
        ax.scatter(run.kld, run.bce, marker=markers[m["arch"]], s=60, color=colors.get(m["latent_dim"], "gray"),
                   facecolors="none" if warm else None)
        ax.annotate(f"β={beta_tag(m['beta'])}{' warm-up' if warm else ''}", (run.kld, run.bce), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    for arch, marker in markers.items():
        ax.scatter([], [], marker=marker, color="gray", label=f"{arch} VAE")
    for z, color in colors.items():
        ax.scatter([], [], marker="o", color=color, label=f"z = {z}")
    ax.set(xscale="symlog", xlabel="rate: test KLD (nats / image)", ylabel="distortion: test BCE (nats / image)",
           title="Rate–distortion of the 12 β-VAEs (+ β warm-up, hollow)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_to_pil(fig)


def _copy_figures(runs: dict[str, Run], figures_dir: Path) -> None:
    for run in runs.values():
        dest = figures_dir / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for png in (run.path / "figures").glob("*.png"):
            shutil.copy2(png, dest / png.name)


LEGACY_MARK = "†"
FP32_SPEED_MARK = "‡"  # seconds of a bf16 point timed where bf16 is not native (fp32 speed)
RERENDER_NOTE = "The claims, the DDPM section and the result rows of the runs found there were re-rendered"
RESULTS_HEADING = "## All runs"
CLAIMS_HEADING = "## Claims of the study, checked"


def _fid_cell(run: Run) -> str:
    f = _prior(run, "fid")
    if not f:
        return "–"
    return f"{f['fid']:.1f}" + ("" if is_standard_fid(f) else LEGACY_MARK)


def _result_row(run: Run) -> str:
    m = run.metrics
    return (f"| `{run.name}` | {m['parameters']:,} | {m['seconds_per_epoch']:.1f} | {run.bce:.1f} | {run.kld:.2f} | "
            f"{run.test['elbo']:.1f} | {_fmt(_held(run, 'nll'))} | {_fid_cell(run)} | "
            f"{_fmt(_prior(run, 'classifier', 'confident_share'), '.1%')} | "
            f"{_fmt(_prior(run, 'classifier', 'kl_to_uniform'), '.3f')} | "
            f"{_fmt(_prior(run, 'classifier', 'fd_classifier'), '.2f')} | "
            f"{_fmt(_held(run, 'latent_knn_accuracy'), '.1%')} |")


def _results_table(runs: dict[str, Run]) -> list[str]:
    return ["| run | params | s/epoch | held-out BCE | KLD | ELBO | NLL (k=1000) | FID prior | recognisable | "
            "KL to uniform | FD-classifier | latent 5-NN |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *map(_result_row, runs.values())]


def _results_note(runs: dict[str, Run], settings: EvalSettings) -> str:
    point = next((r.evaluation.prior for r in runs.values() if r.evaluation and r.evaluation.prior), None)
    fid_note = ""
    if point:
        f = point["fid"]
        fid_note = (f"FID: {f['n_gen']:,} prior samples per run (seed {point['seed']}) vs {f['n_ref']:,} digits of "
                    f"`{f['reference']}` (the study's 12,000 held-out digits), standard Inception-v3 pool3 with the "
                    f"TF1 bilinear resize (docs/METRICS.md); the real-vs-real floor at this N is "
                    f"**{f['floor']:.2f}**{'' if is_standard_fid(f) else LEGACY_MARK}: no generator can score below "
                    "it at this sample size.")
        if any(r.evaluation is None or r.evaluation.fid is None or not is_standard_fid(r.evaluation.fid)
               for r in runs.values()):
            fid_note += (f" {LEGACY_MARK} = measured with the old torch-bilinear resize, pending re-measurement (the "
                         "run folder was not on the machine that re-scored the others).")
    return (f"Metrics on the study's 12,000 held-out digits (the 20 % of the 60,000 training digits the VAEs never "
            f"saw), nats per image. BCE is summed over the 784 pixels; ELBO = −(BCE + KLD); NLL is the "
            f"importance-sampled estimate with k = {settings.nll_samples} on the first {settings.nll_images} "
            "held-out digits. On grey-level MNIST the Bernoulli BCE is not a normalised likelihood: compare these "
            f"numbers with each other, not with published likelihoods. {fid_note} \"Recognisable\" = share of prior "
            "samples our digit classifier labels with confidence > 0.9; KL to uniform = KL(class histogram ‖ "
            "uniform) of those samples (0 = every digit equally often); FD-classifier = Fréchet distance on the "
            "classifier's penultimate features (MNIST-specific, not an FID); latent 5-NN = k-NN accuracy on the "
            f"latent means of {settings.latent_points:,} held-out digits (class separation). s/epoch is the training "
            "loop's wall time on a 2-core machine that other jobs shared, so it varies from run to run by up to 3×; "
            "no verdict uses it.")


def _claims_table(claims: list[Claim]) -> list[str]:
    return ["Each verdict follows the rule beside it, fixed in `hub_models/study/verdicts.py` before the numbers "
            "were re-scored ([PROTOCOL.md](PROTOCOL.md)).", "",
            "| claim (../shared/STUDY.md) | measured here | rule | verdict |", "|---|---|---|---|",
            *map(_claim_row, claims)]


def write_report(study_dir: str | Path, docs_dir: str | Path = "docs", *, ddpm_dir: str | Path | None = None,
                 anomaly_dir: str | Path | None = None, hybrid_dir: str | Path | None = None, evaluate: bool = True,
                 settings: EvalSettings | None = None, speed: dict[str, Any] | None = None) -> Path:
    """Evaluate (or read cached evaluations of) every run and write `docs_dir/REPORT.md` + `docs_dir/figures/`."""
    settings = settings or EvalSettings()
    study_dir, docs_dir = Path(study_dir), Path(docs_dir)
    runs = collect_runs(study_dir, evaluate, settings)
    figures_dir = docs_dir / "figures"
    _copy_figures(runs, figures_dir)
    if runs:
        save_png(rate_distortion_plot(runs), figures_dir / "rate_distortion.png")
    ddpm = _ddpm_summary(Path(ddpm_dir), figures_dir) if ddpm_dir and Path(ddpm_dir, "metrics.json").exists() \
        else None
    claims = study_claims(runs, ddpm, speed)
    out = [
        "# The study, reproduced",
        "",
        "Generated by `python training/run_study.py` from the runs in "
        f"`{study_dir}` (the study's recipe: 20 epochs, batch 64, Adam 1e-3, 80/20 split, seed 0, 2 CPU cores). "
        "Do not edit by hand.",
        "",
        CLAIMS_HEADING,
        "",
        *_claims_table(claims),
        "",
        RESULTS_HEADING,
        "",
        *_results_table(runs),
        "",
        _results_note(runs, settings),
        "",
        "## Rate–distortion",
        "",
        "![rate-distortion](figures/rate_distortion.png)",
        "",
    ]
    for arch in STUDY_ARCHS:
        for z in STUDY_LATENT_DIMS:
            names = [vae_run_name(arch, z, b) for b in STUDY_BETAS]
            if not any(n in runs for n in names):
                continue
            latent = "latent_scatter.png" if z == 2 else "latent_pca.png"
            out += [f"## {arch.capitalize()} VAE, z = {z}: β side by side", "",
                    "| | " + " | ".join(f"β = {beta_tag(b)}" for b in STUDY_BETAS) + " |",
                    "|---|" + "---|" * len(STUDY_BETAS)]
            for label, png in (("reconstructions", "reconstructions.png"), ("prior samples", "samples.png"),
                               ("latent space", latent)):
                cells = [f"![{n} {label}](figures/{n}/{png})" if n in runs else "–" for n in names]
                out.append(f"| {label} | " + " | ".join(cells) + " |")
            out.append("")
    report = docs_dir / "REPORT.md"
    old = _blocks(report.read_text()) if report.exists() else []
    # Without the anomaly or hybrid study's results here, the report keeps those sections (as `update_report` does).
    out += (_ddpm_section(ddpm) if ddpm else []) + _application_sections(anomaly_dir, hybrid_dir, figures_dir, old)
    report.write_text("\n".join(out).rstrip("\n") + "\n")
    return report


def _application_sections(anomaly_dir: str | Path | None, hybrid_dir: str | Path | None, figures_dir: Path,
                          old_blocks: list[list[str]]) -> list[str]:
    """The anomaly and hybrid sections from their studies' folders; a section whose study is not here is kept
    from the old report."""
    def old(heading: str) -> list[str]:
        return [line for b in old_blocks if b[0].startswith(heading) for line in b]

    return (_anomaly_section(anomaly_dir, figures_dir) or old(ANOMALY_HEADING)) + (
        _hybrid_section(hybrid_dir, figures_dir) or old(HYBRID_HEADING))


def _hybrid_section(hybrid_dir: str | Path | None, figures_dir: Path) -> list[str]:
    """`training/hybrid_study.py`'s tables and plot ([] if not run)."""
    if not hybrid_dir or not Path(hybrid_dir, "hybrid.md").exists():
        return []
    plot = Path(hybrid_dir) / "figures" / "hybrid_fid_vs_time.png"
    if plot.exists():
        figures_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plot, figures_dir / plot.name)
    return [HYBRID_HEADING, "", Path(hybrid_dir, "hybrid.md").read_text().strip(), ""]


def _blocks(text: str) -> list[list[str]]:
    """The report's lines grouped by `## ` section (the title block first)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("## ") or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    return blocks


def _rescore_results(block: list[str], runs: dict[str, Run], settings: EvalSettings) -> list[str]:
    """The "All runs" section with the rows of `runs` re-rendered; the FIDs of the other rows (runs not on this
    machine) are marked as measured with the old resize unless they already are."""
    out = []
    for line in block:
        name = line.removeprefix("| `").split("`", 1)[0] if line.startswith("| `") else None
        if name is not None and name in runs:
            line = _result_row(runs[name])
        elif name is not None:
            cells = line.split(" | ")
            if cells[7] not in ("–",) and not cells[7].endswith(LEGACY_MARK):
                cells[7] += LEGACY_MARK
            line = " | ".join(cells)
        elif line.startswith("Metrics on the study's"):
            line = _results_note(runs, settings)
        out.append(line)
    return out


def update_report(docs_dir: str | Path = "docs", *, ddpm_dir: str | Path,
                  anomaly_dir: str | Path | None = None, hybrid_dir: str | Path | None = None,
                  study_dir: str | Path | None = None,
                  evaluate: bool = True, settings: EvalSettings | None = None,
                  speed: dict[str, Any] | None = None) -> Path:
    """Re-render parts of an existing `docs_dir/REPORT.md` for a machine that holds only some of the results:
    the DDPM claims and the DDPM and anomaly sections; with `study_dir` (e.g. `release/`, which holds the five
    VAEs every VAE claim needs) also the whole claims table and the rows of those runs in the results table.
    Rows of runs that are not here keep their numbers (their FIDs are marked as old-resize, pending).
    An anomaly folder without results keeps the report's anomaly section."""
    docs_dir = Path(docs_dir)
    settings = settings or EvalSettings()
    report = docs_dir / "REPORT.md"
    if not report.exists():
        raise FileNotFoundError(f"{report} does not exist yet: write it with `python training/run_study.py`")
    if not Path(ddpm_dir, "metrics.json").exists():
        raise FileNotFoundError(f"{ddpm_dir} is not a trained DDPM (no metrics.json)")
    figures_dir = docs_dir / "figures"
    ddpm = _ddpm_summary(Path(ddpm_dir), figures_dir)
    runs = collect_runs(Path(study_dir), evaluate, settings) if study_dir else {}
    claims = study_claims(runs, ddpm, speed)
    blocks = _blocks(report.read_text())
    out: list[str] = []
    for i, block in enumerate(blocks):
        heading = block[0]
        if heading.startswith(("## DDPM", ANOMALY_HEADING, HYBRID_HEADING)):
            continue
        if i == 0 and runs:  # say what was re-rendered from where
            block = [line for line in block if not line.startswith(RERENDER_NOTE)]
            while block and not block[-1].strip():
                block.pop()
            block += ["", f"{RERENDER_NOTE} from `{study_dir}` and `{ddpm_dir}` by `python training/run_study.py "
                          f"--update_ddpm_and_anomaly --rescore_dir {study_dir} --ddpm_dir {ddpm_dir}`; the other "
                          "rows of the results table are from the full study run.", ""]
        if heading.startswith(CLAIMS_HEADING):
            old_rows = {line.removeprefix("| ").split(" | ")[0]: line for line in block if line.startswith("| ")}
            rows = {c.claim: c for c in claims}
            kept = claims if runs else [rows[c] if c in rows and c.startswith("DDPM") else _old_claim(line)
                                        for c, line in old_rows.items() if not c.startswith(("claim", "---"))]
            if not runs:  # claims of the DDPM that the old table did not have yet
                kept += [c for c in claims if c.claim.startswith("DDPM") and c.claim not in old_rows]
            block = [heading, "", *_claims_table(kept), ""]
        elif heading.startswith(RESULTS_HEADING) and runs:
            block = _rescore_results(block, runs, settings)
        out += block
    out += _ddpm_section(ddpm) + _application_sections(anomaly_dir, hybrid_dir, figures_dir, blocks)
    report.write_text("\n".join(out).rstrip("\n") + "\n")
    return report


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


def _ddpm_summary(ddpm_dir: Path, figures_dir: Path) -> dict[str, Any]:

    metrics = json.loads((ddpm_dir / "metrics.json").read_text())
    history = metrics.get("history", [])
    summary = {"train_loss": metrics.get("train_loss"), "test_loss": metrics.get("test_loss"),
               "epochs_done": len(history), "history": history, "parameters": metrics.get("parameters"),
               "test_loss_samples": metrics.get("test_loss_samples"), "test_samples": metrics.get("test_samples")}
    (figures_dir / "ddpm").mkdir(parents=True, exist_ok=True)
    for key, png in (("grid", "samples.png"), ("loss_curve", "loss_curve.png")):
        if (ddpm_dir / "figures" / png).exists():
            shutil.copy2(ddpm_dir / "figures" / png, figures_dir / "ddpm" / png)
            summary[key] = f"figures/ddpm/{png}"
    evaluation = evaluation_summary(ddpm_dir)  # evaluated on the weights the folder holds now
    if evaluation["main"]:
        summary["fid_point"], summary["fid"] = evaluation["main"], evaluation["main"]["fid"]
    summary["raw_point"], summary["other_points"] = evaluation["raw"], evaluation["others"]
    if evaluation["sweep"]:
        summary["sweep"] = evaluation["sweep"]
        sweep_plot(evaluation["sweep"], figures_dir / "ddpm" / "sampler_sweep.png")
        summary["sweep_plot"] = "figures/ddpm/sampler_sweep.png"
    return summary


def _anomaly_section(anomaly_dir: str | Path | None, figures_dir: Path) -> list[str]:
    """`training/anomaly_study.py`'s table and plot: the study's application, measured ([] if not run)."""
    if not anomaly_dir or not Path(anomaly_dir, "anomaly.md").exists():
        return []
    anomaly_dir = Path(anomaly_dir)
    lines = [f"{ANOMALY_HEADING} (the study's application)", "",
             f"`python training/anomaly_study.py --output_dir {anomaly_dir}`: a VAE trained on every digit but one "
             "scores each test digit by reconstruction error and by −ELBO; AUROC of finding the held-out digit. ",
             "", anomaly_dir.joinpath("anomaly.md").read_text().strip(), ""]
    plot = anomaly_dir / "figures" / "anomaly_auroc.png"
    if plot.exists():
        figures_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plot, figures_dir / "anomaly_auroc.png")
        lines += ["![anomaly AUROC](figures/anomaly_auroc.png)", ""]
    return lines


def _held_out_loss_text(ddpm: dict[str, Any]) -> str:
    n, total = ddpm.get("test_loss_samples"), ddpm.get("test_samples")
    if n and total and n < total:
        return f"held-out loss on the first {n:,} of the {total:,} held-out digits"
    return "held-out loss on all held-out digits"


def _ddpm_section(ddpm: dict[str, Any]) -> list[str]:

    lines = ["## DDPM", "",
             f"UNet2DModel, {ddpm['parameters']:,} parameters, cosine schedule over 4000 steps, ε-prediction, "
             "EMA weights. Loss per epoch next to the study's final train 0.0278 / test 0.0280 "
             f"({_held_out_loss_text(ddpm)}):", "",
             "| epoch | train loss | held-out loss |", "|---:|---:|---:|"]
    lines += [f"| {h['epoch']} | {h['train_loss']:.4f} | {h['test_loss']:.4f} |" for h in ddpm["history"]]
    if ddpm.get("grid") or ddpm.get("loss_curve"):
        lines += ["", " ".join(f"![DDPM {k}]({ddpm[k]})" for k in ("grid", "loss_curve") if ddpm.get(k))]
    points = [ddpm[k] for k in ("fid_point", "raw_point") if ddpm.get(k)] + ddpm.get("other_points", [])
    if points:
        lines += ["", "FID (`python training/evaluate_ddpm.py`; the protocol is in [PROTOCOL.md](PROTOCOL.md)). The "
                      "study's 28.11 names no N, reference set, Inception code or sampler, so it is not comparable "
                      "with these:", ""]
        lines += [f"- {describe_point(p)}" for p in points]
    if ddpm.get("sweep"):
        sweep = ddpm["sweep"]
        lines += ["", f"### Sampler sweep: FID vs CPU time (N = {sweep[0]['num_samples']:,} per point, "
                      f"floor {sweep[0]['fid']['floor']:.2f})", "",
                  f"![sampler sweep]({ddpm['sweep_plot']})", "",
                  "| sampler | steps | U-Net | FID | recognisable | s per 16 digits |", "|---|---:|---|---:|---:|---:|"]
        lines += [f"| {p['sampler']} | {p['steps']} | {p.get('precision', 'fp32')} | {p['fid']['fid']:.2f}"
                  f"{'' if is_standard_fid(p['fid']) else LEGACY_MARK} | "
                  f"{p['classifier']['confident_share']:.1%} | {p['seconds_per_16']:.2f}"
                  f"{FP32_SPEED_MARK if timed_at_fp32_speed(p) else ''} |" for p in sweep]
        if any(not is_standard_fid(p["fid"]) for p in sweep):
            lines += ["", f"{LEGACY_MARK} measured with the old torch-bilinear resize, pending re-measurement."]
        missing = missing_sweep_points(sweep)
        if missing:
            lines += ["", f"Not measured yet ({len(missing)} of the points [PROTOCOL.md](PROTOCOL.md) fixes, in its "
                          "order): " + ", ".join(f"{s} {k}" for s, k in missing) + ". Nothing is selected from a "
                          "partial sweep: the report FID at N = 10,000 waits for the last point."]
        cpus = sorted({p["timed_cpu"] for p in sweep if p.get("timed_cpu")})
        loads = [p["load_average"] for p in sweep if p.get("load_average") is not None]
        where = f"on {' and '.join(cpus)}" if cpus else "on this machine's CPU"
        load = f"load average {min(loads):.1f}–{max(loads):.1f} while timing" if loads else \
            "other jobs may have shared it"
        lines += ["", f"Seconds: wall time for 16 digits with {sweep[0]['torch_threads']} torch thread(s) {where} "
                      f"({load}; per point in evaluation.json), the UNet in the precision of its row."]
        if any(map(timed_at_fp32_speed, sweep)):
            lines += ["", f"{FP32_SPEED_MARK} sampled and timed on a CPU without native bf16, its bf16 convolutions "
                          "computed in fp32 ([PROTOCOL.md](PROTOCOL.md)): these seconds are fp32-speed seconds of "
                          "another CPU, not comparable with the rest."]
    return [*lines, ""]
