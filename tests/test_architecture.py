"""Arrows only point down: every import of every module, read with ``ast`` (nothing is imported).

Layers: ``common`` (stdlib only) ← ``core`` (pure ML) and ``db`` (the store) ← ``app`` ← ``bench``.
SQL is built only in ``db/`` (the app opens sessions in ``app/store.py``, nothing more), and the
app's page modules never load torch, not even through the modules they import.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "core", "db", "app", "bench", "migrations")
OURS = frozenset((*PACKAGES, "tests"))
TORCH = frozenset({"torch", "timm", "torchvision"})

#: package -> (top-level names it must not import, why).
FORBIDDEN: dict[str, tuple[frozenset[str], str]] = {
    "core": (frozenset({"db", "app", "bench", "migrations", "sqlalchemy", "alembic"}), "core is pure ML"),
    "db": (frozenset({"core", "app", "bench", *TORCH, "streamlit"}), "db never imports core, app or torch"),
    "migrations": (frozenset({"core", "app", "bench", *TORCH, "streamlit"}), "migrations only know db"),
    "app": (frozenset({"bench"}), "bench sits on top of app"),
}
#: Names from ``sqlalchemy`` that build SQL; app/ and bench/ call db/ functions instead.
SQL_NAMES = frozenset({"select", "insert", "update", "delete", "text", "func"})
SQL_FREE = ("app", "bench")
STORE_OPENER = "app/store.py"
PAGES = "app/web"


@dataclass(frozen=True)
class Import:
    """One imported module (``name``, dotted) and the names taken from it, at ``path:line``."""

    path: str
    line: int
    module: str
    names: tuple[str, ...]
    top_level: bool  # executed when the module is imported (not inside a function or TYPE_CHECKING)

    def __str__(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names else f"import {self.module}"
        return f"{self.path}:{self.line}: {what}"


def _files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> Iterator[Import]:
    """Every import statement of one of our modules."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return _parse(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix(), package)


def _parse(source: str, rel: str, package: str) -> Iterator[Import]:
    """Every import statement in ``source`` (the module ``rel`` in ``package``), in file order."""

    def walk(node: ast.AST, top: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(rel, child.lineno, alias.name, (), top)
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    module = ".".join([*base, module] if module else base)
                yield Import(rel, child.lineno, module, tuple(a.name for a in child.names), top)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):  # its else branch runs
                yield from walk(ast.Module(body=child.body, type_ignores=[]), False)
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), top)
            else:
                yield from walk(child, top)

    yield from walk(ast.parse(source, filename=rel), True)


@pytest.fixture(scope="module")
def imports() -> dict[str, list[Import]]:
    """Relative path -> its imports, for every module of every package."""
    return {p.relative_to(ROOT).as_posix(): list(_imports(p)) for p in _files()}


def _report(problems: list[str]) -> str:
    return f"{len(problems)} wrong-way import(s):\n" + "\n".join(problems)


def test_every_package_is_walked(imports: dict[str, list[Import]]) -> None:
    for pkg in PACKAGES:
        assert any(path.startswith(f"{pkg}/") for path in imports), f"no module found under {pkg}/"


def test_common_imports_only_the_standard_library(imports: dict[str, list[Import]]) -> None:
    problems = [
        f"{imp}  (common may import the standard library and common only)"
        for path, found in imports.items()
        if path.startswith("common/")
        for imp in found
        if (top := imp.module.split(".")[0]) != "common"
        and (top in OURS or top not in sys.stdlib_module_names)
        and top != "__future__"
    ]
    assert not problems, _report(problems)


def test_arrows_point_down(imports: dict[str, list[Import]]) -> None:
    problems = []
    for path, found in imports.items():
        rule = FORBIDDEN.get(path.split("/")[0])
        if rule is None:
            continue
        names, why = rule
        problems += [f"{imp}  ({why})" for imp in found if imp.module.split(".")[0] in names]
    assert not problems, _report(problems)


def _builds_sql(imp: Import) -> bool:
    if imp.module == "sqlalchemy":
        return not imp.names or bool(SQL_NAMES.intersection(imp.names)) or "sql" in imp.names
    return imp.module == "sqlalchemy.sql" or imp.module.startswith("sqlalchemy.sql.")


def test_sql_is_built_only_in_db(imports: dict[str, list[Import]]) -> None:
    problems = [
        f"{imp}  (SQL belongs in a db/ function; app/ and bench/ call it)"
        for path, found in imports.items()
        if path.split("/")[0] in SQL_FREE and path != STORE_OPENER
        for imp in found
        if _builds_sql(imp)
    ]
    assert not problems, _report(problems)


def _path_of(module: str) -> str | None:
    """The relative path of one of our modules (package ``__init__`` or plain module), else None."""
    base = ROOT.joinpath(*module.split("."))
    for cand in (base / "__init__.py", base.with_suffix(".py")):
        if cand.is_file():
            return cand.relative_to(ROOT).as_posix()
    return None


def _loaded_by(imp: Import) -> list[str]:
    """Our modules importing ``imp`` runs: each parent package's ``__init__``, the module itself,
    and for ``from package import name`` a submodule ``name``."""
    parts = imp.module.split(".")
    modules = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    modules += [f"{imp.module}.{n}" for n in imp.names]
    return [p for m in modules if (p := _path_of(m)) is not None]


def test_pages_never_import_torch(imports: dict[str, list[Import]]) -> None:
    """Follow the module-level imports of every module under app/web through our packages."""
    problems = []
    for page in (p for p in imports if p.startswith(f"{PAGES}/")):
        seen = {page}
        todo: list[tuple[str, tuple[str, ...]]] = [(page, ())]
        while todo:
            path, chain = todo.pop()
            for imp in imports.get(path, []):
                if not imp.top_level:
                    continue
                if imp.module.split(".")[0] in TORCH:
                    problems.append(" <- ".join([str(imp), *reversed(chain)]))
                for nxt in _loaded_by(imp):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append((nxt, (*chain, str(imp))))
    assert not problems, _report(sorted(set(problems)))


def test_the_walker_sees_every_kind_of_import() -> None:
    source = (
        "from __future__ import annotations\n"
        "import sqlalchemy.sql as s\n"
        "from typing import TYPE_CHECKING\n"
        "from sqlalchemy import Engine, select\n"
        "if TYPE_CHECKING:\n"
        "    import torch\n"
        "try:\n"
        "    import timm\n"
        "except ImportError:\n"
        "    timm = None\n"
        "def f() -> None:\n"
        "    from sqlalchemy import text\n"
        "    from . import sibling\n"
        "from ..web import state\n"
    )
    found = list(_parse(source, "app/pipeline/m.py", "app.pipeline"))
    assert [(i.line, i.module, i.top_level) for i in found] == [
        (1, "__future__", True),
        (2, "sqlalchemy.sql", True),
        (3, "typing", True),
        (4, "sqlalchemy", True),
        (6, "torch", False),
        (8, "timm", True),
        (12, "sqlalchemy", False),
        (13, "app.pipeline", False),
        (14, "app.web", True),
    ]
    assert [i.line for i in found if _builds_sql(i)] == [2, 4, 12]
    assert str(found[3]) == "app/pipeline/m.py:4: from sqlalchemy import Engine, select"
