"""A failover under the running service (`make failover-test`, docs/high-availability.md).

A primary and a synchronous standby of the test's own (the pgserver wheel's binaries), the
service under gunicorn on the two-host URL with `target_session_attrs=read-write`, two
clients syncing pieces (a 503 is retried with the same batch, as a client should) and a
change-feed follower. Three times, the way a failover manager does it: the primary is
killed (`pg_ctl stop -m immediate`), the standby promoted and its
`synchronous_standby_names` reset (the hang of docs/high-availability.md), and a new
standby built in the old primary's place. Asserted: only 2xx and 503; a write succeeds
within 5 s of each promotion; every acknowledged piece is on the final primary; the feed
served every stored piece exactly once."""
from __future__ import annotations

import collections
import threading
import time
import uuid

import pytest

from helpers import TEST_SECRET, make_token
from pieces_service.config import database_url as parse_url
from pieces_service.migrate import connect, migrate

from .reliability_harness import Gunicorn, StreamingReplication, wait_until

pytestmark = pytest.mark.failover

ROUNDS = 3
RUN_BEFORE_KILL_S = 1.0
DOWN_BEFORE_PROMOTE_S = 0.3
WRITE_AFTER_PROMOTION_S = 5.0
BATCH = 5


class Load:
    """Two writers and a change-feed follower against `server`, on threads."""

    def __init__(self, server: Gunicorn, tenant: uuid.UUID, project: str, component: str):
        self.server = server
        self.tenant = tenant
        self.parents = {"company_guid": str(tenant), "project_guid": project,
                        "component_guid": component}
        self.writer = make_token(tenant, "Integration")
        self.reader = make_token(tenant, "Operator")
        self.statuses: collections.Counter = collections.Counter()
        self.acknowledged: set[str] = set()
        self.last_write_ok = float("-inf")  # time.monotonic() of the last 200 sync
        self.fed: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_following = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(n,)) for n in (1, 2)]
        self._follower = threading.Thread(target=self._follow)

    def start(self) -> None:
        for thread in [*self._threads, self._follower]:
            thread.start()

    def _count(self, status) -> None:
        with self._lock:
            self.statuses[status] += 1

    def _write(self, number: int) -> None:
        sent = 0
        while not self._stop.is_set():
            ids = [f"W{number}-{sent + i}" for i in range(BATCH)]
            sent += BATCH
            body = {"pieces": [{**self.parents, "piece_id": piece_id} for piece_id in ids]}
            while True:  # the same batch until it is acknowledged: sync is safe to retry
                try:
                    status, answer, _ = self.server.request("POST", "/api/v1/sync/pieces",
                                                            body=body, token=self.writer)
                except OSError as exc:
                    status = f"no answer: {type(exc).__name__}"
                self._count(status)
                if status == 200:
                    with self._lock:
                        self.acknowledged.update(ids)
                        self.last_write_ok = time.monotonic()
                    break
                if status != 503 or self._stop.is_set():
                    break
                time.sleep(0.05)

    def _follow(self) -> None:
        since = None
        while not self._stop_following.is_set():
            path = "/api/v1/changes/pieces?limit=500" + (f"&since={since}" if since else "")
            try:
                status, answer, _ = self.server.request("GET", path, token=self.reader)
            except OSError as exc:
                status = f"no answer: {type(exc).__name__}"
            self._count(status)
            if status == 200:
                with self._lock:
                    self.fed.extend(answer["changes"])
                since = answer["next"]
                if answer["changes"]:
                    continue
            time.sleep(0.05)

    def stop_writing(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def follow_until(self, guids: set[str], timeout: float) -> None:
        try:
            wait_until(lambda: guids <= {row["guid"] for row in self.fed}, timeout, 0.05,
                       "the feed serving every stored piece")
        finally:
            self._stop_following.set()
            self._follower.join(60)


def _sql(port_url: str, statement: str, params=()):
    conn = connect(parse_url(port_url))
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_three_failovers_lose_nothing_acknowledged(tmp_path_factory):
    pair = StreamingReplication(tmp_path_factory.mktemp("failover"))
    server = None
    try:
        migrate(parse_url(pair.create_database()), echo=lambda *_: None)
        pair.start_standby()
        pair.set_synchronous_standby_names("*")
        pair.wait_synchronous()
        url = (f"postgresql://postgres@/pieces_replica?host=127.0.0.1:{pair.primary_port}"
               f"&host=127.0.0.1:{pair.standby_port}&target_session_attrs=read-write")
        server = Gunicorn(url, TEST_SECRET, workers=2, PIECES_DB_CONNECT_TIMEOUT_SECONDS=2,
                          PIECES_DB_POOL_TIMEOUT_SECONDS=2, PIECES_STATEMENT_TIMEOUT_MS=2000)
        tenant, project, component = uuid.uuid4(), str(uuid.uuid4()), str(uuid.uuid4())
        admin = make_token(tenant, "CompanyAdmin")
        for path, body in (
                ("/api/v1/sync/projects", {"projects": [
                    {"guid": project, "company_guid": str(tenant), "code": "HA"}]}),
                ("/api/v1/sync/components", {"components": [
                    {"guid": component, "company_guid": str(tenant), "project_guid": project,
                     "code": "HA"}]})):
            assert server.request("POST", path, body=body, token=admin)[0] == 200

        load = Load(server, tenant, project, component)
        load.start()
        back_after = []
        try:
            for _ in range(ROUNDS):
                time.sleep(RUN_BEFORE_KILL_S)
                pair.stop_primary("immediate")
                killed = time.monotonic()
                time.sleep(DOWN_BEFORE_PROMOTE_S)
                pair.promote_standby()
                promoted = time.monotonic()
                pair.set_synchronous_standby_names("")  # the failover manager's duty
                wait_until(lambda: load.last_write_ok > promoted, WRITE_AFTER_PROMOTION_S,
                           0.01, "a write acknowledged after the promotion")
                back_after.append((load.last_write_ok - promoted,
                                   load.last_write_ok - killed))
                pair.rebuild_standby()
                pair.set_synchronous_standby_names("*")
                pair.wait_synchronous()
            time.sleep(RUN_BEFORE_KILL_S)
        finally:
            load.stop_writing()

        primary = pair.url(pair.primary_port)
        stored = dict(_sql(primary, "SELECT guid::text, piece_id FROM pieces"
                                    " WHERE company_guid = %s", (str(tenant),)))
        load.follow_until(set(stored), 30)
        fed = [row["guid"] for row in load.fed]
        print(f"\nfailover: {ROUNDS} rounds; answers {dict(load.statuses)}; "
              f"{len(load.acknowledged)} pieces acknowledged, {len(stored)} stored, "
              f"{len(fed)} fed; first write acknowledged after the promotion (after the "
              f"kill): {', '.join(f'{p:.2f} s ({k:.2f} s)' for p, k in back_after)}")
        assert set(load.statuses) <= {200, 503}, load.statuses
        assert load.statuses[503] > 0, "no request met a failover"
        assert load.acknowledged <= set(stored.values()), \
            sorted(load.acknowledged - set(stored.values()))[:10]
        assert len(stored) == len(set(stored.values())), "a piece stored twice"
        duplicates = [guid for guid, n in collections.Counter(fed).items() if n > 1]
        assert not duplicates, duplicates[:10]
        assert set(fed) == set(stored), (set(fed) ^ set(stored))
    finally:
        if server is not None:
            server.close()
        pair.close()
