"""The migration runner (docs/migrations.md), on real PostgreSQL: the migrations ship in the
package, a no-transaction file runs statement by statement and can run again after failing
half way, a transactional file applies whole or not at all, concurrent runs serialise."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from helpers import raw_url
from pieces_service import cli
from pieces_service import migrate as migrate_module
from pieces_service.migrate import (HEADER, MigrationError, connect, head_version,
                                    load_migrations, migrate, migration_files,
                                    parse_migration)

REPO = Path(__file__).resolve().parent.parent


def QUIET(*_):
    """An `echo` that prints nothing."""


def query(url, sql, params=None):
    conn = connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def recorded(url) -> list[str]:
    return [row[0] for row in query(url, "SELECT version FROM schema_migrations ORDER BY 1")]


def index_state(url, name):
    """(exists, valid) of the index `name`."""
    rows = query(url, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                 (name,))
    return (True, rows[0][0]) if rows else (False, None)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


TABLE = """CREATE TABLE t (id int PRIMARY KEY, x int);
INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 1000) g;
"""


# --- the installed package ----------------------------------------------------------------

def _offline_build_possible() -> bool:
    """Whether this interpreter builds wheels itself (no build environment to download)."""
    try:
        import setuptools
    except ImportError:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)  # bdist_wheel is part of setuptools from 70.1


def _copy_project(destination: Path) -> Path:
    """What `pip install .` reads: the top-level files, the package, the `migrations` link."""
    destination.mkdir()
    for entry in REPO.iterdir():
        if entry.is_file() and not entry.is_symlink():
            shutil.copy2(entry, destination / entry.name)
    shutil.copytree(REPO / "pieces_service", destination / "pieces_service",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(REPO / "migrations", destination / "migrations", follow_symlinks=False)
    return destination


INSTALLED_RUN = r"""
import importlib.util, json, os, sys
target, source, url = sys.argv[1:4]
sys.path.insert(0, target)
sys.path.extend(sys.argv[4:])  # the test environment's dependencies, without its .pth hooks
import pieces_service.migrate as m
from pieces_service import cli
from sqlalchemy.engine import make_url
status = cli.main(["migrate"], env={"DATABASE_URL": url})
again = m.migrate(make_url(url), echo=lambda *_: None)
print(json.dumps({
    "status": status, "again": again, "module": m.__file__, "files": str(m.MIGRATIONS_DIR),
    "source_on_path": any(os.path.realpath(p or ".") == source for p in sys.path),
    "source_importable": importlib.util.find_spec("devtools") is not None,
    "finders": [repr(f) for f in sys.meta_path]}))
