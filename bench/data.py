"""The benchmark data set: N pieces under a realistic hierarchy, loaded with COPY.

    python -m bench.data [--pieces N]        (or BENCH_PIECES=N; default 1,000,000)

Layout (fixed, so figures are comparable between runs):
  20 tenants x 50 projects x 10 components x 10 assemblies (100,000 assemblies), pieces spread
  evenly over them, except BIG_PROJECTS projects (project 0 of tenants 0..3) that hold
  60,000 pieces each (at N >= 1M), so that page 500 of 100 exists for the deep-page scenarios.
  Rows are written assembly by assembly in a shuffled order, and all pieces of one assembly
  share one created_at (as if each arrived in one sync transaction), so a project's pieces are
  spread over the heap in assembly-sized runs and the (created_at, guid) order needs its guid
  tie-break.
Soft deletes (all consistent with CHECK is_active = (deleted_at IS NULL), cascades sharing
one deleted_at): the last project of every tenant (with its whole subtree), 1 % of the other
assemblies (with their pieces) and 2 % of the remaining pieces on their own.

Loading: migrate, TRUNCATE, drop the plain (non-constraint) indexes of `pieces`, COPY every
table from generated text streams with foreign-key triggers off (the data is valid by
construction; needs a superuser, as the embedded server's and a local `postgres` are),
recreate the indexes from their own saved definitions, VACUUM ANALYZE. A table `bench_meta`
records what was loaded; a rerun asking for the same N and layout skips all of it.

Database: BENCH_DATABASE_URL (a postgresql:// URL naming the bench database, created if
missing), else the embedded server's database `pieces_bench`.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy.engine import URL

from pieces_service.config import database_url as parse_url, libpq_dsn
from pieces_service.migrate import connect, migrate

DEFAULT_PIECES = 1_000_000
BENCH_DATABASE = "pieces_bench"
LAYOUT_VERSION = "3"  # bump when the generator changes, so old data is reloaded
SEED = 20240601

TENANTS = 20
PROJECTS_PER_TENANT = 50
COMPONENTS_PER_PROJECT = 10
ASSEMBLIES_PER_COMPONENT = 10
BIG_PROJECTS = 4
BIG_PROJECT_PIECES = 60_000
ASSEMBLY_DELETE_RATE = 0.01
PIECE_DELETE_RATE = 0.02

EPOCH = datetime(2023, 1, 2, 6, 0, tzinfo=timezone.utc)
SPAN_SECONDS = 2 * 365 * 86400  # pieces' created_at spread over two years
DELETED_AT = EPOCH + timedelta(days=800)

PIECE_COLUMNS = (
    "guid", "company_guid", "project_guid", "component_guid", "assembly_guid", "piece_id",
    "barcode", "outer_length", "inner_length", "angle_left", "angle_right", "assembly_width",
    "assembly_height", "bar_length", "bar_rest", "profile_width", "profile_height",
    "welding_tolerance", "orientation", "trolley", "cell", "trolley_cell", "operations",
    "component_code", "client", "dealer", "project_description", "project_number",
    "material_type", "bar_id", "profile_code", "profile_name", "profile_color",
    "profile_code_with_color", "glass_info", "is_active", "deleted_at", "created_at",
    "updated_at",
)
PROFILES = [("P%04d" % n, name) for n, name in enumerate(
    ("Frame 70", "Sash 70", "Mullion 70", "Frame 82", "Sash 82", "Mullion 82",
     "Glazing bead 24", "Glazing bead 32", "Door frame", "Door sash", "Threshold", "Coupler"),
    start=1101)]
COLORS = ("WHITE", "ANTHRACITE", "GOLDEN OAK", "WALNUT", "CREAM", "GREY 7035")
ORIENTATIONS = ("H", "V", "HL", "VR")


def bench_url() -> tuple[URL, object]:
    """The bench database URL, and the embedded server handle (None with BENCH_DATABASE_URL);
    keep the handle referenced while the server is in use."""
    raw = os.environ.get("BENCH_DATABASE_URL", "").strip()
    if raw:
        url = parse_url(raw, "BENCH_DATABASE_URL")
        _create_database_if_missing(url)
        return url, None
    from devtools import embedded

    server = embedded.start()
    return parse_url(embedded.database_url(server, BENCH_DATABASE)), server


def _create_database_if_missing(url: URL) -> None:
    admin = connect(url.set(database="postgres"))
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        admin.close()


def libpq_url(url: URL) -> str:
    """`url` as a libpq connection string for libpq tools (pgbench, psql); several hosts
    too (`config.libpq_dsn`)."""
    return libpq_dsn(url)


@dataclass(frozen=True)
class Assembly:
    tenant: str
    project: str
    component: str
    guid: str
    project_index: int
    component_index: int
    index: int
    deleted: str | None  # deleted_at of its cascade, or None


class _Guids:
    """Deterministic version-4 UUID strings from a seeded generator (uuid4() is not seedable)."""

    def __init__(self, rng: random.Random):
        self._bits = rng.getrandbits

    def __call__(self) -> str:
        h = "%032x" % self._bits(128)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class Plan:
    """The hierarchy and how many pieces each assembly gets, derived from N and the seed."""

    def __init__(self, pieces: int, seed: int = SEED):
        if pieces < 100_000:
            raise ValueError("BENCH_PIECES must be at least 100,000")
        self.pieces = pieces
        rng = random.Random(seed)
        guid = _Guids(rng)
        self.tenants = [guid() for _ in range(TENANTS)]
        self.projects: list[tuple] = []    # (guid, tenant, code, deleted_at)
        self.components: list[tuple] = []  # (guid, tenant, project, code, deleted_at)
        self.assemblies: list[Assembly] = []
        self.big_projects: list[str] = []
        deleted_project = DELETED_AT.isoformat()
        for t, tenant in enumerate(self.tenants):
            for p in range(PROJECTS_PER_TENANT):
                project = guid()
                project_deleted = deleted_project if p == PROJECTS_PER_TENANT - 1 else None
                self.projects.append((project, tenant, f"PRJ-{t:02d}-{p:03d}", project_deleted))
                if p == 0 and t < BIG_PROJECTS:
                    self.big_projects.append(project)
                for c in range(COMPONENTS_PER_PROJECT):
                    component = guid()
                    self.components.append((component, tenant, project, f"C{c:02d}",
                                            project_deleted))
                    for a in range(ASSEMBLIES_PER_COMPONENT):
                        deleted = project_deleted
                        if deleted is None and project not in self.big_projects \
                                and rng.random() < ASSEMBLY_DELETE_RATE:
                            deleted = (DELETED_AT + timedelta(
                                seconds=rng.randrange(86400 * 30))).isoformat()
                        self.assemblies.append(Assembly(tenant, project, component, guid(),
                                                        p, c, a, deleted))
        # Pieces per assembly: big projects first, the rest spread evenly.
        self.big_project_pieces = (BIG_PROJECT_PIECES if pieces >= 1_000_000
                                   else pieces * 6 // 100)
        per_big_assembly = self.big_project_pieces // (COMPONENTS_PER_PROJECT
                                                       * ASSEMBLIES_PER_COMPONENT)
        big = set(self.big_projects)
        normal = [a for a in self.assemblies if a.project not in big]
        rest = pieces - per_big_assembly * (len(self.assemblies) - len(normal))
        base, extra = divmod(rest, len(normal))
        self.counts = {}
        for i, a in enumerate(normal):
            self.counts[a.guid] = base + (1 if i < extra else 0)
        for a in self.assemblies:
            if a.project in big:
                self.counts[a.guid] = per_big_assembly
        self.order = list(self.assemblies)
        rng.shuffle(self.order)  # heap order: assemblies arrive in no particular order
        self.seed = seed
        self._rng = rng

    def piece_rows(self, chunk_rows: int = 2000):
        """The pieces as COPY text, in chunks of about `chunk_rows` rows."""
        rng = self._rng
        bits = rng.getrandbits
        guid = _Guids(rng)
        step = SPAN_SECONDS / len(self.order)
        tenant_index = {tenant: t for t, tenant in enumerate(self.tenants)}
        out: list[str] = []
        for n, a in enumerate(self.order):
            created = (EPOCH + timedelta(seconds=n * step)).isoformat()
            t = tenant_index[a.tenant]
            profile_code, profile_name = PROFILES[(a.index + a.component_index) % len(PROFILES)]
            color = COLORS[(a.project_index + t) % len(COLORS)]
            head = f"{a.tenant}\t{a.project}\t{a.component}\t{a.guid}\t"
            middle = (f"C{a.component_index:02d}\tClient {t:02d}-{a.project_index % 7}\t"
                      f"Dealer {t % 5}\tProject {a.project_index} of tenant {t}\t"
                      f"PN{t:02d}{a.project_index:04d}\tPVC\t")
            profile = (f"{profile_code}\t{profile_name}\t{color}\t"
                       f"{profile_code}-{color[:3]}\t")
            glass = "4/16/4 Ar" if a.index % 3 else "\\N"
            prefix = f"{a.component_index:02d}{a.index:02d}-"
            for k in range(self.counts[a.guid]):
                r = bits(64)
                if a.deleted is not None:
                    state = f"f\t{a.deleted}"
                elif (r >> 50) % 1000 < PIECE_DELETE_RATE * 1000:
                    state = f"f\t{(DELETED_AT + timedelta(seconds=r & 0xFFFFF)).isoformat()}"
                else:
                    state = "t\t\\N"
                outer = 300 + (r & 0xFFF)
                width = 600 + ((r >> 12) & 0x3FF)
                angle_left = 45 if r & (1 << 22) else 90
                angle_right = 45 if r & (1 << 23) else 90
                trolley = (r >> 24) & 0x3F
                cell = (r >> 30) & 0x1F
                out.append(
                    f"{guid()}\t{head}{prefix}{k:05d}\t"
                    f"BC{(r >> 8) & 0xFFFFFFFF:010d}\t{outer}\t{outer - 96}\t"
                    f"{angle_left}\t{angle_right}\t{width}\t{width + 400}\t6500\t"
                    f"{(r >> 35) & 0x3FF}\t70\t82\t3\t{ORIENTATIONS[(r >> 45) & 3]}\t"
                    f"T{trolley:02d}\t{cell:02d}\tT{trolley:02d}-{cell:02d}\t"
                    f"SAW;DRILL {(r >> 47) & 7}\t{middle}B{(r >> 40) & 0xFFF:05d}\t{profile}"
                    f"{glass}\t{state}\t{created}\t{created}\n"
                )
                if len(out) >= chunk_rows:
                    yield "".join(out)
                    out = []
        if out:
            yield "".join(out)


class _Stream:
    """A read()-able file over an iterator of text chunks, for copy_expert."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""
        self.rows = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self.rows += chunk.count("\n")
            self._buffer += chunk.encode()
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _copy(cur, table: str, columns: tuple[str, ...], chunks) -> int:
    stream = _Stream(chunks)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", stream, size=1 << 20)
    return stream.rows


