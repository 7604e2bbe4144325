"""The service's errors and their HTTP statuses, in one place.

The domain layer (`pieces_service.domain`) and the database plumbing (`db`) raise these;
one Flask error handler (`web.extensions.Api`) turns each into `{"detail": …}` with the status
from `STATUS`. Database exceptions are classified once, by `from_database`.
"""
from __future__ import annotations

import psycopg2.errors
from sqlalchemy.exc import TimeoutError as PoolTimeout


class ServiceError(Exception):
    """An error with a message for the client (`detail`) and, for validation errors, the
    bad fields (`errors`). An error the same request may succeed after (`RETRY_AFTER`
    seconds) says so in `Retry-After`, so that clients and gateways back off."""

    RETRY_AFTER: str | None = None

    def __init__(self, detail: str, *, errors: dict | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        if self.RETRY_AFTER:
            self.headers.setdefault("Retry-After", self.RETRY_AFTER)


class BadRequest(ServiceError):
    """The request is well formed but contradicts itself (parent filters that do not chain)."""


class Forbidden(ServiceError):
    """The caller may not act on that tenant or row."""


class NotFound(ServiceError):
    """No such row visible to the caller."""


class Conflict(ServiceError):
    """The request conflicts with the stored rows; nothing was written."""


class ConcurrentChange(Conflict):
    """A deadlock or serialization failure between concurrent writers: nothing was written,
    and the same request succeeds when retried."""

    RETRY_AFTER = "1"


class PreconditionFailed(ServiceError):
    """The request's `If-Match` does not match the target's current representation; nothing
    was changed."""


class Invalid(ServiceError):
    """A field's value is refused (422, naming the field in `errors`)."""


class IntegrityAlarm(ServiceError):
    """A stored row breaks an invariant the schema should have kept (logged at ERROR)."""


class DatabaseFailure(ServiceError):
    """The database refused a statement for a reason the client cannot act on."""


class DatabaseUnavailable(ServiceError):
    """The database could not be reached, dropped the connection or timed out."""

    RETRY_AFTER = "1"


class ReplicaFailed(DatabaseUnavailable):
    """A streaming read's read replica failed (`db`): its owner opens it again on the
    primary while nothing has been sent (later, a lost database, as on the primary)."""


class OutcomeUnknown(DatabaseUnavailable):
    """A write's COMMIT was sent but its outcome is unknown: the connection was lost during
    it, or PostgreSQL committed locally and could not confirm the synchronous standby has it
    (its wait was cancelled). Never a 200, which would promise a write a failover may lose;
    a retry is what settles it (docs/high-availability.md)."""


class TooManyRequests(ServiceError):
    """The caller's tenant holds its share of the service (admission control): nothing was
    done; retry after `Retry-After`."""

    RETRY_AFTER = "1"


class Overloaded(ServiceError):
    """The service is at capacity, or the request waited too long before it could start:
    nothing was done; retry after `Retry-After`."""

    RETRY_AFTER = "1"


class NotAcceptable(ServiceError):
    """No representation the endpoint offers is acceptable to the caller (its `Accept`)."""


STATUS: dict[type[ServiceError], int] = {
    BadRequest: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    ConcurrentChange: 409,
    PreconditionFailed: 412,
    Invalid: 422,
    IntegrityAlarm: 500,
    DatabaseFailure: 500,
    DatabaseUnavailable: 503,
    ReplicaFailed: 503,
    OutcomeUnknown: 503,
    NotAcceptable: 406,
    TooManyRequests: 429,
    Overloaded: 503,
}


def status_of(error: ServiceError) -> int:
    """The HTTP status of `error` (its nearest class in `STATUS`)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def from_database(exc: BaseException, *, disconnected: bool) -> ServiceError:
    """The service error for a database exception (psycopg2's, or SQLAlchemy's wrapping one).

    `disconnected`: the connection was lost (the caller has already discarded it).
    """
    orig = getattr(exc, "orig", None) or exc
    if not disconnected:
        if isinstance(orig, psycopg2.errors.TransactionRollbackError):
            return ConcurrentChange("A concurrent change touched the same rows; nothing was "
                                    "written. Retry the request.")
        if isinstance(orig, psycopg2.IntegrityError):
            constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
            return Conflict("The request conflicts with existing rows"
                            + (f" (constraint {constraint})" if constraint else "")
                            + "; nothing was written.")
        if not (isinstance(orig, (psycopg2.OperationalError, psycopg2.InterfaceError))
                or isinstance(exc, PoolTimeout)):
            return DatabaseFailure("Internal server error")
    # Lost, could not connect, statement_timeout, or no pooled connection came free.
    return DatabaseUnavailable("Database unavailable")


# What PostgreSQL says (a WARNING, with the COMMIT's success) when a commit's wait for its
# synchronous standby is cancelled: statement_timeout, pg_cancel_backend. In English: the
# warning carries no SQLSTATE of its own to match instead.
_SYNC_WAIT_CANCELLED = "canceling wait for synchronous replication"

_OUTCOME_UNKNOWN = ("The outcome of this write is unknown: {why}. It may or may not be "
                    "stored. Retry the request: sync is idempotent and safe to retry (a "
                    "retried delete or restore answers 404 when the first one took effect).")


def from_commit(exc: BaseException | None, *, lost: bool = False,
                notices: list[str] = ()) -> ServiceError | None:
    """The service error for a write's COMMIT, from its exception (`exc`, None when it
    returned; `lost`: it lost the connection) and the notices the server sent with it; None
    when it committed.

    A COMMIT that lost its connection, or whose synchronous-replication wait was cancelled,
    has an unknown outcome (`OutcomeUnknown`, 503): the row may be on the primary and on no
    standby, so a failover can still lose it. Any other failure is what `from_database`
    says (the transaction did not commit)."""
    if exc is None:
        if any(_SYNC_WAIT_CANCELLED in notice for notice in notices):
            return OutcomeUnknown(_OUTCOME_UNKNOWN.format(
                why="the database committed it but could not confirm that its standby has "
                    "it (the wait for synchronous replication was cancelled)"))
        return None
    if lost:
        return OutcomeUnknown(_OUTCOME_UNKNOWN.format(
            why="the connection to the database was lost during its commit"))
    return from_database(exc, disconnected=False)
