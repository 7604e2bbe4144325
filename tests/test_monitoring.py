"""deploy/prometheus/alerts.yaml: valid for Prometheus (`promtool check rules`), each alert
fires on the series it is for and not on healthy ones (`promtool test rules`). The Grafana
dashboard deploy/grafana/pieces-service.json: every panel's query is valid PromQL (checked
by promtool as a recording rule, Grafana's variables filled in). And every metric the
rules and the dashboard query is one the service exports. promtool comes with Debian's `prometheus`
(`make promtool`; `make test` installs it when missing and apt-get is there)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import required_tool

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "pieces-service.json"
# Grafana's variables, as Prometheus would see them once Grafana filled them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": "pieces-service"}
# Series Prometheus makes itself (not ours to export).
PROMETHEUS_OWN = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def promtool():
    return required_tool("promtool", "make promtool installs Debian's prometheus")


def test_the_rules_are_valid(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_each_alert_fires_on_its_series_and_not_on_healthy_ones(promtool):
    result = subprocess.run([promtool, "test", "rules", str(RULES_TEST)], capture_output=True,
                            text=True, timeout=60, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {test["alertname"] for case in yaml.safe_load(RULES_TEST.read_text())["tests"]
              for test in case["alert_rule_test"]}
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"]}
    assert alerts == tested  # every alert has a unit test


def _dashboard_queries() -> list[str]:
    import json

    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    queries = _dashboard_queries()
    assert len(queries) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries)]}]}
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _queried_metrics() -> set[str]:
    exprs = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"]
             for rule in group["rules"]] + _dashboard_queries()
    names = set()
    for expr in exprs:
        names |= set(re.findall(r"\b(pieces_[a-z_]+|up)\b", expr))
    return names


def test_every_metric_the_rules_query_is_exported(client, seed, tenant):
    from helpers import Caller

    tree = seed.tree(tenant, 1)
    caller = Caller(client, tenant, "Operator")
    assert caller.get(f"/api/v1/pieces/{tree.pieces[0]}").status_code == 200
    assert client.get("/readyz").status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    families = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    queried = _queried_metrics() - PROMETHEUS_OWN
    assert {"pieces_http_requests_total", "pieces_db_replica_lag_seconds",
            "pieces_admission_wait_seconds_bucket", "pieces_sync_rows_total"} <= queried
    missing = set()
    for name in queried:
        family = next((name[:-len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)
                       and name[:-len(s)] in families), name)
        if family not in families and family.removesuffix("_total") not in families:
            missing.add(name)
    assert not missing, (missing, sorted(families))
