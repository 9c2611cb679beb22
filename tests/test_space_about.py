"""The About tab (spaces_app/tabs/about.py, `hub_models.space.about`): the report's claims and figures, and the
loaded models with their released metrics."""

from __future__ import annotations

from space_fixtures import REPO_ROOT, load_app_module


def _about_tab():
    """spaces_app/tabs/about.py (loading the app puts spaces_app/, the tabs' package, on the path)."""
    load_app_module()
    from tabs import about as about_tab

    return about_tab


def _initial_values(client) -> dict[str, object]:
    """elem_id → the initial value of each component, from the app's /config (what a browser gets on load)."""
    return {c["props"]["elem_id"]: c["props"].get("value") for c in client.config["components"]
            if c.get("props", {}).get("elem_id")}


def test_about_reads_the_claims_and_figures_of_the_report(tmp_path):
    from hub_models.space import about

    report = REPO_ROOT / "docs" / "REPORT.md"
    from hub_models.study.verdicts import VERDICTS

    marks = _about_tab().VERDICT_MARKS
    claims = about.report_claims(report)
    assert len(claims) >= 10 and {c.verdict for c in claims} <= set(VERDICTS) == set(marks)
    assert any(c.claim.startswith("DDPM: FID") for c in claims)
    text = about.claims_markdown(claims, "https://example.org/report", marks)
    assert all(f"| {marks[c.verdict]} **{c.verdict}** |" in text for c in claims)  # a mark per verdict
    assert f"**{len(claims)} claims" in text and "[the full report](https://example.org/report)" in text
    assert text.count("\n| ") == len(claims) + 1  # header + one row per claim
    # A bare pipe inside a cell of the report (`E[z|x]`) stays in its cell, escaped for the About table.
    md = tmp_path / "REPORT.md"
    md.write_text("## Claims of the study, checked\n\n| claim | measured here | rule | verdict |\n"
                  "|---|---|---|---|\n| a claim | 1.0 | Var E[z|x] > 0.01 | **partly** |\n\n## Next\n| x | y |\n")
    (claim,) = about.report_claims(md)
    assert (claim.claim, claim.measured, claim.verdict) == ("a claim", "1.0", "partly")
    assert claim.rule == "Var E[z\\|x] > 0.01"
    figures = about.report_figures(report)
    assert "figures/rate_distortion.png" in figures and all((report.parent / f).is_file() for f in figures)
    beta = about.beta_side_by_side(report.parent / "figures")
    assert beta is not None and beta.width > 3 * about.COLUMN_WIDTH
    assert about.report_claims(REPO_ROOT / "no-such-report.md") == []
    assert "not available" in about.claims_markdown([])


def test_the_about_tab_tells_the_study(space):
    _, client = space
    values = _initial_values(client)
    claims = values["about-claims"]
    from hub_models.space.about import report_claims

    report = report_claims(REPO_ROOT / "docs" / "REPORT.md")
    assert f"{len(report)} claims of the study, checked" in claims
    marks = _about_tab().VERDICT_MARKS
    assert all(c.claim in claims and f"{marks[c.verdict]} **{c.verdict}**" in claims for c in report)
    assert values["about-rate-distortion"]["url"] and values["about-beta"]["url"]
    models = values["about-models"]
    assert "| 12.34 (N=1,000, ddpm, 25 steps) |" in models and "| 123.4 |" in models  # evaluation.json FIDs
    assert "served from a local folder" in models