"""


def test_an_installed_service_migrates_an_empty_database(tmp_path, new_database):
    """`pip install .` (not editable) and `pieces-service migrate` on an empty database: the
    migrations are in the wheel, they run, and a second run applies nothing."""
    project = _copy_project(tmp_path / "project")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
             str(tmp_path / "wheels"), str(project)]
    if _offline_build_possible():
        build.insert(4, "--no-build-isolation")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    result = subprocess.run(build, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("pieces_service-*.whl")
    target = tmp_path / "installed"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--target", str(target), str(wheel)], capture_output=True, text=True, env=env,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    shipped = sorted(p.name for p in (target / "pieces_service" / "migrations").glob("*.sql"))
    assert shipped == [p.name for p in migration_files()]

    url = new_database()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # -S: no site module, so no .pth file runs (the editable install's finder is one).
    result = subprocess.run(
        [sys.executable, "-S", "-c", INSTALLED_RUN, str(target), str(REPO), raw_url(url),
         *site.getsitepackages()],
        capture_output=True, text=True, env=env, cwd=elsewhere, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    *printed, report = result.stdout.strip().splitlines()
    report = json.loads(report)
    assert Path(report["module"]).is_relative_to(target), report
    assert Path(report["files"]).is_relative_to(target), report
    assert not report["source_on_path"] and not report["source_importable"], report
    assert not any("editable" in finder.lower() for finder in report["finders"]), report
    assert report["status"] == 0, result.stderr
    assert f"{len(shipped)} migration(s) applied" in printed, printed
    assert report["again"] == []
    assert recorded(url) == [name[:-4] for name in shipped]
    tables = query(url, "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
                   ("public.projects", "public.pieces"))
    assert tables == [(True, True)]


def test_the_top_level_migrations_is_a_symlink_into_the_package():
    link = REPO / "migrations"
    assert link.is_symlink()
    assert os.readlink(link) == "pieces_service/migrations"
    if (REPO / ".git").exists() and shutil.which("git"):
        listing = subprocess.run(["git", "ls-files", "-s", "migrations"], cwd=REPO,
                                 capture_output=True, text=True, timeout=30).stdout
        if listing:  # committed: git must hold the link itself, not a copy of the files
            assert listing.split()[0] == "120000", listing


def test_no_migration_files_is_an_error_and_touches_nothing(tmp_path, new_database):
    url = new_database()
    for directory in (tmp_path, tmp_path / "absent"):
        with pytest.raises(MigrationError, match="no migration files"):
            migrate(url, directory, echo=QUIET)
        with pytest.raises(MigrationError, match="no migration files"):
            head_version(directory)
    assert query(url, "SELECT to_regclass('public.schema_migrations')") == [(None,)]


def test_the_cli_reports_missing_migrations_in_one_line(tmp_path, new_database, monkeypatch,
                                                         capsys):
    url = new_database()
    monkeypatch.setattr(migrate_module, "migrate",
                        functools.partial(migrate, directory=tmp_path))
    status = cli.main(["migrate"], env={"DATABASE_URL": raw_url(url)})
    out, err = capsys.readouterr()
    assert status == 1
    assert "already up to date" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pieces-service: error: no migration files")


# --- reading files -----------------------------------------------------------------------------

def test_the_shipped_files_parse_and_the_index_builds_run_outside_a_transaction():
    migrations = {m.version: m for m in load_migrations()}
    assert [m.transactional for m in migrations.values()] == \
        [True, True, False, True, False, False, True, False, True, True]
    for version, count in (("0003_index_only_pages", 12), ("0005_change_feed_indexes", 20),
                           ("0006_scanner_lookups", 4), ("0008_tenant_keys", 18)):
        statements = migrations[version].statements
        assert len(statements) == count
        assert all(s.startswith(("DROP INDEX CONCURRENTLY IF EXISTS ",
                                 "CREATE INDEX CONCURRENTLY ",
                                 "CREATE UNIQUE INDEX CONCURRENTLY ")) for s in statements)


def test_a_no_transaction_file_splits_at_each_line_ending_with_a_semicolon():
    migration = parse_migration("0009_x.sql", f"""{HEADER}
-- a comment
DROP INDEX CONCURRENTLY IF EXISTS t_x_idx;

CREATE INDEX CONCURRENTLY t_x_idx
    ON t (x) WHERE x <> 'a''b';
