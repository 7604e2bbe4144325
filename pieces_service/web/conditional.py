"""Conditional requests for the API: an `ETag` on every successful JSON read, `304` on a
match; `If-Match` on the writes that act on one entity (delete, restore), `412` on a mismatch.

The tag is a hash of the response bytes as sent (PostgreSQL builds them), so nothing is
serialised twice and the tag changes exactly when the body does. The piece list tags its
pages itself, from the change stamps of their rows, so that a revalidation can be answered
without building the page (domain/pieces.py). Responses are per caller
(tenant, role), so they are marked `private`: a shared cache never stores them, the caller's
own cache revalidates with `If-None-Match` each time.
"""
from __future__ import annotations

import hashlib
from typing import Callable

from apispec import BasePlugin
from flask import Flask, Response, request


def etag_for(body: bytes) -> str:
    """The strong entity tag (unquoted) of a response body."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


CACHE_CONTROL = "private, no-cache"


def make_conditional(response: Response) -> Response:
    """Tag a 200 JSON answer to GET/HEAD (unless its view tagged it already: the list's tag
    comes from its change stamps); turn it into an empty 304 when the caller already holds
    that version."""
    if (request.method not in ("GET", "HEAD") or response.status_code != 200
            or response.mimetype != "application/json" or response.is_streamed):
        return response
    headers = response.headers
    if "ETag" in headers:
        tag, _ = response.get_etag()
    else:
        tag = etag_for(response.get_data())
        headers["ETag"] = f'"{tag}"'  # hex digits: nothing to escape
    headers.setdefault("Cache-Control", CACHE_CONTROL)
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2); "*" matches any tag. Parsed
    # only when sent: most requests carry none.
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(tag):
        response.status_code = 304
        response.set_data(b"")
        for header in ("Content-Type", "Content-Length"):
            response.headers.pop(header, None)
    return response


def not_modified(tag: str) -> Response:
    """The 304 for a caller that holds `tag`, decided before any body was built."""
    response = Response(status=304)
    response.set_etag(tag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def if_match() -> Callable[[Callable[[], str | None]], bool] | None:
    """The request's `If-Match` as a test of the target's current representation, or None
    without one. The test takes a function that reads the body the GET would send now (None:
    the target has no representation a client can read) and is run once the write has
    locked the target.

    RFC 9110 §13.1.1: `*` holds for any current representation (the body is not read);
    otherwise one listed tag must equal the representation's (`etag_for` its body) by the
    strong comparison, so a weak tag never matches, and a target with no readable
    representation matches only `*`. A header that lists no tag matches nothing."""
    if "If-Match" not in request.headers:
        return None
    tags = request.if_match

    def holds(read_body: Callable[[], str | None]) -> bool:
        if tags.star_tag:
            return True
        body = read_body()
        return body is not None and tags.is_strong(etag_for(body.encode()))

    return holds


class ConditionalGetDoc(BasePlugin):
    """Writes the above into the OpenAPI document, for every GET whose `200` is JSON (the
    export streams, so it is never tagged): the `ETag` header, the `If-None-Match` parameter
    and the empty `304`, which a generated client would otherwise try to parse as JSON."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        operation = (operations or {}).get("get") or {}
        responses = operation.get("responses", {})
        ok = responses.get(200) or responses.get("200") or {}  # flask-smorest keys are ints
        if "application/json" not in ok.get("content", {}):
            return
        ok.setdefault("headers", {})["ETag"] = {
            "description": "The version of this body: send it back as `If-None-Match`",
            "schema": {"type": "string"}}
        operation.setdefault("parameters", []).append({
            "in": "header", "name": "If-None-Match", "required": False,
            "description": "The `ETag` of the copy the caller holds: `304` when it is current",
            "schema": {"type": "string"}})
        responses[304] = {
            "description": "Not modified: the copy named by `If-None-Match` is current; no body",
            "headers": {"ETag": {"schema": {"type": "string"}}}}


def init_app(app: Flask, prefix: str) -> None:
    """Make GETs under `prefix` conditional."""

    @app.after_request
    def _conditional_get(response: Response) -> Response:
        if request.path.startswith(prefix + "/"):
            return make_conditional(response)
        return response
