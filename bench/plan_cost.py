"""What the list's validator, an exact count and a field selection cost PostgreSQL:
planning and execution time of the list statement with and without them, and of the
validator alone (a 304's statement).

    .venv/bin/python -m bench.plan_cost postgresql://postgres@127.0.0.1:5432/pieces_bench [limit]

EXPLAIN ANALYZE (as the tables' owner, so without row-level security) of each statement for
100 active projects of the bench data, page 1 at `limit` (default 100); the first of three
rounds warms the caches, the mean of the other two is printed. "page only" is list_pieces
with its `bound`/`upper`/`range` CTEs and validator columns cut out, i.e. the statement as it
was before issue 11. "count=exact" is the statement a `Prefer: count=exact` runs;
"fields=…" the statement narrowed to those fields; "planned count" the EXPLAIN that
`Prefer: count=planned` adds (a second statement).
"""
from __future__ import annotations

import sys

from sqlalchemy.engine import make_url

import pieces_service.db  # noqa: F401  (registers the uuid adapter)
from pieces_service.catalogue import LIST_FIELDS
from pieces_service.dao import load_queries, narrowed
from pieces_service.dao import pieces as pieces_dao
from pieces_service.migrate import connect


def page_only(statement: str) -> str:
    start = statement.index("), bound AS (")
    end = statement.index("\nSELECT EXISTS")
    validator = statement.index(",\n       (SELECT rows_in_range")
    return statement[:start] + ")" + statement[end:validator]


def main(url: str, limit: int) -> None:
    queries = load_queries("pieces.sql")
    conn = connect(make_url(url))
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT company_guid, guid FROM projects WHERE is_active ORDER BY guid LIMIT 100")
    projects = cur.fetchall()
    fields = ("guid", "piece_id", "barcode")
    statements = {  # name: (statement, count_exact)
        "validator alone (304)": (queries["list_validator"], False),
        "page + validator (200)": (queries["list_pieces"], False),
        "page only (before)": (page_only(queries["list_pieces"]), False),
        "page + count=exact": (queries["list_pieces"], True),
        # Planning only: what `Prefer: count=planned` costs (it executes nothing).
        "planned count": (queries["count_planned"].replace(
            "EXPLAIN (FORMAT JSON)", "EXPLAIN (SUMMARY, FORMAT JSON)"), False),
        "fields=" + ",".join(fields): (narrowed(queries["list_pieces"], LIST_FIELDS, fields),
                                       False),
    }
    for name, (statement, count_exact) in statements.items():
        planning = execution = 0.0
        for round_ in range(3):
            for tenant, project in projects:
                explain = "" if name == "planned count" else "EXPLAIN (ANALYZE, FORMAT JSON) "
                cur.execute(explain + statement,
                            pieces_dao.list_parameters(
                                tenant=tenant, project_guid=project, component_guid=None,
                                assembly_guid=None, include_inactive=False, limit=limit,
                                offset=0, after=None, count_exact=count_exact))
                plan = cur.fetchone()[0][0]
                if round_:
                    planning += plan["Planning Time"]
                    execution += plan.get("Execution Time", 0.0)
        runs = 2 * len(projects)
        print(f"{name:24s} planning {planning / runs:.2f} ms  execution "
              f"{execution / runs:.2f} ms  (limit={limit})")
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100)
