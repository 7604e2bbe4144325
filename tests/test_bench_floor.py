"""The benchmark's database floor sends what the service sends (bench/workload.py): the
scripts pgbench replays are `db.read_one`'s one message, and they cover every target."""
from __future__ import annotations

import re
import subprocess

import pytest

from bench import workload
from bench.data import libpq_url
from bench.run import find_pgbench
from pieces_service import db


@pytest.fixture
def floor_scripts(seed, tenant, admin_conn, db_url, tmp_path, monkeypatch):
    """Detail scripts for 3 pieces over 2 files (2 targets, then 1)."""
    tree = seed.tree(tenant, 3)
    picks = [(str(tenant), "get_piece", {"tenant": tenant, "guid": guid,
                                         "include_inactive": False}, f"/api/v1/pieces/{guid}")
             for guid in tree.pieces]
    monkeypatch.setattr(workload, "PGBENCH_SCRIPTS", 2)
    with admin_conn.cursor() as cur:
        workload._write_pgbench(cur, tmp_path / "detail", picks,
                                db.read_setup(workload.service_config(db_url)))
    return tree, sorted((tmp_path / "detail").glob("*.sql"))


def branches(script: str) -> list[str]:
    """The SQL of each `\\if`/`\\elif` branch of a floor script."""
    return re.split(r"^\\(?:if|elif) :pick = \d+\n", script, flags=re.M)[1:]


def test_every_target_is_a_branch_picked_at_random(floor_scripts):
    _, scripts = floor_scripts
    texts = [path.read_text() for path in scripts]
    assert len(texts) == 2
    assert texts[0].startswith("\\set pick random(0, 1)\n")
    assert texts[1].startswith("\\set pick random(0, 0)\n")
    assert all(text.endswith("\\endif\n") for text in texts)
    assert [len(branches(text)) for text in texts] == [2, 1]


def test_each_branch_is_the_read_one_message_and_finds_its_piece(floor_scripts, admin_conn,
                                                                tenant):
    """Run as one simple-query message, a branch answers as the service's read does: as
    pieces_app, in the target's tenant, with the piece's JSON."""
    tree, scripts = floor_scripts
    found = []
    for path in scripts:
        for branch in branches(path.read_text()):
            branch = branch.replace("\\endif\n", "")
            assert "SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY \\;" in branch
            assert f"SET LOCAL pieces.tenant = '{tenant}' \\;" in branch
            with admin_conn.cursor() as cur:
                cur.execute(branch.replace("\\;", ";"))
                owner, missing, body = cur.fetchone()
                cur.execute("SELECT current_user")
                assert cur.fetchone()[0] != "pieces_app"  # ended with its implicit transaction
            assert owner is None and missing == [] and body is not None
            found.append(body)
    assert sorted(str(g) for g in tree.pieces) == sorted(
        re.search(r'"guid":"([^"]+)"', body).group(1) for body in found)


def test_pgbench_runs_the_scripts(floor_scripts, db_url):
    pgbench = find_pgbench()
    if pgbench is None:
        pytest.skip("no pgbench here")
    _, scripts = floor_scripts
    command = [pgbench, "-n", "-M", "simple", "-c1", "-t20"]
    for path in scripts:
        command += ["-f", f"{path}@1"]
    result = subprocess.run(command + [libpq_url(db_url)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "number of transactions actually processed: 20/20" in result.stdout
    assert "number of failed transactions: 0" in result.stdout


def test_the_bench_revalidates_with_the_services_tags_and_polls_with_its_tokens(
        seed, tenant, admin_conn, as_tenant):
    """The 304 and caught-up-poll scenarios send what a client holds: the ETag the service
    hands out for the page, and a token the service accepts as caught up."""
    tree = seed.tree(tenant, 3)
    args = workload._list_args(str(tenant), project=str(tree.project), limit=100)
    path = f"/api/v1/pieces?project_guid={tree.project}&limit=100"
    with admin_conn.cursor() as cur:
        [tag] = workload._list_tags(cur, [(str(tenant), "list_validator", args, path)])
        [(_, statement, _, poll)] = workload._caught_up_polls(cur, [str(tenant)])
    caller = as_tenant(tenant)
    assert caller.client.get(path, headers=caller.headers).headers["ETag"] == tag
    revalidated = caller.client.get(path, headers={**caller.headers, "If-None-Match": tag})
    assert revalidated.status_code == 304
    assert statement == "changes_pieces"
    response = caller.client.get(poll, headers=caller.headers)
    assert response.status_code == 200 and response.json["changes"] == []
