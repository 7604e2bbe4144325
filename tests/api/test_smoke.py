def test_list_and_detail_smoke(as_tenant, seed, tenant):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant)
    r = caller.get("/api/v1/pieces")
    assert r.status_code == 200, r.json
    assert {p["guid"] for p in r.json} == {str(g) for g in tree.pieces}
    r = caller.get(f"/api/v1/pieces/{tree.pieces[0]}")
    assert r.status_code == 200, r.json
    assert r.json["guid"] == str(tree.pieces[0])
