"""The data access layer: hand-written SQL in `sql/*.sql`, one statement per `-- name:`.

Every DAO function takes its connection first and keyword-only arguments after it;
`tenant=` is always explicit and every statement carries it as a predicate (row-level
security is the second wall). They never commit: the caller's transaction does.

`sql/audit.sql`, `health.sql`, `keys.sql` and `ownership.sql` are written by hand; the
others (`pieces.sql`, `sync.sql`, `hierarchy.sql`, `changes.sql`, `export.sql`) are rendered
from the catalogue by `render.py` and checked in, so every statement that runs can be read
in the repository as it is sent.
"""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

SQL_DIR = Path(str(resources.files(__package__) / "sql"))
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(filename: str) -> dict[str, str]:
    """Read `sql/<filename>` into {name: statement}; the comment lines after each
    `-- name:` header document the statement."""
    text = (SQL_DIR / filename).read_text()
    parts = _NAME.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        statement = body.strip().rstrip(";").strip()
        if name in queries:
            raise ValueError(f"duplicate query name {name} in {filename}")
        queries[name] = statement
    return queries
