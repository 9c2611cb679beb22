"""The Space's About tab: the study's claims with their verdicts (read from docs/REPORT.md, which
`hub_models.study.report` writes), the β side-by-side figure, the table of the loaded models and their repo links.

The report ships with the Space (`publish_space` bundles docs/REPORT.md and the figures it shows), so the tab reads
the same file a checkout has, and the link to the report points at the Space's own copy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from PIL import Image, ImageDraw, ImageFont

from hub_models.hub.naming import beta_tag, vae_run_name
from hub_models.reference import STUDY_BETAS
from hub_models.space.registry import Registry

CLAIMS_HEADING = "## Claims of the study, checked"
# The β side-by-side figure: the Conv VAE with z = 2 at each β of the study, three of each run's figures.
BETA_FIGURES = (("reconstructions", "reconstructions (top: test digits)"), ("samples", "prior samples"),
                ("latent_scatter", "latent space"))
COLUMN_WIDTH = 360
LINK_RE = re.compile(r"\]\((figures/[^)\s]+)\)")
CELL_RE = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class ReportClaim:
    """One row of the report's claims table."""

    claim: str
    measured: str
    verdict: str  # as the report writes it (`hub_models.study.verdicts` names them)
    rule: str = ""  # how the verdict follows from the measurement (fixed before scoring)


def report_claims(report: str | os.PathLike) -> list[ReportClaim]:
    """The claims table of docs/REPORT.md, its columns found by their headers (`claim`, `measured`, `rule`,
    `verdict`); [] if the report or the table is absent."""
    path = Path(report)
    if not path.is_file():
        return []
    claims: list[ReportClaim] = []
    in_section, columns, width = False, None, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_section, columns = line.strip() == CLAIMS_HEADING, None
            continue
        if not in_section or not line.startswith("|"):
            continue
        cells = [c.strip() for c in CELL_RE.split(line.strip().strip("|"))]  # `\|` is a pipe inside a cell
        if columns is None:  # the header row
            columns = {key: next((i for i, c in enumerate(cells) if c.lower().startswith(key)), None)
                       for key in ("claim", "measured", "rule", "verdict")}
            if None in (columns["claim"], columns["measured"], columns["verdict"]):
                return []
            width = len(cells)
            continue
        if len(cells) < width or set(cells[0]) <= set("-: "):
            continue  # the separator row, or a row the table does not lay out
        if len(cells) > width:  # a bare `|` inside a cell (e.g. E[z|x] in a rule): the extra cells are that text
            cut = columns["rule"] if columns["rule"] is not None else columns["measured"]
            extra = len(cells) - width
            cells = [*cells[:cut], "\\|".join(cells[cut:cut + extra + 1]), *cells[cut + extra + 1:]]
        claims.append(ReportClaim(cells[columns["claim"]], cells[columns["measured"]],
                                  cells[columns["verdict"]].strip("*").strip(),
                                  cells[columns["rule"]] if columns["rule"] is not None else ""))
    return claims


def report_figures(report: str | os.PathLike) -> list[str]:
    """The figure paths (relative to the report's folder, e.g. `figures/rate_distortion.png`) the report shows."""
    path = Path(report)
    return sorted(set(LINK_RE.findall(path.read_text(encoding="utf-8")))) if path.is_file() else []


def claims_markdown(claims: list[ReportClaim], report_url: str | None = None,
                    marks: Mapping[str, str] | None = None) -> str:
    """The claims as a markdown table with a mark per verdict (and the rule of each, when the report has them),
    and a count of each verdict.

    `marks` maps each verdict to its mark, in the order the counts list them. The Space passes them in: the verdicts
    belong to `hub_models.study`, which shares this layer and is not imported from here."""
    marks = dict(marks or {})
    if not claims:
        return "*The study's report (docs/REPORT.md) is not available here.*"
    counts = {v: sum(c.verdict == v for c in claims) for v in dict.fromkeys([*marks, *(c.verdict for c in
                                                                                             claims)])}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    link = f" — [the full report]({report_url})" if report_url else ""
    rules = any(c.rule for c in claims)
    lines = [f"**{len(claims)} claims of the study, checked on our own runs: {summary}**{link}", "",
             "| claim of the study | measured here |" + (" rule |" if rules else "") + " verdict |",
             "|---|---|" + ("---|" if rules else "") + "---|"]
    lines += [f"| {c.claim} | {c.measured} |" + (f" {c.rule} |" if rules else "")
              + f" {marks.get(c.verdict, '')} **{c.verdict}** |" for c in claims]
    return "\n".join(lines)


