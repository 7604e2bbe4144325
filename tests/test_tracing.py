"""W3C Trace Context without OpenTelemetry: a caller's `traceparent` is continued (its trace
id, a new span id), every log line of the request carries both, a request without one (or
with a malformed one) starts a trace, and nothing of it is echoed."""
from __future__ import annotations

import re

import pytest

from pieces_service.web.tracing import parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
TRACE_ID = re.compile(r"[0-9a-f]{32}")
SPAN_ID = re.compile(r"[0-9a-f]{16}")


def lines_of(lines, request_id):
    return [line for line in lines if line["request_id"] == request_id]


def test_a_callers_trace_is_continued_on_every_line_of_the_request(json_logs, as_tenant,
                                                                   seed, tenant):
    """The export writes a line of its own after the response ("export complete"): it
    carries the request's trace and span ids like the request line."""
    tree = seed.tree(tenant)
    caller = as_tenant(tenant)
    response = caller.client.get(
        "/api/v1/pieces/export", query_string={"project_guid": str(tree.project)},
        headers={**caller.headers, "traceparent": TRACEPARENT,
                 "tracestate": "vendor=opaque-value"})
    assert response.status_code == 200
    response.get_data()
    response.close()
    lines = lines_of(json_logs(), response.headers["X-Request-ID"])
    assert {line["message"] for line in lines} == {"request", "export complete"}
    assert {line["trace_id"] for line in lines} == {TRACE}
    span_ids = {line["span_id"] for line in lines}
    assert len(span_ids) == 1 and SPAN_ID.fullmatch(span_ids.pop()) and PARENT not in span_ids
    assert "opaque-value" not in str(lines)
    assert "traceparent" not in response.headers and "tracestate" not in response.headers


def test_without_a_traceparent_each_request_starts_a_trace(json_logs, client):
    first, second = client.get("/livez"), client.get("/livez")
    lines = json_logs()
    ids = []
    for response in (first, second):
        line, = lines_of(lines, response.headers["X-Request-ID"])
        assert TRACE_ID.fullmatch(line["trace_id"]) and SPAN_ID.fullmatch(line["span_id"])
        ids.append((line["trace_id"], line["span_id"]))
    assert ids[0][0] != ids[1][0] and ids[0][1] != ids[1][1]


def test_a_refused_request_is_in_the_trace_too(json_logs, client):
    response = client.get("/api/v1/pieces", headers={"traceparent": TRACEPARENT,
                                                     "Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401
    line, = lines_of(json_logs(), response.headers["X-Request-ID"])
    assert line["trace_id"] == TRACE


@pytest.mark.parametrize("header", [
    "",
    "garbage",
    f"00-{TRACE}-{PARENT}",                      # no flags
    f"00-{TRACE.upper()}-{PARENT}-01",           # uppercase
    f"ff-{TRACE}-{PARENT}-01",                   # version ff is invalid
    f"00-{'0' * 32}-{PARENT}-01",                # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",                 # all-zero parent id
    f"00-{TRACE[:-1]}-{PARENT}-01",              # short trace id
    f"00-{TRACE}-{PARENT}-01-extra",             # version 00 has four fields
    f"00-{TRACE}-{PARENT}-0g",                   # flags not hex
    f"00_{TRACE}_{PARENT}_01",
    f"00-{TRACE}-{PARENT}-01" + " " * 600,       # too long
])
def test_a_malformed_traceparent_is_ignored(json_logs, client, header):
    response = client.get("/livez", headers={"traceparent": header})
    assert response.status_code == 200
    line, = lines_of(json_logs(), response.headers["X-Request-ID"])
    assert TRACE_ID.fullmatch(line["trace_id"]) and line["trace_id"] != TRACE


def test_a_later_version_is_read_as_version_00(json_logs, client):
    response = client.get("/livez", headers={"traceparent": f"cc-{TRACE}-{PARENT}-01-later"})
    line, = lines_of(json_logs(), response.headers["X-Request-ID"])
    assert line["trace_id"] == TRACE


def test_parse_traceparent():
    assert parse_traceparent(TRACEPARENT) == (TRACE, PARENT, 1)
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-00") == (TRACE, PARENT, 0)
    assert parse_traceparent(None) is None


def test_lines_outside_a_request_have_no_trace(json_logs):
    import logging

    logging.getLogger("pieces_service").warning("outside")
    line, = [line for line in json_logs() if line["message"] == "outside"]
    assert (line["trace_id"], line["span_id"]) == (None, None)
