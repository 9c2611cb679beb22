"""The docs as a newcomer reads them (issue 36): every path, module and link they name exists; the README's first
screen has the picture, the commands and the Space; the guides stay short and undated; every results box says
what benchmarks/results/*.json says. Text only: no imports of the library, well under a second."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TOP = ("hub_models", "training", "scripts", "benchmarks", "tests", "docs", "release", "spaces_app", "model_cards",
       ".ci")
# A repo path: one of the top folders, then path characters; a glob or placeholder right after it is not a path.
_TOP = "|".join(re.escape(t) for t in TOP)
PATH = re.compile(rf"(?<![\w/.~$-])((?:{_TOP})/[\w./-]*\w)(?![\w*<{{/-])")
MODULE = re.compile(r"(?<![\w./])hub_models(?:\.\w+)+")
LINK = re.compile(r"\]\(([^)\s]+)\)")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
# Folders the runs write into (never committed); the moved scripts may be cited at their new place already.
GENERATED = ("tests/artifacts",)
# Folders that lived in git once; the lab record names them with the commit that holds them.
HISTORICAL = ("release/ddpm-training-state", "release/ddpm-conditional-training-state")
MOVED_SCRIPTS = ("evaluate_ddpm.py", "push_to_hub.py", "publish_study.py", "publish_space.py", "make_release.py",
                 "run_study.py", "anomaly_study.py", "completion_study.py", "hybrid_study.py",
                 "ddpm_sampler_study.py", "export_training_state.py")
GUIDES = ("VAE.md", "DDPM.md", "LATENT_DIFFUSION.md", "SPACE.md", "HUB.md", "METRICS.md", "BENCHMARKS.md",
          "DATASETS.md", "STUDY.md")
GUIDE_WORDS, README_WORDS, MEAN_SENTENCE = 2500, 1500, 25


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


stats = _load("house_stats")
render = _load("render_results")


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def repo_path_exists(path: str) -> bool:
    if path.startswith(GENERATED) or path in HISTORICAL or (ROOT / path).exists():
        return True
    return path.startswith("scripts/") and path.removeprefix("scripts/") in MOVED_SCRIPTS


def missing_paths(text: str) -> list[str]:
    return sorted({p for p in PATH.findall(text) if not repo_path_exists(p)})


def module_exists(dotted: str) -> bool:
    """`hub_models.a.b.name`: the longest prefix that is a module file, and each name after it defined there."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        for file in (base.with_suffix(".py"), base / "__init__.py"):
            if file.is_file():
                rest = parts[cut:]
                return not rest or re.search(rf"\b{re.escape(rest[0])}\b", file.read_text(encoding="utf-8")) is not None
    return False


