"""The bare reference: what any team could write in an hour for the same reads, served by
the same gunicorn configuration as the service, and measured beside it (`make bench`'s
"vs reference" column).

A minimal Flask app with the same psycopg2 driver and a plain pool: it decodes the same JWT
and runs the same read SQL as the service (the rendered list statement, whose page is built
by `json_agg`, and the detail row as JSON), and nothing else — no validation schema, no
row-level security setup (it reads as the database URL's user, the tables' owner), no
logging, no metrics, no ETag, no request id. Every feature the service adds is measured as
its cost over this.
"""
from __future__ import annotations

import os
import threading
import uuid

import jwt
from flask import Flask, Response, request
from psycopg2.extras import register_uuid
from psycopg2.pool import ThreadedConnectionPool

from pieces_service.config import database_url, libpq_dsn
from pieces_service.dao import load_queries
from pieces_service.dao import pieces as pieces_dao
from pieces_service.domain.pieces import decode_cursor

register_uuid()
SECRET = os.environ["PIECES_JWT_SECRET"]
QUERIES = load_queries("pieces.sql")
app = Flask(__name__)
_pool: ThreadedConnectionPool | None = None
_pool_lock = threading.Lock()


def _cursor():
    global _pool
    if _pool is None:  # per worker process, after gunicorn's fork
        with _pool_lock:
            if _pool is None:
                # A connection for each of the gthread worker's threads that may ask
                # for one (it has no admission control to bound them).
                _pool = ThreadedConnectionPool(
                    1, 64, libpq_dsn(database_url(os.environ["DATABASE_URL"])))
    conn = _pool.getconn()
    conn.autocommit = True
    return conn, conn.cursor()


def _fetch_one(statement: str, params: dict):
    conn, cur = _cursor()
    try:
        cur.execute(statement, params)
        return cur.fetchone()
    finally:
        cur.close()
        _pool.putconn(conn)


def _tenant() -> uuid.UUID:
    token = request.headers["Authorization"].removeprefix("Bearer ")
    return uuid.UUID(jwt.decode(token, SECRET, algorithms=["HS256"])["company_guid"])


def _uuid(name: str) -> uuid.UUID | None:
    value = request.args.get(name)
    return uuid.UUID(value) if value else None


@app.get("/api/v1/pieces")
def list_pieces():
    offset = int(request.args.get("offset", 0))
    cursor = request.args.get("cursor")
    params = pieces_dao.list_parameters(
        tenant=_tenant(), project_guid=_uuid("project_guid"),
        component_guid=_uuid("component_guid"), assembly_guid=_uuid("assembly_guid"),
        include_inactive=request.args.get("include_inactive") == "true",
        limit=int(request.args.get("limit", 100)), offset=offset,
        after=decode_cursor(cursor) if cursor else None)
    page = pieces_dao.PiecePage(*_fetch_one(pieces_dao.list_statement(offset), params))
    return Response(page.body, mimetype="application/json")


@app.get("/api/v1/pieces/<uuid:guid>")
def get_piece(guid):
    row = _fetch_one(QUERIES["get_piece"],
                     {"tenant": _tenant(), "guid": guid, "include_inactive": False})
    if row[2] is None:
        return Response('{"detail":"Piece not found"}', 404, mimetype="application/json")
    return Response(row[2], mimetype="application/json")


@app.get("/livez")
def livez():
    return Response('{"status":"ok"}', mimetype="application/json")
