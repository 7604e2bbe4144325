"""Plain-SQL migrations in `migrations/`, applied in file-name order, each exactly once.

Each file runs in its own transaction together with its row in `schema_migrations`; an
advisory lock keeps two concurrent starts (two `make run`s, several pods) from racing.
Running it again is a no-op.
"""
from __future__ import annotations

from pathlib import Path

import psycopg2
from sqlalchemy.engine import URL

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_KEY = 0x5049454345  # "PIECE"


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    """The migration files, in the order they apply."""
    return sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def head_version(directory: Path = MIGRATIONS_DIR) -> str:
    """The version the newest migration file brings the database to."""
    return migration_files(directory)[-1].stem


def connect(url: URL, **kwargs):
    """A plain psycopg2 connection for admin work (migrations, demo data)."""
    return psycopg2.connect(url.render_as_string(hide_password=False).replace(
        "postgresql+psycopg2://", "postgresql://", 1), **kwargs)


def migrate(url: URL, directory: Path = MIGRATIONS_DIR, echo=print) -> list[str]:
    """Apply every pending migration; return the versions applied."""
    applied_now: list[str] = []
    conn = connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
        for path in migration_files(directory):
            if path.stem in done:
                continue
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(path.read_text())
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
            conn.commit()
            conn.autocommit = True
            applied_now.append(path.stem)
            echo(f"applied {path.name}")
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.close()
    return applied_now
