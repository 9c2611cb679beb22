"""Time to quality (issue 39, goal 2): which snapshot counts, the speed-up and its verdict, the table and the plot,
read from run folders laid out as `train_ddpm.py --snapshot_every_cpu_hours` and `evaluate_ddpm.py` write them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hub_models.evaluation.schema import Evaluation
from hub_models.study.time_to_quality import (
    PROTOCOL_POINT,
    PROTOCOL_REFERENCE,
    measured_snapshots,
    run_summary,
    speed_up,
    time_to_quality,
    time_to_quality_markdown,
)


def _point(fid: float, reference: str = PROTOCOL_REFERENCE) -> dict:
    return {"sampler": PROTOCOL_POINT.sampler, "steps": PROTOCOL_POINT.steps, "reference": reference,
            "num_samples": PROTOCOL_POINT.num_samples, "fid": {"fid": fid, "reference": reference},
            "classifier": {"confident_share": 0.9}}


def make_run(root: Path, fids: dict[float, float | None], clock_hours: float | None = None,
             extra_points: dict[str, dict] | None = None) -> Path:
    """A run folder with a snapshot per CPU-hour of `fids` (None: written, not yet scored); `clock_hours`: the
    run's final clock (None: still training, no final metrics.json)."""
    root.mkdir(parents=True)
    for k, (hour, fid) in enumerate(sorted(fids.items())):
        snap = root / "snapshots" / f"cpu_hours_{hour:g}"
        snap.mkdir(parents=True)
        (snap / "metrics.json").write_text(json.dumps({"train_cpu_seconds": hour * 3600 + 5, "global_step": 60 * k}))
        points = dict(extra_points or {})
        if fid is not None:
            points[PROTOCOL_POINT.key] = _point(fid)
        Evaluation(kind="ddpm", points=points).write(snap)
    if clock_hours is not None:
        (root / "metrics.json").write_text(json.dumps({"train_cpu_seconds": clock_hours * 3600}))
    return root


def test_the_first_snapshot_at_or_below_the_target_counts_without_interpolation(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", {1: 50.0, 2: 12.0, 3: 9.5, 4: 8.0, 5: 11.0, 6: None})
    snapshots = measured_snapshots(run)
    assert [s.cpu_hours for s in snapshots] == [1, 2, 3, 4, 5]  # hour 6 is written but not scored
    assert snapshots[2].clock_hours == pytest.approx(3 + 5 / 3600) and snapshots[2].update == 120
    summary = run_summary(run)
    assert summary["hours"] == 3 and summary["measured_to"] == 5 and not summary["finished"]
    assert run_summary(make_run(tmp_path / "exact", {1: 10.0}))["hours"] == 1  # ≤ 10, not < 10


def test_only_the_protocols_point_and_reference_are_read(tmp_path: Path) -> None:
    other_steps = replace(PROTOCOL_POINT, steps=25).key
    run = make_run(tmp_path / "run", {1: None, 2: 40.0},
                   extra_points={other_steps: _point(5.0), PROTOCOL_POINT.key: _point(6.0, reference="mnist-test")})
    # hour 1 has only other points (a 25-step FID, a point on another reference): it is not measured
    assert [(s.cpu_hours, s.fid) for s in measured_snapshots(run)] == [(2, 40.0)]
    assert run_summary(run)["hours"] is None


def test_a_run_is_finished_only_at_its_budget_with_every_snapshot_scored(tmp_path: Path) -> None:
    hours = {float(k): 20.0 for k in range(1, 13)}
    assert run_summary(make_run(tmp_path / "done", hours, clock_hours=12.0))["finished"]
    assert not run_summary(make_run(tmp_path / "short", hours, clock_hours=11.5))["finished"]
    assert not run_summary(make_run(tmp_path / "unscored", hours | {12.0: None}, clock_hours=12.0))["finished"]


def test_speed_up_and_its_verdict(tmp_path: Path) -> None:
    def summary(hours, measured_to=12.0, finished=True):
        return {"hours": hours, "measured_to": measured_to, "finished": finished}

    assert speed_up(summary(2), summary(7)) == {"ratio": 3.5, "at_least": None, "met": True}
    assert speed_up(summary(2), summary(5)) == {"ratio": 2.5, "at_least": None, "met": False}
    # the other has not reached the target yet: a lower bound, decided only once it is ≥ 3×
    assert speed_up(summary(2), summary(None, 5, False)) == {"ratio": None, "at_least": 2.5, "met": None}
    assert speed_up(summary(2), summary(None, 6, False))["met"] is True
    # the other never reached it in 12 CPU-hours: > 12 / 5 = 2.4 is not shown to be ≥ 3
    assert speed_up(summary(5), summary(None, 12, True)) == {"ratio": None, "at_least": 2.4, "met": None}
    assert speed_up(summary(None, 12, True), summary(4))["met"] is False
    assert speed_up(summary(None, 6, False), summary(4))["met"] is None


def test_table_plot_and_script(tmp_path: Path, load_script, capsys) -> None:
    new = make_run(tmp_path / "new", {2: 30.0, 3: 9.0, 4: 7.0})
    study = make_run(tmp_path / "study", {float(k): 40.0 - k for k in range(1, 13)}, clock_hours=12.0)
    result = time_to_quality({"new": new, "study": study})
    table = time_to_quality_markdown(result)
    assert "| 3 | 9.00 ✓ | 37.00 |" in table and "| 1 | — | 39.00 |" in table
    assert "| study | > 12 | ≥ 4.00× (goal met) |" in table and "| new | 3 |" in table

    script = load_script("scripts/time_to_quality.py")
    out = tmp_path / "out"
    script.main(script.parse_args(["--run", f"new={new}", "--run", f"study={study}", "--output_dir", str(out)]))
    assert json.loads((out / "time_to_quality.json").read_text())["speed_up"]["study"]["at_least"] == 4.0
    assert (out / "time_to_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "time_to_quality.md").read_text() in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no run folder"):
        script.main(script.parse_args(["--run", f"new={tmp_path / 'nowhere'}"]))
