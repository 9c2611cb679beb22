"""docs/lab/PROTOCOL.md's card check on tiny DDPMs: the card's own snippet, run for N digits, against the evaluator's
FID at the headline's settings over several seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from hub_models.evaluation.card_check import (
    SNIPPET_SEED_BASE,
    CardSnippetError,
    card_snippet,
    card_snippet_check,
    snippet_digits,
    snippet_program,
)
from hub_models.evaluation.ddpm import evaluation_summary
from hub_models.hub.cards import render_model_card
from hub_models.hub.remote_code import add_remote_code

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _with_card(run: Path) -> Path:
    render_model_card(run, "me/ddpm").save(run / "README.md")
    add_remote_code(run)  # as a push ships it: the card's first snippet loads that code
    return run


def test_the_card_check_runs_the_cards_own_snippet(ddpm_run):
    run = _with_card(ddpm_run)
    snippet = card_snippet((run / "README.md").read_text())
    program = snippet_program(snippet, run, seed=SNIPPET_SEED_BASE, batch_size=6)
    assert f"from_pretrained({str(run)!r}" in program and "manual_seed(1000)" in program
    assert "batch_size=6" in program and "me/ddpm" not in program
    undone = (program.replace(f"from_pretrained({str(run)!r}", 'from_pretrained("me/ddpm"')
              .replace("manual_seed(1000)", "manual_seed(0)").replace("batch_size=6", "batch_size=16"))
    assert undone == snippet  # those three edits and nothing else

    result = card_snippet_check(run, num_samples=12, seeds=(1, 2), batch_size=6)
    headline = json.loads((run / "evaluation.json").read_text())
    assert headline["settings"]["card_snippet_check"] == result
    keys = {f"{result['headline']['sampler']}-{result['headline']['steps']}steps-ema-n12-seed{s}" for s in (1, 2)}
    assert keys <= {k.removesuffix("-bf16") for k in headline["points"]}  # the evaluator's points, cached
    assert len(result["evaluator_fids"]) == 2 and result["sigma"] > 0 and result["snippet_fid"] > 0
    assert result["passes"] == (abs(result["snippet_fid"] - result["mean"]) <= 3 * result["sigma"])
    summary = evaluation_summary(run)  # the check is one line of the card, not its evaluator points
    assert summary["card_check"] == result and all(p["num_samples"] != 12 for p in summary["others"])
    card = str(render_model_card(run, "me/ddpm"))
    assert f"scores FID {result['snippet_fid']:.2f} against {result['reference']}" in card
    assert len(re.findall(r"^- FID \d", card, re.M)) == 1  # the headline only (the tiny run's has N = 12, seed 1)

    digits = snippet_digits(run, 12, batch_size=6)
    assert digits.shape == (12, 28, 28) and digits.dtype == np.uint8
    assert not np.array_equal(digits[:6], digits[6:])  # a seed per batch
    assert np.array_equal(snippet_digits(run, 12, batch_size=6), digits)  # and deterministic


def test_a_class_conditional_card_asks_for_every_digit_equally(conditional_ddpm_run, copy_run):
    run = _with_card(copy_run(conditional_ddpm_run))
    snippet = card_snippet((run / "README.md").read_text())
    program = snippet_program(snippet, run, seed=5, batch_size=30)
    assert "for _ in range(3)" in program and "class_labels=" in program
    assert snippet_digits(run, 20, batch_size=10).shape == (20, 28, 28)
    with pytest.raises(ValueError, match="divisible by 10"):
        snippet_program(snippet, run, seed=5, batch_size=16)


def test_a_changed_card_or_a_missing_headline_is_said_plainly(ddpm_run, run_script, capsys):
    run = _with_card(ddpm_run)
    card = (run / "README.md").read_text()
    with pytest.raises(CardSnippetError, match=r"0 manual_seed\(0\) calls .*update hub_models/evaluation/card_check"):
        snippet_program(card_snippet(card.replace("manual_seed(0)", "manual_seed(7)")), run, 1, 6)
    with pytest.raises(CardSnippetError, match="no ```python block"):
        card_snippet(card.split("## How to use")[0])
    (run / "evaluation.json").unlink()
    with pytest.raises(SystemExit) as refused:  # in-process: the parser's exit, as a process would end
        run_script("scripts/evaluate_ddpm.py", "--run_dir", str(run), "--check_card_snippet")
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "error:" in err and "has no headline FID yet" in err
