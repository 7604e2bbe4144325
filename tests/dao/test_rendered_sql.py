"""The statements the DAO sends are the checked-in files, and those files are what the
catalogue renders: run `make sql` after changing the catalogue or dao/render.py."""
from __future__ import annotations

import re

import pytest

from pieces_service.catalogue import LEVELS
from pieces_service.dao import SQL_DIR, load_queries, render

RENDERED = sorted(render.files())


@pytest.mark.parametrize("name", RENDERED)
def test_checked_in_file_is_its_rendering(name):
    assert (SQL_DIR / name).read_text() == render.files()[name], \
        f"sql/{name} is stale: run `make sql`"


def test_stale_reports_a_changed_file(tmp_path):
    for name, text in render.files().items():
        (tmp_path / name).write_text(text)
    assert render.stale(tmp_path) == []
    (tmp_path / "sync.sql").write_text("-- edited by hand\n")
    assert render.stale(tmp_path) == ["sync.sql"]
    assert render.write(tmp_path) == ["sync.sql"]
    assert render.stale(tmp_path) == []


@pytest.mark.parametrize("name", sorted(p.name for p in SQL_DIR.glob("*.sql")))
def test_statements_are_complete(name):
    """No fill-in placeholders: what is in the file is what PostgreSQL receives."""
    for statement in load_queries(name).values():
        assert not re.search(r"\{\w*\}", statement), statement


@pytest.mark.parametrize("name", sorted(p.name for p in SQL_DIR.glob("*.sql")))
def test_every_statement_names_its_tenant(name):
    """The tenant predicate is in every statement (the probe function is the exception:
    it returns owners only, through pieces_guid_owners)."""
    for query, statement in load_queries(name).items():
        if name in ("health.sql", "keys.sql") or query in ("guid_owner", "foreign_guids",
                                                "savepoint_upsert", "rollback_upsert"):
            continue
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
        if body.startswith("INSERT INTO audit_log"):
            assert "%(tenant)s" in body, query  # the row's company_guid
        else:
            assert "company_guid = %(tenant)s" in body, query


def test_each_level_has_its_statements():
    sync = load_queries("sync.sql")
    hierarchy = load_queries("hierarchy.sql")
    for level in LEVELS.values():
        for how in ("guid", "natural_key"):
            assert f"upsert_{level.plural}_by_{how}" in sync
        assert f"delete_{level.name}" in hierarchy and f"restore_{level.name}" in hierarchy
        for below in level.descendants:
            assert f"delete_{below.plural}_of_{level.name}" in hierarchy
            assert f"restore_{below.plural}_of_{level.name}" in hierarchy