ALTER TABLE t VALIDATE CONSTRAINT t_x_check;
""")
    assert not migration.transactional
    assert migration.statements == (
        "DROP INDEX CONCURRENTLY IF EXISTS t_x_idx;",
        "CREATE INDEX CONCURRENTLY t_x_idx\n    ON t (x) WHERE x <> 'a''b';",
        "ALTER TABLE t VALIDATE CONSTRAINT t_x_check;")


def test_a_file_without_the_header_is_one_transaction():
    migration = parse_migration("0009_x.sql", "-- migrate anything\nDO $$ BEGIN END $$;\n")
    assert migration.transactional and migration.statements == ()


@pytest.mark.parametrize("body, message", [
    (f"-- first\n{HEADER}\nSELECT 1;\n", "line 2: a `-- migrate:` header must be the first line"),
    ("-- migrate: no-transactions\nSELECT 1;\n", "unknown header"),
    ("-- MIGRATE: No-Transaction\nSELECT 1;\n", "unknown header"),
    (f"{HEADER}\nDO $$ BEGIN END $$;\n", "line 2: dollar quoting"),
    (f"{HEADER}\nSELECT 'a\\'';\n", "line 2: a backslash"),
    (f"{HEADER}\nSELECT 1; -- one\n", "a comment after code"),
    (f"{HEADER}\nSELECT /* one */ 1;\n", "block comments"),
    (f"{HEADER}\nSELECT 1; SELECT 2;\n", "';' is allowed only as the last character"),
    (f"{HEADER}\nSELECT 'a\nb;';\n", "line 2: a quoted string or name must close"),
    (f"{HEADER}\nSELECT 1;\nSELECT 2\n", "line 3: the statement there does not end with ';'"),
    (f"{HEADER}\n-- nothing\n", "without a statement"),
    (f"{HEADER}\nBEGIN;\nSELECT 1;\nCOMMIT;\n", "transaction control"),
    (f"{HEADER}\nCREATE INDEX CONCURRENTLY t_x_idx ON t (x);\n",
     "put 'DROP INDEX CONCURRENTLY IF EXISTS t_x_idx;' before it"),
    (f"{HEADER}\nDROP INDEX CONCURRENTLY IF EXISTS t_y_idx;\n"
     "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_x_idx ON t (x);\n", "cannot run again"),
    (f"{HEADER}\nCREATE INDEX CONCURRENTLY ON t (x);\n", "name the index"),
    (f"{HEADER}\nDROP INDEX CONCURRENTLY t_x_idx;\n", "without IF EXISTS"),
])
def test_a_file_the_runner_cannot_run_safely_is_refused(body, message):
    with pytest.raises(MigrationError, match="0009_x.sql") as raised:
        parse_migration("0009_x.sql", body)
    assert message in str(raised.value)


def test_a_refused_file_stops_the_run_before_anything_applies(tmp_path, new_database):
    url = new_database()
    directory = write(tmp_path, {"0001_t.sql": TABLE,
                                 "0002_bad.sql": f"{HEADER}\nDO $$ BEGIN END $$;\n"})
    with pytest.raises(MigrationError, match="0002_bad.sql: line 2: dollar quoting"):
        migrate(url, directory, echo=QUIET)
    assert query(url, "SELECT to_regclass('public.t')") == [(None,)]


# --- running files -----------------------------------------------------------------------------

def test_concurrently_is_refused_in_one_multi_statement_string(new_database):
    """Why a no-transaction file is split: several statements sent as one string are one
    implicit transaction, even in autocommit."""
    url = new_database()
    query(url, TABLE)
    with pytest.raises(psycopg2.errors.ActiveSqlTransaction,
                       match="cannot run inside a transaction block"):
        query(url, "CREATE INDEX CONCURRENTLY t_a ON t (x); CREATE INDEX CONCURRENTLY t_b"
                   " ON t (id);")


def test_a_no_transaction_file_runs_outside_a_transaction(tmp_path, new_database):
    url = new_database()
    directory = write(tmp_path, {"0001_t.sql": TABLE, "0002_idx.sql": f"""{HEADER}
DROP INDEX CONCURRENTLY IF EXISTS t_x_idx;
CREATE INDEX CONCURRENTLY t_x_idx ON t (x);
DROP INDEX CONCURRENTLY IF EXISTS t_id_x_idx;
CREATE UNIQUE INDEX CONCURRENTLY t_id_x_idx ON t (id, x);
"""})
    assert migrate(url, directory, echo=QUIET) == ["0001_t", "0002_idx"]
    assert index_state(url, "t_x_idx") == (True, True)
    assert index_state(url, "t_id_x_idx") == (True, True)
    assert recorded(url) == ["0001_t", "0002_idx"]
    assert migrate(url, directory, echo=QUIET) == []


def test_a_no_transaction_file_failing_half_way_records_nothing_and_reruns(tmp_path,
                                                                           new_database):
    url = new_database()
    directory = write(tmp_path, {
        "0001_t.sql": TABLE,  # x repeats: the unique index below fails
        "0002_idx.sql": f"""{HEADER}
