"""The service's own keys (table `service_keys`, migration 0004)."""
from __future__ import annotations

from sqlalchemy.engine import Connection

from . import load_queries

_Q = load_queries("keys.sql")


def service_key(conn: Connection, *, name: str) -> bytes | None:
    """The secret named `name`, or None when there is no such row. `conn`: a connection
    with no role set (`db.untenanted`), since `pieces_app` may not read the keys."""
    row = conn.exec_driver_sql(_Q["service_key"], {"name": name}).fetchone()
    return bytes(row[0]) if row else None
