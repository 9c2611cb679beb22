"""The About tab: the study's claims checked on our own runs (from docs/REPORT.md), its figures and the loaded
models with their released metrics. It has no events: everything is shown on the first visit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from hub_models.space import about
from hub_models.space.registry import Registry
from hub_models.study.verdicts import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_MEASURED,
    PARTLY,
    PENDING,
    REFUTED,
)

# A mark per verdict of `hub_models.study.verdicts` (glyphs every common font has, unlike emoji); the About table
# counts the verdicts in this order.
VERDICT_MARKS = {CONFIRMED: "✔", REFUTED: "✘", PARTLY: "◐", INCONCLUSIVE: "≈", NOT_COMPARABLE: "≠", PENDING: "…",
                 NOT_MEASURED: "–"}


def report_url(config: dict[str, Any]) -> str | None:
    """The report this Space ships (docs/REPORT.md in its repo); None outside a Space."""
    space_id = os.environ.get("SPACE_ID") or config.get("space")
    return f"https://huggingface.co/spaces/{space_id}/blob/main/docs/REPORT.md" if space_id else None


def claims(docs_dir: Path, config: dict[str, Any]) -> str:
    """The markdown of the claims table, linked to the Space's copy of the report."""
    table = about.claims_markdown(about.report_claims(docs_dir / "REPORT.md"), report_url(config), VERDICT_MARKS)
    return about.INTRO + "\n\n## The study's claims, checked\n\n" + table


def build(reg: Registry, config: dict[str, Any], docs_dir: Path) -> None:
    """The tab, in the open `gr.Blocks`: `config` is the published Space's models.json ({} in a checkout)."""
    with gr.Tab("About", id="about"):
        gr.Markdown(claims(docs_dir, config), elem_id="about-claims")
        rate_distortion = docs_dir / "figures" / "rate_distortion.png"
        if rate_distortion.is_file():
            gr.Image(str(rate_distortion), label="rate–distortion: every β-VAE of the study", height=520,
                     interactive=False, elem_id="about-rate-distortion", buttons=["fullscreen"])
        beta_figure = about.beta_side_by_side(docs_dir / "figures")
        if beta_figure is not None:
            gr.Image(beta_figure, label="Conv VAE, z = 2: β side by side", format="png", type="pil", height=760,
                     interactive=False, elem_id="about-beta", buttons=["fullscreen"])
        gr.Markdown(about.models_markdown(reg, dict(config.get("models") or {})), elem_id="about-models")


__all__ = ["VERDICT_MARKS", "build", "claims", "report_url"]
