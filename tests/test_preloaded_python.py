"""tests/preloaded_python.py: a script forked from the preloaded server behaves as `python script.py` does.
Each test runs the same script both ways and compares what a test can see of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import preloaded_python
import pytest

SCRIPT = textwrap.dedent("""
    import atexit, json, os, sys
    atexit.register(lambda: print("exit handler ran"))
    import torch
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0], "env": os.environ.get("MARK"),
                      "extra": sys.path[1], "threads": torch.get_num_threads(), "main": __name__}))
    print("to stderr", file=sys.stderr)
    if "--fail" in sys.argv:
        def inner():
            raise ValueError("bad input")
        inner()
    sys.exit(int(sys.argv[1]))
""")


@pytest.fixture()
def script(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "script.py"
    path.parent.mkdir()
    path.write_text(SCRIPT)
    return path


def both(script: Path, args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, ...]:
    environ = {**os.environ, "MARK": "m", "PYTHONPATH": str(tmp_path / "extra"), **env}
    kwargs = {"env": environ, "cwd": tmp_path, "timeout": 120}
    real = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, **kwargs)
    return real, preloaded_python.run([script, *args], **kwargs)


def test_exit_code_output_argv_cwd_path_environment_and_exit_handlers(script: Path, tmp_path: Path) -> None:
    real, forked = both(script, ["3", "a b"], tmp_path, OMP_NUM_THREADS="2")
    assert forked.returncode == real.returncode == 3
    assert forked.stdout == real.stdout and '"threads": 2' in real.stdout and "exit handler ran" in real.stdout
    assert forked.stderr == real.stderr == "to stderr\n"


def test_an_exception_prints_the_scripts_traceback_and_exits_1(script: Path, tmp_path: Path) -> None:
    real, forked = both(script, ["0", "--fail"], tmp_path)
    assert forked.returncode == real.returncode == 1
    assert forked.stderr == real.stderr
    lines = real.stderr.splitlines()
    assert lines[1] == "Traceback (most recent call last):" and lines[2].startswith(f'  File "{script}"')


def test_sys_exit_with_a_message(tmp_path: Path) -> None:
    script = tmp_path / "refuse.py"
    script.write_text("import sys\nsys.exit('error: no such run')\n")
    real, forked = both(script, [], tmp_path)
    assert (forked.returncode, forked.stderr) == (real.returncode, real.stderr) == (1, "error: no such run\n")


def test_the_process_is_its_own_signals_and_exit_codes(tmp_path: Path) -> None:
    script = tmp_path / "wait.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    log = tmp_path / "wait.log"
    proc = preloaded_python.start([script], stdout=log, cwd=tmp_path)
    assert proc.pid != os.getpid() and proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == proc.returncode == -signal.SIGKILL


def test_only_the_environment_independent_libraries_are_preloaded(tmp_path: Path) -> None:
    script = tmp_path / "modules.py"
    script.write_text("import sys\nprint(sorted(m for m in ('torch', 'huggingface_hub', 'diffusers', 'hub_models') "
                      "if m in sys.modules))\n")
    assert preloaded_python.run([script], cwd=tmp_path).stdout == "['torch']\n"