def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans, which matplotlib ships (Pillow's default font has no β)."""
    try:
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except OSError:
        return ImageFont.load_default()


def beta_side_by_side(figures_dir: str | os.PathLike, arch: str = "conv", latent_dim: int = 2) -> Image.Image | None:
    """One image: a column per β of the study (β = 1e-3, 1, 20), rows of reconstructions, prior samples and the
    latent space, from the report's figures (`figures/<run>/<figure>.png`); None when a figure is missing."""
    figures_dir = Path(figures_dir)
    runs = [vae_run_name(arch, latent_dim, beta) for beta in STUDY_BETAS]
    paths = [[figures_dir / run / f"{name}.png" for run in runs] for name, _ in BETA_FIGURES]
    if not all(p.is_file() for row in paths for p in row):
        return None
    rows = []
    for row in paths:
        images = [Image.open(p).convert("RGB") for p in row]
        images = [im.resize((COLUMN_WIDTH, round(im.height * COLUMN_WIDTH / im.width)), Image.LANCZOS) for im in images]
        rows.append(images)
    gap, head, label_w = 12, 44, 150
    height = head + sum(max(im.height for im in row) + gap for row in rows)
    width = label_w + len(runs) * (COLUMN_WIDTH + gap)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    title, small = _font(26), _font(17)
    for j, beta in enumerate(STUDY_BETAS):
        draw.text((label_w + j * (COLUMN_WIDTH + gap) + COLUMN_WIDTH // 2, head // 2), f"β = {beta_tag(beta)}",
                  fill="black", font=title, anchor="mm")
    y = head
    for (_, caption), row in zip(BETA_FIGURES, rows, strict=True):
        row_h = max(im.height for im in row)
        draw.multiline_text((8, y + row_h // 2), caption.replace(" (", "\n("), fill="black", font=small, anchor="lm")
        for j, im in enumerate(row):
            canvas.paste(im, (label_w + j * (COLUMN_WIDTH + gap), y))
        y += row_h + gap
    return canvas


def _num(value: Any, fmt: str = ".2f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def models_markdown(reg: Registry, repo_links: dict[str, str]) -> str:
    """The loaded models with their metrics (metrics.json, and evaluation.json for the FIDs), where each comes
    from, and how the anomaly score works."""
    lines = ["## The models in this Space", "",
             "| model | architecture | z | β | parameters | test BCE | test KLD | test −ELBO | FID of prior samples |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in reg.vaes.values():
        test = e.metrics.get("test") if isinstance(e.metrics.get("test"), dict) else {}
        elbo = test.get("elbo")
        params = e.metrics.get("parameters") or sum(p.numel() for p in e.model.parameters())
        fid = (e.evaluation.fid or {}).get("fid") if e.evaluation is not None else None
        lines.append(f"| {e.name} | {e.arch} | {e.latent_dim} | {'—' if e.beta is None else f'{e.beta:g}'} | "
                     f"{params:,} | {_num(test.get('bce'))} | {_num(test.get('kld'))} | "
                     f"{_num(-elbo if isinstance(elbo, (int, float)) else None)} | {_num(fid, '.1f')} |")
    if reg.ddpms:
        lines += ["", "| DDPM | parameters | train loss | test loss | FID |", "|---|---|---|---|---|"]
    for entry in reg.ddpms.values():
        m = entry.metrics
        params = m.get("parameters") or sum(p.numel() for p in entry.unet.parameters())
        how = (f" (N={m['fid_n']:,}, {m.get('fid_sampler')}, {m.get('fid_steps')} steps)"
               if isinstance(m.get("fid_n"), int) else "")
        kind = " (class-conditional)" if entry.conditional else ""
        lines.append(f"| {entry.name}{kind} | {params:,} | {_num(m.get('train_loss'), '.4f')} | "
                     f"{_num(m.get('test_loss'), '.4f')} | {_num(m.get('fid'))}{how} |")
    lines += ["", "### Model repositories", ""]
    for name, source in reg.sources.items():
        repo = repo_links.get(name) or (None if Path(source).exists() else source)
        where = f"[{repo}](https://huggingface.co/{repo})" if repo else "—"
        status = "loaded" if name not in reg.errors else f"**not loaded**: {reg.errors[name]}"
        local = " (served from a local folder)" if Path(source).exists() else ""
        lines.append(f"- `{name}` — {where}{local} — {status}")
    n_cal = 0 if reg.test is None else len(reg.test.labels)
    lines += ["", "### How the anomaly score works",
              f"Each VAE scores an input by its negative ELBO (BCE + KLD at the posterior mean, in nats). The score "
              f"is its percentile among {n_cal} digits of the official MNIST test set: 50 is a typical digit, 99+ "
              "means the model finds the input stranger than 99 % of real test digits."]
    return "\n".join(lines)


INTRO = ("## The question\n"
         "How does **β** trade reconstruction against regularisation in a VAE on MNIST? The study compares "
         "β ∈ {1e-3, 1, 20}, a convolutional against a dense architecture, and latent dimension 2 against 4; then "
         "introduces a DDPM (3.3M-parameter U-Net, 4000 timesteps, cosine schedule). We re-ran it and checked each "
         "of its claims.")


__all__ = ["INTRO", "ReportClaim", "beta_side_by_side", "claims_markdown", "models_markdown", "report_claims",
           "report_figures"]
