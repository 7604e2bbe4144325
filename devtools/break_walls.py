"""`make walls`: break one wall between tenants at a time, in a scratch copy of the checkout,
and show that tests of `make test` fail (docs/reliability.md, "The two walls").

Each mutation is one text change in one file of the copy (the text must occur exactly once,
so a mutation that no longer applies fails loudly instead of proving nothing). The copy's
own suite then runs the test files named for it against a database of its own: a mutation
is caught when at least one of them fails. First the same files run on the unchanged copy
and must pass, so a failure is the mutation's doing. Exit status 0 only when every
mutation is caught.

    .venv/bin/python -m devtools.break_walls            # every mutation
    .venv/bin/python -m devtools.break_walls NAME ...   # some (names below; --list)

The database server is TEST_DATABASE_URL's when set (its role must create databases), else
the embedded one of `make test`.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

WALLS = "tests/reliability/test_walls.py"
PROPERTIES = "tests/reliability/test_isolation_properties.py"
SETUP = "tests/dao/test_server_side_setup.py"
PRIVILEGES = "tests/dao/test_policies_and_privileges.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str           # the change, as a reviewer would say it
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation("prepared-execute-without-setup",
             "the prepared reads send EXECUTE without the role, tenant and read-only setup",
             "pieces_service/db.py",
             "cursor.execute(self._setup + statement.execute, args)",
             "cursor.execute(statement.execute, args)",
             (SETUP, WALLS, PROPERTIES)),
    Mutation("audit-policy-open",
             "audit_log's policy becomes USING (true) WITH CHECK (true)",
             "pieces_service/migrations/0002_row_level_security.sql",
             "CREATE POLICY tenant_isolation ON audit_log TO pieces_app\n"
             "    USING (company_guid = pieces_current_tenant())\n"
             "    WITH CHECK (company_guid = pieces_current_tenant());",
             "CREATE POLICY tenant_isolation ON audit_log TO pieces_app\n"
             "    USING (true)\n    WITH CHECK (true);",
             (PRIVILEGES, WALLS)),
    Mutation("get-piece-predicate-or-true",
             "get_piece's predicate becomes company_guid = %(tenant)s OR true",
             "pieces_service/dao/sql/pieces.sql",
             "    WHERE pieces.company_guid = %(tenant)s\n      AND pieces.guid = %(guid)s",
             "    WHERE (pieces.company_guid = %(tenant)s OR true)\n"
             "      AND pieces.guid = %(guid)s",
             (WALLS, PROPERTIES)),
    Mutation("audit-list-predicate-gone",
             "the audit trail's statement loses its tenant predicate",
             "pieces_service/dao/sql/audit.sql",
             "    FROM audit_log\n    WHERE company_guid = %(tenant)s\n",
             "    FROM audit_log\n    WHERE true\n",
             (WALLS,)),
    Mutation("feed-key-constant-in-code",
             "the change feed signs with a constant key instead of the database's",
             "pieces_service/domain/changes.py",
             "key = keys_dao.service_key(conn, name=TOKEN_KEY_NAME)",
             "key = b'k' * 32",
             (PRIVILEGES,)),
    Mutation("feed-key-constant-in-migration",
             "migration 0004 stores a constant feed key",
             "pieces_service/migrations/0004_change_feed.sql",
             "decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), "
             "'hex')",
             "decode(repeat('ab', 32), 'hex')",
             (PRIVILEGES,)),
    Mutation("app-reads-service-keys",
             "pieces_app may read service_keys",
             "pieces_service/migrations/0004_change_feed.sql",
             "REVOKE ALL ON service_keys FROM PUBLIC;",
             "REVOKE ALL ON service_keys FROM PUBLIC;\nGRANT SELECT ON service_keys TO pieces_app;",
             (PRIVILEGES,)),
    Mutation("probe-reads-whole-rows",
             "pieces_probe may read every column, not only guid and company_guid",
             "pieces_service/migrations/0002_row_level_security.sql",
             "GRANT SELECT (guid, company_guid) ON projects, components, assemblies, pieces"
             " TO pieces_probe;",
             "GRANT SELECT ON projects, components, assemblies, pieces TO pieces_probe;",
             (PRIVILEGES,)),
    Mutation("owner-not-member-of-app-role",
             "the migration no longer grants pieces_app to the migrating role (a superuser"
             " never needs it; the production owner does)",
             "pieces_service/migrations/0002_row_level_security.sql",
             "GRANT pieces_app TO CURRENT_USER;\n",
             "",
             (WALLS,)),
)


def copy_checkout(target: Path) -> None:
    """The checkout's files (tracked, and new ones not ignored) into `target`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=PROJECT_DIR, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = PROJECT_DIR / name
        if source.is_file() or source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)


