"""Plain-SQL migrations, `pieces_service/migrations/NNNN_*.sql`, applied in file-name order,
each exactly once (docs/migrations.md).

The files ship inside the package (package data), so an installed service migrates as a source
checkout does. A file runs in one of two modes:

* by default, in its own transaction together with its row in `schema_migrations`, under a
  `lock_timeout` (`LOCK_TIMEOUT`; a file may `SET LOCAL` another): it applies whole or not at
  all;
* a file whose first line is `-- migrate: no-transaction` runs statement by statement in
  autocommit, for what PostgreSQL refuses inside a transaction (`CREATE INDEX CONCURRENTLY`).
  Its row is written only after its last statement succeeded, so a file that failed half way
  runs again, from its first statement: each must be re-runnable.

A session advisory lock keeps concurrent starts (two `make run`s, several pods) from racing; a
waiting run polls for it rather than blocking in a statement, because a session blocked in a
statement holds a snapshot that the running `CREATE INDEX CONCURRENTLY` would have to wait
for: a deadlock. Running it again is a no-op.
"""
from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Callable

import psycopg2
import psycopg2.errors
from sqlalchemy.engine import URL

from .config import libpq_dsn

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

MIGRATIONS_DIR: Traversable = files("pieces_service") / "migrations"
NO_TRANSACTION = "no-transaction"
HEADER = f"-- migrate: {NO_TRANSACTION}"
LOCK_TIMEOUT = "5s"  # for transactional files; None to wait for locks as long as it takes
_LOCK_KEY = 0x5049454345  # "PIECE"
_FILE_NAME = re.compile(r"[0-9]{4}_.+\.sql")


class MigrationError(Exception):
    """No migrations to apply, a file the runner refuses, or a file that failed (chained to
    the database error). The message is meant for the operator, as one line."""


@dataclass(frozen=True)
class Migration:
    """One migration file, read and checked."""

    name: str                    # the file name, 0003_index_only_pages.sql
    sql: str                     # the whole text
    transactional: bool          # False for a `-- migrate: no-transaction` file
    statements: tuple[str, ...]  # a no-transaction file's statements, in order; else ()

    @property
    def version(self) -> str:
        """What `schema_migrations` records: the file name without `.sql`."""
        return self.name[:-len(".sql")]


