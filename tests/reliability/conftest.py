"""Reliability and security proofs (docs/reliability.md).

The quick parts run in `make test`. The long ones are marked and skipped unless their
environment variable is set; each has its own make target that sets it:

| marker    | variable                 | target              |
|-----------|--------------------------|---------------------|
| long      | PIECES_LONG_TESTS=1      | make fuzz           |
| outage    | PIECES_OUTAGE_TESTS=1    | make outage         |
| pgbouncer | PIECES_PGBOUNCER_TESTS=1 | make pgbouncer-test |
| soak      | PIECES_SOAK_TESTS=1      | make soak           |
| fairness  | PIECES_FAIRNESS_TESTS=1  | make fairness       |
| failover  | PIECES_FAILOVER_TESTS=1  | make failover-test  |
"""
from __future__ import annotations

import os

import pytest

GATES = {
    "long": "PIECES_LONG_TESTS",
    "outage": "PIECES_OUTAGE_TESTS",
    "pgbouncer": "PIECES_PGBOUNCER_TESTS",
    "soak": "PIECES_SOAK_TESTS",
    "fairness": "PIECES_FAIRNESS_TESTS",
    "failover": "PIECES_FAILOVER_TESTS",
}


def pytest_configure(config):
    for marker, variable in GATES.items():
        config.addinivalue_line(
            "markers", f"{marker}: reliability check run only when {variable}=1")


def pytest_runtest_setup(item):
    for marker, variable in GATES.items():
        if item.get_closest_marker(marker) and os.environ.get(variable) != "1":
            pytest.skip(f"set {variable}=1 (make target in docs/reliability.md)")


def long_mode() -> bool:
    """Bigger example counts and durations (the make targets)."""
    return os.environ.get("PIECES_LONG_TESTS") == "1"