def apply(copy: Path, mutation: Mutation) -> None:
    path = copy / mutation.path
    text = path.read_text()
    found = text.count(mutation.old)
    if found != 1:
        raise SystemExit(f"{mutation.name}: the text to change occurs {found} times in "
                         f"{mutation.path} (expected once): update the mutation")
    path.write_text(text.replace(mutation.old, mutation.new))


class Server:
    """Where each run's test database lives: TEST_DATABASE_URL's server, or the embedded
    one."""

    def __init__(self):
        from pieces_service.config import database_url
        from pieces_service.migrate import connect

        raw = os.environ.get("TEST_DATABASE_URL")
        if not raw:
            from devtools import embedded

            self._embedded = embedded.start()
            raw = embedded.database_url(self._embedded, "postgres")
        self.url = database_url(raw, "TEST_DATABASE_URL")
        self._admin = connect(self.url)
        self._admin.autocommit = True

    def database(self, label: str) -> str:
        name = f"pieces_test_{os.getpid()}_walls_{label}"
        with self._admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?")[0]
        with self._admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_tests(copy: Path, server: Server, label: str, tests) -> tuple[int, list[str], float]:
    """pytest over `tests` in `copy` -> (exit status, its FAILED/ERROR lines, seconds)."""
    url = server.database(label)
    env = {**os.environ, "TEST_DATABASE_URL": url}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-rfE",
                              "-p", "no:cacheprovider", *tests], cwd=copy, env=env,
                             capture_output=True, text=True, timeout=900)
    finally:
        server.drop(url)
    failed = [line for line in run.stdout.splitlines()
              if re.match(r"(FAILED|ERROR) ", line)]
    return run.returncode, failed, time.monotonic() - started


def check_imports(copy: Path) -> None:
    """The copy's suite imports the copy's package, not this checkout's."""
    found = subprocess.run([sys.executable, "-c", "import pieces_service, devtools;"
                            "print(pieces_service.__file__)"], cwd=copy, check=True,
                           capture_output=True, text=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"the scratch copy imports {found}, not its own package")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.break_walls",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    if args.list:
        for mutation in MUTATIONS:
            print(f"{mutation.name:34} {mutation.what}")
        return 0
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    server = Server()
    results = []
    with tempfile.TemporaryDirectory(prefix="pieces-walls-") as scratch:
        baseline = Path(scratch) / "unchanged"
        copy_checkout(baseline)
        check_imports(baseline)
        tests = sorted({test for mutation in chosen for test in mutation.tests})
        status, failed, seconds = run_tests(baseline, server, "baseline", tests)
        print(f"unchanged copy: {' '.join(tests)} -> exit {status} ({seconds:.0f} s)",
              flush=True)
        if status != 0:
            print("\n".join(failed) or "the unchanged copy fails: fix that first")
            return 1
        for number, mutation in enumerate(chosen, 1):
            copy = Path(scratch) / mutation.name
            copy_checkout(copy)
            apply(copy, mutation)
            status, failed, seconds = run_tests(copy, server, str(number), mutation.tests)
            caught = status == 1 and bool(failed)
            results.append((mutation, caught))
            print(f"{'caught' if caught else 'NOT CAUGHT'}: {mutation.name} — {mutation.what}"
                  f" (exit {status}, {seconds:.0f} s)", flush=True)
            for line in failed[:3]:
                print(f"    {line}")
            shutil.rmtree(copy, ignore_errors=True)
    missed = [mutation.name for mutation, caught in results if not caught]
    print(f"{len(results) - len(missed)} of {len(results)} mutations caught"
          + (f"; not caught: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
