"""hub_models.io: the process-wide allocator setting of long CPU jobs."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

# A call whose output (64 × 256 × 28 × 28 fp32 = 51 MB) is above glibc's largest mmap threshold: by default it is
# mapped, faulted in and unmapped on every call. Prints: what keep_freed_memory() returned, the page faults of 5
# calls after 2 warm-up calls, and a checksum of the output.
PROGRAM = textwrap.dedent("""
    import resource, sys, torch
    from hub_models.io import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else None
    torch.manual_seed(0)
    x, net = torch.randn(64, 1, 28, 28), torch.nn.Conv2d(1, 256, 3, padding=1)
    with torch.inference_mode():
        out = net(net(x)[:, :1])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            out = net(x)
        print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, out.double().sum().item())
""")


def _run(setting: str) -> tuple[str, int, str]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, setting], capture_output=True, text=True, check=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""}).stdout.split()
    return out[0], int(out[1]), out[2]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_keep_freed_memory_stops_refaulting_large_blocks_and_changes_no_result():
    _, faults_default, sum_default = _run("default")
    kept, faults_kept, sum_kept = _run("keep")
    assert kept == "True"
    assert faults_default > 5 * 10_000  # 5 × 51 MB of fresh 4 KB pages, each faulted in
    assert faults_kept < faults_default / 10, (faults_kept, faults_default)
    assert sum_kept == sum_default  # the memory is reused, the arithmetic is the same
