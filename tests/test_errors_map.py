"""errors.from_database: the one classification of database exceptions into statuses."""
from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from pieces_service import errors


def wrapped(orig):
    return DBAPIError("SELECT …", {}, orig)


@pytest.mark.parametrize("exc, disconnected, status, cls", [
    (wrapped(psycopg2.DatabaseError("server closed the connection")), True, 503,
     errors.DatabaseUnavailable),
    (wrapped(psycopg2.OperationalError("could not connect")), False, 503,
     errors.DatabaseUnavailable),
    (wrapped(psycopg2.errors.QueryCanceled("statement timeout")), False, 503,
     errors.DatabaseUnavailable),
    (psycopg2.InterfaceError("connection already closed"), False, 503,
     errors.DatabaseUnavailable),
    (PoolTimeout("QueuePool limit reached"), False, 503, errors.DatabaseUnavailable),
    (wrapped(psycopg2.errors.DeadlockDetected("deadlock")), False, 409,
     errors.ConcurrentChange),
    (wrapped(psycopg2.errors.SerializationFailure("serialize")), False, 409,
     errors.ConcurrentChange),
    (wrapped(psycopg2.errors.UniqueViolation("duplicate key")), False, 409, errors.Conflict),
    (wrapped(psycopg2.errors.ForeignKeyViolation("fk")), False, 409, errors.Conflict),
    (wrapped(psycopg2.errors.UndefinedColumn("no such column")), False, 500,
     errors.DatabaseFailure),
    (wrapped(psycopg2.DatabaseError("bare, connection still fine")), False, 500,
     errors.DatabaseFailure),
])
def test_each_database_error_has_one_status(exc, disconnected, status, cls):
    error = errors.from_database(exc, disconnected=disconnected)
    assert type(error) is cls
    assert errors.status_of(error) == status
    # The retryable ones (503, and the 409 of a deadlock) tell the client when to retry.
    retryable = status == 503 or cls is errors.ConcurrentChange
    assert error.headers.get("Retry-After") == ("1" if retryable else None)
    assert "SELECT" not in error.detail


def test_every_service_error_has_a_status():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    assert set(subclasses(errors.ServiceError)) <= set(errors.STATUS)
