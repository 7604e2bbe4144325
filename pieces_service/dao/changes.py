"""The change feed's pages (sql/changes.sql), each one statement returning JSON text, sent
with its setup as one message (`db.OneMessageReads`, one round trip)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..catalogue import Level
from . import load_queries, prepared_for

_Q = load_queries("changes.sql")


def statement(level: Level) -> str:
    """The page statement of `level`'s feed (the benchmark replays it too)."""
    return _Q[f"changes_{level.plural}"]


@dataclass(frozen=True)
class ChangesPage:
    row_count: int
    last_key: str | None  # "<change_xid> <guid>" of the last row
    body: str             # the JSON array of the rows, in feed order


def parameters(*, tenant: uuid.UUID, after: tuple[int, uuid.UUID] | None,
               limit: int) -> dict:
    """The parameters of the page statement (the benchmark builds its floor from them)."""
    return {"tenant": tenant, "limit": limit,
            "after_xid": str(after[0]) if after else None,
            "after_guid": after[1] if after else None}


def changes_page(reads, *, tenant: uuid.UUID, level: Level,
                 after: tuple[int, uuid.UUID] | None, limit: int) -> ChangesPage:
    """Up to `limit` of `tenant`'s `level` rows changed after the position `after`
    (change_xid, guid), or from the beginning when None. `reads`: a `db.OneMessageReads`."""
    params = parameters(tenant=tenant, after=after, limit=limit)
    row = reads.fetch_one(tenant, prepared_for(statement(level), params), params)
    return ChangesPage(*row)
