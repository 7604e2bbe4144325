"""Pages past DEEP_OFFSET take the keys-then-rows plan; they must equal what the plain plan
(and the documented order) gives."""
from __future__ import annotations

import pytest

from pieces_service.dao.pieces import DEEP_OFFSET


@pytest.fixture
def many_pieces(seed, tenant, admin_conn):
    """DEEP_OFFSET + 150 pieces in one project (some deleted, some tied created_at)."""
    tree = seed.tree(tenant, pieces_per_assembly=0)
    with admin_conn.cursor() as cur:
        cur.execute("""
            INSERT INTO pieces (guid, company_guid, project_guid, component_guid,
                                assembly_guid, piece_id, is_active, deleted_at, created_at)
            SELECT gen_random_uuid(), %(t)s, %(p)s, %(c)s, %(a)s, 'D-' || n,
                   n %% 7 <> 0, CASE WHEN n %% 7 = 0 THEN now() END,
                   timestamptz '2026-01-01' + (n / 3) * interval '1 second'
            FROM generate_series(1, %(n)s) AS n
        """, {"t": str(tenant), "p": str(tree.project), "c": str(tree.component),
              "a": str(tree.assembly), "n": DEEP_OFFSET + 150})
    return tree


def expected(admin_conn, tenant, include_inactive):
    with admin_conn.cursor() as cur:
        cur.execute("SELECT guid::text FROM pieces WHERE company_guid = %s"
                    " AND (is_active OR %s) ORDER BY created_at, guid",
                    (str(tenant), include_inactive))
        return [row[0] for row in cur.fetchall()]


@pytest.mark.parametrize("include_inactive", [False, True])
@pytest.mark.parametrize("filter_name", ["project_guid", "component_guid", "assembly_guid",
                                         None])
def test_deep_offset_pages_match_the_documented_order(as_tenant, many_pieces, tenant,
                                                      admin_conn, include_inactive,
                                                      filter_name):
    order = expected(admin_conn, tenant, include_inactive)
    caller = as_tenant(tenant)
    query = {"include_inactive": str(include_inactive).lower(), "limit": 100}
    if filter_name:
        query[filter_name] = str(getattr(many_pieces, filter_name.removesuffix("_guid")))
    for offset in (DEEP_OFFSET - 50, DEEP_OFFSET, DEEP_OFFSET + 60):
        response = caller.get("/api/v1/pieces", offset=offset, **query)
        assert response.status_code == 200
        assert [p["guid"] for p in response.json] == order[offset:offset + 100]
        assert all(p["company_guid"] == str(tenant) for p in response.json)
