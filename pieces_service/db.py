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

With read replicas (`PIECES_DATABASE_REPLICA_URLS`), `reads()` and `streaming_read()` run on
a healthy replica, taken in turn (`Replica`), and everything in `transaction()` on the primary.
A replica that fails (cannot connect, connection lost) is skipped for
`PIECES_REPLICA_RETRY_MS` and the read runs again on the primary: never an error because of
a replica. A write's response carries its commit's WAL position (`web.consistency`), and a
read that sends it back only goes to a replica that has replayed that far.

Database exceptions never leave this module raw: `errors.from_database` classifies them.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extras
from flask import current_app
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError

from . import errors
from .dao import PreparedRead, load_queries
from .web import consistency, observability
from .config import Config

log = logging.getLogger(__name__)

APP_ROLE = "pieces_app"
PRIMARY = "primary"  # the node label of the primary in the metrics

# uuid.UUID in and out of psycopg2 (parameters are adapted as 'x'::uuid literals).
psycopg2.extras.register_uuid()

_engine_lock = threading.Lock()


def build_engine(config: Config, url: URL | None = None, cursor_factory=None) -> Engine:
    """An engine for `config` (for the primary, or for the replica at `url`); never connects
    by itself. `cursor_factory`: the psycopg2 cursor class of its connections (tracing's,
    whose `execute` is a span; None: psycopg2's own)."""
    extra = {"cursor_factory": cursor_factory} if cursor_factory is not None else {}
    return create_engine(
        url or config.database_url,
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
            **extra,
        },
    )


def _state() -> dict:
    """This process's engines (the primary's, and a `Replica` each), created on first use
    (never at import or in the factory, so a gunicorn worker forks before it owns any
    socket)."""
    app = current_app._get_current_object()
    state = app.extensions["pieces_db"]
    if state.get("pid") != os.getpid():
        with _engine_lock:
            if state.get("pid") != os.getpid():
                config = app.config["PIECES"]
                cursor_factory = state["cursor_factory"]
                engine = build_engine(config, cursor_factory=cursor_factory)
                observability.instrument_engine(engine)
                replicas = tuple(Replica(f"replica{number}",
                                         build_engine(config, url, cursor_factory), config)
                                 for number, url in enumerate(config.replica_urls, 1))
                for replica in replicas:
                    observability.instrument_engine(replica.engine)
                state["engine"] = engine
                state["replicas"] = replicas
                state["turn"] = itertools.count()
                state["prepare"] = config.db_prepared_statements
                state["commit_deadlines"] = CommitDeadlines(config.statement_timeout_ms / 1000)
                state["pid"] = os.getpid()
    return state


def get_engine() -> Engine:
    """This process's engine of the primary (see `_state`)."""
    return _state()["engine"]


def dispose(app) -> None:
    """Close the pools of `app`'s engines in this process (tests building apps of their own)."""
    state = app.extensions["pieces_db"]
    if state.get("pid") == os.getpid():
        state["engine"].dispose()
        for replica in state["replicas"]:
            replica.engine.dispose()


_SETUP = (
    "BEGIN ISOLATION LEVEL READ COMMITTED {mode};"
    " SET LOCAL ROLE " + APP_ROLE + ";"
    # Also in the connect options, but PgBouncer drops those: JSON timestamps stay UTC.
    " SET LOCAL TIME ZONE 'UTC';"
    " SET LOCAL statement_timeout = {statement_timeout};"
    " SET LOCAL idle_in_transaction_session_timeout = {idle_timeout};"
    # SET LOCAL, not set_config(): Citus propagates SET LOCAL to its workers
    # (citus.propagate_set_commands = 'local', docs/scale-out.md), never a function call.
    " SET LOCAL pieces.tenant = %(tenant)s"
)


# The setup of a one-message read (`OneMessageReads.fetch_one`). No BEGIN: the message is
# its own implicit transaction. No idle-in-transaction timeout: such a transaction never
# waits on the client.
# Its tenant parameter has its own name so the statement's own %(tenant)s stays a uuid.
# The last part (`_SET_RLS_TENANT`) also leads a `TransactionReads.fetch_one`.
_SET_RLS_TENANT = "SET LOCAL pieces.tenant = %(rls_tenant)s;\n"
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


