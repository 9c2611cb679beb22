"""The reproduced study: evaluate every run of a study folder, check each claim of the study, write docs/REPORT.md.

Numbers come from `hub_models.evaluation` (cached in each run's `evaluation.json`, so regenerating the report is
cheap); verdicts come from the fixed rules in `hub_models.study.verdicts`, never from here. One module per part:
`runs` (the VAE runs), `claims` (the claims table), `tables` (the results table and figures), `sections` (DDPM,
anomaly, hybrid) and `write` (the whole report, or parts of it re-rendered).
"""

from hub_models.study.report.claims import (
    READER_PROTOCOLS,
    Claim,
    _cell,
    ddpm_claims,
    ddpm_reader_points,
    study_claims,
)
from hub_models.study.report.runs import FP32_SPEED_MARK, LEGACY_MARK, Run, collect_runs
from hub_models.study.report.sections import ANOMALY_HEADING, _ddpm_section
from hub_models.study.report.tables import rate_distortion_plot
from hub_models.study.report.write import CLAIMS_HEADING, RERENDER_NOTE, RESULTS_HEADING, update_report, write_report

__all__ = [
    "ANOMALY_HEADING",
    "CLAIMS_HEADING",
    "FP32_SPEED_MARK",
    "LEGACY_MARK",
    "READER_PROTOCOLS",
    "RERENDER_NOTE",
    "RESULTS_HEADING",
    "Claim",
    "Run",
    "_cell",
    "_ddpm_section",
    "collect_runs",
    "ddpm_claims",
    "ddpm_reader_points",
    "rate_distortion_plot",
    "study_claims",
    "update_report",
    "write_report",
]