def slugs(markdown: str) -> set[str]:
    """GitHub's anchors for the page's headings."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not re.match(r"#{1,6} ", line):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in slugs(file.read_text(encoding="utf-8")):
            broken.append(target)
    return broken


def test_the_checks_can_fail() -> None:
    assert missing_paths("see `hub_models/unet.py` and hub_models/ddpm_evaluation.py") == [
        "hub_models/ddpm_evaluation.py", "hub_models/unet.py"]
    assert missing_paths("`hub_models/models/unet.py`, `release/<name>`, `tests/test_space*.py`") == []
    assert not module_exists("hub_models.ddpm_evaluation") and module_exists("hub_models.diffusion.sampling")
    assert not module_exists("hub_models.diffusion.sampling.no_such_function")
    assert DATE.search("the run of 2026-12-01") and not DATE.search("FID 4.36 at N = 10,000")
    assert "why-the-ode-samplers-stall" in slugs("## Why the ODE samplers stall\n")


@pytest.mark.parametrize("page", pages(), ids=_ids(pages()))
def test_every_repo_path_and_module_named_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert missing_paths(text) == []
    assert [m for m in sorted(set(MODULE.findall(text))) if not module_exists(m)] == []


@pytest.mark.parametrize("page", pages(), ids=_ids(pages()))
def test_every_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", pages(), ids=_ids(pages()))
def test_no_file_outside_the_repository_is_cited(page: Path) -> None:
    assert re.findall(r"\.\./shared/\S+", page.read_text(encoding="utf-8")) == []


def test_readme_is_short_and_its_first_screen_has_what_a_newcomer_needs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = "\n".join(text.splitlines()[:60])
    assert stats.word_count(text) <= README_WORDS
    lengths = stats.sentence_lengths(text)
    assert sum(lengths) / len(lengths) <= MEAN_SENTENCE
    assert re.search(r"<img src=\"[^\"]+\.png\"|!\[[^\]]*\]\([^)]+\.png\)", first), "a picture of generated digits"
    assert "python spaces_app/app.py" in first
    assert "python -m pytest" in first
    assert re.search(r"accelerate launch training/train_vae\.py|python training/train_vae\.py", first)
    assert "from_pretrained" in first or "hub_models.load" in first, "sampling a released model"
    assert "I want to" in text


def test_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q" in ci
    assert "python -m pytest" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", GUIDES)
def test_guides_are_short_undated_and_plain(name: str) -> None:
    text = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert stats.word_count(text) <= GUIDE_WORDS
    assert DATE.findall(text) == []
    assert "(superseded)" not in text
    lengths = stats.sentence_lengths(text)
    assert sum(lengths) / len(lengths) <= MEAN_SENTENCE


def test_every_page_in_docs_is_a_guide_a_stub_or_generated() -> None:
    """Dated records belong in docs/lab/; docs/REPORT.md is written by scripts/run_study.py."""
    for page in (ROOT / "docs").glob("*.md"):
        words = stats.word_count(page.read_text(encoding="utf-8"))
        assert page.name in (*GUIDES, "ARCHITECTURE.md", "REPORT.md") or words < 60, page.name


def test_guides_and_readme_cite_the_moved_scripts_at_their_new_place() -> None:
    for page in [ROOT / "README.md", *(ROOT / "docs" / g for g in GUIDES)]:
        text = page.read_text(encoding="utf-8")
        assert [s for s in MOVED_SCRIPTS if f"training/{s}" in text] == [], page.name


def test_result_files_hold_what_the_boxes_need() -> None:
    results = render.load_results()
    assert results
    for name, result in results.items():
        assert {"title", "group", "page", "record", "command", "date", "machine", "headline", "values"} <= set(
            result), name
        assert result["group"] in ("results", "benchmarks", "reference"), name
        render.headline(result)  # every placeholder names a value


def test_results_boxes_agree_with_the_result_files() -> None:
    assert render.stale_pages() == []
    rendered = render.pages()
    assert "README.md" in rendered and "docs/BENCHMARKS.md" in rendered


def test_a_changed_number_makes_the_boxes_disagree() -> None:
    results = json.loads(json.dumps(render.load_results()))
    first = next(iter(results.values()))
    key = next(iter(first["values"]))
    first["values"][key]["value"] = "changed"
    assert render.stale_pages(results) != []


def _lookup(data: object, key: list) -> object:
    for part in key:
        data = data[part]
    return data


def test_values_with_a_source_agree_with_it() -> None:
    """A value read off a committed run file (a release's metrics.json or evaluation.json) is that file's number,
    rounded as the page prints it."""
    checked = 0
    for name, result in render.load_results().items():
        for key, value in result["values"].items():
            if "source" not in value:
                continue
            data = json.loads((ROOT / value["source"]["file"]).read_text(encoding="utf-8"))
            source = _lookup(data, value["source"]["key"])
            places = value.get("decimals", len(str(value["value"]).partition(".")[2]))
            assert round(source, places) == pytest.approx(value["value"]), f"{name}.{key}"
            checked += 1
    assert checked >= 5
