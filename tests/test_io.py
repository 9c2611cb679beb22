"""hub_models.io: the process-wide allocator setting of long CPU jobs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

# A call whose output (64 × 256 × 28 × 28 fp32 = 51 MB) is above glibc's largest mmap threshold: by default it is
# mapped, faulted in and unmapped on every call. In a fresh process (the setting is process-wide and sticks): the
# page faults of 5 calls and their output with glibc's default, then the same after keep_freed_memory().
PROGRAM = textwrap.dedent("""
    import json, resource, torch
    from hub_models.io import keep_freed_memory
    torch.manual_seed(0)
    x, net = torch.randn(64, 1, 28, 28), torch.nn.Conv2d(1, 256, 3, padding=1)

    def five_calls():
        out = net(net(x)[:, :1])  # warm-up: two live outputs, as in the loop
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            out = net(x)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, out.double().sum().item()

    with torch.inference_mode():
        default = five_calls()
        kept = keep_freed_memory()
        print(json.dumps({"kept": kept, "default": default, "after": five_calls()}))
""")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_keep_freed_memory_stops_refaulting_large_blocks_and_changes_no_result():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    result = json.loads(out.strip().splitlines()[-1])
    (faults_default, sum_default), (faults_kept, sum_kept) = result["default"], result["after"]
    assert result["kept"] is True
    assert faults_default > 5 * 10_000  # 5 × 51 MB of fresh 4 KB pages, each faulted in
    assert faults_kept < faults_default / 10, (faults_kept, faults_default)
    assert sum_kept == sum_default  # the memory is reused, the arithmetic is the same
