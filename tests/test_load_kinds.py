"""`hub_models.hub.load` on the released folders, which ship code for `trust_remote_code`: it builds every kind from
the installed library's classes and never runs the shipped module, even one that was tampered with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub_models.hub import load
from hub_models.hub.kinds import kind_of_folder

RELEASE = Path(__file__).resolve().parents[1] / "release"
SHIPPING = sorted(p.parent.name for p in RELEASE.glob("*/*.py"))


@pytest.mark.parametrize("name", SHIPPING)
def test_a_tampered_shipped_module_is_never_run(name: str, tmp_path: Path) -> None:
    folder = tmp_path / name
    shutil.copytree(RELEASE / name, folder, ignore=shutil.ignore_patterns("evaluation"))
    marker = tmp_path / "ran"
    for module in folder.glob("*.py"):
        module.write_text(f"open({str(marker)!r}, 'w').write('the repo code ran')\n")
    model = load(folder)
    kind = kind_of_folder(folder)
    assert type(model).__name__ in kind.classes and type(model).__module__.startswith(("hub_models", "diffusers"))
    assert not marker.exists()
