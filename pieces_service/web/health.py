"""Probes for the platform, outside the API and without authentication.

`GET /livez`   the process serves requests; never touches the database, so a database outage
               does not get every worker restarted.
`GET /readyz`  the database answers and its schema is at this build's migration head; `503`
               `{"detail": reason}` otherwise (any database failure, never a 500), so the
               gateway stops routing here.
"""
from __future__ import annotations

import functools
import logging

import psycopg2.errors
from flask import Blueprint

from .. import db, errors, migrate
from ..dao import health as health_dao

log = logging.getLogger(__name__)

blp = Blueprint("health", __name__)


@functools.lru_cache(maxsize=1)
def _head() -> str:
    return migrate.head_version()


def _not_ready(reason: str):
    return {"detail": reason}, 503, {"Retry-After": "5", "Cache-Control": "no-store"}


@blp.get("/livez")
def livez():
    """The process is up."""
    return {"status": "ok"}, 200, {"Cache-Control": "no-store"}


@blp.get("/readyz")
def readyz():
    """The database is reachable and migrated to this build's head."""
    head = _head()
    try:
        with db.untenanted() as conn:
            current, at_head = health_dao.schema_state(conn, head=head)
    except errors.DatabaseUnavailable as error:
        log.warning("readiness check: database unavailable: %s",
                    type(getattr(error.__cause__, "orig", error.__cause__)).__name__)
        return _not_ready("Database unavailable.")
    except errors.ServiceError as error:
        cause = getattr(error.__cause__, "orig", error.__cause__)
        if isinstance(cause, psycopg2.errors.UndefinedTable):
            return _not_ready("Database has no schema_migrations table; run the migrations.")
        log.error("readiness check: database error: %s", type(cause).__name__)
        return _not_ready("Database check failed.")
    if not at_head:
        return _not_ready(f"Database schema is at {current or 'no migration'}, this build needs "
                          f"{head}; run the migrations.")
    return {"status": "ready", "schema_version": head}, 200, {"Cache-Control": "no-store"}
