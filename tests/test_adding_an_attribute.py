"""README, "Adding a piece attribute": one migration and one catalogue line reach the sync
schema, the rendered SQL and the stored row. Walked on a scratch database with a catalogue
that has one more attribute than the real one."""
from __future__ import annotations

import dataclasses
import uuid

import orjson

from helpers import fetch_one
from pieces_service.api.sync.schemas import item_schema
from pieces_service.catalogue import PIECE, Attribute
from pieces_service.dao import load_queries, render
from pieces_service.migrate import connect, migrate

COLUMNS = ("SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
           " WHERE table_schema = 'public' AND table_name = 'pieces'")


def test_one_migration_and_one_catalogue_line(empty_database):
    migrate(empty_database, echo=lambda *_: None)
    conn = connect(empty_database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            # 1. the migration
            cur.execute("ALTER TABLE pieces ADD COLUMN glass_thickness integer")
            # 2. the catalogue line
            piece = dataclasses.replace(
                PIECE, attributes=(*PIECE.attributes, Attribute("glass_thickness", "integer")))
            cur.execute(COLUMNS)
            assert {name: [kind, nullable] for name, kind, nullable in cur.fetchall()} == {
                c.name: [c.sql_type.replace("timestamptz", "timestamp with time zone"),
                         c.nullable] for c in piece.columns}
            # 3. what `make sql` renders, and the schema sync validates with
            statement = render.upsert(piece, by_guid=True).split("\n", 1)[1]
            # inserted column and value, "SET x = EXCLUDED.x", both sides of the change test
            assert statement.count("glass_thickness") == 6
            assert statement.split(";")[0] != load_queries("sync.sql")["upsert_pieces_by_guid"]
            tenant, project, component, guid = (uuid.uuid4() for _ in range(4))
            item = item_schema(piece)().load({
                "guid": str(guid), "company_guid": str(tenant), "project_guid": str(project),
                "component_guid": str(component), "piece_id": "P-1", "glass_thickness": 24})
            assert item["glass_thickness"] == 24
            cur.execute("INSERT INTO projects (guid, company_guid, code) VALUES (%s, %s, 'P')",
                        (str(project), str(tenant)))
            cur.execute("INSERT INTO components (guid, company_guid, project_guid, code)"
                        " VALUES (%s, %s, %s, 'C')", (str(component), str(tenant), str(project)))
            cur.execute(statement.rstrip().rstrip(";"), {
                "tenant": str(tenant),
                "items": orjson.dumps([{**item, "is_active": True}]).decode()})
        assert fetch_one(conn, "SELECT glass_thickness FROM pieces WHERE guid = %s",
                         (str(guid),)) == (24,)
    finally:
        conn.close()
