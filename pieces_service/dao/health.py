"""The readiness probe's one statement."""
from __future__ import annotations

from sqlalchemy.engine import Connection

from . import load_queries

_Q = load_queries("health.sql")


def schema_state(conn: Connection, *, head: str) -> tuple[str | None, bool]:
    """(newest applied migration, whether `head` is applied)."""
    return tuple(conn.exec_driver_sql(_Q["schema_state"], {"head": head}).one())
