"""What each scenario requests: targets picked at random from the loaded data, written as
files that the wrk script (bench/lua/bench.lua) and pgbench read.

For every read scenario one list of (tenant, DAO arguments) is drawn; from it come
  - `<scenario>.targets`: "<path> <bearer token>" per line, for wrk (a random line per request);
  - `pgbench/<scenario>/NNN.sql`: all targets, spread over PGBENCH_SCRIPTS pgbench scripts that run
    exactly what a request sends (the one message of pieces_service.db's
    `OneMessageReads.fetch_one`: the read setup and the DAO statement with the values
    psycopg2 inlines, as one pgbench compound command, so one round trip and one implicit
    transaction), picked at random per transaction by pgbench.
"""
from __future__ import annotations

import random
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import jwt
from sqlalchemy.engine import URL

from pieces_service import db as service_db
from pieces_service.catalogue import PIECE
from pieces_service.config import Config, JWTSettings
from pieces_service.dao import changes as changes_dao
from pieces_service.dao import load_queries
from pieces_service.dao import pieces as pieces_dao
from pieces_service.domain import changes as changes_domain
from pieces_service.domain.pieces import ListQuery, decode_cursor, encode_cursor, page_tag
from pieces_service.migrate import connect

JWT_SECRET = "pieces-bench-secret-for-benchmarks-only-0123456789"
TARGETS_PER_SCENARIO = 20_000
PGBENCH_SCRIPTS = 100  # pgbench accepts at most 128 scripts
DEEP_PAGE = 500
PAGE_SIZE = 100
SYNC_ITEMS = 1000

_PIECES_SQL = load_queries("pieces.sql")
_STATEMENTS = {**_PIECES_SQL, **load_queries("changes.sql")}


@dataclass
class Scenario:
    name: str
    title: str
    kind: str  # "get", "sync" or "resend"
    targets_file: Path | None = None
    pgbench_dir: Path | None = None
    pool_file: Path | None = None
    note: str = ""
    info: dict = field(default_factory=dict)


def token(tenant: str, role: str) -> str:
    return jwt.encode({"sub": f"bench-{role}", "company_guid": tenant, "role": role,
                       "exp": int(time.time()) + 7 * 86400}, JWT_SECRET, algorithm="HS256")


def service_config(url: URL) -> Config:
    """The service's default configuration against the bench database."""
    return Config(database_url=url, jwt=JWTSettings(JWT_SECRET, ("HS256",)))


def _read_message(cur, read_setup: str, tenant: str, statement: str) -> str:
    """The one message of `pieces_service.db.OneMessageReads.fetch_one`, as one pgbench
    compound command."""
    setup = cur.mogrify(read_setup, {"rls_tenant": tenant}).decode().replace(";", " \\;")
    return f"{setup}{statement};\n"


def _list_args(tenant, *, project=None, assembly=None, limit=100, offset=0, after=None,
               count_exact=False):
    return pieces_dao.list_parameters(
        tenant=uuid.UUID(tenant), project_guid=uuid.UUID(project) if project else None,
        component_guid=None, assembly_guid=uuid.UUID(assembly) if assembly else None,
        include_inactive=False, limit=limit, offset=offset, after=after,
        count_exact=count_exact)


