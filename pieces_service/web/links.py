"""The `Link: <…>; rel="next"` header of a paged answer."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import request


def next_link(args: dict) -> str:
    """The `Link` header value for this request's own path with the query `args`.

    Built from the path served rather than by `url_for`, which walks the URL map on every
    page: a fifth of the list's own per-request work in the view (BENCHMARKS.md, issue 14).
    """
    return f'<{request.script_root}{request.path}?{urlencode(args)}>; rel="next"'
