"""`python script.py` processes forked from a server that imported torch & co. once per test worker.

A test that needs a script in a process of its own (its exit code, a signal, another environment) starts it with
`start` or `run` here instead of `subprocess`. The process is forked from multiprocessing's fork server, which
imports the heavy libraries whose import does not depend on the environment (torch, torchvision, numpy, scipy,
sympy) once; that is about 6 s of CPU less per process. Everything that reads the environment when imported
(huggingface_hub, diffusers, accelerate, the project) is imported by the script itself, after its environment is
set. The child is what `python script.py` would be: its own pid, exit code and signals, the given environment and
working directory, `sys.argv`, `sys.path` from the script's folder and PYTHONPATH, stdout and stderr into files,
exit handlers run, and a traceback that starts at the script.
"""

from __future__ import annotations

import atexit
import functools
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

PRELOAD = ["torch", "torch._dynamo", "torchvision", "numpy", "scipy.stats", "sympy", "safetensors.torch"]


@functools.cache
def _fork_server() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


@functools.cache
def _base_sys_path() -> list[str]:
    """`sys.path` of a fresh interpreter after its first entry (the script's folder), without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import json, sys; print(json.dumps(sys.path[1:]))"
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                     check=True).stdout)  # fmt: skip


def _redirect(fd: int, path: str) -> None:
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, fd)
    os.close(target)


def _child(script: str, args: list[str], env: dict[str, str], cwd: str, stdout: str, stderr: str,
           base_path: list[str]) -> None:  # fmt: skip
    """In the forked process: become `python script *args`."""
    sys.stdout.flush(), sys.stderr.flush()
    _redirect(1, stdout), _redirect(2, stderr)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    if "OMP_NUM_THREADS" in env:  # torch read the server's value when it was imported
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [str(Path(script).resolve().parent), *extra, *base_path]
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as error:
        tb, names = error.__traceback__, {script, str(Path(script).resolve())}
        while tb is not None and tb.tb_frame.f_code.co_filename not in names:
            tb = tb.tb_next  # drop the frames of this module and runpy: the traceback starts at the script
        traceback.print_exception(type(error), error, tb or error.__traceback__)
        raise SystemExit(1) from None
    finally:
        atexit._run_exitfuncs()  # multiprocessing's children skip them; `python` runs them
        sys.stdout.flush(), sys.stderr.flush()


class PythonProcess:
    """The part of `subprocess.Popen`'s interface the tests use."""

    def __init__(self, process: multiprocessing.process.BaseProcess, args: list[str]) -> None:
        self._process, self.args = process, args

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def kill(self) -> None:
        if self._process.exitcode is None:
            self._process.kill()

    def terminate(self) -> None:
        if self._process.exitcode is None:
            self._process.terminate()


def start(args: Sequence[str | os.PathLike], stdout: str | os.PathLike, stderr: str | os.PathLike | None = None,
          env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None) -> PythonProcess:
    """`python *args` in the background (args[0] is the script), its output appended to `stdout` (and `stderr`,
    or the same file)."""
    script, *flags = map(str, args)
    process = _fork_server().Process(
        target=_child, daemon=False,
        args=(script, flags, dict(os.environ if env is None else env), str(cwd or os.getcwd()), str(stdout),
              str(stderr or stdout), _base_sys_path()),
    )  # fmt: skip
    process.start()
    return PythonProcess(process, [sys.executable, script, *flags])


def run(args: Sequence[str | os.PathLike], env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None, timeout: float | None = None,
        check: bool = False) -> subprocess.CompletedProcess:  # fmt: skip
    """`subprocess.run([sys.executable, *args], capture_output=True, text=True, ...)`, forked from the server."""
    with tempfile.TemporaryDirectory(prefix="preloaded-") as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        process = start(args, out, err, env=env, cwd=cwd)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        done = subprocess.CompletedProcess(process.args, code, out.read_text(errors="replace"),
                                           err.read_text(errors="replace"))  # fmt: skip
    if check:
        done.check_returncode()
    return done
