"""CPU per request inside one process: the service's Flask app driven by its test client
(no HTTP, no gunicorn) against the bench database, for levers too small to see from outside
(issue 14); with BENCH_INPROCESS_APP=reference, the bare reference app instead (the
difference is the cost of the service's features). Logging is configured as gunicorn
configures it (`logs.logging_config`), so the request's log line is formatted and written:
send stdout to /dev/null. Counts this process's
CPU only (`time.process_time`), so PostgreSQL's share is not in it; the minimum of several
sets is printed (on stderr), the least disturbed by the machine. Timings on a shared VM
move by a third between runs: for a lever's cost, count instructions instead, under
callgrind, and take the difference of two request counts (startup cancels out):

    BENCH_DATABASE_URL=… .venv/bin/python -m bench.inprocess [detail|list] [sets] [requests] \
        >/dev/null
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python -m bench.inprocess detail 1 200 >/dev/null   # and 1 600: Δ / 600

Tracing (issue 23) is on as the service turns it on: with `OTEL_EXPORTER_OTLP_ENDPOINT` set
(and the `otel` extra installed); the spans' export runs in this process (its batch
thread), so its CPU is counted. `python -m bench.otlp_sink` is an endpoint that takes them.
"""
from __future__ import annotations

import dataclasses
import logging.config
import os
import sys
import tempfile
import time

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="pieces-inprocess-"))

from pieces_service import create_app  # noqa: E402
from pieces_service.config import database_url, tracing_from_env  # noqa: E402
from pieces_service.migrate import connect  # noqa: E402
from pieces_service.web.logs import logging_config  # noqa: E402

from . import workload  # noqa: E402


def targets(url, kind: str) -> list[tuple[str, dict]]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            if kind == "detail":
                cur.execute("SELECT company_guid, guid FROM pieces WHERE is_active LIMIT 500")
                rows = [(t, f"/api/v1/pieces/{g}") for t, g in cur.fetchall()]
            else:
                cur.execute("SELECT company_guid, guid FROM projects WHERE is_active"
                            " ORDER BY guid LIMIT 200")
                rows = [(t, f"/api/v1/pieces?project_guid={p}&limit=100")
                        for t, p in cur.fetchall()]
    finally:
        conn.close()
    tokens = {t: workload.token(str(t), "Operator") for t, _ in rows}
    return [(path, {"Authorization": f"Bearer {tokens[t]}"}) for t, path in rows]


def app_under_test(url):
    """The service, or with BENCH_INPROCESS_APP=reference the bare reference app."""
    if os.environ.get("BENCH_INPROCESS_APP") == "reference":
        from pieces_service.config import url_text

        os.environ["DATABASE_URL"] = url_text(url)
        os.environ["PIECES_JWT_SECRET"] = workload.JWT_SECRET
        from .reference_app import app
        return app
    return create_app(dataclasses.replace(workload.service_config(url),
                                          tracing=tracing_from_env(os.environ)))


def main(kind: str, sets: int, requests: int) -> None:
    logging.config.dictConfig(logging_config("INFO"))
    url = database_url(os.environ["BENCH_DATABASE_URL"], "BENCH_DATABASE_URL")
    client = app_under_test(url).test_client()
    picks = targets(url, kind)

    def run(n: int) -> None:
        for i in range(n):
            path, headers = picks[i % len(picks)]
            assert client.get(path, headers=headers).status_code == 200

    run(requests // 2)  # warm: pool, caches, token cache
    per_request = []
    for _ in range(sets):
        started = time.process_time()
        run(requests)
        per_request.append((time.process_time() - started) / requests * 1e6)
    sys.stderr.write(f"{kind}: CPU per request, min of {sets} × {requests}: "
                     f"{min(per_request):.1f} µs (all: "
                     f"{', '.join(f'{v:.1f}' for v in per_request)})\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "detail", int(args[1]) if len(args) > 1 else 5,
         int(args[2]) if len(args) > 2 else 1000)
