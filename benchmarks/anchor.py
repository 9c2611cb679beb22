"""Shared machinery of the anchor benchmarks (`ddpm_throughput.py`, `vae_throughput.py`): patch a third-party
example script, run it and our training script as subprocesses in alternating rounds, and time only the steps
after a warm-up from the progress lines each script prints.

How a run is timed: the child's stdout and stderr go into one pipe, which this process reads as it arrives and
splits on "\\n" and "\\r" (tqdm redraws its bar with "\\r"). Each piece is stamped with `time.perf_counter()` on
arrival; a per-side regex turns a progress piece into a count of finished optimizer steps, and the first stamp of
each count is kept. With c0 = the first count seen ≥ `warmup` and c1 = the first count seen ≥ c0 + `steps`, the
rate is (c1 − c0) · batch / (t[c1] − t[c0]): start-up (imports, data loading, model building, compilation of
the first steps) lies before t[c0] and never counts, and the child is stopped as soon as c1 is seen, so its
end-of-epoch work (sampling, saving) never runs. Both children run with PYTHONUNBUFFERED=1, so lines arrive when
written; pipe latency (~ms) is small against the timed window (seconds).

On a shared machine the wall-clock rate measures the load as much as the script; where `/proc/<pid>/stat` exists
(Linux) the child's CPU time (user + system, all its threads, clock ticks of 10 ms) is read at the same two stamps,
and `Side.cpu_rates` gets (c1 − c0) · batch / CPU seconds: the work a step costs, which other processes barely move.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def patch_script(source: str, replacements: Sequence[tuple[str, str]], name: str) -> str:
    """`source` with each `old` replaced by `new` (first occurrence); a clear error if an `old` is missing.

    Args:
        source: the third-party script's text.
        replacements: (old, new) pairs, applied in order.
        name: what to call the script in the error (its path).
    """
    for old, new in replacements:
        if old not in source:
            raise ValueError(
                f"{name}: expected line {old.strip()!r} not found; this benchmark patches that line, so the script "
                "is not the version it was written for (see the benchmark's docstring for how to get the right one)"
            )
        source = source.replace(old, new, 1)
    return source


def write_patched(script: str | os.PathLike, replacements: Sequence[tuple[str, str]], out: Path) -> Path:
    """Write a patched copy of `script` to `out` (the original is never modified)."""
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such example script (see the benchmark's docstring for how to get it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(patch_script(path.read_text(), replacements, str(path)))
    return out


def write_imagefolder(images: np.ndarray, out_dir: Path) -> Path:
    """Write uint8 digits `(n, 28, 28)` as `out_dir/00000.png ...` (grayscale PNGs: a `datasets` imagefolder)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob("*.png"))
    if len(existing) == len(images):
        return out_dir  # written by an earlier run with the same digits count
    for old in existing:
        old.unlink()
    for i, image in enumerate(images):
        Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(out_dir / f"{i:05d}.png")
    return out_dir


@dataclass
class Side:
    """One training script run as a subprocess; `count` maps a progress line's match to finished steps."""

    name: str
    argv: list[str]
    pattern: re.Pattern[str]
    count: Callable[[re.Match[str]], int]
    cwd: Path = REPO
    rates: list[float] = field(default_factory=list)
    cpu_rates: list[float] = field(default_factory=list)  # per CPU second of the child (Linux), see timed_run


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` so far (all its threads), or None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15 of stat


def timed_run(side: Side, batch_size: int, warmup: int, steps: int, log_path: Path) -> float:
    """Run `side` once; images/s over the steps after `warmup` (see the module docstring). Also appends the
    images per CPU second of the same steps to `side.cpu_rates` where the CPU time can be read."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    seen: dict[int, float] = {}
    cpu: dict[int, float | None] = {}
    with open(log_path, "w") as log:
        log.write(" ".join(side.argv) + "\n")
        proc = subprocess.Popen(side.argv, cwd=side.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        buffer = ""
        try:
            while chunk := os.read(proc.stdout.fileno(), 1 << 16):
                now = time.perf_counter()
                pieces = re.split(r"[\r\n]", buffer + chunk.decode(errors="replace"))
                buffer = pieces.pop()
                for piece in pieces:
                    log.write(piece + "\n")
                    if (match := side.pattern.search(piece)) and side.count(match) not in seen:
                        seen[side.count(match)], cpu[side.count(match)] = now, cpu_seconds(proc.pid)
                c0 = min((c for c in seen if c >= warmup), default=None)
                c1 = min((c for c in seen if c0 is not None and c >= c0 + steps), default=None)
                if c0 is not None and c1 is not None:
                    start, end = cpu[c0], cpu[c1]
                    if start is not None and end is not None and end > start:
                        side.cpu_rates.append((c1 - c0) * batch_size / (end - start))
                    return (c1 - c0) * batch_size / (seen[c1] - seen[c0])
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    raise RuntimeError(
        f"{side.name} exited with code {proc.returncode} before {warmup} + {steps} steps were seen "
        f"(steps seen: {sorted(seen)[-3:]}); its output is in {log_path}"
    )


def run_rounds(
    sides: Sequence[Side], batch_size: int, warmup: int, steps: int, rounds: int, log_dir: Path, label: str = ""
) -> None:
    """Alternate the sides (A B, B A, ...) so machine load drifts hit both alike; print each round."""
    for r in range(rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            load = os.getloadavg()[0]
            stem = re.sub(r"[^\w.-]+", "_", f"{label}-{side.name}-{r + 1}".strip("-"))
            rate = timed_run(side, batch_size, warmup, steps, log_dir / f"{stem}.log")
            side.rates.append(rate)
            cpu = f", {side.cpu_rates[-1]:8.1f} per CPU second" if len(side.cpu_rates) == len(side.rates) else ""
            print(
                f"  {label} round {r + 1}: {side.name:28s} {rate:8.1f} images/s{cpu}  (load average {load:.1f})",
                flush=True,
            )


def summarize(ours: Side, example: Side, label: str = "") -> float:
    """Print the medians and the ratio ours/example; return the ratio."""
    o, e = statistics.median(ours.rates), statistics.median(example.rates)
    for side, rate in ((ours, o), (example, e)):
        print(
            f"{label} {side.name:28s}: {rate:8.1f} images/s (median of {len(side.rates)}; rounds: "
            f"{', '.join(f'{v:.1f}' for v in side.rates)})"
        )
    verdict = "faster" if o > e else "not faster"
    print(f"{label} ratio ours/example: {o / e:.2f}× (ours is {verdict})", flush=True)
    if ours.cpu_rates and example.cpu_rates:
        oc, ec = statistics.median(ours.cpu_rates), statistics.median(example.cpu_rates)
        for side, rate in ((ours, oc), (example, ec)):
            print(f"{label} {side.name:28s}: {rate:8.1f} images per CPU second (median; rounds: "
                  f"{', '.join(f'{v:.1f}' for v in side.cpu_rates)})")
        print(f"{label} ratio ours/example per CPU second: {oc / ec:.2f}×", flush=True)
    return o / e


def environment_line() -> str:
    """Threads and load, printed with every result (the machine may be shared)."""
    return (
        f"python {sys.version.split()[0]}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
