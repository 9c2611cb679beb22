"""How easy the house is to find one's way in: the numbers issue 36 measures, for before/after comparisons.

Prints the six biggest source files and test files (lines), the longest functions (lines, tests aside), the
README's words and mean sentence length, and each guide's words.

    python benchmarks/house_stats.py            # the working tree
    python benchmarks/house_stats.py --rev HEAD # a commit, read through `git show`
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "runs", "outputs", "artifacts", "build", "node_modules"}
# A sentence ends at . ! or ? followed by a space and something that can start a sentence; a " · " separates the
# items of a rendered headline line, each its own statement.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9*`\[(\"“])|\s+·\s+")


def prose_paragraphs(markdown: str) -> list[str]:
    """The running text of a Markdown page: no code blocks, tables, headings, HTML or blank-line breaks."""
    paragraphs, current, in_code = [], [], False
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            continue
        skip = in_code or stripped.startswith(("|", "#", "<", "    ")) or not stripped
        if skip or re.match(r"^([-*]|\d+\.)\s", stripped):
            if current:
                paragraphs.append(" ".join(current))
            current = [] if skip else [re.sub(r"^([-*]|\d+\.)\s+", "", stripped)]
            continue
        current.append(stripped)
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def sentence_lengths(markdown: str) -> list[int]:
    """Words per sentence of the page's running text."""
    lengths = []
    for paragraph in prose_paragraphs(markdown):
        lengths += [len(s.split()) for s in SENTENCE_END.split(paragraph) if s.split()]
    return lengths


def word_count(markdown: str) -> int:
    """Words as `wc -w` counts them: the whole page, code and tables included."""
    return len(markdown.split())


def function_lengths(source: str, path: str) -> list[tuple[int, str]]:
    """(lines, 'path:name') for every function and method of one Python file."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        (node.end_lineno - node.lineno + 1, f"{path}:{node.name}")
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def tree_reader(rev: str | None) -> tuple[list[str], Callable[[str], str]]:
    """The repository's file list and a reader, for the working tree or for one commit."""
    if rev is None:
        paths = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
            and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
        ]
        return sorted(paths), lambda path: (ROOT / path).read_text(encoding="utf-8", errors="replace")
    listing = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", rev],
                             check=True, capture_output=True, text=True).stdout.split()
    def read(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
                              check=True, capture_output=True, text=True).stdout
    return listing, read


def guide_paths(paths: list[str]) -> list[str]:
    """The user guides: every Markdown page directly in docs/ (the lab record in docs/lab/ aside)."""
    return [p for p in paths if re.fullmatch(r"docs/[^/]+\.md", p)]


def report(rev: str | None) -> str:
    paths, read = tree_reader(rev)
    python = {p: read(p) for p in paths if p.endswith(".py")}
    lines = {p: text.count("\n") for p, text in python.items()}
    source = sorted(((n, p) for p, n in lines.items() if not p.startswith("tests/")), reverse=True)
    tests = sorted(((n, p) for p, n in lines.items() if p.startswith("tests/")), reverse=True)
    functions = sorted((f for p, t in python.items() if not p.startswith("tests/")
                        for f in function_lengths(t, p)), reverse=True)
    readme = read("README.md")
    sentences = sentence_lengths(readme)
    out = [f"# house stats ({rev or 'working tree'})", "six biggest source files (lines):"]
    out += [f"  {n:5d}  {p}" for n, p in source[:6]]
    out += ["six biggest test files (lines):"] + [f"  {n:5d}  {p}" for n, p in tests[:6]]
    out += ["longest functions, tests aside (lines):"] + [f"  {n:5d}  {name}" for n, name in functions[:6]]
    out += [f"source files over 500 lines: {sum(n > 500 for n, _ in source)}; "
            f"functions over 120 lines: {sum(n > 120 for n, _ in functions)}"]
    out += [f"README.md: {word_count(readme)} words, {len(sentences)} sentences, "
            f"mean {sum(sentences) / max(len(sentences), 1):.1f} words, longest {max(sentences, default=0)}"]
    out += ["guides (words, mean sentence length):"]
    for path in guide_paths(paths):
        text, lengths = read(path), sentence_lengths(read(path))
        out.append(f"  {word_count(text):6d}  {sum(lengths) / max(len(lengths), 1):5.1f}  {path}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default=None, help="a git revision to measure instead of the working tree")
    print(report(parser.parse_args().rev))


if __name__ == "__main__":
    main()