def _lines(rows):
    yield "".join("\t".join("\\N" if v is None else str(v) for v in row) + "\n" for row in rows)


def loaded_pieces(url: URL) -> int | None:
    """N of the data set in the database, or None when absent or of another layout/seed."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('bench_meta') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SELECT key, value FROM bench_meta")
            meta = dict(cur.fetchall())
    finally:
        conn.close()
    if meta.get("layout") != LAYOUT_VERSION or meta.get("seed") != str(SEED):
        return None
    return int(meta["pieces"]) if meta.get("complete") == "true" else None


def load(url: URL, pieces: int, *, echo=print) -> dict:
    """Make the database hold exactly the data set of `pieces` pieces; return timings."""
    migrate(url, echo=lambda line: echo(f"  migrate: {line}"))
    if loaded_pieces(url) == pieces:
        echo(f"data: {pieces:,} pieces already loaded, skipping the load")
        return {"skipped": True, "pieces": pieces}
    plan = Plan(pieces)
    conn = connect(url)
    timings: dict = {"skipped": False, "pieces": pieces}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles"
                        " WHERE rolname = current_user")
            if not cur.fetchone()[0]:
                raise SystemExit("bench.data: the bench database user must be a superuser "
                                 "(row-level security is FORCEd on the tables)")
            cur.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text)")
            cur.execute("TRUNCATE bench_meta, audit_log, pieces, assemblies, components, projects")
            cur.execute("SET session_replication_role = replica")  # no FK triggers during COPY
            cur.execute("SET maintenance_work_mem = '1GB'")
            cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                " AND tablename = 'pieces' AND indexname NOT IN"
                " (SELECT conname FROM pg_constraint WHERE conrelid = 'pieces'::regclass)")
            plain_indexes = cur.fetchall()
            for name, _ in plain_indexes:
                cur.execute(f'DROP INDEX "{name}"')
            created = EPOCH - timedelta(days=30)
            started = time.monotonic()
            _copy(cur, "projects", ("guid", "company_guid", "code", "name", "is_active",
                                    "deleted_at", "created_at", "updated_at"),
                  _lines((g, t, code, f"Project {code}", "f" if d else "t", d, created, created)
                         for g, t, code, d in plan.projects))
            _copy(cur, "components", ("guid", "company_guid", "project_guid", "code", "name",
                                      "is_active", "deleted_at", "created_at", "updated_at"),
                  _lines((g, t, p, code, None, "f" if d else "t", d, created, created)
                         for g, t, p, code, d in plan.components))
            _copy(cur, "assemblies", ("guid", "company_guid", "project_guid", "component_guid",
                                      "code", "name", "is_active", "deleted_at", "created_at",
                                      "updated_at"),
                  _lines((a.guid, a.tenant, a.project, a.component, f"A{a.index:02d}", None,
                          "f" if a.deleted else "t", a.deleted, created, created)
                         for a in plan.assemblies))
            echo(f"data: COPY {pieces:,} pieces …")
            copy_started = time.monotonic()
            rows = _copy(cur, "pieces", PIECE_COLUMNS, plan.piece_rows())
            copy_seconds = time.monotonic() - copy_started
            timings["copy_seconds"] = round(copy_seconds, 1)
            timings["copy_rows_per_second"] = round(rows / copy_seconds)
            echo(f"data: COPY pieces: {rows:,} rows in {copy_seconds:.1f} s "
                 f"({rows / copy_seconds:,.0f} rows/s, generation included)")
            index_started = time.monotonic()
            for name, definition in plain_indexes:
                cur.execute(definition)
            timings["index_seconds"] = round(time.monotonic() - index_started, 1)
            echo(f"data: {len(plain_indexes)} indexes rebuilt in {timings['index_seconds']} s")
            cur.execute("INSERT INTO bench_meta VALUES ('layout', %s), ('seed', %s),"
                        " ('pieces', %s), ('big_projects', %s)",
                        (LAYOUT_VERSION, str(SEED), str(pieces), " ".join(plan.big_projects)))
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            vacuum_started = time.monotonic()
            cur.execute("VACUUM ANALYZE projects, components, assemblies, pieces")
            timings["vacuum_analyze_seconds"] = round(time.monotonic() - vacuum_started, 1)
            cur.execute("INSERT INTO bench_meta VALUES ('complete', 'true')")
        timings["total_seconds"] = round(time.monotonic() - started, 1)
        echo(f"data: VACUUM ANALYZE {timings['vacuum_analyze_seconds']} s; "
             f"load total {timings['total_seconds']} s")
    finally:
        conn.close()
    return timings


def requested_pieces(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int,
                        default=int(os.environ.get("BENCH_PIECES", DEFAULT_PIECES)))
    return parser.parse_args(argv).pieces


def main(argv=None) -> None:
    pieces = requested_pieces(argv)
    url, server = bench_url()
    print(f"data: database {url.render_as_string(hide_password=True)}")
    load(url, pieces)
    del server


if __name__ == "__main__":
    sys.exit(main())
