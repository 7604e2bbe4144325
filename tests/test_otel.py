"""OpenTelemetry (the `otel` extra): the real service under gunicorn exports its spans over
OTLP/HTTP to a receiver the test starts, which decodes them with `opentelemetry-proto`.

A request is a SERVER span of the caller's trace (its parent the caller's span), named by
route template, with its status and tenant; each round trip to PostgreSQL is a CLIENT
span named by its statement, so a one-message read is one span. No token, query value or
statement parameter is in any byte sent. Sampling and the switches are the standard
`OTEL_*` variables'."""
from __future__ import annotations

import json
import sys
import uuid

import pytest

from helpers import TEST_SECRET, make_config, make_token, raw_url
from receivers import OtlpReceiver
from reliability.reliability_harness import Gunicorn, free_port
from pieces_service import create_app, db
from pieces_service.config import Config, ConfigError

GOOD = {"DATABASE_URL": "postgresql://pieces@db.internal:5432/pieces",
        "PIECES_JWT_SECRET": TEST_SECRET}

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def service(db_url, receiver):
    server = Gunicorn(raw_url(db_url), TEST_SECRET, workers=1,
                      OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                      OTEL_SERVICE_NAME="pieces-under-test", OTEL_BSP_SCHEDULE_DELAY="50")
    try:
        yield server
    finally:
        server.close()


def traceparent(parent: str, flags: str = "01", trace: str = TRACE) -> dict:
    return {"traceparent": f"00-{trace}-{parent}-{flags}"}


def children(spans, parent):
    return [span for span in spans if span.parent_span_id == parent.span_id]


def server_span(receiver, parent_id, trace=TRACE):
    def found(spans):
        return [s for s in spans if s.kind == SERVER and s.parent_span_id == parent_id
                and s.trace_id == trace]
    spans = receiver.wait_for(found)
    span, = found(spans)
    # Its database spans are exported with it or shortly after: wait for the batch.
    return span, spans


def test_the_detail_continues_the_callers_trace_with_one_database_span(
        service, receiver, seed, tenant):
    tree = seed.tree(tenant)
    token = make_token(tenant, "Operator")
    path = f"/api/v1/pieces/{tree.pieces[0]}"
    # The first read of a connection prepares its statement; the second is one round trip.
    assert service.request("GET", path, token=token,
                           headers=traceparent("00000000000000a1"))[0] == 200
    status, _, _ = service.request("GET", path, token=token, headers={
        **traceparent("00000000000000a2"), "tracestate": "vendor=opaque"})
    assert status == 200

    span, spans = server_span(receiver, "00000000000000a2")
    assert span.name == "GET /api/v1/pieces/<uuid:piece_guid>"
    assert span.service_name == "pieces-under-test"
    assert span.trace_state == "vendor=opaque"
    assert span.attributes["http.route"] == "/api/v1/pieces/<uuid:piece_guid>"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["pieces.tenant"] == str(tenant)
    database = children(receiver.wait_for(lambda spans: children(spans, span)), span)
    assert [(s.name, s.kind, s.trace_id) for s in database] == [("get_piece", CLIENT, TRACE)]
    assert database[0].attributes == {"db.system.name": "postgresql"}

    first, _ = server_span(receiver, "00000000000000a1")
    names = [s.name for s in receiver.wait_for(lambda spans: children(spans, first))
             if s.parent_span_id == first.span_id]
    assert "PREPARE get_piece" in names and "get_piece" in names

    # The request's log line carries the same trace and span ids.
    line, = [json.loads(text) for text in service.log_text().splitlines()
             if '"pieces_service.access"' in text and span.attributes["pieces.request_id"]
             in text]
    assert (line["trace_id"], line["span_id"]) == (TRACE, span.span_id)


def test_no_token_query_value_or_parameter_is_exported(service, receiver, seed, tenant):
    tree = seed.tree(tenant)
    token = make_token(tenant, "Operator")
    barcode = "BARCODE-" + uuid.uuid4().hex
    status, _, _ = service.request(
        "GET", f"/api/v1/pieces?project_guid={tree.project}&barcode={barcode}", token=token,
        headers=traceparent("00000000000000b1"))
    assert status == 200
    status, _, _ = service.request("DELETE", f"/api/v1/pieces/{tree.pieces[1]}",
                                   token=make_token(tenant, "ProjectManager"),
                                   headers=traceparent("00000000000000b2"))
    assert status == 204

    listing, _ = server_span(receiver, "00000000000000b1")
    assert listing.name == "GET /api/v1/pieces"
    deleting, _ = server_span(receiver, "00000000000000b2")
    assert deleting.name == "DELETE /api/v1/pieces/<uuid:piece_guid>"
    spans = receiver.wait_for(lambda spans: children(spans, listing)
                              and any(s.name == "COMMIT" for s in children(spans, deleting)))
    # (its shape's first read on the connection prepares it: one round trip more)
    assert [s.name for s in children(spans, listing)] in (
        ["list_pieces"], ["PREPARE list_pieces", "list_pieces"])
    names = [s.name for s in children(spans, deleting)]
    assert names[0] == "BEGIN" and names[-1] == "COMMIT" and "delete_piece" in names, names
    sent = b"".join(receiver.bodies)
    for secret in (token, barcode, str(tree.project), str(tree.pieces[1]), TEST_SECRET):
        assert secret.encode() not in sent, secret


