"""scripts/ holds the tools that do not train; their old paths under training/ still run them for one release."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MOVED = ["evaluate_ddpm", "push_to_hub", "publish_study", "publish_space", "make_release", "run_study",
         "anomaly_study", "completion_study", "hybrid_study", "ddpm_sampler_study", "export_training_state"]


def _refusal(run_script, capsys, path: str, tmp_path: Path) -> tuple[str, str]:
    """The script's refusal of a run folder without checkpoints, in-process (`run_script`): the message `SystemExit`
    carries (a process prints it and exits 1) and what went to stderr before it."""
    with pytest.raises(SystemExit) as refused:
        run_script(path, "--output_dir", str(tmp_path), "--dest", str(tmp_path / "out"))
    assert isinstance(refused.value.code, str)  # a message: the process's exit code is 1
    return refused.value.code, capsys.readouterr().err


def test_the_new_path_runs_and_says_nothing_about_moving(tmp_path, run_script, capsys):
    message, err = _refusal(run_script, capsys, "scripts/export_training_state.py", tmp_path)
    assert message.startswith("error: no checkpoint in") and "moved" not in err


def test_an_old_path_runs_the_new_script_with_a_deprecation_note(tmp_path, run_script, capsys):
    message, err = _refusal(run_script, capsys, "training/export_training_state.py", tmp_path)
    assert err.startswith("note: training/export_training_state.py moved to scripts/export_training_state.py")
    assert message.startswith("error: no checkpoint in")


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


TRAINERS = {"train_vae": "training/README.md", "train_ddpm": "training/README.md",
            "train_latent_prior": "training/README.md", "train_classifier": "training/README.md",
            "distill_ddpm": "training/README.md", "train_autoencoder": "docs/LATENT_DIFFUSION.md",
            "train_ldm": "docs/LATENT_DIFFUSION.md"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_flag_of_a_training_script_is_in_its_flag_table(name, load_script, monkeypatch):
    import argparse

    class Parsed(Exception):
        pass

    def capture(parser, *args, **kwargs):
        raise Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(Parsed) as parsed:
        load_script(f"training/{name}.py").parse_args([])
    tables = "\n".join(line for page in {"training/README.md", TRAINERS[name]}
                       for line in (ROOT / page).read_text(encoding="utf-8").splitlines()
                       if line.startswith("|") and "`--" in line)
    flags = [flag for action in parsed.value.args[0]._actions for flag in action.option_strings
             if flag.startswith("--") and flag != "--help"]
    assert len(flags) > 20
    missing = [flag for flag in flags if f"`{flag}`" not in tables]
    assert not missing, f"{name}: flags missing from the README flag tables: {missing}"
