"""Per-request CPU split of two `bench/profile_worker.sh` runs (the service and the bare
reference): rate, worker and PostgreSQL CPU per request, and the share of the worker's
py-spy samples by group, each sample charged to its deepest frame in one of GROUPS.

    .venv/bin/python -m bench.profile_split <out prefix> [<out prefix> …]
"""
from __future__ import annotations

import collections
import json
import re
import sys

GROUPS = [
    ("PostgreSQL round trip (cursor.execute)", r"fetch_one \(|_fetch_one \("),
    ("view, domain and DAO code", r"pieces_service/(api|domain|dao)/"
                                  r"|reference_app.py:\d+ \((list_pieces|get_piece)"),
    ("JWT decode", r"\(jwt/|auth.py:\d+ \((authenticate|_verify|principal|_bearer)"
                   r"|_tenant \("),
    ("query parsing (webargs, marshmallow)", r"\((webargs|marshmallow)/"),
    ("request log line", r"web/logs.py|\(logging/"),
    ("metrics (prometheus_client)", r"\(prometheus_client/"),
    ("ETag hash and conditional", r"web/conditional.py"),
    ("pool checkout and return (SQLAlchemy)", r"\(sqlalchemy/"),
    ("request id and timing hooks", r"web/observability.py"),
    ("consistency header", r"web/consistency.py"),
    ("flask-smorest response wrapper", r"\(flask_smorest/"),
    ("Flask/Werkzeug routing, request, response", r"\((flask|werkzeug)/"),
    ("gunicorn (socket, HTTP parsing)", r"\(gunicorn/"),
]


def split(raw: str) -> dict[str, float]:
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in open(raw):
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack:
            continue
        total += int(n)
        for frame in reversed(stack.split(";")):
            group = next((name for name, pattern in GROUPS if re.search(pattern, frame)),
                         None)
            if group:
                counts[group] += int(n)
                break
        else:
            counts["other"] += int(n)
    return {name: 100 * counts[name] / max(1, total) for name, _ in GROUPS + [("other", "")]}


def main(prefixes: list[str]) -> None:
    rows = {}
    for prefix in prefixes:
        run = json.loads(open(f"{prefix}.wrk").read().split(" ", 1)[1])
        words = open(f"{prefix}.cpu").read().split()
        cpu = dict(zip(words[::2], map(int, words[1::2])))
        requests = run["requests"]
        rows[prefix] = {
            "req/s": f"{requests / (run['duration_us'] / 1e6):.0f}",
            "worker CPU ms/request": f"{cpu['worker_ticks'] / cpu['hz'] * 1000 / requests:.2f}",
            "PostgreSQL CPU ms/request":
                f"{cpu['postgres_ticks'] / cpu['hz'] * 1000 / requests:.2f}",
            **{name: f"{share:.1f} %" for name, share in split(f"{prefix}.raw").items()},
        }
    print("| | " + " | ".join(prefixes) + " |")
    print("|---|" + "---:|" * len(prefixes))
    for key in next(iter(rows.values())):
        print(f"| {key} | " + " | ".join(rows[p][key] for p in prefixes) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
