"""The embedded PostgreSQL used when no DATABASE_URL is given (the `pgserver` wheel, the
`local` extra): `make run`, `make migrate`, `make demo-data`, `make test` and `make bench`.

Its data lives under the project folder (`.local/pgdata`), so a second `make run` or
`make test` reuses it. The server stops when the last process holding it exits.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = PROJECT_DIR / ".local"
PGDATA = LOCAL_DIR / "pgdata"


def start(pgdata: Path = PGDATA, *, keep_running: bool = False):
    """Start (or attach to) the embedded server; return the pgserver handle."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(LOCAL_DIR / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_holders(pgdata)
        return pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop processes that no longer exist from pgserver's list of the server's holders.

    pgserver stops the server when the last process on that list exits; a holder killed
    with SIGKILL never takes itself off, and the server would then never stop.
    """
    try:
        import psutil
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import DiskList
    except ImportError:  # another pgserver layout: keep its own bookkeeping
        return
    holders = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        for pid in holders.get():
            if not psutil.pid_exists(pid):
                holders.get_and_remove(pid)


def database_url(server, database: str) -> str:
    """A postgresql:// URL for `database` on the embedded server, created if missing."""
    exists = server.psql(
        f"SELECT 1 FROM pg_database WHERE datname = '{database}';"
    )
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return server.get_uri(database)
