"""The data access layer: hand-written SQL in `sql/*.sql`, one statement per `-- name:`.

DAO functions take the connection and keyword-only arguments; `tenant=` is always explicit
and every statement carries it as a predicate (row-level security is the second wall). They
never commit: the request's transaction does.
"""
from __future__ import annotations

import re
from pathlib import Path

_SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(filename: str) -> dict[str, str]:
    """Read `sql/<filename>` into {name: statement}; the comment lines after each
    `-- name:` header document the statement."""
    text = (_SQL_DIR / filename).read_text()
    parts = _NAME.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        statement = body.strip().rstrip(";").strip()
        if name in queries:
            raise ValueError(f"duplicate query name {name} in {filename}")
        queries[name] = statement
    return queries
