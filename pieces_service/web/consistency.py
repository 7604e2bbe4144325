"""Read-your-writes across read replicas: the `X-Pieces-Consistency` token.

A write response carries the primary's WAL position after its commit; a read that sends it
back is served only by a replica that has replayed that far (else by the primary), so the
caller sees its own write. The token is PostgreSQL's own `pg_lsn` text (`16/B374D848`):
nothing secret (a position in the write-ahead log) and nothing to sign, since a forged
position only sends the read to the primary, or to a replica at least that far.
"""
from __future__ import annotations

import re

from apispec import BasePlugin
from flask import Flask, Response, g, has_request_context, request

from ..errors import Invalid

HEADER = "X-Pieces-Consistency"
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")

# OpenAPI (`ConsistencyDoc`): the request header of every read, the response header of every
# write.
PARAMETER = {
    "in": "header", "name": HEADER, "required": False,
    "schema": {"type": "string", "example": "0/16B3748"},
    "description": "Read your writes: the `X-Pieces-Consistency` of an earlier write "
                   "response. The read is then served by a replica that has replayed that "
                   "write, or by the primary. Without it a replica may answer up to "
                   "`PIECES_REPLICA_MAX_LAG_MS` (plus one lag check) behind. Not a WAL "
                   "position: 422.",
}
RESPONSE_HEADER = {
    "description": "With read replicas configured: the primary's WAL position after this "
                   "write's commit; send it back on reads to see this write.",
    "schema": {"type": "string", "example": "0/16B3748"}}


class ConsistencyDoc(BasePlugin):
    """Writes the token into the OpenAPI document: every GET of the API reads (and may send
    it), every POST and DELETE writes (and answers it on success)."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            if method == "get":
                operation.setdefault("parameters", []).append(PARAMETER)
            elif method in ("post", "delete"):
                for status, response in operation.get("responses", {}).items():
                    if str(status) in ("200", "204"):
                        response.setdefault("headers", {})[HEADER] = RESPONSE_HEADER


def lsn_value(text: str) -> int:
    """The number of a `pg_lsn` text (`16/B374D848` -> 0x16B374D848)."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def required() -> int | None:
    """The WAL position the request's reads must see (its token), None without one; a
    malformed token is a 422."""
    if not has_request_context():
        return None
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not _LSN.fullmatch(raw.strip()):
        raise Invalid(f"Validation error: {HEADER}",
                      errors={HEADER: ["Not a WAL position such as 0/16B3748: send back the "
                                       "value of a write response."]})
    return lsn_value(raw.strip())


def remember(lsn: str) -> None:
    """Send `lsn` (the position after this request's commit) on the response."""
    if has_request_context():
        g.pieces_consistency = lsn


def _send(response: Response) -> Response:
    lsn = g.pop("pieces_consistency", None)
    if lsn is not None:
        response.headers[HEADER] = lsn
    return response


def init_app(app: Flask) -> None:
    app.after_request(_send)
