"""Issue 12, point 8: the typed Python client callers generate (`make client`), generated
afresh from the app's OpenAPI document and used over real HTTP against the service under
gunicorn. A change that breaks such a caller fails here: a response field renamed or
dropped (the typed model misses it, or keeps it as an undeclared extra), a query parameter
renamed (the service refuses the unknown one), a body the service no longer takes, or a
part of the document the generator cannot type (`--fail-on-warning`)."""
from __future__ import annotations

import importlib
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from devtools import cli, client as generator
from helpers import (DIMENSIONS, TEXTS, TEST_SECRET, assert_one_line_error, make_token,
                     run_main)
from reliability.reliability_harness import Gunicorn

BASE_TIME = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """`generated(module)` -> a module of the client that `make client` generates from the
    current app's document (into a temporary directory, forgotten afterwards)."""
    output = tmp_path_factory.mktemp("client")
    assert cli.main(["client", "--output", str(output)]) == 0
    assert (output / "openapi.json").is_file()
    project = output / generator.PROJECT
    sys.path.insert(0, str(project))
    try:
        yield lambda name: importlib.import_module(f"{generator.PACKAGE}.{name}")
    finally:
        sys.path.remove(str(project))
        for name in [n for n in sys.modules if n.partition(".")[0] == generator.PACKAGE]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def service(db_url):
    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


@pytest.fixture
def caller(generated, service, tenant):
    """`caller(role)` -> an AuthenticatedClient of `tenant` with a real bearer token."""
    made = []

    def factory(role="Operator"):
        made.append(generated("client").AuthenticatedClient(
            base_url=service, token=make_token(tenant, role), raise_on_unexpected_status=True))
        return made[-1]

    yield factory
    for client in made:
        client.get_httpx_client().close()


def test_list_filters_and_limit_come_back_as_typed_models(generated, caller, seed, tenant):
    list_pieces = generated("api.pieces.list_pieces")
    PieceResponse = generated("models").PieceResponse
    tree = seed.tree(tenant, pieces_per_assembly=0)
    other_assembly = seed.assembly(tenant, tree.project, tree.component)
    seed.piece(tenant, tree.project, tree.component, other_assembly, created_at=BASE_TIME)
    pieces = [seed.piece(tenant, tree.project, tree.component, tree.assembly,
                         piece_id=f"L-{n}", barcode=f"BC-{n}", outer_length=1000 + n,
                         angle_left=45, angle_right=90 - n,
                         created_at=BASE_TIME + timedelta(seconds=n)) for n in range(3)]

    listed = list_pieces.sync(client=caller(), project_guid=tree.project,
                              assembly_guid=tree.assembly, limit=2)

    assert [type(piece) for piece in listed] == [PieceResponse, PieceResponse]
    assert [(p.guid, p.piece_id, p.barcode, p.outer_length, p.angle_left, p.angle_right,
             p.created_at) for p in listed] == [
        (pieces[0], "L-0", "BC-0", 1000, 45, 90, BASE_TIME),
        (pieces[1], "L-1", "BC-1", 1001, 45, 89, BASE_TIME + timedelta(seconds=1))]
    first = listed[0]
    assert (first.project_guid, first.component_guid, first.assembly_guid,
            first.company_guid) == (tree.project, tree.component, tree.assembly, tenant)
    assert first.is_active is True and first.deleted_at is None

    by_barcode = list_pieces.sync(client=caller(), project_guid=tree.project, barcode="BC-2")
    assert [piece.guid for piece in by_barcode] == [pieces[2]]


def test_detail_by_guid_has_every_attribute(generated, caller, seed, tenant):
    get_piece = generated("api.pieces.get_piece")
    tree = seed.tree(tenant, pieces_per_assembly=0)
    attrs = {name: 100 + i for i, name in enumerate(DIMENSIONS)}
    attrs.update({name: f"{name}-value" for name in TEXTS})
    guid = seed.piece(tenant, tree.project, tree.component, tree.assembly, piece_id="D-1",
                      created_at=BASE_TIME, **attrs)

    detail = get_piece.sync(client=caller(), piece_guid=guid)

    assert isinstance(detail, generated("models").PieceDetail)
    assert (detail.guid, detail.piece_id, detail.assembly_guid) == (guid, "D-1", tree.assembly)
    assert {name: getattr(detail, name) for name in attrs} == attrs
    assert detail.created_at == BASE_TIME and detail.updated_at.tzinfo is not None
    assert detail.is_active is True and detail.deleted_at is None


def test_revalidation_is_an_empty_304(generated, caller, seed, tenant):
    """The document declares the conditional GET, so the client takes the empty 304."""
    get_piece = generated("api.pieces.get_piece")
    list_pieces = generated("api.pieces.list_pieces")
    tree = seed.tree(tenant, pieces_per_assembly=1)
    reader = caller()

    for read, query in ((get_piece, {"piece_guid": tree.pieces[0]}),
                        (list_pieces, {"project_guid": tree.project})):
        first = read.sync_detailed(client=reader, **query)
        assert first.status_code == 200
        again = read.sync_detailed(client=reader, if_none_match=first.headers["ETag"], **query)
        assert (again.status_code, again.parsed) == (304, None)


def test_sync_counts_what_it_did(generated, caller, seed, tenant):
    sync_pieces = generated("api.sync.sync_pieces")
    list_pieces = generated("api.pieces.list_pieces")
    models = generated("models")
    tree = seed.tree(tenant, pieces_per_assembly=0)

    def batch(*items):
        return models.PieceBatch(pieces=[models.PieceItem(
            company_guid=tenant, project_guid=tree.project, component_guid=tree.component,
            assembly_guid=tree.assembly, piece_id=piece_id, barcode=barcode,
            outer_length=1200) for piece_id, barcode in items])

    integration = caller("Integration")
    first = sync_pieces.sync(client=integration, body=batch(("S-1", "A"), ("S-2", "B")))
    assert first == models.SyncResult(inserted=2, updated=0, unchanged=0)
    again = sync_pieces.sync(client=integration, body=batch(("S-1", "A"), ("S-2", "B2")))
    assert again == models.SyncResult(inserted=0, updated=1, unchanged=1)

    stored = list_pieces.sync(client=caller(), project_guid=tree.project)
    assert sorted((p.piece_id, p.barcode, p.outer_length) for p in stored) == [
        ("S-1", "A", 1200), ("S-2", "B2", 1200)]


def test_errors_parse_as_the_error_model(generated, caller):
    get_piece = generated("api.pieces.get_piece")
    list_pieces = generated("api.pieces.list_pieces")
    Error = generated("models").Error

    missing = get_piece.sync_detailed(client=caller(), piece_guid=uuid.uuid4())
    assert missing.status_code == 404
    assert isinstance(missing.parsed, Error) and missing.parsed.detail

    refused = list_pieces.sync_detailed(client=caller(), limit=0)
    assert refused.status_code == 422
    assert isinstance(refused.parsed, Error)
    assert "limit" in refused.parsed.errors.additional_properties


def test_a_document_the_generator_cannot_type_fails_the_build(capsys, monkeypatch, tmp_path):
    document = generator.openapi_document()
    listed = document["paths"]["/api/v1/pieces"]["get"]["responses"]["200"]
    listed["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/Gone"}
    monkeypatch.setattr(generator, "openapi_document", lambda: document)

    status, _, err = run_main(capsys, cli.main, "client", "--output", str(tmp_path))

    assert_one_line_error(status, err, 1, "could not type all of", prog=cli.PROG)
