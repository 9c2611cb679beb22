"""Write the results boxes of README.md and docs/*.md from benchmarks/results/*.json.

Every headline number a guide quotes lives in one result file (value, command, date, machine); the pages only
show what this script renders between markers:

    <!-- render: box ddpm ddpm_conditional -->     a table per result file, with its command
    <!-- render: headlines results -->             one line: each file of that group's headline, linked
    <!-- render: benchmarks -->                    the benchmark table (group "benchmarks")
    ...
    <!-- /render -->

    python benchmarks/render_results.py           # rewrite the pages
    python benchmarks/render_results.py --check   # exit 1 if a page disagrees with the files
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- render: ([^>]*?) -->\n)(.*?)(<!-- /render -->)", re.DOTALL)


def load_results(results_dir: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Every result file by its stem."""
    results = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in results_dir.glob("*.json")}
    return dict(sorted(results.items(), key=lambda item: (item[1].get("order", 99), item[0])))


def fmt(value: Any, decimals: int | None = None) -> str:
    """A value as the pages print it: thousands separators, `decimals` places if given, else no float noise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    return f"{value:,}" if isinstance(value, int) else format(value, ",")


def fmt_value(v: dict[str, Any]) -> str:
    """One entry of a result file's `values`, with its unit."""
    return fmt(v["value"], v.get("decimals")) + v.get("unit", "")


def headline(result: dict[str, Any]) -> str:
    """The result's one-line headline with its values filled in."""
    values = {key: fmt_value(v) for key, v in result["values"].items()}
    return result["headline"].format(**values)


def _link(target: str, page: str) -> str:
    """`target` (a repo path, maybe with #anchor) relative to the folder of `page`."""
    path, _, anchor = target.partition("#")
    rel = os.path.relpath(ROOT / path, (ROOT / page).parent).replace(os.sep, "/")
    return rel + (f"#{anchor}" if anchor else "")


def _machine(result: dict[str, Any]) -> str:
    parts = [result["machine"]]
    if result.get("threads"):
        parts.append(f"{result['threads']} thread{'s' if result['threads'] > 1 else ''}")
    if result.get("load_average"):
        parts.append(f"load average {result['load_average']}")
    return ", ".join(parts)


def render_box(names: list[str], results: dict[str, dict[str, Any]], page: str) -> str:
    """One table per result file: its values, its optional table, where it comes from."""
    out = []
    for name in names:
        result = results[name]
        out += [f"**{result['title']}**", "", "| result | value |", "|---|---:|"]
        out += [f"| {v['label']} | {fmt_value(v)} |" for v in result["values"].values()]
        if "table" in result:
            out += ["", *render_table(result["table"])]
        source = _link(f"benchmarks/results/{name}.json", page)
        out += ["", f"From `{result['command']}` on {_machine(result)} "
                f"([{name}.json]({source}); the full record: [lab]({_link(result['record'], page)})).", ""]
    return "\n".join(out)


def render_table(table: dict[str, Any]) -> list[str]:
    """A result file's `table`: columns, rows, and optional decimals per column."""
    columns = table["columns"]
    decimals = table.get("decimals", [None] * len(columns))
    rows = ["| " + " | ".join(fmt(c, d) for c, d in zip(row, decimals, strict=True)) + " |" for row in table["rows"]]
    return ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|", *rows]


def render_headlines(group: str, results: dict[str, dict[str, Any]], page: str) -> str:
    """One line: each result of the group as 'title: headline', linked to the guide that shows it."""
    items = [f"[{r['title']}]({_link(r['page'], page)}): {headline(r)}"
             for r in results.values() if r["group"] == group]
    return " · ".join(items) + "\n"


def render_benchmarks(results: dict[str, dict[str, Any]], page: str) -> str:
    """The benchmark table: what is measured, the command, the result, the machine."""
    out = ["| benchmark | command | result | machine |", "|---|---|---|---|"]
    for name, r in results.items():
        if r["group"] == "benchmarks":
            link = _link(f"benchmarks/results/{name}.json", page)
            out.append(f"| [{r['title']}]({link}) | `{r['command']}` | {headline(r)} | {_machine(r)} |")
    return "\n".join(out) + "\n"


def render_block(spec: str, results: dict[str, dict[str, Any]], page: str) -> str:
    kind, *args = spec.split()
    if kind == "box":
        return render_box(args, results, page)
    if kind == "headlines":
        return render_headlines(args[0], results, page)
    if kind == "benchmarks":
        return render_benchmarks(results, page)
    raise ValueError(f"{page}: unknown render block {spec!r}")


def render_page(text: str, results: dict[str, dict[str, Any]], page: str) -> str:
    """The page with every render block rewritten from the result files."""
    return BLOCK.sub(lambda m: m.group(1) + render_block(m.group(2), results, page) + m.group(4), text)


def pages() -> list[str]:
    """README.md and every Markdown page in docs/ that has a render block."""
    candidates = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
    return [p for p in candidates if "<!-- render:" in (ROOT / p).read_text(encoding="utf-8")]


def stale_pages(results: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Pages whose render blocks disagree with the result files."""
    results = load_results() if results is None else results
    return [p for p in pages()
            if render_page((ROOT / p).read_text(encoding="utf-8"), results, p)
            != (ROOT / p).read_text(encoding="utf-8")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report pages that disagree; exit 1 if any")
    args = parser.parse_args()
    results = load_results()
    if args.check:
        stale = stale_pages(results)
        print("\n".join(stale) or "all pages agree with benchmarks/results/")
        sys.exit(1 if stale else 0)
    for page in pages():
        path = ROOT / page
        path.write_text(render_page(path.read_text(encoding="utf-8"), results, page), encoding="utf-8")
        print(f"rendered {page}")


if __name__ == "__main__":
    main()