def _write_pgbench(cur, directory: Path, picks: list[tuple[str, str, dict]],
                   read_setup: str) -> None:
    """Every pick as pgbench scripts: PGBENCH_SCRIPTS files (pgbench's limit is 128), each
    choosing one of its share of the picks at random per transaction (`\\set` + `\\if`, in
    pgbench, no SQL), so the floor reads the same 20,000 targets as the service does and no
    smaller, better-cached working set flatters it."""
    directory.mkdir(parents=True)
    share = -(-len(picks) // PGBENCH_SCRIPTS)
    for n in range(PGBENCH_SCRIPTS):
        chunk = picks[n * share:(n + 1) * share]
        if not chunk:
            break
        lines = [f"\\set pick random(0, {len(chunk) - 1})\n"]
        for k, (tenant, query, args, _) in enumerate(chunk):
            sql = (pieces_dao.list_statement(args["offset"]) if query == "list_pieces"
                   else _STATEMENTS[query])
            statement = cur.mogrify(sql, args).decode()
            keyword = "\\if" if k == 0 else "\\elif"
            lines.append(f"{keyword} :pick = {k}\n")
            lines.append(_read_message(cur, read_setup, tenant, statement))
        lines.append("\\endif\n")
        (directory / f"{n:03d}.sql").write_text("".join(lines))


# The Prefer header a get scenario sends with every request (bench/lua/bench.lua).
PREFER = {"big_page1_count": "count=exact"}


def build(url: URL, out: Path, *, seed: int = 1) -> list[Scenario]:
    """Draw the targets of every scenario from the database at `url` into `out`."""
    rng = random.Random(seed)
    read_setup = service_db.read_setup(service_config(url))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    conn = connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")  # as the service's connections (cursor text)
            cur.execute("SELECT value FROM bench_meta WHERE key = 'big_projects'")
            big_projects = cur.fetchone()[0].split()
            cur.execute("SELECT company_guid::text, guid::text FROM projects WHERE is_active"
                        " AND NOT guid = ANY (%s::uuid[]) ORDER BY guid", (big_projects,))
            projects = cur.fetchall()
            cur.execute("SELECT company_guid::text, project_guid::text, component_guid::text,"
                        " guid::text FROM assemblies WHERE is_active ORDER BY guid")
            assemblies = cur.fetchall()
            cur.execute("SELECT reltuples FROM pg_class WHERE relname = 'pieces'")
            estimate = max(cur.fetchone()[0], 1)
            cur.execute("SELECT setseed(0.5)")
            cur.execute(f"SELECT company_guid::text, guid::text FROM pieces"
                        " TABLESAMPLE BERNOULLI"
                        f" ({min(100.0, 3 * TARGETS_PER_SCENARIO * 100 / estimate)})"
                        f" REPEATABLE (7) WHERE is_active LIMIT {TARGETS_PER_SCENARIO}")
            pieces = cur.fetchall()
            # The deep pages: pages DEEP_PAGE-9 .. DEEP_PAGE+10 of every big project (fewer
            # pages when a small data set's big projects are shorter).
            deep: list[tuple[str, str, int, str]] = []  # tenant, project, page, cursor key
            page1: list[tuple[str, str]] = []
            for project in big_projects:
                cur.execute("SELECT company_guid::text, count(*) FILTER (WHERE is_active)"
                            " FROM pieces WHERE project_guid = %s GROUP BY 1", (project,))
                tenant, active = cur.fetchone()
                last_page = min(DEEP_PAGE + 10, active // PAGE_SIZE)
                pages = list(range(max(2, last_page - 19), last_page + 1))
                cur.execute(
                    "SELECT n, (extract(epoch FROM created_at) * 1000000)::bigint || ' ' || guid"
                    " FROM ("
                    " SELECT created_at, guid,"
                    "        row_number() OVER (ORDER BY created_at, guid) AS n"
                    " FROM pieces WHERE company_guid = %s AND project_guid = %s AND is_active"
                    ") ranked WHERE n = ANY (%s)",
                    (tenant, project, [(p - 1) * PAGE_SIZE for p in pages]))
                for n, key in cur.fetchall():
                    deep.append((tenant, project, n // PAGE_SIZE + 1, key))
                page1.append((tenant, project))
            tokens = {t: token(t, "Operator") for t in {p[0] for p in projects}}
            sync_tokens = {t: token(t, "Integration") for t in tokens}

            def pick(pool, k=TARGETS_PER_SCENARIO):
                return [rng.choice(pool) for _ in range(k)]

            def listing(t, **params):
                """(tenant, DAO query, DAO arguments, request path) of one list request."""
                after = params.pop("cursor_key", None)
                count_exact = params.pop("count_exact", False)  # sent as a Prefer header
                args = _list_args(t, project=params.get("project_guid"),
                                  assembly=params.get("assembly_guid"),
                                  limit=params.get("limit", PAGE_SIZE),
                                  offset=params.get("offset", 0),
                                  after=decode_cursor(encode_cursor(after)) if after else None,
                                  count_exact=count_exact)
                if after:
                    params["cursor"] = encode_cursor(after)
                return t, "list_pieces", args, "/api/v1/pieces?" + urlencode(params)

            pages = sorted({d[2] for d in deep})
            page_note = (f"pages {pages[0]}-{pages[-1]} of {PAGE_SIZE} in the "
                         f"{len(big_projects)} big projects")
            reads: dict[str, tuple[str, str, list]] = {
                "list_project_100": ("List by project, limit=100", "", [
                    listing(t, project_guid=p, limit=100) for t, p in pick(projects)]),
                "list_project_1000": ("List by project, limit=1000", "", [
                    listing(t, project_guid=p, limit=1000) for t, p in pick(projects)]),
                "list_assembly": ("List by assembly (limit=100)", "", [
                    listing(t, assembly_guid=a) for t, _, _, a in pick(assemblies)]),
                "detail": ("Detail by guid", "", [
                    (t, "get_piece", {"tenant": uuid.UUID(t), "guid": uuid.UUID(g),
                                      "include_inactive": False}, f"/api/v1/pieces/{g}")
                    for t, g in pick(pieces)]),
                "big_page1": ("Big project, page 1 (limit=100)",
                              f"the {len(big_projects)} big projects", [
                    listing(t, project_guid=p, limit=100) for t, p in pick(page1)]),
                "big_page1_count": ("Big project, page 1 (limit=100), Prefer: count=exact",
                                    f"the {len(big_projects)} big projects: the same pages "
                                    "as big_page1, counted", [
                    listing(t, project_guid=p, limit=100, count_exact=True)
                    for t, p in pick(page1)]),
                "deep_offset": (f"Deep page by offset (~page {DEEP_PAGE})", page_note, [
                    listing(t, project_guid=p, limit=100, offset=(n - 1) * PAGE_SIZE)
                    for t, p, n, _ in pick(deep)]),
                "deep_cursor": (f"Deep page by cursor (~page {DEEP_PAGE})", page_note, [
                    listing(t, project_guid=p, limit=100, cursor_key=k)
                    for t, p, n, k in pick(deep)]),
            }

            # Revalidation: the list pages above, sent with the ETag the client holds (the
            # validator statement is what the service runs before answering 304).
            for limit in (100, 1000):
                picks = [(t, "list_validator", args, path) for t, _, args, path
                         in reads[f"list_project_{limit}"][2]]
                tags = _list_tags(cur, picks)
                reads[f"list_project_{limit}_304"] = (
                    f"List by project, limit={limit}, If-None-Match: 304",
                    "the same pages as the 200 row, revalidated", picks, tags)
            reads["changes_poll"] = ("Change feed poll, caught up",
                                     "pieces feed, limit=100, no changes since the token",
                                     _caught_up_polls(cur, [rng.choice(list(tokens))
                                                            for _ in range(2000)]))

            scenarios = []
            for name, (title, note, picks, *tags) in reads.items():
                tags = tags[0] if tags else [""] * len(picks)
                prefer = PREFER.get(name, "")
                targets_file = out / f"{name}.targets"
                targets_file.write_text("".join(
                    " ".join([path, tokens[t], *([tag or "-", prefer] if prefer else
                                                 [tag] if tag else [])]) + "\n"
                    for (t, _, _, path), tag in zip(picks, tags)))
                pgbench_dir = out / "pgbench" / name
                _write_pgbench(cur, pgbench_dir, picks, read_setup)
                scenarios.append(Scenario(name, title, "get", targets_file, pgbench_dir,
                                          note=note))

            # Sync: parents from active, non-big projects; each batch is one tenant's.
            def pool_lines(rows):
                return "".join(f"{t} {p} {c} {a} {sync_tokens[t]}\n" for t, p, c, a in rows)

            big = set(big_projects)
            sync_parents = [a for a in assemblies if a[1] not in big]
            sync_pool = out / "sync.pool"
            sync_pool.write_text(pool_lines(pick(sync_parents, 2000)))
            resend_pool = out / "resend.pool"  # fixed order: resent batches keep their keys
            resend_pool.write_text(pool_lines(sync_parents[:64]))
            scenarios.append(Scenario("sync_insert", f"Sync {SYNC_ITEMS} new pieces", "sync",
                                      pool_file=sync_pool))
            scenarios.append(Scenario("sync_resend", f"Sync resend {SYNC_ITEMS} (no-op)",
                                      "resend", pool_file=resend_pool))
    finally:
        conn.close()
    return scenarios


def _list_tags(cur, picks) -> list[str]:
    """The ETag the service hands out for each list pick (domain.pieces.page_tag over the
    validator statement), quoted as a client sends it back."""
    tags: dict[str, str] = {}
    for tenant, _, args, path in picks:
        if path not in tags:
            cur.execute(_PIECES_SQL["list_validator"], args)
            validator = pieces_dao.PageValidator(*cur.fetchone())
            query = ListQuery(limit=args["limit"], offset=0, include_inactive=False,
                              project_guid=args["project_guid"])
            tag = page_tag(uuid.UUID(tenant), query, validator)
            if tag is None:
                raise SystemExit("bench: a transaction is open on the bench server: no "
                                 "stable list tags; run again when it is over")
            tags[path] = f'"{tag}"'
    return [tags[path] for _, _, _, path in picks]


def _caught_up_polls(cur, tenants: list[str]) -> list[tuple[str, str, dict, str]]:
    """A caught-up poll of each tenant's pieces feed: the token of its newest change."""
    cur.execute("SELECT secret FROM service_keys WHERE name = %s",
                (changes_domain.TOKEN_KEY_NAME,))
    key = bytes(cur.fetchone()[0])
    positions = {}
    for tenant in set(tenants):
        cur.execute("SELECT change_xid::text, guid FROM pieces WHERE company_guid = %s"
                    " ORDER BY change_xid DESC, guid DESC LIMIT 1", (tenant,))
        xid, guid = cur.fetchone()
        positions[tenant] = (int(xid), uuid.UUID(str(guid)))
    picks = []
    for tenant in tenants:
        position = positions[tenant]
        since = changes_domain.encode_token(key, PIECE, uuid.UUID(tenant), position)
        args = changes_dao.parameters(tenant=uuid.UUID(tenant), after=position, limit=100)
        picks.append((tenant, f"changes_{PIECE.plural}", args,
                      "/api/v1/changes/pieces?" + urlencode({"since": since})))
    return picks


def sync_cleanup_sql() -> str:
    """Removes the pieces the sync scenarios inserted (their piece_ids start with S or R)."""
    return "DELETE FROM pieces WHERE piece_id LIKE 'S%' OR piece_id LIKE 'R%'"