def init_app(app, cursor_factory=None) -> None:
    """Register the per-process engine slot (the engine itself is built on first use) and
    the transaction setup statements, which depend only on the configuration.
    `cursor_factory`: see `build_engine` (the app factory passes tracing's when it is on)."""
    config: Config = app.config["PIECES"]
    app.extensions["pieces_db"] = {
        "cursor_factory": cursor_factory,
        "setup": {readonly: transaction_setup(config, readonly=readonly)
                  for readonly in (True, False)},
        "read_setup": read_setup(config),
        # With replicas, a write's COMMIT also reads the WAL position for its token, in the
        # same message: the insert position after the commit is at or past the end of the
        # commit record, even with synchronous_commit off (pg_current_wal_lsn(), the
        # position written out, could then still be before it; an insert position read
        # before COMMIT is before the commit record itself).
        "commit": "COMMIT; SELECT pg_current_wal_insert_lsn()::text" if config.replica_urls
                  else None,
    }
    consistency.init_app(app)


def set_tenant(conn: Connection, tenant: uuid.UUID) -> None:
    """Switch the RLS tenant inside the current transaction (SystemAdmin reaching a GUID,
    a SystemAdmin sync batch naming several tenants)."""
    conn.exec_driver_sql("SET LOCAL pieces.tenant = %(tenant)s", {"tenant": str(tenant)})


