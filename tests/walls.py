"""The two walls between tenants, each on its own (docs/reliability.md, "The two walls").

The service keeps tenants apart twice: every DAO statement carries the tenant predicate
`company_guid = %(tenant)s`, and every request runs as `pieces_app` under FORCE row-level
security. Tests that use the `wall` fixture (tests/conftest.py) run once per mode:

| mode        | database                         | predicate   | RLS | connects as   |
|-------------|----------------------------------|-------------|-----|---------------|
| `both`      | the run's test database          | yes         | yes | the test role |
| `predicate` | a scratch database, RLS disabled | yes         | no  | the test role |
| `rls`       | the run's test database          | no (`true`) | yes | the test role |
| `owner`     | a private cluster of its own     | yes         | yes | its owner     |

`owner` is production as the README documents it: the database is owned, migrated
(`pieces-service migrate`) and served by a LOGIN CREATEROLE role that is not a superuser.
`rls` renders every DAO statement with its tenant predicates replaced by `true`
(`without_tenant_predicates`), for the tests that run in that mode only: the service has
no switch for it. Each mode checks that it really took its wall away before a test runs
(`assert_*`), so a mode can never pass by quietly testing both walls.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psycopg2.extensions

from pieces_service import create_app, dao

# PIECES_TEST_WALL_MODES narrows them (a plugin that reroutes the apps of the suite, such as
# test_replicas.py's, runs `both` alone: its replica is of the run's own database).
MODES = tuple(os.environ.get("PIECES_TEST_WALL_MODES", "both,predicate,rls,owner").split(","))

# The tenant predicate as the DAO's SQL spells it, with or without a table alias.
TENANT_PREDICATE = re.compile(r"\b(?:\w+\.)?company_guid = %\(tenant\)s")
OWNER_ROLE = "pieces_owner"
PROJECT_DIR = Path(__file__).resolve().parents[1]


def dao_queries() -> dict[str, dict[str, str]]:
    """Every DAO module's statements ({module name: its `_Q`}), the very dicts it reads."""
    found = {}
    for info in pkgutil.iter_modules(dao.__path__):
        module = importlib.import_module(f"{dao.__name__}.{info.name}")
        if isinstance(getattr(module, "_Q", None), dict):
            found[module.__name__] = module._Q
    return found


@contextmanager
def without_tenant_predicates() -> Iterator[int]:
    """Every DAO statement rendered with `company_guid = %(tenant)s` replaced by `true`, for
    as long as the context lasts (the `rls` mode); yields how many predicates went."""
    queries = dao_queries()
    saved = {name: dict(statements) for name, statements in queries.items()}
    removed = 0
    for statements in queries.values():
        for name, text in statements.items():
            statements[name], count = TENANT_PREDICATE.subn("true", text)
            removed += count
    try:
        yield removed
    finally:
        for name, statements in queries.items():
            statements.clear()
            statements.update(saved[name])


def disable_row_level_security(conn) -> list[str]:
    """Turn row-level security off on every table of `conn`'s database that has it (the
    `predicate` mode's scratch database); returns the tables."""
    with conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND relrowsecurity"
                    " AND relnamespace = 'public'::regnamespace ORDER BY 1")
        tables = [name for (name,) in cur.fetchall()]
        for table in tables:
            cur.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY,'
                        f' DISABLE ROW LEVEL SECURITY')
    return tables


def visible_tenants_as_app(conn, tenant) -> set:
    """The tenants whose pieces `pieces_app`, scoped to `tenant`, sees with no predicate."""
    with conn.cursor() as cur:
        cur.execute("BEGIN; SET LOCAL ROLE pieces_app;"
                    " SET LOCAL pieces.tenant = %s;"
                    " SELECT array_agg(DISTINCT company_guid::text) FROM pieces", (str(tenant),))
        (found,) = cur.fetchone()
        cur.execute("ROLLBACK")
    return set(found or ())


def migrate_as_owner(url: str) -> str:
    """`pieces-service migrate` against `url` (run as `python -m pieces_service.cli` from this
    checkout, so a scratch copy migrates with its own files); its output."""
    run = subprocess.run([sys.executable, "-m", "pieces_service.cli", "migrate"],
                         cwd=PROJECT_DIR, env={**os.environ, "DATABASE_URL": url},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@dataclass
class Wall:
    """One mode's database and apps: `admin` seeds and inspects (it sees every row),
    `app(prepared=…)` serves requests as the service would."""

    mode: str
    db_url: object                 # the database, as `admin` connects to it
    admin: psycopg2.extensions.connection
    app_url: object                # what the service connects as
    make_config: Callable          # helpers.make_config, or a plugin's wrapper of it
    _apps: dict = field(default_factory=dict)

    def app(self, *, prepared: bool = True):
        if prepared not in self._apps:
            overrides = {"db_prepared_statements": prepared}
            if self.mode != "both":  # its own database: nothing a plugin points elsewhere
                overrides.update(database_url=self.app_url, replica_urls=())
            self._apps[prepared] = create_app(self.make_config(self.db_url, **overrides))
        return self._apps[prepared]

    def close(self) -> None:
        for built in self._apps.values():
            engine = built.extensions["pieces_db"].get("engine")
            if engine is not None:
                engine.dispose()
        self._apps.clear()
