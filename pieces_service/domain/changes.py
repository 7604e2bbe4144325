"""The change feed (SPEC §9, docs/change-feed.md): a tenant's rows of one level changed since
a token, in (change_xid, guid) order, commit-safe.

A token holds the feed it belongs to (level and tenant) and a position (the change_xid and
guid of the last row served, or "the beginning"), and is signed with HMAC-SHA256 under the
database's `change_token` key, so a client can neither forge a position nor read another
tenant's feed with its token: either is a 422. A position alone could not leak anything (the
statement is tenant-scoped, twice), but a token that silently served another feed from a
wrong place would be a client's bug we could have caught.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import struct
import uuid
from dataclasses import dataclass

from flask import current_app

from .. import access, db
from ..auth import Principal
from ..catalogue import LEVELS, Level
from ..dao import changes as changes_dao
from ..dao import keys as keys_dao
from ..errors import IntegrityAlarm, Invalid

log = logging.getLogger(__name__)

TOKEN_KEY_NAME = "change_token"
_VERSION = 1
_LEVEL_CODES = {name: code for code, name in enumerate(LEVELS)}
# version, level, has-position flag, tenant, change_xid, guid; then the MAC.
_LAYOUT = struct.Struct(">BBB16sQ16s")
_MAC_BYTES = 16
_INVALID = Invalid("Validation error: since",
                   errors={"since": ["Not a valid token for this feed."]})


@dataclass(frozen=True)
class ChangesQuery:
    """The feed's query string, as parsed."""

    limit: int
    since: str | None = None
    company_guid: uuid.UUID | None = None


@dataclass(frozen=True)
class FeedPage:
    body: str         # the JSON array of changed rows, as PostgreSQL built it
    next_token: str   # where the next poll starts (the same position on an empty page)


def encode_token(key: bytes, level: Level, tenant: uuid.UUID,
                 position: tuple[int, uuid.UUID] | None) -> str:
    xid, guid = position if position else (0, uuid.UUID(int=0))
    payload = _LAYOUT.pack(_VERSION, _LEVEL_CODES[level.name], position is not None,
                           tenant.bytes, xid, guid.bytes)
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def decode_token(key: bytes, token: str, level: Level,
                 tenant: uuid.UUID) -> tuple[int, uuid.UUID] | None:
    """The position in `token` (None: the beginning); `Invalid` unless the token is ours,
    untouched, and of `level`'s feed of `tenant`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error):
        raise _INVALID from None
    payload, mac = raw[:_LAYOUT.size], raw[_LAYOUT.size:]
    if len(raw) != _LAYOUT.size + _MAC_BYTES or not hmac.compare_digest(
            mac, hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]):
        raise _INVALID
    version, level_code, has_position, token_tenant, xid, guid = _LAYOUT.unpack(payload)
    if (version != _VERSION or level_code != _LEVEL_CODES[level.name]
            or token_tenant != tenant.bytes):
        raise _INVALID
    return (xid, uuid.UUID(bytes=guid)) if has_position else None


def token_key() -> bytes:
    """The signing key, read from the database once per process (and per app)."""
    cache = current_app.extensions.setdefault("pieces_keys", {})
    key = cache.get(TOKEN_KEY_NAME)
    if key is None:
        with db.untenanted() as conn:
            key = keys_dao.service_key(conn, name=TOKEN_KEY_NAME)
        if key is None:
            log.error("service_keys has no %r row: change-feed tokens cannot be signed",
                      TOKEN_KEY_NAME)
            raise IntegrityAlarm("Change feed key missing.")
        cache[TOKEN_KEY_NAME] = key
    return key


def feed_page(principal: Principal, level: Level, query: ChangesQuery) -> FeedPage:
    """One page of the feed of `level` that `principal` may read (its tenant, or
    `company_guid` for SystemAdmin, as in the list). The key is read before the page's
    connection is taken: a process's first page reads it on a connection of its own, and a
    request never holds one pooled connection while it waits for a second."""
    tenant = access.list_tenant(principal, query.company_guid)
    key = token_key()
    after = decode_token(key, query.since, level, tenant) if query.since else None
    with db.reads() as reads:
        page = changes_dao.changes_page(reads, tenant=tenant, level=level, after=after,
                                        limit=query.limit)
    if page.last_key:
        xid, guid = page.last_key.split(" ")
        after = (int(xid), uuid.UUID(guid))
    return FeedPage(page.body, encode_token(key, level, tenant, after))
