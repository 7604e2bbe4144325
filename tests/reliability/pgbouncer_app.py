"""pytest plugin for `make pgbouncer-test`: the app of the shared tests talks to PgBouncer.

Loaded with `-p pgbouncer_app` (tests/reliability on PYTHONPATH) and
PIECES_TEST_APP_DATABASE_URL set. It wraps `make_config` of tests/conftest.py so that every
app the suite builds connects through PgBouncer, while migrations and the `admin_conn`
fixture keep the direct TEST_DATABASE_URL (advisory locks and multi-statement migrations do
not belong behind a transaction pooler). A test that passes its own `database_url` (a
deliberately broken one) keeps it."""
from __future__ import annotations

import os

from pieces_service.config import database_url


def pytest_plugin_registered(plugin, manager):
    path = str(getattr(plugin, "__file__", "") or "")
    if not path.endswith(os.path.join("tests", "conftest.py")) or not hasattr(plugin,
                                                                              "make_config"):
        return
    app_url = database_url(os.environ["PIECES_TEST_APP_DATABASE_URL"],
                           "PIECES_TEST_APP_DATABASE_URL")
    original = plugin.make_config

    def make_config(db_url, **overrides):
        overrides.setdefault("database_url", app_url)
        # As documented for a pooler in transaction mode (README, "Prepared statements").
        overrides.setdefault("db_prepared_statements", False)
        return original(db_url, **overrides)

    plugin.make_config = make_config
