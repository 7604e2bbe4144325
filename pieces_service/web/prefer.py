"""The `Prefer` request header (RFC 7240): what a client asks the server to do, if it can.

A preference the server does not know, or a value it does not support, is ignored, as the
RFC has it; the response's `Preference-Applied` names those it honoured.
"""
from __future__ import annotations

from flask import request


def preference(name: str) -> str | None:
    """The value of preference `name` in the request's `Prefer` headers (None when absent).
    Names are case-insensitive; the first occurrence wins (RFC 7240 §2); parameters after
    `;` are dropped."""
    for header in request.headers.getlist("Prefer"):
        for item in header.split(","):
            key, _, value = item.split(";", 1)[0].partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"')
    return None
