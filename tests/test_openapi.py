"""The OpenAPI 3 document at /api/v1/openapi.json: valid, complete, public."""
from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

# The document and its viewer (the page and Swagger UI's files) are not API operations.
API_DOC_ENDPOINTS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_ui.asset"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def spec(app):
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json


def openapi_path(rule: str) -> str:
    """`/api/v1/pieces/<uuid:piece_guid>` -> `/api/v1/pieces/{piece_guid}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_document_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_every_api_route_is_documented(app, spec):
    routes = [rule for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and rule.endpoint not in API_DOC_ENDPOINTS]
    assert routes
    for rule in routes:
        path = openapi_path(rule.rule)
        assert path in spec["paths"], f"{rule.rule} ({rule.endpoint}) is not in the document"
        for method in rule.methods - IGNORED_METHODS:
            assert method.lower() in spec["paths"][path], f"{method} {path} is not documented"


@pytest.mark.parametrize("name", ["PieceResponse", "PieceDetail", "SyncResult", "Error",
                                  "ProjectChanges", "ComponentChanges", "AssemblyChanges",
                                  "PieceChanges"])
def test_schemas_are_present(spec, name):
    assert name in spec["components"]["schemas"]


def test_error_schema_is_the_detail_shape(spec):
    error = spec["components"]["schemas"]["Error"]
    assert "detail" in error["properties"]
    assert "detail" in error.get("required", [])


def test_bearer_security_scheme_applies_to_the_api(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert {"bearerAuth": []} in spec["security"]


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/docs"])
def test_document_and_viewer_need_no_token(client, path):
    assert client.get(path).status_code == 200


def test_every_endpoint_documents_an_example(client):
    """Each read and sync endpoint shows an example body; restore shows its 409."""
    from pieces_service.api.pieces.schemas import PieceDetail, PieceResponse

    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]

    def example(path, method, status):
        return paths[path][method]["responses"][status]["content"]["application/json"]["example"]

    listed = example("/api/v1/pieces", "get", "200")
    assert set(listed[0]) == set(PieceResponse().fields)
    detail = example("/api/v1/pieces/{piece_guid}", "get", "200")
    assert set(detail) <= set(PieceDetail().fields)
    assert example("/api/v1/audit", "get", "200")[0]["action"] == "delete"
    from pieces_service.api.changes.schemas import CHANGE_PAGES
    from pieces_service.catalogue import LEVELS

    for level in LEVELS.values():
        page = example(f"/api/v1/changes/{level.plural}", "get", "200")
        assert CHANGE_PAGES[level.name]().validate(page) == {}
        assert list(page["changes"][0]) == list(level.fields)
    for entity in ("projects", "components", "assemblies", "pieces"):
        operation = paths[f"/api/v1/sync/{entity}"]["post"]
        assert entity in operation["requestBody"]["content"]["application/json"]["example"]
        assert example(f"/api/v1/sync/{entity}", "post", "200") == \
            {"inserted": 1, "updated": 0, "unchanged": 0}
    for segment, param in (("projects", "project_guid"), ("assemblies", "assembly_guid"),
                           ("pieces", "piece_guid")):
        conflict = example(f"/api/v1/{segment}/{{{param}}}/restore", "post", "409")
        assert "Restore the" in conflict["detail"]


@pytest.mark.parametrize("level", ["project", "component", "assembly", "piece"])
@pytest.mark.parametrize("suffix, method", [("", "delete"), ("/restore", "post")])
def test_delete_and_restore_document_if_match_and_its_412(spec, level, suffix, method):
    from pieces_service.catalogue import LEVELS

    plural = LEVELS[level].plural
    operation = spec["paths"][f"/api/v1/{plural}/{{{level}_guid}}{suffix}"][method]
    header, = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "If-Match" and header["required"] is False
    if level == "piece":
        assert "`ETag` of `GET /api/v1/pieces/{piece_guid}" in header["description"]
    else:
        assert header["description"].startswith("Only `*` matches")
    failed = operation["responses"]["412"]["content"]["application/json"]
    assert failed["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_list_documents_prefer_count_beside_its_query(spec):
    path = spec["paths"]["/api/v1/pieces"]
    prefer, = [p for p in path["parameters"] if p["name"] == "Prefer"]
    assert prefer["in"] == "header" and prefer["schema"]["enum"] == ["count=exact",
                                                                     "count=planned"]
    query = {p["name"] for p in path["get"]["parameters"] if p["in"] == "query"}
    assert {"project_guid", "limit", "cursor", "barcode"} <= query
    headers = path["get"]["responses"]["200"]["headers"]
    assert {"Content-Range", "Preference-Applied", "Link"} <= set(headers)


# Every operation's id, pinned: generated clients name their functions after these, so
# changing one breaks every caller (issue 24). Add new ones; never rename.
OPERATION_IDS = {
    ("get", "/api/v1/pieces"): ("listPieces", "List pieces"),
    ("get", "/api/v1/pieces/export"): ("exportPieces", "Export pieces"),
    ("get", "/api/v1/pieces/{piece_guid}"): ("getPiece", "Get one piece"),
    ("delete", "/api/v1/projects/{project_guid}"): ("deleteProject", "Soft-delete a project"),
    ("delete", "/api/v1/components/{component_guid}"): ("deleteComponent",
                                                        "Soft-delete a component"),
    ("delete", "/api/v1/assemblies/{assembly_guid}"): ("deleteAssembly",
                                                       "Soft-delete an assembly"),
    ("delete", "/api/v1/pieces/{piece_guid}"): ("deletePiece", "Soft-delete a piece"),
    ("post", "/api/v1/projects/{project_guid}/restore"): ("restoreProject", "Restore a project"),
    ("post", "/api/v1/components/{component_guid}/restore"): ("restoreComponent",
                                                              "Restore a component"),
    ("post", "/api/v1/assemblies/{assembly_guid}/restore"): ("restoreAssembly",
                                                             "Restore an assembly"),
    ("post", "/api/v1/pieces/{piece_guid}/restore"): ("restorePiece", "Restore a piece"),
    ("post", "/api/v1/sync/projects"): ("syncProjects", "Sync projects"),
    ("post", "/api/v1/sync/components"): ("syncComponents", "Sync components"),
    ("post", "/api/v1/sync/assemblies"): ("syncAssemblies", "Sync assemblies"),
    ("post", "/api/v1/sync/pieces"): ("syncPieces", "Sync pieces"),
    ("get", "/api/v1/changes/projects"): ("listProjectChanges", "Changes of projects"),
    ("get", "/api/v1/changes/components"): ("listComponentChanges", "Changes of components"),
    ("get", "/api/v1/changes/assemblies"): ("listAssemblyChanges", "Changes of assemblies"),
    ("get", "/api/v1/changes/pieces"): ("listPieceChanges", "Changes of pieces"),
    ("get", "/api/v1/audit"): ("listAuditEntries", "List audit entries"),
}


def test_every_operation_has_its_pinned_id_a_summary_and_a_description(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operations = {(method, path): operation for path, methods in spec["paths"].items()
                  for method, operation in methods.items()
                  if method in ("get", "post", "put", "patch", "delete")}
    assert {key: (operation.get("operationId"), operation.get("summary"))
            for key, operation in operations.items()} == OPERATION_IDS
    assert all(operation.get("description") for operation in operations.values())