DROP INDEX CONCURRENTLY IF EXISTS t_x_idx;
CREATE INDEX CONCURRENTLY t_x_idx ON t (x);
DROP INDEX CONCURRENTLY IF EXISTS t_x_key;
CREATE UNIQUE INDEX CONCURRENTLY t_x_key ON t (x);
""",
        "0003_after.sql": "CREATE TABLE after_0002 (id int);\n"})
    with pytest.raises(MigrationError) as raised:
        migrate(url, directory, echo=QUIET)
    message = str(raised.value)
    assert message.startswith("0002_idx.sql (no-transaction) failed at statement 4 of 4: ")
    assert "could not create unique index" in message and "not recorded" in message
    assert isinstance(raised.value.__cause__, psycopg2.errors.UniqueViolation)
    assert recorded(url) == ["0001_t"]
    assert index_state(url, "t_x_idx") == (True, True)     # statement 2 took effect
    assert index_state(url, "t_x_key") == (True, False)    # the failed build: INVALID
    assert query(url, "SELECT to_regclass('public.after_0002')") == [(None,)]

    query(url, "UPDATE t SET x = id")  # the cause, fixed
    assert migrate(url, directory, echo=QUIET) == ["0002_idx", "0003_after"]
    assert index_state(url, "t_x_key") == (True, True)
    assert index_state(url, "t_x_idx") == (True, True)
    assert recorded(url) == ["0001_t", "0002_idx", "0003_after"]


def test_a_transactional_file_that_fails_leaves_nothing(tmp_path, new_database):
    url = new_database()
    directory = write(tmp_path, {
        "0001_t.sql": TABLE,
        "0002_half.sql": "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\n"
                         "CREATE INDEX t_x_idx ON t (x);\nSELECT 1 / 0;\n",
        "0003_after.sql": "CREATE TABLE after_0002 (id int);\n"})
    with pytest.raises(MigrationError, match=r"^0002_half.sql failed and was rolled back, "
                                             r"none of it applied: division by zero$"):
        migrate(url, directory, echo=QUIET)
    assert recorded(url) == ["0001_t"]
    assert query(url, "SELECT to_regclass('public.half'), to_regclass('public.t_x_idx'),"
                      " to_regclass('public.after_0002')") == [(None, None, None)]


def test_concurrently_in_a_transactional_file_points_at_the_header(tmp_path, new_database):
    url = new_database()
    directory = write(tmp_path, {"0001_t.sql": TABLE + "CREATE INDEX CONCURRENTLY t_x_idx"
                                                       " ON t (x);\n"})
    with pytest.raises(MigrationError, match="first line is '-- migrate: no-transaction'"):
        migrate(url, directory, echo=QUIET)
    assert query(url, "SELECT to_regclass('public.t')") == [(None,)]


def test_a_transactional_file_gives_up_on_a_lock_after_lock_timeout(tmp_path, new_database):
    """Queued behind a long transaction, an ALTER TABLE would stall every query of the table
    behind itself: under lock_timeout it fails instead, and applies nothing."""
    url = new_database()
    directory = write(tmp_path, {"0001_t.sql": TABLE})
    migrate(url, directory, echo=QUIET)
    write(tmp_path, {"0002_col.sql": "ALTER TABLE t ADD COLUMN y int;\n"})
    reader = connect(url)
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM t")  # holds its lock until the transaction ends
        started = time.monotonic()
        with pytest.raises(MigrationError, match=r"0002_col.sql failed .* lock timeout; it "
                                                 r"waited longer than lock_timeout \(200ms\)"):
            migrate(url, directory, echo=QUIET, lock_timeout="200ms")
        assert time.monotonic() - started < 5
    finally:
        reader.close()
    assert recorded(url) == ["0001_t"]
    assert migrate(url, directory, echo=QUIET) == ["0002_col"]


# --- 0003 and concurrent runs ------------------------------------------------------------------

OLD_0003 = """\
CREATE INDEX pieces_tenant_keys_idx
    ON pieces (company_guid, created_at, guid) INCLUDE (is_active);
