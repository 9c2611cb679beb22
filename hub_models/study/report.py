"""The reproduced study: evaluate every run of a study folder, check each claim of the study, write docs/REPORT.md.

`evaluate_run` caches its numbers in `<run>/evaluation.json`, so regenerating the report is cheap.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hub_models.data import load_splits
from hub_models.evaluation import classifier_metrics, fid, vae_metrics
from hub_models.evaluation.ddpm import describe_point, evaluation_summary, sweep_plot
from hub_models.figures import figure_to_pil, save_png
from hub_models.hub import load
from hub_models.hub.naming import beta_tag, vae_run_name
from hub_models.io import write_json_atomic
from hub_models.reference import (
    STUDY_ARCHS,
    STUDY_BETAS,
    STUDY_DDPM,
    STUDY_DDPM_EPOCHS,
    STUDY_LATENT_DIMS,
)

EVALUATION_FILE = "evaluation.json"
EVALUATION_VERSION = 1
# What the study reports for its DDPM (../shared/STUDY.md).
ANOMALY_HEADING = "## Anomaly detection"


@dataclass
class EvalSettings:
    """How much each run is evaluated (the defaults are the report's; tests shrink them)."""

    fid_samples: int = 1000
    fid_reference: str = "study-test"
    fid_reference_n: int = 2000
    nll_samples: int = 1000
    nll_images: int = 500
    latent_points: int = 5000
    seed: int = 0


def latent_knn_accuracy(means: np.ndarray, labels: np.ndarray, k: int = 5, seed: int = 0) -> float:
    """How well digits separate in latent space: k-NN accuracy on the latent means (half fit, half scored)."""
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    fit_x, test_x, fit_y, test_y = train_test_split(means, labels, test_size=0.5, random_state=seed,
                                                    stratify=labels)
    return float(KNeighborsClassifier(n_neighbors=k).fit(fit_x, fit_y).score(test_x, test_y))


def evaluate_run(run_dir: str | Path, settings: EvalSettings | None = None, force: bool = False) -> dict[str, Any]:
    """Every number the report needs for one VAE run, cached in `<run>/evaluation.json`."""

    settings = settings or EvalSettings()
    run_dir = Path(run_dir)
    cache = run_dir / EVALUATION_FILE
    key = {"version": EVALUATION_VERSION, **settings.__dict__}
    if cache.exists() and not force:
        cached = json.loads(cache.read_text())
        if cached.get("settings") == key:
            return cached
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = load(str(run_dir)).eval()
    _, held_out = load_splits(metrics.get("split", "study"))
    result: dict[str, Any] = {"settings": key}
    result["vae"] = vae_metrics(model, held_out, nll_samples=settings.nll_samples, nll_limit=settings.nll_images,
                                seed=settings.seed)
    subset = held_out.subset(settings.latent_points)
    with torch.no_grad():
        means = torch.cat([model.encode(x)[0] for x in subset.as_float().split(1000)]).numpy()
    result["latent_knn_accuracy"] = latent_knn_accuracy(means, subset.labels.numpy(), seed=settings.seed)
    samples = model.sample(settings.fid_samples, generator=torch.Generator().manual_seed(settings.seed))
    result["fid"] = fid(samples, reference=settings.fid_reference, n_ref=settings.fid_reference_n)
    result["classifier"] = classifier_metrics(samples, reference=settings.fid_reference,
                                              n_ref=settings.fid_reference_n)
    write_json_atomic(cache, result)
    return result


# --------------------------------------------------------------------------------------------------------------
# Collecting runs
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    path: Path
    metrics: dict[str, Any]
    evaluation: dict[str, Any] | None

    @property
    def test(self) -> dict[str, float]:
        """Held-out metrics: the report's own evaluation when there is one, else the training script's."""
        return (self.evaluation or {}).get("vae") or self.metrics["test"]

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
        evaluation = evaluate_run(path, settings) if evaluate else _cached_evaluation(path)
        runs[path.name] = Run(path.name, path, metrics, evaluation)
    return runs


def _cached_evaluation(path: Path) -> dict[str, Any] | None:
    cache = path / EVALUATION_FILE
    return json.loads(cache.read_text()) if cache.exists() else None


# --------------------------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Claim:
    claim: str
    measured: str
    verdict: str  # confirmed / refuted / partly / not measured


def _get(runs: dict[str, Run], arch: str, z: int, beta: float) -> Run | None:
    return runs.get(vae_run_name(arch, z, beta))


def _ev(run: Run | None, *path: str) -> float | None:
    value: Any = run.evaluation if run else None
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def study_claims(runs: dict[str, Run], ddpm: dict[str, Any] | None) -> list[Claim]:
    """Each claim of the study with our number and a verdict. Missing runs give 'not measured'."""
    claims: list[Claim] = []

    def add(text: str, needed: list[Any], measure: Callable[[], tuple[str, str]]) -> None:
        if any(n is None for n in needed):
            claims.append(Claim(text, "run missing", "not measured"))
        else:
            claims.append(Claim(text, *measure()))

    conv = {b: _get(runs, "conv", 2, b) for b in STUDY_BETAS}
    dense2, conv2, conv4 = _get(runs, "dense", 2, 1.0), conv[1.0], _get(runs, "conv", 4, 1.0)

    add("Parameters: Conv 59,525, Dense 1,068,820 (z=2)", [conv2, dense2], lambda: (
        f"{conv2.metrics['parameters']:,} / {dense2.metrics['parameters']:,}",
        "confirmed" if (conv2.metrics["parameters"], dense2.metrics["parameters"]) == (59_525, 1_068_820)
        else "refuted"))
    add("Dense reconstructs better than Conv at z=2 (lower BCE)", [conv2, dense2], lambda: (
        f"test BCE Dense {dense2.bce:.1f} vs Conv {conv2.bce:.1f}",
        "confirmed" if dense2.bce < conv2.bce else "refuted"))
    add("Conv's latent space is more structured; Dense's classes overlap more (z=2, β=1)", [
        _ev(conv2, "latent_knn_accuracy"), _ev(dense2, "latent_knn_accuracy")], lambda: (
        f"5-NN accuracy on latent means: Conv {_ev(conv2, 'latent_knn_accuracy'):.1%}, "
        f"Dense {_ev(dense2, 'latent_knn_accuracy'):.1%}",
        "confirmed" if _ev(conv2, "latent_knn_accuracy") > _ev(dense2, "latent_knn_accuracy") + 0.01 else
        "partly" if abs(_ev(conv2, "latent_knn_accuracy") - _ev(dense2, "latent_knn_accuracy")) <= 0.01
        else "refuted"))
    add("Conv trains faster than Dense", [conv2, dense2], lambda: (
        f"{conv2.metrics['seconds_per_epoch']:.1f} s/epoch Conv vs {dense2.metrics['seconds_per_epoch']:.1f} "
        "s/epoch Dense (2 CPU cores)",
        "confirmed" if conv2.metrics["seconds_per_epoch"] < dense2.metrics["seconds_per_epoch"] else "refuted"))
    add("Reconstruction: β=1e-3 excellent > β=1 good > β=20 blurry (Conv z=2)", list(conv.values()), lambda: (
        " / ".join(f"β={beta_tag(b)}: BCE {conv[b].bce:.1f}" for b in STUDY_BETAS),
        "confirmed" if conv[1e-3].bce < 0.99 * conv[1.0].bce and conv[1.0].bce < conv[20.0].bce else
        "partly" if max(conv[1e-3].bce, conv[1.0].bce) < conv[20.0].bce else "refuted"))
    add("Latent structure: β=1e-3 scattered, β=1 structured, β=20 over-compressed (KLD, Conv z=2)",
        list(conv.values()), lambda: (
            " / ".join(f"β={beta_tag(b)}: KLD {conv[b].kld:.1f}" for b in STUDY_BETAS),
            "confirmed" if conv[1e-3].kld > conv[1.0].kld > conv[20.0].kld else "refuted"))
    knn = {b: _ev(conv[b], "latent_knn_accuracy") for b in STUDY_BETAS}
    add("Class separation: weak at β=1e-3, good at β=1, poor at β=20", list(knn.values()), lambda: (
        " / ".join(f"β={beta_tag(b)}: 5-NN {knn[b]:.1%}" for b in STUDY_BETAS),
        "confirmed" if knn[1.0] > max(knn[1e-3], knn[20.0]) else
        "partly" if knn[1.0] > min(knn[1e-3], knn[20.0]) else "refuted"))
    fids = {b: _ev(conv[b], "fid", "fid") for b in STUDY_BETAS}
    kls = {b: _ev(conv[b], "classifier", "kl_to_uniform") for b in STUDY_BETAS}
    add("Generated digits: erratic at β=1e-3, coherent at β=1, smooth but little diversity at β=20",
        [*fids.values(), *kls.values()], lambda: (
            " / ".join(f"β={beta_tag(b)}: FID {fids[b]:.1f}, KL-to-uniform {kls[b]:.3f}" for b in STUDY_BETAS),
            "confirmed" if fids[1.0] < min(fids[1e-3], fids[20.0]) and kls[20.0] > kls[1.0] else
            "partly" if fids[1.0] < min(fids[1e-3], fids[20.0]) or kls[20.0] > kls[1.0] else "refuted"))
    add("β = 1 is the best compromise (Conv z=2: best prior-sample FID of the three β)", list(fids.values()),
        lambda: (f"FID β=1 {fids[1.0]:.1f} vs β=1e-3 {fids[1e-3]:.1f}, β=20 {fids[20.0]:.1f}",
                 "confirmed" if fids[1.0] < min(fids[1e-3], fids[20.0]) else "refuted"))
    add("Conv z=4 reconstructs about as well as Dense z=2 with 18× fewer parameters", [conv4, dense2], lambda: (
        f"BCE Conv z=4 {conv4.bce:.1f} ({conv4.metrics['parameters']:,} params) vs Dense z=2 {dense2.bce:.1f} "
        f"({dense2.metrics['parameters']:,}); {dense2.metrics['parameters'] / conv4.metrics['parameters']:.1f}× "
        "fewer",
        "confirmed" if abs(conv4.bce - dense2.bce) / dense2.bce <= 0.05 or conv4.bce < dense2.bce else
        "partly" if abs(conv4.bce - dense2.bce) / dense2.bce <= 0.15 else "refuted"))
    add("Conv z=4 keeps more detail than Conv z=2 (lower BCE)", [conv4, conv2], lambda: (
        f"BCE {conv4.bce:.1f} vs {conv2.bce:.1f}", "confirmed" if conv4.bce < conv2.bce else "refuted"))
    losses = [ddpm.get("train_loss"), ddpm.get("test_loss")] if ddpm else [None]
    text = "DDPM: train loss 0.0278, test loss 0.0280, no over-fitting"
    if ddpm and ddpm.get("epochs_done", 0) < STUDY_DDPM_EPOCHS and None not in losses:
        claims.append(Claim(text, f"train {ddpm['train_loss']:.4f}, test {ddpm['test_loss']:.4f} after only "
                                  f"{ddpm['epochs_done']} of the study's {STUDY_DDPM_EPOCHS} epochs (test − train "
                                  f"{ddpm['test_loss'] - ddpm['train_loss']:+.4f})",
                            "not measured"))
    else:
        add(text, losses, lambda: (
            f"train {ddpm['train_loss']:.4f}, test {ddpm['test_loss']:.4f} after {ddpm['epochs_done']} epochs",
            "confirmed" if abs(ddpm["test_loss"] - 0.028) < 0.002 and ddpm["test_loss"] - ddpm["train_loss"] < 0.002
            else "partly" if ddpm["test_loss"] - ddpm["train_loss"] < 0.002 else "refuted"))
    ddpm_fid = (ddpm or {}).get("fid")
    add("DDPM: FID 28.11", [ddpm_fid], lambda: (
        f"FID {ddpm_fid['fid']:.2f} (N={ddpm_fid['n_gen']:,} vs {ddpm_fid['n_ref']:,} of {ddpm_fid['reference']}, "
        f"floor {ddpm_fid.get('floor') or 0:.2f}; {ddpm['fid_point']['sampler']}, {ddpm['fid_point']['steps']} "
        f"steps, after {ddpm['epochs_done']} epochs)"
        + ("; lower is better: the claimed quality is reached" if ddpm_fid["fid"] < STUDY_DDPM["fid"] - 5 else ""),
        # FID falls as N grows: a match at a smaller N than the study's 10k is only partial evidence.
        "refuted" if ddpm_fid["fid"] > STUDY_DDPM["fid"] + 5
        else "confirmed" if ddpm_fid["n_gen"] >= 10_000 else "partly"))
    return claims


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


def _results_table(runs: dict[str, Run]) -> list[str]:
    lines = ["| run | params | s/epoch | test BCE | KLD | ELBO | NLL (k=1000) | FID prior | recognisable | "
             "KL to uniform | FD-classifier | latent 5-NN |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs.values():
        m = run.metrics
        lines.append(
            f"| `{run.name}` | {m['parameters']:,} | {m['seconds_per_epoch']:.1f} | {run.bce:.1f} | {run.kld:.2f} | "
            f"{run.test['elbo']:.1f} | {_fmt(_ev(run, 'vae', 'nll'))} | {_fmt(_ev(run, 'fid', 'fid'))} | "
            f"{_fmt(_ev(run, 'classifier', 'confident_share'), '.1%')} | "
            f"{_fmt(_ev(run, 'classifier', 'kl_to_uniform'), '.3f')} | "
            f"{_fmt(_ev(run, 'classifier', 'fd_classifier'), '.2f')} | "
            f"{_fmt(_ev(run, 'latent_knn_accuracy'), '.1%')} |")
    return lines


def write_report(study_dir: str | Path, docs_dir: str | Path = "docs", *, ddpm_dir: str | Path | None = None,
                 anomaly_dir: str | Path | None = None, evaluate: bool = True,
                 settings: EvalSettings | None = None) -> Path:
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
    claims = study_claims(runs, ddpm)
    any_eval = next((r.evaluation for r in runs.values() if r.evaluation), None)
    fid_note = ""
    if any_eval:
        f = any_eval["fid"]
        fid_note = (f"FID: {f['n_gen']:,} prior samples per run vs {f['n_ref']:,} digits of `{f['reference']}` "
                    f"(the study's 12k held-out split), standard Inception-v3 pool3; the real-vs-real floor at this "
                    f"N is **{f['floor']:.2f}**: no generator can score below it at this sample size.")

    out = [
        "# The study, reproduced",
        "",
        "Generated by `python training/run_study.py` from the runs in "
        f"`{study_dir}` (the study's recipe: 20 epochs, batch 64, Adam 1e-3, 80/20 split, seed 0, 2 CPU cores). "
        "Do not edit by hand.",
        "",
        "## Claims of the study, checked",
        "",
        "| claim (../shared/STUDY.md) | measured here | verdict |",
        "|---|---|---|",
        *map(_claim_row, claims),
        "",
        "## All runs",
        "",
        *_results_table(runs),
        "",
        "Metrics on the study's 12,000 held-out digits, nats per image. BCE is summed over the 784 pixels; "
        "ELBO = −(BCE + KLD); NLL is the importance-sampled estimate with k = 1000 on the first "
        f"{settings.nll_images} held-out digits. On grey-level MNIST the Bernoulli BCE is not a normalised "
        "likelihood: compare these numbers with each other, not with published likelihoods. "
        f"{fid_note} \"Recognisable\" = share of prior samples our digit classifier labels with confidence > 0.9; "
        "KL to uniform = KL(class histogram ‖ uniform) of those samples (0 = every digit equally often); "
        "FD-classifier = Fréchet distance on the classifier's penultimate features (MNIST-specific, not an FID); "
        "latent 5-NN = k-NN accuracy on the latent means of 5,000 held-out digits (class separation). "
        "s/epoch is the training loop's wall time on a 2-core machine that other jobs shared, so it varies from run "
        "to run by up to 3×; `benchmarks/vae_throughput.py` measures speed side by side.",
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
    out += (_ddpm_section(ddpm) if ddpm else []) + _anomaly_section(anomaly_dir, figures_dir)
    report = docs_dir / "REPORT.md"
    report.write_text("\n".join(out) + "\n")
    return report


def update_report(docs_dir: str | Path = "docs", *, ddpm_dir: str | Path,
                  anomaly_dir: str | Path | None = None) -> Path:
    """Re-render the DDPM claims and the DDPM and anomaly sections of an existing `docs_dir/REPORT.md`, keeping its
    VAE parts as they are: the DDPM and anomaly results may live on another machine than the VAE run folders.
    An anomaly folder without results keeps the report's anomaly section."""
    docs_dir = Path(docs_dir)
    report = docs_dir / "REPORT.md"
    if not report.exists():
        raise FileNotFoundError(f"{report} does not exist yet: write it with `python training/run_study.py`")
    if not Path(ddpm_dir, "metrics.json").exists():
        raise FileNotFoundError(f"{ddpm_dir} is not a trained DDPM (no metrics.json)")
    figures_dir = docs_dir / "figures"
    ddpm = _ddpm_summary(Path(ddpm_dir), figures_dir)
    rows = {c.claim: _claim_row(c) for c in study_claims({}, ddpm) if c.claim.startswith("DDPM")}
    blocks: list[list[str]] = []
    for line in report.read_text().splitlines():
        if line.startswith("## ") or not blocks:
            blocks.append([])
        claim = line.removeprefix("| ").split(" | ")[0]
        blocks[-1].append(rows.get(claim, line) if line.startswith("| DDPM") else line)
    old_anomaly = [line for b in blocks if b[0].startswith(ANOMALY_HEADING) for line in b]
    kept = [line for b in blocks if not b[0].startswith(("## DDPM", ANOMALY_HEADING)) for line in b]
    out = kept + _ddpm_section(ddpm) + (_anomaly_section(anomaly_dir, figures_dir) or old_anomaly)
    report.write_text("\n".join(out).rstrip("\n") + "\n")
    return report


def _claim_row(claim: Claim) -> str:
    return f"| {claim.claim} | {claim.measured} | **{claim.verdict}** |"


def _ddpm_summary(ddpm_dir: Path, figures_dir: Path) -> dict[str, Any]:

    metrics = json.loads((ddpm_dir / "metrics.json").read_text())
    history = metrics.get("history", [])
    summary = {"train_loss": metrics.get("train_loss"), "test_loss": metrics.get("test_loss"),
               "epochs_done": len(history), "history": history, "parameters": metrics.get("parameters")}
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


def _ddpm_section(ddpm: dict[str, Any]) -> list[str]:

    lines = ["## DDPM", "",
             f"UNet2DModel, {ddpm['parameters']:,} parameters, cosine schedule over 4000 steps, ε-prediction, "
             "EMA weights. Loss per epoch next to the study's final train 0.0278 / test 0.0280:", "",
             "| epoch | train loss | test loss |", "|---:|---:|---:|"]
    lines += [f"| {h['epoch']} | {h['train_loss']:.4f} | {h['test_loss']:.4f} |" for h in ddpm["history"]]
    if ddpm.get("grid") or ddpm.get("loss_curve"):
        lines += ["", " ".join(f"![DDPM {k}]({ddpm[k]})" for k in ("grid", "loss_curve") if ddpm.get(k))]
    points = [ddpm[k] for k in ("fid_point", "raw_point") if ddpm.get(k)] + ddpm.get("other_points", [])
    if points:
        lines += ["", "FID (`python training/evaluate_ddpm.py`), against the study's 28.11:", ""]
        lines += [f"- {describe_point(p)}" for p in points]
    if ddpm.get("sweep"):
        sweep = ddpm["sweep"]
        lines += ["", f"### Sampler sweep: FID vs CPU time (N = {sweep[0]['num_samples']:,} per point, "
                      f"floor {sweep[0]['fid']['floor']:.2f})", "",
                  f"![sampler sweep]({ddpm['sweep_plot']})", "",
                  "| sampler | steps | FID | recognisable | s per 16 digits |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {p['sampler']} | {p['steps']} | {p['fid']['fid']:.2f} | "
                  f"{p['classifier']['confident_share']:.1%} | {p['seconds_per_16']:.2f} |" for p in sweep]
        lines += ["", f"Seconds: wall time for 16 digits with {sweep[0]['torch_threads']} torch thread(s) on this "
                      "machine's CPU (other jobs may have shared it: the load average is in evaluation.json), the UNet "
                      f"in {sweep[0].get('precision', 'fp32')}."]
    return [*lines, ""]
