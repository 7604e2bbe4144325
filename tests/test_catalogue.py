"""The catalogue and the migrated database describe the same tables: a migration and the
catalogue cannot drift apart."""
from __future__ import annotations

import pytest

from helpers import fetch_one
from pieces_service.catalogue import CHANGE_COLUMN, DETAIL_FIELDS, LEVELS, LIST_FIELDS, PIECE

COLUMNS = """
SELECT column_name, data_type, is_nullable = 'YES'
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = %s
ORDER BY ordinal_position
"""
_TYPE_NAMES = {"timestamp with time zone": "timestamptz"}


@pytest.mark.parametrize("name", list(LEVELS))
def test_columns_match_the_migrated_table(admin_conn, name):
    level = LEVELS[name]
    with admin_conn.cursor() as cur:
        cur.execute(COLUMNS, (level.table,))
        stored = [(column, _TYPE_NAMES.get(kind, kind), nullable)
                  for column, kind, nullable in cur.fetchall()]
    # By name: a column added later by ALTER TABLE comes last in the table, wherever the
    # catalogue lists it (statements name their columns, so the order never matters).
    assert {name: rest for name, *rest in stored} == \
        {c.name: [c.sql_type, c.nullable] for c in level.columns}


@pytest.mark.parametrize("name", list(LEVELS))
def test_natural_key_is_the_unique_constraint(admin_conn, name):
    level = LEVELS[name]
    columns, = fetch_one(admin_conn, """
        SELECT array_agg(a.attname::text ORDER BY k.ord)
        FROM pg_constraint c
        CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.conname = %s""", (f"{level.table}_natural_key",))
    assert columns == ["company_guid", *level.natural_key]


@pytest.mark.parametrize("name", [n for n in LEVELS if LEVELS[n].parents])
def test_parents_are_the_foreign_keys(admin_conn, name):
    """Each parent column is in a composite tenant foreign key to that parent's table."""
    level = LEVELS[name]
    with admin_conn.cursor() as cur:
        cur.execute("""
            SELECT confrelid::regclass::text,
                   (SELECT array_agg(a.attname::text) FROM pg_attribute a
                    WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey))
            FROM pg_constraint c
            WHERE c.contype = 'f' AND c.conrelid = %s::regclass""", (level.table,))
        foreign_keys = cur.fetchall()
    # The FK to each parent's table carries the tenant and every parent above it: the chain.
    for parent in level.parents:
        chain = {"company_guid", *LEVELS[parent].parent_columns, f"{parent}_guid"}
        if parent == level.parents[0] and len(level.parents) > 1:
            continue  # implied: the nearest parent's FK pins the project too
        assert any(table == LEVELS[parent].table and chain <= set(columns)
                   for table, columns in foreign_keys), (parent, foreign_keys)


def test_every_piece_column_is_in_the_detail_and_the_list_is_a_prefix():
    assert set(DETAIL_FIELDS) == {c.name for c in PIECE.columns} - {CHANGE_COLUMN}
    assert DETAIL_FIELDS[:len(LIST_FIELDS)] == LIST_FIELDS


def test_descendants_follow_from_the_parents():
    assert [level.name for level in LEVELS["project"].descendants] == \
        ["component", "assembly", "piece"]
    assert [level.name for level in LEVELS["assembly"].descendants] == ["piece"]
    assert LEVELS["piece"].descendants == ()
