"""The database connection: one engine per process, one transaction per request.

Every request runs inside `transaction(tenant, readonly=…)`, which opens a transaction, drops
to the `pieces_app` role (which cannot bypass row-level security) and sets the tenant in the
transaction-local setting `pieces.tenant` that the RLS policies read. Because both are
`LOCAL`, a pooled connection never carries one request's tenant into the next, and the
scheme works unchanged behind PgBouncer in transaction-pooling mode.

The engine runs psycopg2 in autocommit mode and we issue BEGIN ourselves, so the setup
(BEGIN, role, tenant, timeouts) costs one round trip instead of psycopg2's separate BEGIN.

A read that is one statement (the list page, the detail) goes through `reads()` instead:
the setup and the statement travel as one simple-query message, which PostgreSQL runs as one
implicit transaction (its `SET LOCAL`s end with it). One round trip instead of three, and no
COMMIT to send: BENCHMARKS.md has the figures.

Database exceptions never leave this module raw: `errors.from_database` classifies them.
"""
from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg2
import psycopg2.extras
from flask import current_app
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError

from . import errors
from .web import observability
from .config import Config

APP_ROLE = "pieces_app"

# uuid.UUID in and out of psycopg2 (parameters are adapted as 'x'::uuid literals).
psycopg2.extras.register_uuid()

_engine_lock = threading.Lock()