CREATE INDEX pieces_project_keys_idx
    ON pieces (company_guid, project_guid, created_at, guid) INCLUDE (is_active);
CREATE INDEX pieces_component_keys_idx
    ON pieces (company_guid, component_guid, created_at, guid) INCLUDE (is_active);
CREATE INDEX pieces_assembly_keys_idx
    ON pieces (company_guid, assembly_guid, created_at, guid) INCLUDE (is_active)
    WHERE assembly_guid IS NOT NULL;

DROP INDEX pieces_tenant_order_idx;
DROP INDEX pieces_project_order_idx;
DROP INDEX pieces_component_order_idx;
DROP INDEX pieces_assembly_order_idx;
"""

INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"


def test_0003_builds_the_indexes_the_transactional_0003_built(tmp_path, new_database):
    """A database migrated by the old, transactional 0003 and one migrated by the new file
    have the same indexes, all valid; the old one counts as migrated."""
    old_url, new_url = new_database(), new_database()
    first_two = [path for path in migration_files() if path.name < "0003"]
    old = tmp_path / "old"
    old.mkdir()
    for path in first_two:
        shutil.copy(path, old / path.name)
    write(old, {"0003_index_only_pages.sql": OLD_0003})
    migrate(old_url, old, echo=QUIET)

    new = tmp_path / "new"
    new.mkdir()
    for path in migration_files():
        if path.name < "0004":
            shutil.copy(path, new / path.name)
    assert migrate(new_url, new, echo=QUIET) == [p.name[:-4] for p in sorted(new.iterdir())]
    assert query(new_url, INDEXES) == query(old_url, INDEXES)
    assert migrate(old_url, new, echo=QUIET) == []
    assert query(new_url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
    definitions = dict(query(new_url, INDEXES))
    assert definitions["pieces_tenant_keys_idx"] == (
        "CREATE INDEX pieces_tenant_keys_idx ON public.pieces USING btree "
        "(company_guid, created_at, guid) INCLUDE (is_active)")
    assert "pieces_tenant_order_idx" not in definitions


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_concurrent_runs_serialise(new_database):
    url = new_database()
    results, errors = {}, []

    def run(name):
        try:
            results[name] = migrate(url, echo=QUIET)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(results.values(), key=len) == [[], [p.name[:-4] for p in migration_files()]]
    assert recorded(url) == [p.name[:-4] for p in migration_files()]


def test_a_waiting_run_does_not_deadlock_a_concurrent_index_build(tmp_path, new_database):
    """A run waiting for the lock must not sit in a statement: the index build of the run
    holding it waits for every older snapshot, a blocked statement's included, and the two
    would deadlock (one of them aborted, an INVALID index left behind)."""
    url = new_database()
    directory = write(tmp_path, {"0001_t.sql": TABLE, "0002_idx.sql": f"""{HEADER}
SELECT pg_sleep(1.5);
DROP INDEX CONCURRENTLY IF EXISTS t_x_idx;
CREATE INDEX CONCURRENTLY t_x_idx ON t (x);
"""})
    results, errors, said = {}, [], []

    def run(name, echo):
        try:
            results[name] = migrate(url, directory, echo=echo)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first = threading.Thread(target=run, args=("first", QUIET))
    first.start()
    _wait_for(lambda: query(url, "SELECT count(*) FROM pg_stat_activity"
                                 " WHERE query = 'SELECT pg_sleep(1.5);'") == [(1,)])
    second = threading.Thread(target=run, args=("second", said.append))
    second.start()
    first.join(60)
    second.join(60)
    assert not errors, errors
    assert results == {"first": ["0001_t", "0002_idx"], "second": []}
    assert said == ["waiting for another migration run to finish"]
    assert index_state(url, "t_x_idx") == (True, True)