def test_an_exports_fetches_are_children_of_its_request(service, receiver, seed, tenant):
    tree = seed.tree(tenant)
    status, body, _ = service.request("GET", f"/api/v1/pieces/export?project_guid={tree.project}",
                                      token=make_token(tenant, "Operator"),
                                      headers=traceparent("00000000000000c1"))
    assert status == 200
    span, _ = server_span(receiver, "00000000000000c1")
    spans = receiver.wait_for(lambda spans: any(s.name == "ROLLBACK"
                                                for s in children(spans, span)))
    names = [s.name for s in children(spans, span)]
    assert names[:2] == ["BEGIN", "export_pieces_ndjson"] and "export_fetch" in names, names


def test_without_a_traceparent_the_request_is_a_root_span(service, receiver):
    status, _, _ = service.request("GET", "/livez", headers={"X-Request-ID": "root-check"})
    assert status == 200
    spans = receiver.wait_for(lambda spans: any(
        s.attributes.get("pieces.request_id") == "root-check" for s in spans))
    span, = [s for s in spans if s.attributes.get("pieces.request_id") == "root-check"]
    assert span.parent_span_id == "" and span.trace_id != TRACE and span.name == "GET /livez"


def test_a_refused_request_is_a_span_without_an_error_status(service, receiver):
    """A 401 is the caller's error: the span's status stays unset (OpenTelemetry's rule for
    server spans); a wrong token is never exported."""
    status, _, _ = service.request("GET", "/api/v1/pieces", token="not-a-jwt",
                                   headers=traceparent("00000000000000d1"))
    assert status == 401
    span, _ = server_span(receiver, "00000000000000d1")
    assert span.attributes["http.response.status_code"] == 401
    assert span.status_code != STATUS_ERROR and "pieces.tenant" not in span.attributes
    assert b"not-a-jwt" not in b"".join(receiver.bodies)


def test_an_unsampled_caller_is_not_exported(service, receiver):
    """The default sampler follows the parent: a caller's trace that is not sampled
    (flags 00) sends no span, and its ids are still on the log line."""
    status, _, _ = service.request("GET", "/livez", headers={
        **traceparent("00000000000000e1", flags="00"), "X-Request-ID": "unsampled"})
    assert status == 200
    status, _, _ = service.request("GET", "/livez", headers=traceparent("00000000000000e2"))
    server_span(receiver, "00000000000000e2")  # sent after it: the batch has gone
    assert not [s for s in receiver.spans() if s.parent_span_id == "00000000000000e1"]
    line, = [json.loads(text) for text in service.log_text().splitlines()
             if '"unsampled"' in text]
    assert line["trace_id"] == TRACE


# --- in process: the switches, the sampler, a server error ------------------------------

@pytest.fixture
def traced_app(monkeypatch, receiver, db_url):
    """`traced_app(**config)` -> the app with spans exported to `receiver` (the SDK reads
    the OTEL_* variables from the environment); each one's exporter is shut down after."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    made = []

    def factory(**overrides):
        app = create_app(make_config(overrides.pop("database_url", db_url), tracing=True,
                                     **overrides))
        made.append(app)
        return app

    yield factory
    for app in made:
        app.extensions["pieces_tracing"].shutdown()
        db.dispose(app)


def exported(app, receiver, request_id):
    assert app.extensions["pieces_tracing"].flush()
    return [s for s in receiver.spans() if s.attributes.get("pieces.request_id") == request_id]


def test_a_server_error_marks_its_span(traced_app, receiver, db_url):
    app = traced_app(database_url=db_url.set(port=free_port()))  # nothing listens there
    response = app.test_client().get("/readyz", headers={"X-Request-ID": "not-ready"})
    assert response.status_code == 503
    span, = exported(app, receiver, "not-ready")
    assert (span.status_code, span.attributes["http.response.status_code"]) == (
        STATUS_ERROR, 503)


def test_the_sampler_is_the_standard_variables(traced_app, receiver, monkeypatch, json_logs):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    app = traced_app()
    response = app.test_client().get("/livez", headers={
        **traceparent("00000000000000f1"), "X-Request-ID": "sampled-off"})
    assert response.status_code == 200
    assert exported(app, receiver, "sampled-off") == []
    line, = [line for line in json_logs() if line["request_id"] == "sampled-off"]
    assert line["trace_id"] == TRACE and line["span_id"] != "00000000000000f1"


@pytest.mark.parametrize("variables, tracing", [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "pieces"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, True),
])
def test_tracing_is_on_only_with_an_otlp_endpoint(variables, tracing):
    assert Config.from_env({**GOOD, **variables}).tracing is tracing


@pytest.mark.parametrize("variables, message", [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER must be otlp or none"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL must be "
                                              "http/protobuf"),
])
def test_a_tracing_setup_the_service_cannot_honour_is_refused(variables, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env({**GOOD, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", **variables})


def test_without_the_extra_the_service_runs_and_an_endpoint_is_refused(monkeypatch, db_url):
    """As installed without `otel`: OpenTelemetry cannot be imported."""
    for name in [name for name in sys.modules if name.startswith("opentelemetry")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT is set but "
                                          "OpenTelemetry is not installed"):
        Config.from_env({**GOOD, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    app = create_app(make_config(db_url))
    assert app.test_client().get("/livez").status_code == 200
    assert app.extensions["pieces_tracing"] is None
