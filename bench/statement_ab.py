"""One rendered statement, as it is now and as it was in an earlier commit, timed in
PostgreSQL alone: planning and execution time (EXPLAIN ANALYZE, as the tables' owner) of
each for the same pages, alternating, so that a change to the SQL's text is costed apart
from the service.

    .venv/bin/python -m bench.statement_ab <url> <git rev> [statement] [limit] [big]

`statement`: a list statement of dao/sql/pieces.sql (default list_pieces), `limit` the page
size (default 100); `big`: the 20 largest projects instead of the first 100 active ones.
Four rounds each; the first warms the caches and is not printed.
"""
from __future__ import annotations

import subprocess
import sys

from sqlalchemy.engine import make_url

import pieces_service.db  # noqa: F401  (registers the uuid adapter)
from pieces_service.dao import _NAME, load_queries
from pieces_service.dao import pieces as pieces_dao
from pieces_service.migrate import connect


def queries_at(rev: str) -> dict[str, str]:
    text = subprocess.run(["git", "show", f"{rev}:pieces_service/dao/sql/pieces.sql"],
                          check=True, capture_output=True, text=True).stdout
    parts = _NAME.split(text)
    return {name: body.strip().rstrip(";").strip()
            for name, body in zip(parts[1::2], parts[2::2])}


def main(url: str, rev: str, name: str, limit: int, big: bool) -> None:
    versions = {rev: queries_at(rev)[name], "now": load_queries("pieces.sql")[name]}
    conn = connect(make_url(url))
    conn.autocommit = True
    cur = conn.cursor()
    if big:
        cur.execute("SELECT company_guid, project_guid FROM pieces GROUP BY 1, 2"
                    " ORDER BY count(*) DESC LIMIT 20")
    else:
        cur.execute("SELECT company_guid, guid FROM projects WHERE is_active ORDER BY guid"
                    " LIMIT 100")
    projects = cur.fetchall()
    for round_ in range(4):
        for label, statement in versions.items():
            planning = execution = 0.0
            for tenant, project in projects:
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                            pieces_dao.list_parameters(
                                tenant=tenant, project_guid=project, component_guid=None,
                                assembly_guid=None, include_inactive=False, limit=limit,
                                offset=0, after=None))
                plan = cur.fetchone()[0][0]
                planning += plan["Planning Time"]
                execution += plan["Execution Time"]
            if round_:
                print(f"{label:>10s} {name} limit={limit}{' big' if big else ''}: planning "
                      f"{planning / len(projects):.3f} ms  execution "
                      f"{execution / len(projects):.3f} ms")
    conn.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], args[2] if len(args) > 2 else "list_pieces",
         int(args[3]) if len(args) > 3 else 100, len(args) > 4 and args[4] == "big")
