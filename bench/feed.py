"""Paging through a change feed (`python -m bench.run`, scenario `changes_page_through`).

One client follows `next` from the beginning of the largest tenant's pieces feed, 1000 rows a
page, for FEED_ROWS rows (or the tenant's whole feed when it has fewer), as a consumer's
initial load does; then the same statements from one connection straight to PostgreSQL
(the one message of `db.OneMessageReads.fetch_one`): the database floor of that load.
"""
from __future__ import annotations

import json
import time
import urllib.request
import uuid

from pieces_service import db as service_db
from pieces_service.catalogue import PIECE
from pieces_service.dao import changes as changes_dao
from pieces_service.migrate import connect

from bench import workload

FEED_ROWS = 100_000
PAGE = 1000


def largest_tenant(url) -> tuple[str, int]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT company_guid::text, count(*) FROM pieces GROUP BY 1"
                        " ORDER BY 2 DESC, 1 LIMIT 1")
            return cur.fetchone()
    finally:
        conn.close()


def page_through_service(port: int, tenant: str, rows: int) -> dict:
    """Follow `next` through `rows` rows; rows/s and the slowest page, as one client sees."""
    headers = {"Authorization": "Bearer " + workload.token(tenant, "Integration")}
    since, seen, pages, slowest = None, 0, 0, 0.0
    started = time.monotonic()
    while seen < rows:
        path = f"/api/v1/changes/pieces?limit={PAGE}" + (f"&since={since}" if since else "")
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        began = time.monotonic()
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        slowest = max(slowest, time.monotonic() - began)
        page = json.loads(body)
        if not page["changes"]:
            break
        seen += len(page["changes"])
        pages += 1
        since = page["next"]
    elapsed = time.monotonic() - started
    return {"rows": seen, "pages": pages, "seconds": elapsed, "rows_per_s": seen / elapsed,
            "slowest_page_ms": slowest * 1000}


def page_through_db(url, tenant: str, rows: int) -> dict:
    """The same pages' statements from one connection: the database floor."""
    config = workload.service_config(url)
    setup = service_db.read_setup(config)
    statement = changes_dao.statement(PIECE)
    conn = connect(url)
    conn.autocommit = True
    after, seen, pages = None, 0, 0
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            while seen < rows:
                params = changes_dao.parameters(tenant=uuid.UUID(tenant), after=after,
                                                limit=PAGE)
                cur.execute(setup + statement, {**params, "rls_tenant": tenant})
                count, last_key, _body = cur.fetchone()
                if not count:
                    break
                seen += count
                pages += 1
                xid, guid = last_key.split(" ")
                after = (int(xid), uuid.UUID(guid))
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    return {"rows": seen, "pages": pages, "seconds": elapsed, "rows_per_s": seen / elapsed}


def measure(url, port: int, log) -> dict:
    tenant, size = largest_tenant(url)
    rows = min(FEED_ROWS, size)
    service = page_through_service(port, tenant, rows)
    floor = page_through_db(url, tenant, rows)
    log(f"  service     {service['rows']:,} rows in {service['pages']} pages: "
        f"{service['seconds']:.2f} s, {service['rows_per_s']:,.0f} rows/s, "
        f"slowest page {service['slowest_page_ms']:.0f} ms")
    log(f"  DB floor    {floor['rows']:,} rows: {floor['seconds']:.2f} s, "
        f"{floor['rows_per_s']:,.0f} rows/s")
    # Not "service"/"db_floor": the wrk scenarios' table reads those keys.
    return {"paged": service, "paged_db_floor": floor, "tenant_rows": size}


def report_lines(result: dict) -> list[str]:
    service, floor = result["paged"], result["paged_db_floor"]
    return ["", f"Change feed, one client paging from the beginning through the largest "
                f"tenant's pieces ({result['tenant_rows']:,} rows, limit={PAGE}):", "",
            "| | rows | pages | seconds | rows/s | slowest page |",
            "|---|---:|---:|---:|---:|---:|",
            f"| service | {service['rows']:,} | {service['pages']} | {service['seconds']:.2f} | "
            f"{service['rows_per_s']:,.0f} | {service['slowest_page_ms']:.0f} ms |",
            f"| DB floor (same statements, one connection) | {floor['rows']:,} | "
            f"{floor['pages']} | {floor['seconds']:.2f} | {floor['rows_per_s']:,.0f} | – |",
            f"| service / DB floor | | | | "
            f"{service['rows_per_s'] / floor['rows_per_s'] * 100:.0f} % | |"]
