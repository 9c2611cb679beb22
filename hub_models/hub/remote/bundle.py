"""One self-contained Python module from the library's own source: the named classes and functions, every
definition of the library they use (followed through its imports), and the third-party imports those need.

The statements are copied verbatim (with the comments just above them) from the installed `hub_models` files, so
the shipped code is the library's code at push time, never a hand-kept copy. Nothing is renamed: two needed
definitions with one name are an error, as is an import of anything but the standard library and
`ALLOWED_PACKAGES`.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGE = "hub_models"
#: what a diffusers user already has installed
ALLOWED_PACKAGES = frozenset({"torch", "diffusers", "huggingface_hub", "safetensors", "numpy"})
_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__"}  # every module has them


class BundleError(ValueError):
    """The library's source cannot be shipped as one module (a name clash, a forbidden import, a relative import)."""


@dataclass
class _Source:
    """A parsed module of the library: its top-level definitions and where each imported name comes from."""

    name: str
    lines: list[str]
    defs: dict[str, list[ast.stmt]] = field(default_factory=dict)  # name → the statements that bind or fill it
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # bound name → (module, attribute)


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _index(src: _Source, stmt: ast.stmt) -> None:
    if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
        for inner in stmt.body:
            _index(src, inner)
    elif isinstance(stmt, ast.Import):
        for alias in stmt.names:
            bound = alias.asname or alias.name.split(".")[0]
            src.imports[bound] = (alias.name if alias.asname else bound, None)
    elif isinstance(stmt, ast.ImportFrom):
        if stmt.level:
            raise BundleError(f"{src.name}: relative imports cannot be bundled")
        for alias in stmt.names:
            src.imports[alias.asname or alias.name] = (stmt.module or "", alias.name)
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        src.defs[stmt.name] = [stmt]
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):  # X["key"] = ...
                src.defs.setdefault(target.value.id, []).append(stmt)
            for node in ast.walk(target) if not isinstance(target, ast.Subscript) else ():
                if isinstance(node, ast.Name) and node.id != "__all__":
                    src.defs[node.id] = [stmt]


@cache
def _parse(module: str) -> _Source:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise BundleError(f"no source for {module}")
    text = Path(spec.origin).read_text()
    src = _Source(module, text.splitlines())
    for stmt in ast.parse(text).body:
        _index(src, stmt)
    return src


def _used_names(stmt: ast.stmt) -> set[str]:
    return {node.id for node in ast.walk(stmt) if isinstance(node, ast.Name)}


class _Collector:
    """The closure of the roots over the library's definitions, in an order Python can execute."""

    def __init__(self) -> None:
        self.stmts: dict[tuple[str, int], ast.stmt] = {}  # (module, line) → statement
        self.owner: dict[str, str] = {}  # bound name → the module defining it
        self.imports: dict[str, tuple[str, str | None]] = {}
        self.module_deps: dict[str, list[str]] = {}

    def need(self, module: str, name: str) -> None:
        src = _parse(module)
        self.module_deps.setdefault(module, [])
        if name in src.defs:
            self._define(src, name)
        elif name in src.imports:
            target, attr = src.imports[name]
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                if attr is None or attr != name:
                    raise BundleError(f"{module}: `{name}` is imported from {target} under another name")
                if target not in self.module_deps[module]:
                    self.module_deps[module].append(target)
                self.need(target, attr)
            else:
                self._add_import(name, target, attr)

    def _define(self, src: _Source, name: str) -> None:
        if self.owner.get(name, src.name) != src.name:
            raise BundleError(f"`{name}` is defined in both {self.owner[name]} and {src.name}")
        if name in self.owner:
            return
        self.owner[name] = src.name
        for stmt in src.defs[name]:
            self.stmts[(src.name, stmt.lineno)] = stmt
            for used in sorted(_used_names(stmt) - {name}):
                if used in src.defs or used in src.imports:
                    self.need(src.name, used)
                elif used not in _BUILTINS and not _is_local(stmt, used):
                    raise BundleError(f"{src.name}: `{used}` in `{name}` is neither defined nor imported")

    def _add_import(self, name: str, module: str, attr: str | None) -> None:
        root = module.split(".")[0]
        if root not in ALLOWED_PACKAGES and root not in sys.stdlib_module_names:
            raise BundleError(f"`{name}` comes from {module}, which a diffusers user may not have")
        if self.imports.get(name, (module, attr)) != (module, attr):
            raise BundleError(f"`{name}` is imported from both {self.imports[name][0]} and {module}")
        if name in self.owner:
            raise BundleError(f"`{name}` is both defined in {self.owner[name]} and imported from {module}")
        self.imports[name] = (module, attr)

    def module_order(self) -> list[str]:
        """Modules, each after the modules it takes definitions from."""
        order: list[str] = []

        def visit(module: str) -> None:
            if module not in order:
                for dep in self.module_deps.get(module, []):
                    visit(dep)
                order.append(module)

        for module in list(self.module_deps):
            visit(module)
        return order


