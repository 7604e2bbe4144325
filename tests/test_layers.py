"""The layers keep to their jobs: views reach the database only through the domain layer,
the tenancy rules do no I/O, and the service never imports the development tools."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pieces_service"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, resolved to absolute names."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parts[:len(parts) - node.level]) if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "api").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_views_and_schemas_never_import_the_dao(path):
    assert not any(name.startswith("pieces_service.dao") for name in imported_modules(path))


def test_access_is_pure():
    allowed = {"__future__", "__future__.annotations", "uuid", "pieces_service.auth",
               "pieces_service.auth.Principal", "pieces_service.errors",
               "pieces_service.errors.Forbidden"}
    assert imported_modules(PACKAGE / "access.py") <= allowed


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_service_never_imports_development_tools(path):
    for name in imported_modules(path):
        assert not name.startswith(("devtools", "pgserver", "bench")), (path, name)
