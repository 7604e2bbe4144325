"""pytest plugin of test_replicas.py: the app of the isolation property test reads from a
hot standby.

Loaded with `-p replica_app` (tests/reliability on PYTHONPATH) and PIECES_TEST_REPLICA_URL
set. It wraps `make_config` of tests/conftest.py so that every app the suite builds has the
standby as its read replica (writes, migrations and `admin_conn` stay on TEST_DATABASE_URL,
the primary), and prints how many reads the standby served."""
from __future__ import annotations

import os

from pieces_service.config import database_url

# The wall modes other than `both` use databases of their own, which the standby of the
# run's database does not serve: only `both` runs here (tests/walls.py).
os.environ["PIECES_TEST_WALL_MODES"] = "both"


def pytest_plugin_registered(plugin, manager):
    path = str(getattr(plugin, "__file__", "") or "")
    if not path.endswith(os.path.join("tests", "conftest.py")) or not hasattr(plugin,
                                                                              "make_config"):
        return
    replica = database_url(os.environ["PIECES_TEST_REPLICA_URL"], "PIECES_TEST_REPLICA_URL")
    original = plugin.make_config

    def make_config(db_url, **overrides):
        overrides.setdefault("replica_urls", (replica,))
        overrides.setdefault("replica_max_lag_ms", 60000)
        return original(db_url, **overrides)

    plugin.make_config = make_config


def pytest_terminal_summary(terminalreporter):
    from prometheus_client import REGISTRY

    served = REGISTRY.get_sample_value("pieces_db_reads_total", {"node": "replica1"}) or 0
    terminalreporter.write_line(f"reads served by the standby: {int(served)}")
