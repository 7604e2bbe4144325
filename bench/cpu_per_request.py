"""CPU per request, by process, of one sequential client's detail requests against the
service under its own gunicorn.conf.py (issue 21): how much of the machine one tenant's
stream of cheap requests takes, which is what a flooding tenant loses when it runs beside
it on the same cores.

    .venv/bin/python -m bench.cpu_per_request postgresql://postgres@127.0.0.1:5432/pieces_bench [seconds]

It reads the CPU time of every process on the machine (/proc) before and after the run and
prints the difference per request for the gunicorn processes and PostgreSQL's backends
(the client's own process exits before the second reading, so it is not counted). Other
load on the machine shows up in the figures: run it on a quiet machine. Any database with
pieces works (it asks for 2,000 of one tenant's pieces); extra gunicorn settings through
GUNICORN_CMD_ARGS, e.g. `--worker-class sync --threads 1`.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import TEST_SECRET, make_token  # noqa: E402
from pieces_service.config import database_url  # noqa: E402
from pieces_service.migrate import connect  # noqa: E402
from tests.reliability.fairness_load import Sequential  # noqa: E402
from tests.reliability.reliability_harness import Gunicorn  # noqa: E402


def cpu_by_kind() -> dict[str, float]:
    """Seconds of CPU (user + system) of every live process, summed by kind."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        kind = ("gunicorn" if b"gunicorn" in command else
                "postgres" if name.startswith("postgres") else "other")
        totals[kind] = totals.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals


def main(url: str, seconds: float) -> None:
    conn = connect(database_url(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT company_guid FROM pieces LIMIT 1")
            tenant = cur.fetchone()[0]
            cur.execute("SELECT guid FROM pieces WHERE company_guid = %s LIMIT 2000", (tenant,))
            guids = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    token = make_token(uuid.UUID(str(tenant)), "Operator", exp_in=3600)
    targets = [(f"/api/v1/pieces/{guid}", token) for guid in guids]
    server = Gunicorn(url, TEST_SECRET, workers=2)
    try:
        Sequential(server.port, targets, seconds=2).run()  # warm: connections, statements
        before = cpu_by_kind()
        run = Sequential(server.port, targets, seconds=seconds).run()
        after = cpu_by_kind()
    finally:
        server.close()
    requests = len(run.statuses)
    print(f"{requests} requests in {seconds:.0f} s ({requests / seconds:.0f}/s), "
          f"non-200: {run.non_200}, errors: {len(run.errors)}")
    for kind in ("gunicorn", "postgres", "other"):
        spent = after.get(kind, 0.0) - before.get(kind, 0.0)
        print(f"  {kind:9s} {spent:6.2f} s CPU  {spent / max(requests, 1) * 1e6:6.0f} µs/request")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 10.0)
