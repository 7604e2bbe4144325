"""Load and soak (`make soak`): mixed read/write load at the benchmark's concurrency (16)
against the real service under gunicorn for PIECES_SOAK_SECONDS (default 180):
zero errors, zero lost or duplicated sync rows, worker memory flat (RSS from /proc)."""
from __future__ import annotations

import os
import random
import statistics
import threading
import time
import uuid

import pytest

from helpers import TEST_SECRET, make_token

from .reliability_harness import Gunicorn, rss_kib

pytestmark = pytest.mark.soak

DURATION = float(os.environ.get("PIECES_SOAK_SECONDS", "180"))
CONCURRENCY = int(os.environ.get("PIECES_SOAK_CONCURRENCY", "16"))
SYNC_BATCH = 20


def test_soak_mixed_load(db_url, seed, admin_conn):
    tenant = uuid.uuid4()
    tree = seed.tree(tenant, pieces_per_assembly=50)
    read_token = make_token(tenant, "Operator", exp_in=int(DURATION) + 600)
    write_token = make_token(tenant, "Integration", exp_in=int(DURATION) + 600)
    # Worker recycling (max_requests) would reset RSS and change PIDs mid-measurement.
    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=2,
                      GUNICORN_CMD_ARGS="--max-requests 0")
    stats = {"requests": 0, "errors": 0, "syncs": 0, "resent": 0}
    errors: list[str] = []
    sent_ids: set[str] = set()
    lock = threading.Lock()
    stop_at = time.monotonic() + DURATION

    def driver(index):
        rng = random.Random(index)
        batches_sent: list[list[dict]] = []
        n = 0
        while time.monotonic() < stop_at and n < 1_000_000:
            n += 1
            roll = rng.random()
            try:
                if roll < 0.70:
                    status, body, _ = server.request(
                        "GET", f"/api/v1/pieces?limit=100&offset={rng.randint(0, 40)}",
                        token=read_token, timeout=30)
                    ok = status == 200 and isinstance(body, list)
                elif roll < 0.85:
                    piece = rng.choice(tree.pieces)
                    status, body, _ = server.request("GET", f"/api/v1/pieces/{piece}",
                                                     token=read_token, timeout=30)
                    ok = status == 200 and body["guid"] == str(piece)
                elif roll < 0.95 or not batches_sent:
                    batch = [{"company_guid": str(tenant), "project_guid": str(tree.project),
                              "component_guid": str(tree.component),
                              "assembly_guid": str(tree.assembly),
                              "piece_id": f"soak-{index}-{n}-{i}", "outer_length": i}
                             for i in range(SYNC_BATCH)]
                    status, body, _ = server.request("POST", "/api/v1/sync/pieces",
                                                     body={"pieces": batch},
                                                     token=write_token, timeout=30)
                    ok = status == 200 and body == {"inserted": SYNC_BATCH, "updated": 0,
                                                    "unchanged": 0}
                    if ok:
                        batches_sent.append(batch)
                        with lock:
                            sent_ids.update(item["piece_id"] for item in batch)
                            stats["syncs"] += 1
                else:  # resend an earlier batch: must change nothing
                    batch = rng.choice(batches_sent)
                    status, body, _ = server.request("POST", "/api/v1/sync/pieces",
                                                     body={"pieces": batch},
                                                     token=write_token, timeout=30)
                    ok = status == 200 and body == {"inserted": 0, "updated": 0,
                                                    "unchanged": len(batch)}
                    with lock:
                        stats["resent"] += 1
            except Exception as exc:  # a transport error is an error too
                ok, status, body = False, None, repr(exc)
            with lock:
                stats["requests"] += 1
                if not ok:
                    stats["errors"] += 1
                    if len(errors) < 20:
                        errors.append(f"{status} {str(body)[:200]}")

    samples: list[dict[int, int]] = []
    try:
        workers = server.worker_pids()
        threads = [threading.Thread(target=driver, args=(i,), daemon=True)
                   for i in range(CONCURRENCY)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while time.monotonic() < stop_at:
            samples.append({pid: rss_kib(pid) for pid in workers})
            time.sleep(min(2.0, max(0.0, stop_at - time.monotonic())))
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
        assert not any(thread.is_alive() for thread in threads), "a driver thread hung"
        assert server.worker_pids() == workers, "a worker died or was restarted"
    finally:
        server.close()

    with admin_conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT piece_id) FROM pieces"
                    " WHERE company_guid = %s AND piece_id LIKE 'soak-%%'", (str(tenant),))
        rows, distinct = cur.fetchone()
    # Memory: compare the middle of the run (after warm-up) with its end, per worker.
    growth = {}
    if len(samples) >= 6:
        for pid in workers:
            series = [s[pid] for s in samples if s.get(pid)]
            third = max(1, len(series) // 3)
            growth[pid] = statistics.median(series[-third:]) - statistics.median(
                series[third:2 * third])
    report = (f"soak: {elapsed:.0f}s at concurrency {CONCURRENCY}: {stats['requests']} requests "
              f"({stats['requests'] / elapsed:.0f}/s), {stats['errors']} errors, "
              f"{stats['syncs']} syncs = {len(sent_ids)} pieces sent, {rows} rows stored "
              f"({distinct} distinct), {stats['resent']} idempotent resends; worker RSS "
              f"growth KiB {growth} (first→last sample "
              f"{ {pid: (samples[0][pid], samples[-1][pid]) for pid in workers} })")
    print("\n" + report)
    assert stats["errors"] == 0, errors
    assert rows == distinct == len(sent_ids)
    for pid, kib in growth.items():
        assert kib < 20 * 1024, f"worker {pid} grew {kib} KiB from mid-run to the end"
