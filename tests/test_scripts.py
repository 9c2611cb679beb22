"""scripts/ holds the tools that do not train; their old paths under training/ still run them for one release."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MOVED = ["evaluate_ddpm", "push_to_hub", "publish_study", "publish_space", "make_release", "run_study",
         "anomaly_study", "completion_study", "hybrid_study", "ddpm_sampler_study", "export_training_state"]


def _run(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_new_path_runs_and_says_nothing_about_moving(tmp_path):
    done = _run(ROOT / "scripts" / "export_training_state.py", "--output_dir", str(tmp_path), "--dest",
                str(tmp_path / "out"))
    assert done.returncode == 1
    assert "no checkpoint in" in done.stderr and "moved" not in done.stderr


def test_an_old_path_runs_the_new_script_with_a_deprecation_note(tmp_path):
    done = _run(ROOT / "training" / "export_training_state.py", "--output_dir", str(tmp_path), "--dest",
                str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr
    note, *rest = done.stderr.splitlines()
    assert note.startswith("note: training/export_training_state.py moved to scripts/export_training_state.py")
    assert any("no checkpoint in" in line for line in rest)


@pytest.mark.parametrize("name", MOVED)
def test_every_old_path_is_a_shim_to_an_existing_script(name, load_script):
    assert (ROOT / "scripts" / f"{name}.py").is_file()
    shim = (ROOT / "training" / f"{name}.py").read_text()
    assert f'"scripts" / "{name}.py"' in shim and len(shim.splitlines()) < 15
    assert callable(load_script(f"training/{name}.py").parse_args)  # importable the way the tests load scripts


def test_scripts_readme_lists_every_script():
    readme = (ROOT / "scripts" / "README.md").read_text()
    for path in (ROOT / "scripts").glob("*.py"):
        assert f"`{path.name}`" in readme, path.name
