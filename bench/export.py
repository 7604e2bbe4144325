"""The export scenario of `make bench` (BENCH_SCENARIOS=export): every piece of the bench
data set (1,000,000 by default) exported through GET /api/v1/pieces/export, tenant by tenant
with `include_inactive=true`, once as NDJSON and once as CSV, by one gunicorn worker.

Reported per format: rows, bytes, seconds, rows/s, and the serving worker's peak RSS,
sampled every 50 ms with psutil (the export streams from a server-side cursor, so the RSS must
not grow with the export: goal < 100 MB). Every body is read to its end and checked to be
complete (http.client raises IncompleteRead on a cut chunked body) and to hold the tenant's
row count.
"""
from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlencode

import psutil

from bench import workload
from pieces_service.migrate import connect

RSS_GOAL_MB = 100
ACCEPT = {"ndjson": "application/x-ndjson", "csv": "text/csv"}
_READ = 1 << 20


class PeakRss:
    """The highest RSS of any worker of a gunicorn master, sampled every `interval` s."""

    def __init__(self, master_pid: int, interval: float = 0.05):
        self._master = psutil.Process(master_pid)
        self._interval = interval
        self._stop = threading.Event()
        self.start = self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self._interval)

    def current(self) -> int:
        """The largest worker RSS right now."""
        sizes = [0]
        for child in self._master.children():
            try:
                sizes.append(child.memory_info().rss)
            except psutil.Error:
                pass
        return max(sizes)

    def __enter__(self) -> "PeakRss":
        self.start = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def tenant_counts(url) -> dict[str, int]:
    """{tenant: pieces, soft-deleted included} of the bench database."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT company_guid::text, count(*) FROM pieces GROUP BY 1 ORDER BY 1")
            return dict(cur.fetchall())
    finally:
        conn.close()


def export_one(port: int, token: str, tenant: str, fmt: str) -> tuple[int, int]:
    """(rows, bytes) of one tenant's whole export in `fmt`; raises when the body is cut."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        query = urlencode({"company_guid": tenant, "include_inactive": "true"})
        conn.request("GET", f"/api/v1/pieces/export?{query}",
                     headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT[fmt]})
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"bench: export {fmt} of {tenant}: {response.status} "
                             f"{response.read()[:300]!r}")
        lines = size = 0
        while chunk := response.read(_READ):  # IncompleteRead if the body is cut
            lines += chunk.count(b"\n")
            size += len(chunk)
        return lines - (1 if fmt == "csv" else 0), size  # the CSV header is not a row
    finally:
        conn.close()


def measure(url, port: int, token: str, master_pid: int, log=print) -> dict:
    """Export every tenant of the bench database at `url` through the service on `port`
    (`token`: a SystemAdmin's, any tenant) in both formats; figures per format."""
    counts = tenant_counts(url)
    results = {}
    for fmt in ("ndjson", "csv"):
        rows = size = 0
        with PeakRss(master_pid) as rss:
            started = time.monotonic()
            for tenant, expected in counts.items():
                got, got_bytes = export_one(port, token, tenant, fmt)
                if got != expected:
                    raise SystemExit(f"bench: export {fmt} of {tenant}: {got} rows, "
                                     f"expected {expected}")
                rows += got
                size += got_bytes
            seconds = time.monotonic() - started
        results[fmt] = {"rows": rows, "bytes": size, "seconds": round(seconds, 2),
                        "rows_per_s": rows / seconds, "mb_per_s": size / seconds / 2**20,
                        "rss_start_mb": rss.start / 2**20, "rss_peak_mb": rss.peak / 2**20,
                        "tenants": len(counts)}
        log(f"  export {fmt:6} {rows:,} rows, {size / 2**20:,.0f} MiB in {seconds:.1f} s: "
            f"{rows / seconds:,.0f} rows/s, {size / seconds / 2**20:.1f} MiB/s; "
            f"worker RSS {rss.start / 2**20:.0f} MB before, peak {rss.peak / 2**20:.0f} MB")
    return results


def run(url, env: dict, gunicorn, log=print) -> dict:
    """The scenario as bench.run calls it: a one-worker gunicorn (bench.run's `gunicorn`
    context manager) serving the exports of `measure`."""
    log("bench: export — every piece, NDJSON then CSV, one worker")
    token = workload.token(next(iter(tenant_counts(url))), "SystemAdmin")
    with gunicorn("wsgi:app", env, "export", workers=1) as (process, port):
        figures = measure(url, port, token, process.pid, log)
    return {"title": "export of every piece (one worker)", "note": "", "kind": "export",
            "export": figures}


def report_lines(entry: dict) -> list[str]:
    """The export's table for the report (bench.run's `render`)."""
    lines = ["", "| export (one worker) | rows | MiB | seconds | rows/s | MiB/s "
                 f"| worker RSS before | worker RSS peak (goal < {RSS_GOAL_MB} MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for fmt, f in entry["export"].items():
        met = "met" if f["rss_peak_mb"] < RSS_GOAL_MB else "**missed**"
        lines.append(f"| {fmt} ({f['tenants']} tenants, include_inactive) | {f['rows']:,} "
                     f"| {f['bytes'] / 2**20:,.0f} | {f['seconds']:.1f} "
                     f"| {f['rows_per_s']:,.0f} | {f['mb_per_s']:.1f} "
                     f"| {f['rss_start_mb']:.0f} MB | {f['rss_peak_mb']:.0f} MB ({met}) |")
    return lines