def set_statement_timeout(conn: Connection, milliseconds: int) -> None:
    """Give the rest of the current transaction another `statement_timeout` (a cascade over
    many rows: PIECES_CASCADE_TIMEOUT_MS)."""
    conn.exec_driver_sql("SET LOCAL statement_timeout = %(timeout)s",
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
    settings = current_app.extensions["pieces_db"]
    commit = None if readonly else settings["commit"]
    with _classified(), get_engine().connect() as conn:
        conn.exec_driver_sql(settings["setup"][readonly], {"tenant": str(tenant)})
        try:
            yield conn
        except BaseException:
            _rollback(conn)
            raise
        _commit(conn, commit)


def _commit(conn: Connection, commit: str | None) -> None:
    """COMMIT (with the consistency token's query when `commit` is given), cancelled when it
    runs past `PIECES_STATEMENT_TIMEOUT_MS` (`CommitDeadlines`). A COMMIT whose outcome is
    unknown (connection lost, or the wait for the synchronous standby cancelled: a WARNING,
    not an error) raises `errors.OutcomeUnknown`, never passes as a success.

    On the DBAPI cursor: SQLAlchemy's execution logs and clears the notices it finds."""
    pooled = conn.connection
    connection = pooled.dbapi_connection
    # This COMMIT's notices on a list of their own, then handed on to the connection's.
    kept, connection.notices = connection.notices, []
    try:
        with _state()["commit_deadlines"].watch(connection), connection.cursor() as cursor:
            cursor.execute(commit or "COMMIT")
            if commit is not None:
                consistency.remember(cursor.fetchone()[0])
    except psycopg2.Error as exc:
        raise errors.from_commit(exc, lost=_lost(get_engine(), pooled, exc)) from exc
    finally:
        notices, connection.notices = connection.notices, kept
        for notice in notices:
            kept.append(notice)
    unknown = errors.from_commit(None, notices=notices)
    if unknown is not None:
        raise unknown


class CommitDeadlines:
    """Cancels a COMMIT that runs past its deadline, from one thread per process.

    PostgreSQL turns `statement_timeout` off before it commits, so nothing on the server
    bounds a COMMIT's wait for its synchronous standby: with that standby gone (a promoted
    standby that kept `synchronous_standby_names`, docs/high-availability.md) every write
    would hang. A cancel ends the wait; the transaction is then committed locally and the
    server says so in a WARNING, which `_commit` turns into a 503 (outcome unknown).
    The cancel is sent while the lock is held, so the connection cannot be back in the pool
    and running another request's statement when it arrives."""

    def __init__(self, seconds: float):
        self._seconds = seconds
        self._lock = threading.Condition()
        self._due: dict[object, tuple[float, object]] = {}
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, connection) -> Iterator[None]:
        """Cancel `connection`'s statement (a psycopg2 connection) if still running after
        the deadline."""
        token = object()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="pieces-commit-deadlines")
                self._thread.start()
            self._due[token] = (time.monotonic() + self._seconds, connection)
            self._lock.notify()
        try:
            yield
        finally:
            with self._lock:
                self._due.pop(token, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for token, (deadline, connection) in list(self._due.items()):
                    if deadline <= now:
                        del self._due[token]
                        try:
                            connection.cancel()
                        except psycopg2.Error:
                            pass  # lost: the COMMIT fails by itself
                        log.warning("a COMMIT ran past its deadline and was cancelled")
                soonest = min((deadline for deadline, _ in self._due.values()), default=None)
                self._lock.wait(None if soonest is None else max(0.0, soonest - now))


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

    A `dao.PreparedRead` is sent as `EXECUTE` of a statement prepared once per connection
    (`PIECES_DB_PREPARED_STATEMENTS`): PostgreSQL then skips parsing, analysing and rewriting
    it (row-level security's policies are added by the rewrite), and planning it once its
    plan is generic. Where a pooler hands the message to a server session that never
    prepared it, the read is sent again as plain text and this process prepares nothing
    more (`_prepared_off`).
    """

    __slots__ = ("_lease", "_setup")

    def __init__(self, lease: "_Lease", setup: str):
        self._lease = lease
        self._setup = setup

    def fetch_one(self, tenant: uuid.UUID, statement: str | PreparedRead,
                  params: dict) -> tuple:
        """The one row of the read-only `statement`, run as `pieces_app` scoped to `tenant`
        (again on the primary when its replica fails: a one-message read is a transaction
        of its own, so nothing else needs repeating)."""
        args = {**params, "rls_tenant": str(tenant)}
        try:
            row = self._fetch(statement, args)
        except psycopg2.Error as exc:
            if not self._lease.replica_failed(exc):
                raise
            self._lease.close()
            self._lease = _Lease(None, get_engine())
            row = self._fetch(statement, args)
        observability.DB_READS.labels(self._lease.node).inc()
        return row

    def _fetch(self, statement: str | PreparedRead, args: dict) -> tuple:
        cursor = self._lease.cursor
        if isinstance(statement, PreparedRead):
            if self._lease.prepared(statement):
                try:
                    cursor.execute(self._setup + statement.execute, args)
                    return cursor.fetchone()
                except psycopg2.errors.InvalidSqlStatementName:
                    _prepared_off()  # the message met a session that lacks it: a pooler
            statement = statement.text
        cursor.execute(self._setup + statement, args)
        return cursor.fetchone()


# A statement is prepared as the role it runs as, so that its first EXECUTE need not
# rewrite it again for that role's row-level security.
_PREPARE_AS_APP = "SET LOCAL ROLE " + APP_ROLE + ";\n"
_PREPARED = "pieces_prepared"  # the names prepared on a connection (its pool `info`)


def _prepared_off() -> None:
    """Prepare nothing more in this process: a read found its prepared statement missing,
    so a pooler in transaction mode (PgBouncer) stands between us and the sessions."""
    state = _state()
    if state["prepare"]:
        state["prepare"] = False
        log.warning("prepared statements are off in this process: a prepared statement was "
                    "missing on the server (a pooler in transaction mode? set "
                    "PIECES_DB_PREPARED_STATEMENTS=off)")


class TransactionReads:
    """`OneMessageReads.fetch_one` inside an open `transaction`: a read statement (the piece
    detail) run in a write, so that it sees what the write has locked. Its settings are a
    one-message read's (role `pieces_app`, UTC), so its JSON is byte for byte what a GET
    sends."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection):
        self._conn = conn

    def fetch_one(self, tenant: uuid.UUID, statement: str | PreparedRead,
                  params: dict) -> tuple:
        """The one row of `statement`, run in the transaction with `tenant` as its RLS tenant
        (from then on); as plain text, since a write runs it once."""
        if isinstance(statement, PreparedRead):
            statement = statement.text
        return self._conn.exec_driver_sql(_SET_RLS_TENANT + statement,
                                          {**params, "rls_tenant": str(tenant)}).first()


@contextmanager
def reads() -> Iterator[OneMessageReads]:
    """A connection for one-message reads (`OneMessageReads`), back to the pool afterwards.

    The DBAPI cursor of SQLAlchemy's pooled connection, with no result objects to build.
    Errors are told apart as SQLAlchemy would: a lost connection is invalidated (never pooled
    again); every database error leaves as `errors.from_database` classifies it.
    On a replica when one is healthy (`_read_lease`).
    """
    reads = OneMessageReads(_read_lease(), current_app.extensions["pieces_db"]["read_setup"])
    try:
        yield reads
    except psycopg2.Error as exc:
        raise reads._lease.classified(exc) from exc
    finally:
        reads._lease.close()  # back to the pool (or discarded, when invalidated)


def _checkout(engine: Engine):
    """A pooled DBAPI connection; could not connect or pool timeout: `errors.from_database`."""
    try:
        return engine.raw_connection()
    except (psycopg2.Error, sa_exc.SQLAlchemyError) as exc:
        raise errors.from_database(exc, disconnected=False) from exc


def _classified_raw(engine: Engine, pooled, exc: psycopg2.Error) -> errors.ServiceError:
    """The service error for `exc` raised on the raw pooled connection `pooled`, told apart as
    SQLAlchemy would: a lost connection is invalidated (never pooled again)."""
    return errors.from_database(exc, disconnected=_lost(engine, pooled, exc))


def _lost(engine: Engine, pooled, exc: psycopg2.Error) -> bool:
    """Whether `exc` lost the raw pooled connection `pooled` (as SQLAlchemy tells it), which
    is then invalidated (never pooled again)."""
    connection = pooled.dbapi_connection
    disconnected = connection is None or bool(connection.closed) \
        or engine.dialect.is_disconnect(exc, connection, None)
    if disconnected and connection is not None:
        pooled.invalidate(exc)
    return disconnected


class _Lease:
    """A pooled DBAPI connection and its cursor, of the primary (`replica` None) or of a
    replica."""

    __slots__ = ("replica", "engine", "pooled", "cursor")

    def __init__(self, replica: "Replica | None", engine: Engine):
        self.replica = replica
        self.engine = engine
        self.pooled = _checkout(engine)
        try:
            self.cursor = self.pooled.cursor()
        except BaseException:
            self.pooled.close()
            raise

    @property
    def node(self) -> str:
        return self.replica.name if self.replica else PRIMARY

    def classified(self, exc: psycopg2.Error) -> errors.ServiceError:
        return _classified_raw(self.engine, self.pooled, exc)

    def prepared(self, statement: PreparedRead) -> bool:
        """Whether `statement` is prepared on this connection, preparing it first (its own
        round trip, once per connection); False when this process prepares nothing."""
        if not _state()["prepare"]:
            return False
        names = self.pooled.info.setdefault(_PREPARED, set())
        if statement.name in names:
            return True
        try:
            self.cursor.execute(_PREPARE_AS_APP + statement.prepare)
        except psycopg2.errors.DuplicatePreparedStatement:
            pass  # the same name is the same text: a pooler's session had it already
        names.add(statement.name)
        return True

    def replica_failed(self, exc: psycopg2.Error) -> bool:
        """Whether `exc` lost this replica's connection, for the primary to take over (the
        connection is discarded and the replica skipped for a while). Always False on the
        primary."""
        if self.replica is None or not _lost(self.engine, self.pooled, exc):
            return False
        self.replica.failed(exc)
        return True

    def close(self) -> None:
        """Give the connection back (or discard it, when invalidated); idempotent."""
        try:
            self.cursor.close()
        except psycopg2.Error:
            pass
        self.pooled.close()


def _read_lease() -> _Lease:
    """A connection for a read: of the next healthy replica (one that has replayed the
    request's consistency token, when it sends one), else, or when its checkout fails, of
    the primary. A malformed token is a 422 even without replicas."""
    min_lsn = consistency.required()
    state = _state()
    replicas = state["replicas"]
    if replicas:
        start = next(state["turn"])
        for offset in range(len(replicas)):
            replica = replicas[(start + offset) % len(replicas)]
            if replica.usable(min_lsn):
                try:
                    return _Lease(replica, replica.engine)
                except errors.ServiceError as exc:  # the primary takes over
                    replica.failed(exc.__cause__)
                    break
    return _Lease(None, state["engine"])


# A replica's replay position and lag (dao/sql/health.sql; it reads no tenant data).
_REPLICA_CHECK = load_queries("health.sql")["replica_position"]


class Replica:
    """A read replica, as one process sees it: its engine, whether it is down, and its
    replay position and lag as last measured (at most every `PIECES_REPLICA_CHECK_MS`, by
    the request that finds the measure old, on one of the replica's pooled connections)."""

    def __init__(self, name: str, engine: Engine, config: Config):
        self.name = name
        self.engine = engine
        self._check_s = config.replica_check_ms / 1000
        self._retry_s = config.replica_retry_ms / 1000
        self._max_lag_ms = config.replica_max_lag_ms
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._checked_at = float("-inf")
        self.replay_lsn: int | None = None
        self.lag_ms = float("inf")

    def usable(self, min_lsn: int | None) -> bool:
        """Up, within the lag bound, and replayed up to `min_lsn` (when given)."""
        now = time.monotonic()
        if now < self._down_until:
            return False
        if now - self._checked_at >= self._check_s and self._lock.acquire(blocking=False):
            try:
                self._measure(now)
            finally:
                self._lock.release()
        return (self.replay_lsn is not None and self.lag_ms <= self._max_lag_ms
                and (min_lsn is None or self.replay_lsn >= min_lsn))

    def _measure(self, now: float) -> None:
        try:
            lease = _Lease(self, self.engine)
        except errors.ServiceError as exc:
            self.failed(exc.__cause__)
            return
        try:
            lease.cursor.execute(_REPLICA_CHECK)
            position, lag_ms = lease.cursor.fetchone()
        except psycopg2.Error as exc:
            _lost(self.engine, lease.pooled, exc)
            self.failed(exc)
            return
        finally:
            lease.close()
        if position is None and self.replay_lsn is not None:
            log.warning("read replica is not a standby (promoted?); not used",
                        extra={"node": self.name})
        self._checked_at = now
        self.replay_lsn = consistency.lsn_value(position) if position else None
        self.lag_ms = lag_ms
        observability.record_replica(self.name, up=position is not None, lag_ms=lag_ms)

    def failed(self, exc: BaseException | None) -> None:
        """Skip this replica for `PIECES_REPLICA_RETRY_MS`, then measure it again before use;
        its pooled connections are closed (they are as dead as the one that failed). A pool
        with no connection free (`exc` a pool timeout) is busy, not down: nothing changes."""
        if isinstance(exc, sa_exc.TimeoutError):
            return
        self._down_until = time.monotonic() + self._retry_s
        self._checked_at = float("-inf")
        self.replay_lsn = None
        self.engine.dispose()
        observability.record_replica(self.name, up=False, lag_ms=None)
        log.warning("read replica unavailable; reads go elsewhere",
                    extra={"node": self.name, "error": type(exc).__name__,
                           "retry_in_s": self._retry_s})


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

    __slots__ = ("_lease",)

    def __init__(self, lease: _Lease):
        self._lease = lease

    def fetch_all(self, statement: str, params: dict, *, timeout_ms: int | None = None,
                  ) -> list[tuple]:
        """The rows of `statement` (of its last statement, for several), run with
        `statement_timeout` set to `timeout_ms` when given (sent in the same message).
        Database errors leave as `errors.from_database` classifies them; a replica's
        failure as `errors.ReplicaFailed`."""
        lease = self._lease
        if lease is None:
            raise RuntimeError("streaming read used after close()")
        if timeout_ms is not None:
            statement = _STREAM_TIMEOUT + statement
            params = {**params, "stream_timeout": f"{max(1, int(timeout_ms))}ms"}
        try:
            lease.cursor.execute(statement, params)
            return lease.cursor.fetchall() if lease.cursor.description else []
        except psycopg2.Error as exc:
            if lease.replica_failed(exc):
                raise errors.ReplicaFailed("Database unavailable") from exc
            raise lease.classified(exc) from exc

    def close(self) -> None:
        """ROLLBACK and give the connection back (or discard it); a no-op the second time."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        pooled = lease.pooled
        try:
            connection = pooled.dbapi_connection
            if connection is None:
                pass  # already invalidated (lost while fetching)
            elif connection.closed:
                pooled.invalidate()
            else:
                lease.cursor.execute("ROLLBACK")
        except Exception as exc:  # never pool a connection whose transaction may be open
            pooled.invalidate(exc)
        finally:
            lease.close()


# Sent before a statement in the same message: that statement's own statement_timeout.
_STREAM_TIMEOUT = "SET LOCAL statement_timeout = %(stream_timeout)s;\n"


def streaming_read(tenant: uuid.UUID, *, time_limit_ms: int,
                   primary: bool = False) -> StreamingRead:
    """Open a `StreamingRead` for `tenant`: the setup of `transaction(tenant, readonly=True)`
    (BEGIN READ ONLY, role `pieces_app`, UTC, the tenant for row-level security), with
    `statement_timeout` and `idle_in_transaction_session_timeout` at `time_limit_ms` (the
    stream's own limit, instead of the request's). The caller must `close()` it.

    On a replica as `reads()` chooses (`primary`: on the primary, after `errors.ReplicaFailed`)."""
    setup = _SETUP.format(mode="READ ONLY", statement_timeout=int(time_limit_ms),
                          idle_timeout=int(time_limit_ms))
    stream = StreamingRead(_Lease(None, get_engine()) if primary else _read_lease())
    try:
        stream.fetch_all(setup, {"tenant": str(tenant)})
    except BaseException:
        stream.close()
        raise
    observability.DB_READS.labels(stream._lease.node).inc()
    return stream
