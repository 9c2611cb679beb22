"""The library's layering (docs/ARCHITECTURE.md): imports go one way, packages that share a layer do not import each
other (the top layer's `study`, `space` and `training` above all), one table dispatches on the kind of a model, the
models layer stays light, and a plain (non-editable) install ships what it needs, the model-card templates
included."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "hub_models"
# Lowest first; a module may import its own layer and the layers below it, never above.
LAYERS = {
    "io": 0,
    "reference": 0,
    "models": 1,
    "diffusion": 2,
    "data": 3,
    "image_datasets": 3,
    "figures": 3,
    "evaluation": 4,
    "hub": 5,
    "study": 6,
    "space": 6,
    "training": 6,
}
# Packages of one layer that must not import each other (docs/ARCHITECTURE.md, "Rules"): each is a room of its own.
SIBLINGS = ({"io", "reference"}, {"data", "figures"}, {"study", "space", "training"})
# The modules that once switched on the kind string: they look the kind up in `hub_models.hub.kinds` instead.
KIND_DISPATCHERS = ("hub/cards.py", "hub/push.py", "hub/load.py")
ARCHITECTURE_MD = REPO / "docs" / "ARCHITECTURE.md"
HEAVY = {"datasets", "evaluate", "gradio", "matplotlib", "sklearn", "scipy"}


def _modules() -> list[Path]:
    return sorted(p for p in LIBRARY.rglob("*.py") if "modules" not in p.relative_to(LIBRARY).parts)


def _layer(path: Path) -> str | None:
    first = path.relative_to(LIBRARY).with_suffix("").parts[0]
    return None if first == "__init__" else first


def _project_imports(tree: ast.AST) -> list[tuple[ast.ImportFrom | ast.Import, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hub_models":
            parts = node.module.split(".")
            targets = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            found += [(node, t) for t in targets]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node, "<relative>"))
    return found


def test_every_module_belongs_to_a_layer() -> None:
    unknown = {str(p.relative_to(REPO)) for p in _modules() if _layer(p) not in (*LAYERS, None)}
    assert not unknown, f"modules outside the layer table of docs/ARCHITECTURE.md: {sorted(unknown)}"


def test_imports_only_go_down_the_layers() -> None:
    upward = []
    for path in _modules():
        me = _layer(path)
        if me is None:
            continue
        for node, target in _project_imports(ast.parse(path.read_text())):
            if target == "<relative>":
                upward.append(f"{path.relative_to(REPO)}:{node.lineno}: relative import (use hub_models.<layer>)")
            elif target in LAYERS and LAYERS[target] > LAYERS[me]:
                upward.append(f"{path.relative_to(REPO)}:{node.lineno}: {me} imports {target}")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_packages_sharing_a_layer_do_not_import_each_other() -> None:
    """The rule as docs/ARCHITECTURE.md states it, not only the numbers: e.g. the Space never imports the study (its
    About tab reads the report's files, not `hub_models.study`), and neither imports the trainers."""
    crossing = []
    for path in _modules():
        me = _layer(path)
        group = next((g for g in SIBLINGS if me in g), set())
        for node, target in _project_imports(ast.parse(path.read_text())):
            if target in group and target != me:
                crossing.append(f"{path.relative_to(REPO)}:{node.lineno}: {me} imports {target}")
    assert not crossing, "imports between packages of one layer:\n" + "\n".join(crossing)


def test_the_docs_state_the_rules_this_test_checks() -> None:
    text = ARCHITECTURE_MD.read_text()
    assert "`study`, `space` and `training` share the top layer and do not import each other" in text
    for package in LAYERS:
        assert f"hub_models.{package}" in text, f"docs/ARCHITECTURE.md does not place hub_models.{package}"


def test_no_module_switches_on_the_kind_string() -> None:
    """cards, push and load ask `hub_models.hub.kinds` for a folder's kind; none compares a kind name
    (`kind == "vae"`, `kind in ("ddpm", "ldm")`, a `match` on it)."""
    from hub_models.hub.kinds import KINDS

    found = []
    for rel in KIND_DISPATCHERS:
        tree = ast.parse((LIBRARY / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Match):
                found.append(f"{rel}:{node.lineno}: match statement")
            if isinstance(node, ast.Compare):
                names = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
                found += [f"{rel}:{node.lineno}: compares with {n!r}" for n in names & set(KINDS)]
    assert not found, "kind dispatch outside hub_models/hub/kinds.py:\n" + "\n".join(found)


def test_the_kinds_table_of_the_docs_lists_every_kind() -> None:
    from hub_models.hub.kinds import KINDS

    section = ARCHITECTURE_MD.read_text().split("## One table per model kind", 1)
    assert len(section) == 2, "docs/ARCHITECTURE.md has no section on the kinds table"
    rows = set(re.findall(r"^\| `([a-z-]+)` \|", section[1].split("\n## ", 1)[0], re.M))
    assert rows == set(KINDS), f"docs list {sorted(rows)}, hub_models.hub.kinds has {sorted(KINDS)}"
    for kind in KINDS.values():
        for cls in kind.classes:
            assert cls in section[1], f"the docs' kinds table does not name {cls}"


def test_no_project_import_hides_inside_a_function() -> None:
    """Imports inside functions were how the old flat package dodged cycles; the layers make them unnecessary."""
    hidden = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [
                    f"{path.relative_to(REPO)}:{node.lineno}"
                    for node, _ in _project_imports(ast.Module(body=fn.body, type_ignores=[]))
                ]
    assert not hidden, f"project imports inside functions: {sorted(set(hidden))}"


def _fresh_modules(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_models_import_nothing_beyond_what_diffusers_modelmixin_imports() -> None:
    baseline = _fresh_modules("import diffusers.models.modeling_utils")
    ours = _fresh_modules("import hub_models.models; from hub_models import ConvVAE, DenseVAE, DigitClassifier")
    extra = ours - baseline - {"hub_models"}
    assert not extra, f"hub_models.models pulls in {sorted(extra)} beyond diffusers' ModelMixin"
    assert not ours & HEAVY


@pytest.mark.slow
def test_loading_a_released_vae_stays_light(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        from hub_models.models import ConvVAE
        vae = ConvVAE.from_pretrained({str(REPO / "release" / "vae-conv-z2-beta1")!r})
        assert vae.sample(2).shape == (2, 1, 28, 28)
        print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r})))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_a_plain_install_renders_a_model_card_outside_the_checkout(tmp_path: Path) -> None:
    """`pip install .` (not -e): the wheel carries the templates of model_cards/ and renders a card from anywhere."""
    source, wheel_dir, target = tmp_path / "source", tmp_path / "wheel", tmp_path / "site"
    # Build from a copy (the link hub_models/model_cards → ../model_cards kept), so the checkout gets no build/.
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "hub_models", source / "hub_models", symlinks=True, ignore=skip)
    shutil.copytree(REPO / "model_cards", source / "model_cards", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheel_dir, source],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("mnist_genlab-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    assert (target / "hub_models" / "model_cards" / "vae.md").is_file()
    assert not (target / "hub_models" / "model_cards").is_symlink()
    code = textwrap.dedent(f"""
        import hub_models
        from hub_models.hub.cards import render_model_card
        assert hub_models.__file__.startswith({str(target)!r}), hub_models.__file__
        card = render_model_card({str(REPO / "release" / "vae-conv-z2-beta1")!r}, "you/mnist-genlab-vae-conv-z2-beta1")
        print(card.data.to_dict()["model-index"][0]["name"])
    """)
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mnist-genlab-vae-conv-z2-beta1" in out.stdout