def _is_local(stmt: ast.stmt, name: str) -> bool:
    """Whether `name` is bound inside `stmt` (an argument, a local, a comprehension or loop variable)."""
    for node in ast.walk(stmt):
        if isinstance(node, ast.arg) and node.arg == name:
            return True
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (a.asname or a.name.split(".")[0]) == name for a in node.names
        ):
            return True
        if isinstance(node, ast.ExceptHandler) and node.name == name:
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
    return False


def _segment(src: _Source, stmt: ast.stmt) -> str:
    """The statement's lines (decorators included) with the comment lines right above it."""
    first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))]) - 1
    while first > 0 and src.lines[first - 1].lstrip().startswith("#"):
        first -= 1
    return "\n".join(src.lines[first:stmt.end_lineno])


def _import_lines(imports: dict[str, tuple[str, str | None]]) -> list[str]:
    plain: set[str] = set()
    grouped: dict[str, set[str]] = {}
    for bound, (module, attr) in imports.items():
        if attr is None:
            plain.add(module if module == bound else f"{module} as {bound}")
        else:
            grouped.setdefault(module, set()).add(attr if attr == bound else f"{attr} as {bound}")

    def third_party(module: str) -> bool:
        return module.split(".")[0] not in sys.stdlib_module_names

    lines = [(third_party(m), False, m, f"import {m}") for m in plain]
    for module, names in grouped.items():
        line = f"from {module} import {', '.join(sorted(names, key=str.lower))}"
        if len(line) > 120:  # the project's line length
            line = f"from {module} import (\n" + "".join(f"    {n},\n" for n in sorted(names, key=str.lower)) + ")"
        lines.append((third_party(module), True, module, line))
    out, group = [], None
    for is_third_party, _, _, line in sorted(lines):
        if group is not None and is_third_party != group:
            out.append("")
        out.append(line)
        group = is_third_party
    return out


def bundle(roots: list[tuple[str, str]], docstring: str) -> str:
    """The source of one module defining `roots` (`(module, name)` pairs of the library) and all they use.

    Raises:
        BundleError: a definition that cannot be shipped alone (see the module's docstring).
    """
    collector = _Collector()
    for module, name in roots:
        collector.need(module, name)
    rank = {module: i for i, module in enumerate(collector.module_order())}
    blocks = [
        _segment(_parse(module), stmt)
        for (module, line), stmt in sorted(collector.stmts.items(), key=lambda kv: (rank[kv[0][0]], kv[0][1]))
    ]
    exported = ", ".join(f'"{name}"' for _, name in roots)
    parts = [f'"""{docstring.strip()}\n"""', "from __future__ import annotations",
             "\n".join(_import_lines(collector.imports)), *blocks, f"__all__ = [{exported}]"]
    text = "\n\n\n".join(parts[:1]) + "\n\n" + "\n\n".join(parts[1:3]) + "\n\n\n" + "\n\n\n".join(parts[3:]) + "\n"
    check_imports(text)
    return text


def check_imports(text: str) -> None:
    """BundleError unless every import in `text` (top-level or inside a function) is of the standard library or
    `ALLOWED_PACKAGES`."""
    for node in ast.walk(ast.parse(text)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            root = name.split(".")[0]
            if root != "__future__" and root not in ALLOWED_PACKAGES and root not in sys.stdlib_module_names:
                raise BundleError(f"the bundle imports {name}, which a diffusers user may not have")


__all__ = ["ALLOWED_PACKAGES", "BundleError", "bundle", "check_imports"]
