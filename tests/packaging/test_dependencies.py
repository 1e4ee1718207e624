"""Every import is declared, in the right extra, and every declared dependency is used.

The imports are read with ``ast`` from the five packages (not imported: no optional package
has to be installed for the answer), and each third-party top-level module is mapped to the
distributions that provide it with ``importlib.metadata.packages_distributions()``. Modules of
the ``local`` runtime (``agent.runtimes.local``, checked at agent start by
``agent.runtimes.select.NEEDS``) may import the ``ml`` extra; every other module only core
dependencies. A dependency no module imports carries a comment in pyproject.toml saying why
it is there (a binary, a plugin, a backend another library loads).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache

import pytest

from agent.runtimes import select
from tests.conftest import ROOT

PACKAGES = ("schemas", "ledger", "reconciler", "agent", "cli")
EXTRAS = {"agent/runtimes/local/": "ml", "agent/runtimes/kubernetes/": "kubernetes"}
"""Where an extra may be imported: the runtime that needs it (the local runtime is refused at
start without ``ml``); every other module imports only core dependencies."""


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)
    assert match, f"pyproject.toml: cannot read the requirement {spec!r}"
    return _normal(match.group())


@cache
def _declared() -> dict[str, set[str]]:
    """``core`` and each extra -> the distribution names pyproject declares there."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {group: {_requirement_name(s) for s in specs} for group, specs in groups.items()}


def _third_party(tree: ast.AST) -> Iterator[str]:
    """The top-level names of the absolute imports in ``tree`` outside the stdlib and us."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in PACKAGES:
                yield top


@cache
def _imports() -> dict[str, set[str]]:
    """Each module file (relative path) -> the third-party top-level modules it imports."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_bytes(), filename=str(path))
            found[path.relative_to(ROOT).as_posix()] = set(_third_party(tree))
    return found


@cache
def _providers() -> dict[str, list[str]]:
    """Top-level module -> distributions: reads every installed distribution's file list."""
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {_normal(d) for d in _providers().get(module, [])}


def _extra(path: str) -> str | None:
    return next((extra for prefix, extra in EXTRAS.items() if path.startswith(prefix)), None)


def _allowed(path: str) -> set[str]:
    extra = _extra(path)
    return _declared()["core"] | (_declared()[extra] if extra else set())


def _cases() -> list[tuple[str, str]]:
    return sorted((path, module) for path, modules in _imports().items() for module in modules)


@pytest.mark.parametrize(("path", "module"), _cases(), ids=[f"{p}:{m}" for p, m in _cases()])
def test_every_import_is_declared_in_the_extra_its_module_may_use(path: str, module: str) -> None:
    provided_by = _distributions(module)
    assert provided_by, f"{path} imports {module}, which no installed distribution provides"
    extra = f"core or {_extra(path)}" if _extra(path) else "core"
    assert provided_by & _allowed(path), (
        f"{path} imports {module} ({', '.join(sorted(provided_by))}), not a {extra} "
        "dependency in pyproject.toml"
    )


def _imported_distributions() -> set[str]:
    return {d for modules in _imports().values() for m in modules for d in _distributions(m)}


def _reasons() -> dict[str, str]:
    """Each requirement line of pyproject.toml -> its trailing comment ('' when none)."""
    lines = re.findall(
        r'^\s*"([^"]+)",\s*(?:#\s*(.*))?$', (ROOT / "pyproject.toml").read_text(), re.M
    )
    return {_requirement_name(spec): why for spec, why in lines}


@pytest.mark.parametrize("group", ["core", "ml", "kubernetes"])
def test_every_declared_dependency_is_imported_or_says_why_not(group: str) -> None:
    unused = _declared()[group] - _imported_distributions()
    silent = sorted(name for name in unused if not _reasons().get(name))
    assert not silent, f"declared in {group} but never imported, with no comment why: {silent}"


def test_the_modules_the_local_runtime_needs_come_from_the_ml_extra() -> None:
    for module in select.NEEDS["local"]:
        assert _distributions(module) & _declared()["ml"], f"NEEDS names {module}, not in ml"