def build_engine(config: Config) -> Engine:
    """An engine for `config`; never connects by itself."""
    return create_engine(
        config.database_url,
        isolation_level="AUTOCOMMIT",
        pool_size=config.db_pool_size,
        max_overflow=config.db_max_overflow,
        pool_timeout=config.db_pool_timeout_seconds,
        pool_pre_ping=False,
        pool_reset_on_return=None,  # we always end our own transaction explicitly
        hide_parameters=True,  # request values never reach logs through SQL errors
        connect_args={
            "connect_timeout": config.db_connect_timeout_seconds,
            "application_name": "pieces_service",
            "options": "-c timezone=UTC",
            # Detect a dead server quickly instead of hanging on a half-open socket.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )


def get_engine() -> Engine:
    """This process's engine, created on first use (never at import or in the factory,
    so a gunicorn worker forks before it owns any socket)."""
    app = current_app._get_current_object()
    state = app.extensions["pieces_db"]
    if state.get("pid") != os.getpid():
        with _engine_lock:
            if state.get("pid") != os.getpid():
                engine = build_engine(app.config["PIECES"])
                observability.instrument_engine(engine)
                state["engine"] = engine
                state["pid"] = os.getpid()
    return state["engine"]


_SETUP = (
    "BEGIN ISOLATION LEVEL READ COMMITTED {mode};"
    " SET LOCAL ROLE " + APP_ROLE + ";"
    # Also in the connect options, but PgBouncer drops those: JSON timestamps stay UTC.
    " SET LOCAL TIME ZONE 'UTC';"
    " SET LOCAL statement_timeout = {statement_timeout};"
    " SET LOCAL idle_in_transaction_session_timeout = {idle_timeout};"
    " SELECT set_config('pieces.tenant', %(tenant)s, true)"
)


# The setup of a one-message read (`OneMessageReads.fetch_one`). No BEGIN: the message is
# its own implicit transaction. No idle-in-transaction timeout: such a transaction never
# waits on the client.
# Its tenant parameter has its own name so the statement's own %(tenant)s stays a uuid.
# The last part (`_SET_RLS_TENANT`) also leads a `TransactionReads.fetch_one`.
_SET_RLS_TENANT = "SELECT set_config('pieces.tenant', %(rls_tenant)s, true);\n"
_READ_SETUP = (
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY;"
    " SET LOCAL ROLE " + APP_ROLE + ";"
    " SET LOCAL TIME ZONE 'UTC';"
    " SET LOCAL statement_timeout = {statement_timeout}; "
    + _SET_RLS_TENANT
)


def transaction_setup(config: Config, *, readonly: bool) -> str:
    """The text `transaction` sends first (the benchmark replays it too)."""
    return _SETUP.format(
        mode="READ ONLY" if readonly else "READ WRITE",
        statement_timeout=int(config.statement_timeout_ms),
        idle_timeout=int(config.idle_in_transaction_timeout_ms),
    )


def read_setup(config: Config) -> str:
    """The text `OneMessageReads.fetch_one` sends before its statement (the benchmark
    replays it too)."""
    return _READ_SETUP.format(statement_timeout=int(config.statement_timeout_ms))


def init_app(app) -> None:
    """Register the per-process engine slot (the engine itself is built on first use) and
    the transaction setup statements, which depend only on the configuration."""
    config: Config = app.config["PIECES"]
    app.extensions["pieces_db"] = {
        "setup": {readonly: transaction_setup(config, readonly=readonly)
                  for readonly in (True, False)},
        "read_setup": read_setup(config),
    }


def set_tenant(conn: Connection, tenant: uuid.UUID) -> None:
    """Switch the RLS tenant inside the current transaction (SystemAdmin reaching a GUID,
    a SystemAdmin sync batch naming several tenants)."""
    conn.exec_driver_sql("SELECT set_config('pieces.tenant', %(tenant)s, true)",
                         {"tenant": str(tenant)})


def set_statement_timeout(conn: Connection, milliseconds: int) -> None:
    """Give the rest of the current transaction another `statement_timeout` (a cascade over
    many rows: PIECES_CASCADE_TIMEOUT_MS)."""
    conn.exec_driver_sql("SELECT set_config('statement_timeout', %(timeout)s, true)",
                         {"timeout": f"{int(milliseconds)}ms"})


@contextmanager
def _classified() -> Iterator[None]:
    """Database exceptions leave as the service's errors (`errors.from_database`)."""
    try:
        yield
    except DBAPIError as exc:
        # A lost connection is not always an OperationalError: when the server dies
        # (pg_ctl stop -m immediate, a crash) psycopg2 raises a bare DatabaseError. SQLAlchemy
        # recognises the disconnect either way and invalidates the connection.
        raise errors.from_database(exc, disconnected=exc.connection_invalidated) from exc
    except sa_exc.TimeoutError as exc:  # no pooled connection became free in time
        raise errors.from_database(exc, disconnected=False) from exc


@contextmanager
def transaction(tenant: uuid.UUID, *, readonly: bool) -> Iterator[Connection]:
    """One transaction as `pieces_app` scoped to `tenant`; commits on success, rolls back
    on any exception."""
    setup = current_app.extensions["pieces_db"]["setup"][readonly]
    with _classified(), get_engine().connect() as conn:
        conn.exec_driver_sql(setup, {"tenant": str(tenant)})
        try:
            yield conn
        except BaseException:
            _rollback(conn)
            raise
        conn.exec_driver_sql("COMMIT")


@contextmanager
def untenanted() -> Iterator[Connection]:
    """A pooled connection with no role or tenant set, for statements that read no tenant
    data (the readiness probe)."""
    with _classified(), get_engine().connect() as conn:
        yield conn


class OneMessageReads:
    """A pooled connection on which each `fetch_one` is a read-only transaction of its own,
    sent as one message together with its setup.

    PostgreSQL runs a multi-statement message as one implicit transaction, so the
    `SET LOCAL`s (role, tenant, timeout) hold for the statement and end with it, and a
    failure anywhere rolls all of it back. psycopg2 returns the last statement's rows.
    Works unchanged behind PgBouncer (one transaction).
    """

    __slots__ = ("_cursor", "_setup")

    def __init__(self, cursor, setup: str):
        self._cursor = cursor
        self._setup = setup

    def fetch_one(self, tenant: uuid.UUID, statement: str, params: dict) -> tuple:
        """The one row of the read-only `statement`, run as `pieces_app` scoped to `tenant`."""
        self._cursor.execute(self._setup + statement, {**params, "rls_tenant": str(tenant)})
        return self._cursor.fetchone()


class TransactionReads:
    """`OneMessageReads.fetch_one` inside an open `transaction`: a read statement (the piece
    detail) run in a write, so that it sees what the write has locked. Its settings are a
    one-message read's (role `pieces_app`, UTC), so its JSON is byte for byte what a GET
    sends."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection):
        self._conn = conn

    def fetch_one(self, tenant: uuid.UUID, statement: str, params: dict) -> tuple:
        """The one row of `statement`, run in the transaction with `tenant` as its RLS tenant
        (from then on)."""
        return self._conn.exec_driver_sql(_SET_RLS_TENANT + statement,
                                          {**params, "rls_tenant": str(tenant)}).first()


@contextmanager
def reads() -> Iterator[OneMessageReads]:
    """A connection for one-message reads (`OneMessageReads`), back to the pool afterwards.

    The DBAPI cursor of SQLAlchemy's pooled connection, with no result objects to build.
    Errors are told apart as SQLAlchemy would: a lost connection is invalidated (never pooled
    again); every database error leaves as `errors.from_database` classifies it.
    """
    setup = current_app.extensions["pieces_db"]["read_setup"]
    engine = get_engine()
    pooled = _checkout(engine)
    try:
        with pooled.cursor() as cursor:
            yield OneMessageReads(cursor, setup)
    except psycopg2.Error as exc:
        raise _classified_raw(engine, pooled, exc) from exc
    finally:
        pooled.close()  # back to the pool (or discarded, when invalidated)


def _checkout(engine: Engine):
    """A pooled DBAPI connection; could not connect or pool timeout: `errors.from_database`."""
    try:
        return engine.raw_connection()
    except (psycopg2.Error, sa_exc.SQLAlchemyError) as exc:
        raise errors.from_database(exc, disconnected=False) from exc


def _classified_raw(engine: Engine, pooled, exc: psycopg2.Error) -> errors.ServiceError:
    """The service error for `exc` raised on the raw pooled connection `pooled`, told apart as
    SQLAlchemy would: a lost connection is invalidated (never pooled again)."""
    connection = pooled.dbapi_connection
    disconnected = connection is None or bool(connection.closed) \
        or engine.dialect.is_disconnect(exc, connection, None)
    if disconnected:
        pooled.invalidate(exc)
    return errors.from_database(exc, disconnected=disconnected)


def _rollback(conn: Connection) -> None:
    """Roll back; if even that fails, drop the connection rather than pool it mid-transaction."""
    try:
        conn.exec_driver_sql("ROLLBACK")
    except Exception:
        conn.invalidate()


# --- streaming reads (the export) ----------------------------------------------------------

class StreamingRead:
    """A read-only transaction as `pieces_app` scoped to one tenant, on a pooled connection
    of its own, that outlives the view: a streamed response reads from it batch by batch
    after the view has returned. Open it with `streaming_read`.

    `close()` ends it at once: ROLLBACK (a read-only transaction has nothing to commit, and
    ending it closes its cursors), then the connection goes back to the pool, or is discarded
    when it was lost or the ROLLBACK failed. Idempotent. The stream's owner calls it when
    the stream ends, fails, or is closed by the server (the client went away).
    """

    __slots__ = ("_engine", "_pooled", "_cursor")

    def __init__(self, engine: Engine, pooled, cursor):
        self._engine = engine
        self._pooled = pooled
        self._cursor = cursor

    def fetch_all(self, statement: str, params: dict, *, timeout_ms: int | None = None,
                  ) -> list[tuple]:
        """The rows of `statement` (of its last statement, for several), run with
        `statement_timeout` set to `timeout_ms` when given (sent in the same message).
        Database errors leave as `errors.from_database` classifies them."""
        if self._pooled is None:
            raise RuntimeError("streaming read used after close()")
        if timeout_ms is not None:
            statement = _STREAM_TIMEOUT + statement
            params = {**params, "stream_timeout": f"{max(1, int(timeout_ms))}ms"}
        try:
            self._cursor.execute(statement, params)
            return self._cursor.fetchall() if self._cursor.description else []
        except psycopg2.Error as exc:
            raise _classified_raw(self._engine, self._pooled, exc) from exc

    def close(self) -> None:
        """ROLLBACK and give the connection back (or discard it); a no-op the second time."""
        pooled, self._pooled = self._pooled, None
        if pooled is None:
            return
        try:
            connection = pooled.dbapi_connection
            if connection is None:
                pass  # already invalidated (lost while fetching)
            elif connection.closed:
                pooled.invalidate()
            else:
                self._cursor.execute("ROLLBACK")
        except Exception as exc:  # never pool a connection whose transaction may be open
            pooled.invalidate(exc)
        finally:
            try:
                self._cursor.close()
            except psycopg2.Error:
                pass
            pooled.close()


# Sent before a statement in the same message: that statement's own statement_timeout.
_STREAM_TIMEOUT = "SELECT set_config('statement_timeout', %(stream_timeout)s, true);\n"


def streaming_read(tenant: uuid.UUID, *, time_limit_ms: int) -> StreamingRead:
    """Open a `StreamingRead` for `tenant`: the setup of `transaction(tenant, readonly=True)`
    (BEGIN READ ONLY, role `pieces_app`, UTC, the tenant for row-level security), with
    `statement_timeout` and `idle_in_transaction_session_timeout` at `time_limit_ms` (the
    stream's own limit, instead of the request's). The caller must `close()` it."""
    engine = get_engine()
    setup = _SETUP.format(mode="READ ONLY", statement_timeout=int(time_limit_ms),
                          idle_timeout=int(time_limit_ms))
    pooled = _checkout(engine)
    try:
        stream = StreamingRead(engine, pooled, pooled.cursor())
    except BaseException:
        pooled.close()
        raise
    try:
        stream.fetch_all(setup, {"tenant": str(tenant)})
    except BaseException:
        stream.close()
        raise
    return stream
