"""Runs scripts one after the other in this one Python process, each as `python <script> <flags>` would run it:
`python tests/run_in_one_process.py training/train_ddpm.py --flag 1 -- scripts/evaluate_ddpm.py --flag 2`.

The session runs' chains (tests/conftest.py) use it: one interpreter start and one torch / diffusers import (about
7 s of CPU) for the whole chain instead of one per script. `run_as_main` is also the in-process `run_script` fixture.
"""

from __future__ import annotations

import runpy
import sys


def run_as_main(script: str, flags: list[str]) -> None:
    """`script` as `__main__` with its argv; `sys.exit(0)` ends it as it ends a process, another code propagates
    as `SystemExit`. Accelerate's process-wide state is reset after it: the next script starts as in a new process."""
    from accelerate.state import AcceleratorState, GradientState

    argv = sys.argv
    sys.argv = [script, *flags]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise
    finally:
        sys.argv = argv
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def main(args: list[str]) -> None:
    commands: list[list[str]] = [[]]
    for arg in args:
        if arg == "--":
            commands.append([])
        else:
            commands[-1].append(arg)
    for script, *flags in commands:
        print(f"[run_in_one_process] {script} {' '.join(flags)}", flush=True)
        run_as_main(script, flags)


if __name__ == "__main__":
    main(sys.argv[1:])
