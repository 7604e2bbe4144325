"""What prepared statements save PostgreSQL (issue 14): one read's round trip from one
connection, the service's read setup included, sent three ways in alternating sets:

- plain:        the statement as text, values inlined (PIECES_DB_PREPARED_STATEMENTS=off);
- per request:  prepared as written, planned again for each execution's values
                (`plan_cache_mode = force_custom_plan`: what the list's optional filters
                need when they are not specialized);
- prepared:     as the service sends it now (`dao.prepared_read`, the list specialized to
                its filters), PostgreSQL's own choice of plan; its generic and custom plan
                counts are printed, and what the backend's cached plans grew by (both
                prepared statements, with their plans).

    .venv/bin/python -m bench.prepared_ab postgresql://postgres@127.0.0.1:5432/pieces_bench [sets]

Targets: 300 random active projects (list by project at limit 100 and 1000) and 300 random
active pieces (detail), each read checked to return the same row all three ways first.
Milliseconds per read, one figure per set, on stdout. Then where the plain text's time goes:
`EXPLAIN (ANALYZE)` of each read's first target, 8 times after 4 warm-ups in one session,
as `pieces_app` under the read setup (row-level security) and as the tables' owner (as the
bench reference reads): planning and execution milliseconds, lowest to highest.
"""
from __future__ import annotations

import sys
import time

from sqlalchemy.engine import make_url

import pieces_service.db  # noqa: F401  (registers the uuid adapter)
from pieces_service.dao import load_queries, prepared_read, specialized
from pieces_service.dao import pieces as pieces_dao
from pieces_service.db import read_setup
from pieces_service.migrate import connect

from . import workload

PER_REQUEST = "SET LOCAL plan_cache_mode = force_custom_plan;\n"
# What this backend holds in cached plans and their sources (PostgreSQL 14+).
_PLAN_MEMORY = ("SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts"
                " WHERE name IN ('CachedPlan', 'CachedPlanSource', 'CachedPlanQuery')")


def _cases(cur) -> dict[str, tuple[str, list[tuple[str, dict]]]]:
    """Each read: its statement and its (tenant, parameters) targets."""
    cur.execute("SELECT company_guid, guid FROM projects WHERE is_active"
                " ORDER BY random() LIMIT 300")
    projects = cur.fetchall()
    cur.execute("SELECT company_guid, guid FROM pieces TABLESAMPLE SYSTEM (1)"
                " WHERE is_active LIMIT 300")
    pieces = cur.fetchall()
    detail = [(str(t), {"tenant": t, "guid": g, "include_inactive": False})
              for t, g in pieces]
    cases = {"detail": (load_queries("pieces.sql")["get_piece"], detail)}
    for limit in (100, 1000):
        cases[f"list limit={limit}"] = (pieces_dao.list_statement(0), [
            (str(t), pieces_dao.list_parameters(
                tenant=t, project_guid=p, component_guid=None, assembly_guid=None,
                include_inactive=False, limit=limit, offset=0, after=None))
            for t, p in projects])
    return cases


def main(url: str, sets: int) -> None:
    conn = connect(make_url(url))
    conn.autocommit = True
    cur = conn.cursor()
    setup = read_setup(workload.service_config(make_url(url)))
    for name, (statement, targets) in _cases(cur).items():
        given = frozenset(key for key, value in targets[0][1].items() if value is not None)
        as_written, service = prepared_read(statement), prepared_read(
            specialized(statement, given))
        cur.execute(_PLAN_MEMORY)
        held_before = cur.fetchone()[0]
        for prepared in {as_written, service}:  # the same for a statement with no filters
            cur.execute(f"SET ROLE pieces_app; {prepared.prepare}; RESET ROLE")
        ways = {"plain": setup + statement, "per request": setup + PER_REQUEST
                + as_written.execute, "prepared": setup + service.execute}
        for tenant, params in targets[:10]:
            rows = []
            for text in ways.values():
                cur.execute(text, {**params, "rls_tenant": tenant})
                rows.append(cur.fetchone())
            assert rows[0] == rows[1] == rows[2], f"{name}: the three ways disagree"
        times: dict[str, list[float]] = {way: [] for way in ways}
        reads = 100 if "1000" in name else 300
        for _ in range(sets):
            for way, text in ways.items():
                started = time.perf_counter()
                for n in range(reads):
                    tenant, params = targets[n % len(targets)]
                    cur.execute(text, {**params, "rls_tenant": tenant})
                    cur.fetchone()
                times[way].append((time.perf_counter() - started) / reads * 1e3)
        cur.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE name = %s", (service.name,))
        generic, custom = cur.fetchone()
        cur.execute(_PLAN_MEMORY)
        held = cur.fetchone()[0] - held_before
        for way, values in times.items():
            print(f"{name:18} {way:12} " + " ".join(f"{v:.3f}" for v in values) + " ms")
        print(f"{name:18} prepared: {generic} generic and {custom} custom plans; the "
              f"backend's cached plans grew by {held / 1024:.0f} KiB")
        cur.execute("DEALLOCATE ALL")
        _explain(cur, name, statement, targets[0], setup)
    conn.close()


def _explain(cur, name: str, statement: str, target: tuple[str, dict], setup: str) -> None:
    """Planning and execution time of `statement` as pieces_app (RLS) and as the owner."""
    tenant, params = target
    as_owner = setup.replace("SET LOCAL ROLE pieces_app;", "")
    for who, prefix in (("pieces_app", setup), ("owner", as_owner)):
        planning, execution = [], []
        for run in range(12):
            cur.execute(prefix + "EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                        {**params, "rls_tenant": tenant})
            [plan] = cur.fetchone()[0]
            if run >= 4:
                planning.append(plan["Planning Time"])
                execution.append(plan["Execution Time"])
        print(f"{name:18} EXPLAIN as {who:10} planning "
              f"{min(planning):.3f}-{max(planning):.3f} ms, execution "
              f"{min(execution):.3f}-{max(execution):.3f} ms")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
