"""The results table of every VAE run, its note, and the figures the report shows beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

from hub_models.evaluation.metrics import is_standard_fid
from hub_models.evaluation.vae import EvalSettings
from hub_models.figures import figure_to_pil
from hub_models.hub.naming import beta_tag, vae_run_name
from hub_models.reference import STUDY_ARCHS, STUDY_BETAS, STUDY_LATENT_DIMS
from hub_models.study.report.runs import LEGACY_MARK, Run, _fmt, _held, _prior


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


def _beta_grids(runs: dict[str, Run]) -> list[str]:
    """One section per architecture and latent size: reconstructions, prior samples and the latent space, β by β."""
    out: list[str] = []
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
    return out


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