def migration_files(directory: Traversable = MIGRATIONS_DIR) -> list:
    """The migration files, in the order they apply. Raises `MigrationError` when there is
    none: a service without its migrations must not report the database up to date."""
    try:
        found = [entry for entry in directory.iterdir()
                 if _FILE_NAME.fullmatch(entry.name) and entry.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        found = []
    if not found:
        raise MigrationError(f"no migration files (NNNN_name.sql) in {directory}: the "
                             f"package was installed without its migrations")
    return sorted(found, key=lambda entry: entry.name)


def head_version(directory: Traversable = MIGRATIONS_DIR) -> str:
    """The version the newest migration file brings the database to."""
    return migration_files(directory)[-1].name[:-len(".sql")]


def load_migrations(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, read and checked (`parse_migration`), in the order they apply."""
    return [parse_migration(entry.name, entry.read_text(encoding="utf-8"))
            for entry in migration_files(directory)]


# --- reading a file ------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"--\s*migrate\s*:(.*)", re.IGNORECASE)
_SPLIT_RULE = ("a no-transaction file holds plain statements, each ending with ';' at the end "
               "of a line, comments on lines of their own")
_TRANSACTION_CONTROL = re.compile(
    r"(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE"
    r"|PREPARE\s+TRANSACTION)\b", re.IGNORECASE)
_NAME = r'(?:(?:"[^"]+"|[A-Za-z_]\w*)\.)?("[^"]+"|[A-Za-z_]\w*)'
_CREATE_CONCURRENTLY = re.compile(
    r'CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?("[^"]+"|\w+)',
    re.IGNORECASE)
_DROP_CONCURRENTLY = re.compile(r"DROP\s+INDEX\s+CONCURRENTLY\s+(IF\s+EXISTS\s+)?" + _NAME
                                + r"\s*;$", re.IGNORECASE)


def parse_migration(name: str, text: str) -> Migration:
    """Read one file: its mode from the header, and for a no-transaction file its statements.
    Raises `MigrationError` for a misplaced or unknown `-- migrate:` header, and for a
    no-transaction file that cannot be split safely or that holds a statement which cannot
    run again (see `split_statements`)."""
    lines = text.splitlines()
    transactional = True
    for number, line in enumerate(lines, 1):
        match = _DIRECTIVE.match(line.strip())
        if match is None:
            continue
        if number != 1:
            raise MigrationError(f"{name}: line {number}: a `-- migrate:` header must be the "
                                 f"first line of the file")
        if match.group(1).strip() != NO_TRANSACTION:
            raise MigrationError(f"{name}: line 1: unknown header {line.strip()!r}; the only "
                                 f"header is {HEADER!r}")
        transactional = False
    if transactional:
        return Migration(name, text, True, ())
    return Migration(name, text, False, split_statements(name, lines[1:], first_line=2))


def split_statements(name: str, lines: list[str], first_line: int = 1) -> tuple[str, ...]:
    """The statements of a no-transaction file, one per `;` at the end of a line.

    Only text that splits that way without doubt is accepted: a line holding dollar quoting,
    a backslash, a block comment, a trailing `--` comment, a `;` before its end or a quote
    left open at its end is refused, as is transaction control. So that a failed run can
    simply run again, each `CREATE INDEX CONCURRENTLY x` must follow
    `DROP INDEX CONCURRENTLY IF EXISTS x` (the drop also clears the INVALID index a failed
    build leaves), and `DROP INDEX CONCURRENTLY` must say `IF EXISTS`."""
    statements: list[str] = []
    current: list[str] = []
    start = first_line
    dropped: set[str] = set()
    for number, line in enumerate(lines, first_line):
        text = line.strip()
        if not text or text.startswith("--"):
            continue
        problem = _unsplittable(text)
        if problem:
            raise MigrationError(f"{name}: line {number}: {problem}; {_SPLIT_RULE}")
        if not current:
            start = number
        current.append(line.rstrip())
        if text.endswith(";"):
            statement = "\n".join(current)
            _check_rerunnable(name, start, statement, dropped)
            statements.append(statement)
            current = []
    if current:
        raise MigrationError(f"{name}: line {start}: the statement there does not end with "
                             f"';' at the end of a line; {_SPLIT_RULE}")
    if not statements:
        raise MigrationError(f"{name}: a no-transaction file without a statement")
    return tuple(statements)


def _unsplittable(text: str) -> str | None:
    """Why one line of a no-transaction file cannot be split safely, or None."""
    if "$" in text:
        return "dollar quoting ($) is not allowed"
    if "\\" in text:
        return "a backslash is not allowed"
    if "/*" in text or "*/" in text:
        return "block comments are not allowed"
    if "--" in text:
        return "a comment after code is not allowed"
    if ";" in text[:-1]:
        return "';' is allowed only as the last character of a line"
    if text.count("'") % 2 or text.count('"') % 2:
        return "a quoted string or name must close on the line it opens"
    return None


def _check_rerunnable(name: str, line: int, statement: str, dropped: set[str]) -> None:
    text = " ".join(statement.split())
    if _TRANSACTION_CONTROL.match(text):
        raise MigrationError(f"{name}: line {line}: transaction control does not belong in a "
                             f"no-transaction file (each statement commits on its own)")
    drop = _DROP_CONCURRENTLY.match(text)
    if drop:
        if not drop.group(1):
            raise MigrationError(f"{name}: line {line}: DROP INDEX CONCURRENTLY without IF "
                                 f"EXISTS fails when the file runs again")
        dropped.add(_identifier(drop.group(2)))
        return
    create = _CREATE_CONCURRENTLY.match(text)
    if create:
        index = create.group(1)
        if index.upper() == "ON":
            raise MigrationError(f"{name}: line {line}: name the index CREATE INDEX "
                                 f"CONCURRENTLY builds, so that a rerun can drop it first")
        if _identifier(index) not in dropped:
            raise MigrationError(
                f"{name}: line {line}: CREATE INDEX CONCURRENTLY {index} cannot run again "
                f"after a failure (which leaves an INVALID index): put "
                f"'DROP INDEX CONCURRENTLY IF EXISTS {index};' before it")


def _identifier(name: str) -> str:
    """A name as PostgreSQL folds it: quoted kept, unquoted lower-cased."""
    return name[1:-1] if name.startswith('"') else name.lower()


# --- applying --------------------------------------------------------------------------------

def connect(url: URL, **kwargs):
    """A plain psycopg2 connection for admin work (migrations, demo data); `url` may name
    several hosts (`config.libpq_dsn`)."""
    return psycopg2.connect(libpq_dsn(url), **kwargs)


def migrate(url: URL, directory: Traversable = MIGRATIONS_DIR,
            echo: Callable[[str], object] = print, *,
            lock_timeout: str | None = LOCK_TIMEOUT) -> list[str]:
    """Apply every pending migration; return the versions applied.

    Raises `MigrationError` when there are no migration files, when a file is refused (before
    anything is applied), and when a file fails: a transactional file is then rolled back
    whole, a no-transaction file keeps the statements before the failing one and its version
    stays unrecorded. `lock_timeout` bounds each lock wait of a transactional file."""
    migrations = load_migrations(directory)
    applied_now: list[str] = []
    conn = connect(url)
    try:
        conn.autocommit = True
        _lock(conn, echo)
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
        for migration in migrations:
            if migration.version in done:
                continue
            if migration.transactional:
                _apply_in_one_transaction(conn, migration, lock_timeout)
            else:
                _apply_statement_by_statement(conn, migration)
            applied_now.append(migration.version)
            echo(f"applied {migration.name}")
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.close()  # also ends the session, and with it the advisory lock
    return applied_now


def _lock(conn, echo, longest_pause: float = 1.0) -> None:
    """Take the migration lock, polling: between tries this session runs no statement."""
    pause = 0.05
    with conn.cursor() as cur:
        for attempt in itertools.count():
            cur.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,))
            if cur.fetchone()[0]:
                return
            if attempt == 0:
                echo("waiting for another migration run to finish")
            time.sleep(pause)
            pause = min(pause * 2, longest_pause)


def _apply_in_one_transaction(conn, migration: Migration, lock_timeout: str | None) -> None:
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            if lock_timeout:
                cur.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            cur.execute(migration.sql)
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                        (migration.version,))
        conn.commit()
    except psycopg2.Error as exc:
        _rollback_quietly(conn)
        hint = ""
        if isinstance(exc, psycopg2.errors.ActiveSqlTransaction):
            hint = (f"; a statement that cannot run in a transaction belongs in a file whose "
                    f"first line is {HEADER!r}")
        elif isinstance(exc, psycopg2.errors.LockNotAvailable):
            hint = (f"; it waited longer than lock_timeout ({lock_timeout}) behind another "
                    f"session's lock: run it again when that transaction is over")
        raise MigrationError(f"{migration.name} failed and was rolled back, none of it "
                             f"applied: {_message(exc)}{hint}") from exc
    finally:
        if not conn.closed:
            conn.autocommit = True


def _apply_statement_by_statement(conn, migration: Migration) -> None:
    conn.autocommit = True
    total = len(migration.statements)
    with conn.cursor() as cur:
        for number, statement in enumerate(migration.statements, 1):
            try:
                cur.execute(statement)
            except psycopg2.Error as exc:
                raise MigrationError(
                    f"{migration.name} (no-transaction) failed at statement {number} of "
                    f"{total}: {_message(exc)}; the statements before it took effect and the "
                    f"version is not recorded: fix the cause and run the migrations again, "
                    f"which reruns the file from its first statement") from exc
        cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                    (migration.version,))


def _rollback_quietly(conn) -> None:
    try:
        conn.rollback()
    except psycopg2.Error:
        pass  # the connection is gone, and the server rolled the transaction back with it


def _message(exc: psycopg2.Error) -> str:
    primary = getattr(exc.diag, "message_primary", None)
    return primary or " ".join(str(exc).split()) or type(exc).__name__
