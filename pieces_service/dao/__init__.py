"""The data access layer: hand-written SQL in `sql/*.sql`, one statement per `-- name:`.

Every DAO function takes its connection first and keyword-only arguments after it;
`tenant=` is always explicit and every statement carries it as a predicate (row-level
security is the second wall). They never commit: the caller's transaction does.

`sql/audit.sql`, `health.sql`, `keys.sql` and `ownership.sql` are written by hand; the
others (`pieces.sql`, `sync.sql`, `hierarchy.sql`, `changes.sql`, `export.sql`) are rendered
from the catalogue by `render.py` and checked in, so every statement that runs can be read
in the repository as it is sent.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

SQL_DIR = Path(str(resources.files(__package__) / "sql"))
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(filename: str) -> dict[str, str]:
    """Read `sql/<filename>` into {name: statement}; the comment lines after each
    `-- name:` header document the statement.

    Each statement keeps its `-- name:` line as its first line: it travels with the text
    (a constant, so prepared statements stay prepared) and names the statement wherever the
    text is seen — a trace's database span (`statement_name`), `pg_stat_activity`."""
    text = (SQL_DIR / filename).read_text()
    parts = _NAME.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        statement = body.strip().rstrip(";").strip()
        if name in queries:
            raise ValueError(f"duplicate query name {name} in {filename}")
        queries[name] = f"-- name: {name}\n{statement}"
    return queries


@lru_cache(maxsize=512)
def statement_name(text: str) -> str | None:
    """The name of the first statement of `text` (a message as the service sends it: setup,
    then a statement from `sql/`) that has a `-- name:` line; None when none has."""
    match = _NAME.search(text)
    return match.group(1) if match else None


# A rendered statement's projection: the expressions of a representation's fields, one a
# line in the catalogue's order, between these two comment lines (render.py writes them).
# `narrowed` keeps the lines of a request's `fields=`, so the statement reads just those.
FIELDS_BEGIN = "-- fields: one a line, in the catalogue's order (dao.narrowed keeps a request's)"
FIELDS_END = "-- end of fields"


@lru_cache(maxsize=1024)
def narrowed(statement: str, fields: tuple[str, ...], chosen: tuple[str, ...] | None) -> str:
    """`statement` with each of its projections of `fields` cut down to `chosen` (a subset,
    in the same order); `statement` itself when `chosen` is None. The names come from the
    catalogue, never from the request: nothing but their lines is touched."""
    if chosen is None:
        return statement
    lines = statement.split("\n")
    out, block = [], None
    for line in lines:
        mark = line.strip()
        if mark == FIELDS_BEGIN:
            block = []
        elif mark == FIELDS_END:
            if len(block) != len(fields):
                raise ValueError(f"a projection of {len(block)} lines for {len(fields)} fields")
            kept = [text.rstrip(",") for name, text in zip(fields, block) if name in chosen]
            out += [text + "," for text in kept[:-1]] + kept[-1:]
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    return "\n".join(out)


# An optional filter of a rendered statement: `(%(name)s::type IS NULL OR <condition>)`.
_OPTIONAL_FILTER = re.compile(r"\(%\((\w+)\)s::\w+ IS NULL\s+OR\s+")


@lru_cache(maxsize=512)
def specialized(statement: str, given: frozenset[str]) -> str:
    """`statement` for one shape of request: each optional filter
    `(%(name)s::type IS NULL OR <condition>)` becomes `(<condition>)` when `name` is in
    `given` and `true` when it is not. The planner folds those branches by itself only when
    the values are written into the text; a prepared statement of one shape can keep one
    plan for all values (`prepared_read`). `given` may name parameters that are not optional
    filters of `statement`."""
    out, at = [], 0
    for match in _OPTIONAL_FILTER.finditer(statement):
        if match.start() < at:
            raise ValueError("nested optional filters")
        depth, end = 1, match.end()
        while depth:  # to the parenthesis that closes the filter
            if end == len(statement):
                raise ValueError(f"unbalanced optional filter {match.group(1)}")
            depth += {"(": 1, ")": -1}.get(statement[end], 0)
            end += 1
        condition = statement[match.end():end - 1]
        out += [statement[at:match.start()],
                f"({condition})" if match.group(1) in given else "true"]
        at = end
    return "".join(out) + statement[at:]


_PARAMETER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class PreparedRead:
    """A read statement that `db.OneMessageReads` runs as a server-side prepared statement
    (parsed, analysed and rewritten once per connection, and planned once when PostgreSQL
    finds a generic plan as good as its first five custom ones), or as plain `text` where
    prepared statements are off. Build it with `prepared_read`."""

    text: str                   # the statement with psycopg2's %(name)s parameters
    name: str                   # its prepared name: the text's hash, so one name, one text
    prepare: str                # PREPARE <name> AS <the text with $1, $2, … parameters>
    execute: str                # EXECUTE <name>(%(first)s, %(second)s, …)


@lru_cache(maxsize=256)
def prepared_read(text: str) -> PreparedRead:
    """`text` as a `PreparedRead`: a statement whose plan may serve all its values (a lookup
    by key, or one shape of a statement with optional filters: `prepared_for`)."""
    names: list[str] = []

    def positional(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    body = _PARAMETER.sub(positional, text).replace("%%", "%")
    name = "pieces_" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    arguments = ", ".join(f"%({parameter})s" for parameter in names)
    # The EXECUTE carries the statement's `-- name:` line too (see `load_queries`).
    query = statement_name(text)
    named = f"-- name: {query}\n" if query else ""
    return PreparedRead(text, name, f"PREPARE {name} AS\n{body}",
                        f"{named}EXECUTE {name}({arguments})")


def prepared_for(statement: str, params: dict) -> PreparedRead:
    """`statement` specialized to the optional filters `params` gives (those not None), as
    a `PreparedRead`: one prepared statement per shape of request."""
    given = frozenset(name for name, value in params.items() if value is not None)
    return prepared_read(specialized(statement, given))
