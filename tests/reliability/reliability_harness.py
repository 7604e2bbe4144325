"""Servers the reliability tests start for themselves: a private PostgreSQL (the pgserver
wheel's binaries), the real service under gunicorn, and PgBouncer. Every one binds
127.0.0.1 or a unix socket, waits with a deadline, and is stopped by its context manager."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")


class PrivatePostgres:
    """A PostgreSQL of the test's own (pgserver's bundled binaries) that can be stopped and
    started again on the same socket, to simulate an outage."""

    def __init__(self, root: Path):
        os.environ.setdefault("XDG_RUNTIME_DIR", str(root / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
        self._pgserver = pgserver
        self.pgdata = root / "pgdata"
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="delete")
        info = self.server.get_postmaster_info()
        self.socket_dir = info.socket_dir
        self.log = self.pgdata / "restart.log"

    def url(self, database: str = "postgres") -> str:
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "1 row" not in exists:
            self.server.psql(f'CREATE DATABASE "{database}";')
        return self.server.get_uri(database)

    def _pg_ctl(self, args, timeout=30):
        return self._pgserver.pg_ctl(args, pgdata=self.pgdata, user=self.server.system_user,
                                     timeout=timeout)

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl(["-w", "-m", mode, "stop"])

    def start(self) -> None:
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                      "-l", str(self.log), "start"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")


class Gunicorn:
    """The real service under gunicorn on 127.0.0.1:<free port>."""

    def __init__(self, database_url: str, secret: str, *, workers: int = 2, **env):
        self.port = free_port()
        self.metrics_dir = tempfile.mkdtemp(prefix="pieces-rel-metrics-")
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PIECES_JWT_SECRET": secret,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir,
            "PIECES_LOG_LEVEL": "WARNING",
            **{k: str(v) for k, v in env.items()},
        }
        self.env.pop("PIECES_JWT_PUBLIC_KEY", None)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_DIR, env=self.env, stdout=self.stderr, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(self._live, 30, 0.2, "gunicorn /livez")
        except Exception:
            self.close()
            raise

    def _live(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("gunicorn exited: " + self.log_text()[-2000:])
        try:
            return self.request("GET", "/livez", timeout=2)[0] == 200
        except OSError:
            return False

    def request(self, method, path, *, body=None, token=None, timeout=30.0, headers=None):
        """(status, parsed JSON or raw bytes, elapsed seconds)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        elapsed = time.monotonic() - started
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return response.status, parsed, elapsed

    def worker_pids(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def log_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.stderr.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def rss_kib(pid: int) -> int | None:
    """Resident set size of `pid` in KiB, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PgBouncer:
    """PgBouncer in transaction-pooling mode on 127.0.0.1:<free port> in front of the
    PostgreSQL at `socket_dir` (unix socket) / `port`."""

    def __init__(self, *, socket_dir: str, server_port: int, dbname: str, user: str,
                 pool_size: int = 1, max_client_conn: int = 200):
        exe = shutil.which("pgbouncer")
        if exe is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install -y pgbouncer)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pieces-pgbouncer-"))
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        # `options` (psycopg2's -c timezone=UTC) is not a parameter PgBouncer tracks: it must
        # be ignored or every connection is refused (see docs/reliability.md).
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
{dbname} = host={socket_dir} port={server_port} dbname={dbname} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir / 'userlist.txt'}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
ignore_startup_parameters = options,extra_float_digits
server_reset_query =
logfile = {self.dir / 'pgbouncer.log'}
pidfile = {self.dir / 'pgbouncer.pid'}
""")
        args = [exe, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            import pwd
            user_name = "pgserver"
            try:
                pwd.getpwnam(user_name)
            except KeyError:
                user_name = "nobody"
            shutil.chown(self.dir, user_name)
            for child in self.dir.iterdir():
                shutil.chown(child, user_name)
            args = [exe, "-u", user_name, str(self.dir / "pgbouncer.ini")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        try:
            wait_until(self._listening, 15, 0.1, "pgbouncer listening")
        except Exception:
            self.close()
            raise

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("pgbouncer exited: " + self.proc.stderr.read().decode()
                               + self.log_text())
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def log_text(self) -> str:
        try:
            return (self.dir / "pgbouncer.log").read_text()
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def blocked_backend(admin_conn, timeout: float = 10.0) -> int:
    """The pid of this database's `pieces_service` backend that is waiting on a lock."""
    def find():
        with admin_conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity"
                        " WHERE application_name = 'pieces_service'"
                        "   AND datname = current_database()"
                        "   AND state = 'active' AND wait_event_type = 'Lock'")
            row = cur.fetchone()
            return row[0] if row else None
    return wait_until(find, timeout, 0.02, "a pieces_service backend waiting on a lock")


@contextlib.contextmanager
def row_lock(db_url, sql: str, params=()):
    """Hold the row locks taken by `sql` (a SELECT … FOR UPDATE) in an open transaction."""
    from pieces_service.migrate import connect

    conn = connect(db_url, application_name="reliability-lock-holder")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            assert cur.fetchall(), "nothing to lock"
        yield conn
    finally:
        conn.rollback()
        conn.close()


class StreamingReplication:
    """A primary and a hot standby of the test's own, from the pgserver wheel's binaries:
    `initdb` a primary on 127.0.0.1:<free port> with `wal_level=replica`, a replication entry
    in pg_hba, then `pg_basebackup -R` a standby of it on a second port (streaming
    replication, hot_standby on). Both trust 127.0.0.1 only. The standby can be stopped,
    started and have its replay paused."""

    def __init__(self, root: Path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver import _commands, utils
        self._bin = _commands.POSTGRES_BIN_PATH
        self._run_as: dict = {}
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="repl-", dir=root))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: pgserver's own user
            entry = utils.ensure_user_exists("pgserver")
            utils.ensure_prefix_permissions(self.root)
            utils.ensure_prefix_permissions(self._bin)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        try:
            self._tool("initdb", "-D", self.primary_dir, "-U", "postgres", "--auth=trust",
                       "--encoding=utf8", "--no-sync")
            with open(self.primary_dir / "postgresql.conf", "a") as conf:
                conf.write(self._settings(self.primary_port) + "wal_level = replica\n"
                           "max_wal_senders = 5\nwal_keep_size = '256MB'\n")
            with open(self.primary_dir / "pg_hba.conf", "a") as hba:
                hba.write("host replication postgres 127.0.0.1/32 trust\n")
            self._start(self.primary_dir)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _settings(port: int) -> str:
        return (f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
                "fsync = off\nhot_standby = on\nmax_connections = 100\n"
                "track_activity_query_size = 32768\n")

    def _tool(self, name: str, *args, timeout: float = 60):
        run = subprocess.run([str(self._bin / name), *map(str, args)], capture_output=True,
                             text=True, timeout=timeout, **self._run_as)
        if run.returncode != 0:
            raise RuntimeError(f"{name} failed: {run.stdout[-1500:]} {run.stderr[-1500:]}")
        return run.stdout

    def _start(self, pgdata: Path) -> None:
        self._tool("pg_ctl", "-D", pgdata, "-l", pgdata / "server.log", "-w", "-t", "60",
                   "start")

    def url(self, port: int, database: str = "pieces_replica") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def create_database(self, database: str = "pieces_replica") -> str:
        from pieces_service.config import database_url
        from pieces_service.migrate import connect

        conn = connect(database_url(self.url(self.primary_port, "postgres")))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        conn.close()
        return self.url(self.primary_port, database)

    def start_standby(self) -> None:
        """`pg_basebackup -R` of the primary (the first time), then start it."""
        if not self.standby_dir.exists():
            self._tool("pg_basebackup", "-D", self.standby_dir, "-R", "-X", "stream",
                       "-c", "fast", "-h", "127.0.0.1", "-p", self.primary_port, "-U", "postgres",
                       "--no-sync", timeout=120)
            with open(self.standby_dir / "postgresql.conf", "a") as conf:
                conf.write(self._settings(self.standby_port))
        self._start(self.standby_dir)

    def stop_standby(self, mode: str = "fast") -> None:
        self._tool("pg_ctl", "-D", self.standby_dir, "-w", "-m", mode, "stop")

    # --- a failover, as a failover manager runs it (make failover-test) ----------------

    def stop_primary(self, mode: str = "immediate") -> None:
        self._tool("pg_ctl", "-D", self.primary_dir, "-w", "-m", mode, "stop")

    def promote_standby(self) -> None:
        """`pg_ctl promote` the standby: it is the primary from now on (its port and
        directory are `primary_*`), and the old primary's are free for `rebuild_standby`."""
        self._tool("pg_ctl", "-D", self.standby_dir, "-w", "-t", "60", "promote")
        self.primary_dir, self.standby_dir = self.standby_dir, self.primary_dir
        self.primary_port, self.standby_port = self.standby_port, self.primary_port

    def rebuild_standby(self) -> None:
        """A new standby of the current primary, in the old primary's place (its port)."""
        shutil.rmtree(self.standby_dir)
        self.start_standby()

    def set_synchronous_standby_names(self, names: str) -> None:
        """On the primary: `''` (commits wait for no standby), `'*'` (for any standby).
        Returns once the primary uses it."""
        from pieces_service.config import database_url
        from pieces_service.migrate import connect

        conn = connect(database_url(self.url(self.primary_port, "postgres")))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("ALTER SYSTEM SET synchronous_standby_names = %s", (names,))
                cur.execute("SELECT pg_reload_conf()")

                def applied():
                    cur.execute("SHOW synchronous_standby_names")
                    return cur.fetchone()[0] == names
                wait_until(applied, 10, 0.02, "synchronous_standby_names reloaded")
        finally:
            conn.close()

    def wait_synchronous(self, timeout: float = 30) -> None:
        """Until the primary has a standby streaming in sync (`sync_state = 'sync'`)."""
        from pieces_service.config import database_url
        from pieces_service.migrate import connect

        def in_sync():
            conn = connect(database_url(self.url(self.primary_port, "postgres")))
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_stat_replication"
                                " WHERE state = 'streaming' AND sync_state = 'sync'")
                    return cur.fetchone()[0] > 0
            finally:
                conn.close()
        wait_until(in_sync, timeout, 0.05, "a synchronous standby streaming")

    def close(self) -> None:
        for pgdata in (self.standby_dir, self.primary_dir):
            if (pgdata / "postmaster.pid").exists():
                with contextlib.suppress(Exception):
                    self._tool("pg_ctl", "-D", pgdata, "-w", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
