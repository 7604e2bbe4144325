"""Keys ready for Citus (migrations 0008-0010, docs/scale-out.md): on the migrated schema every
primary key, unique constraint and foreign key of a tenant table includes company_guid, and
every DAO statement that touches a tenant table filters on the tenant, so that distributed by
company_guid each runs on the one node holding the tenant. The exceptions are named here,
each with its reason."""
from __future__ import annotations

import re
import shutil
import uuid

import psycopg2.errors
import pytest

from helpers import Seeder
from pieces_service.dao import SQL_DIR, load_queries
from pieces_service.migrate import connect, migrate, migration_files

# The tables holding tenant rows: the ones with a company_guid column (checked below).
TENANT_TABLES = ("projects", "components", "assemblies", "pieces", "audit_log")

# The one key without company_guid: a guid is unique across all tenants (SPEC section 6,
# sync's `ON CONFLICT (guid)`, the 403 for another tenant's guid). A plain unique index, not
# a constraint, because Citus cannot distribute a table with it: docs/scale-out.md, "guid
# uniqueness", says what replaces it there.
GUID_ALONE = {f"{table}_guid_key": table for table in TENANT_TABLES[:4]}


def rows_of(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_the_tenant_tables_are_the_tables_with_company_guid(admin_conn):
    found = rows_of(admin_conn, """
        SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE a.attname = 'company_guid' AND c.relkind = 'r'
          AND c.relnamespace = 'public'::regnamespace AND NOT a.attisdropped""")
    assert sorted(name for (name,) in found) == sorted(TENANT_TABLES)


def test_every_key_and_foreign_key_of_a_tenant_table_includes_company_guid(admin_conn):
    """Primary keys and unique constraints hold company_guid; a foreign key between tenant
    tables matches company_guid to company_guid (the child's row and its parent are on one
    node); no foreign key links a tenant table with any other table."""
    constraints = rows_of(admin_conn, """
        SELECT con.conname, con.contype, con.conrelid::regclass::text,
               con.confrelid::regclass::text,
               ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                     ORDER BY k.i),
               ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                     ORDER BY k.i)
        FROM pg_constraint con
        WHERE con.contype IN ('p', 'u', 'f')
          AND (con.conrelid::regclass::text = ANY (%(tables)s)
               OR con.confrelid::regclass::text = ANY (%(tables)s))""",
                                      {"tables": list(TENANT_TABLES)})
    kinds = {kind for _, kind, *_ in constraints}
    assert kinds == {"p", "u", "f"}
    for name, kind, table, parent, columns, parent_columns in constraints:
        assert "company_guid" in columns, f"{name} on {table}: {columns}"
        if kind == "f":
            assert table in TENANT_TABLES and parent in TENANT_TABLES, name
            assert parent_columns[columns.index("company_guid")] == "company_guid", name
    primary = {table: columns for _, kind, table, _, columns, _ in constraints if kind == "p"}
    assert primary == {**{table: ["company_guid", "guid"] for table in TENANT_TABLES[:4]},
                       "audit_log": ["company_guid", "id"]}


def test_the_only_unique_indexes_without_company_guid_are_the_guid_keys(admin_conn):
    """Every unique index (a constraint's or not) holds company_guid, but the guid keys; each
    tenant table with a guid has its guid key, valid, on (guid) alone."""
    found = rows_of(admin_conn, """
        SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, i.indisvalid,
               ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                     ORDER BY k.o)
        FROM pg_index i
        WHERE i.indisunique AND i.indrelid::regclass::text = ANY (%(tables)s)""",
                           {"tables": list(TENANT_TABLES)})
    without = {index: (table, valid, columns) for index, table, valid, columns in found
               if "company_guid" not in columns}
    assert without == {index: (table, True, ["guid"]) for index, table in GUID_ALONE.items()}


def test_a_guid_stays_unique_across_tenants(seed, tenant, other_tenant, admin_conn):
    """With company_guid in the primary key, the guid key is what refuses a second tenant's
    row with the same guid (SPEC section 6)."""
    project = seed.project(tenant)
    with pytest.raises(psycopg2.errors.UniqueViolation) as refused, admin_conn.cursor() as cur:
        cur.execute("INSERT INTO projects (guid, company_guid, code) VALUES (%s, %s, 'X')",
                    (str(project), str(other_tenant)))
    assert refused.value.diag.constraint_name == "projects_guid_key"


def test_the_key_swap_keeps_the_rows_and_rewrites_no_table(tmp_path, new_database):
    """Migrated up to 0007 with rows in it, then to the head: the same rows, no table
    rewritten (same relfilenode), the re-pointed foreign key valid and still enforced."""
    url = new_database()
    before = tmp_path / "before"
    before.mkdir()
    for path in migration_files():
        if path.name < "0008":
            shutil.copy(path, before / path.name)
    migrate(url, before, echo=lambda *_: None)
    conn = connect(url)
    conn.autocommit = True
    try:
        tenant = uuid.uuid4()
        tree = Seeder(conn).tree(tenant, pieces_per_assembly=3)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO audit_log (company_guid, entity_type, entity_guid, action,"
                        " actor, rows_affected) VALUES (%s, 'piece', %s, 'delete', 'x', 1)",
                        (str(tenant), str(tree.project)))
        def census():
            """(table, its file node, its row count) of each tenant table, by name."""
            return [(table, *rows_of(conn, f"SELECT pg_relation_filenode('{table}'),"
                                           f" count(*) FROM {table}")[0])
                    for table in sorted(TENANT_TABLES)]

        was = census()
        assert [count for *_, count in was] == [1, 1, 1, 3, 1]  # by name
        assert migrate(url, echo=lambda *_: None) == [
            "0008_tenant_keys", "0009_tenant_primary_keys", "0010_validate_tenant_keys"]
        assert census() == was
        assert rows_of(conn, "SELECT convalidated FROM pg_constraint"
                                     " WHERE conname = 'components_project_fkey'") == [(True,)]
        with pytest.raises(psycopg2.errors.ForeignKeyViolation), conn.cursor() as cur:
            cur.execute("INSERT INTO components (guid, company_guid, project_guid, code)"
                        " VALUES (gen_random_uuid(), %s, %s, 'C')",
                        (str(uuid.uuid4()), str(tree.project)))  # another tenant's project
    finally:
        conn.close()


# --- the DAO's statements ----------------------------------------------------------------

TENANT_PREDICATE = re.compile(r"\b(?:\w+\.)?company_guid\s*=\s*%\(tenant\)s")
_TABLE = "|".join(TENANT_TABLES)
# A read or write of a tenant table: FROM/JOIN (read), UPDATE, INSERT INTO, and the stored
# row an ON CONFLICT ... DO UPDATE writes.
TABLE_REFERENCE = re.compile(rf"\b(?:FROM|JOIN|UPDATE|INSERT\s+INTO)\s+({_TABLE})\b"
                             r"|\bDO\s+UPDATE\b", re.IGNORECASE)
# INSERT ... VALUES names the tenant in company_guid's place, not in a predicate.
INSERT_VALUES = re.compile(rf"INSERT\s+INTO\s+(?:{_TABLE})\s*\(([^)]*)\)\s*VALUES\s*\((.*)\)\s*$",
                           re.IGNORECASE | re.DOTALL)
OWNER_PROBE = re.compile(r"\bpieces_guid_owners\s*\(")

# Statements that read no tenant table, with the reason.
NO_TENANT_TABLE = {
    ("health.sql", "schema_state"): "schema_migrations: global, no tenant data",
    ("health.sql", "replica_position"): "a standby's replay position: no table at all",
    ("keys.sql", "service_key"): "service_keys: global, read once per process",
    ("sync.sql", "savepoint_upsert"): "a savepoint, reads nothing",
    ("sync.sql", "rollback_upsert"): "a rollback to the savepoint, reads nothing",
}
# Statements that call the GUID-owner probe: the SECURITY DEFINER function
# pieces_guid_owners (migration 0002) reads a tenant table by guid alone, across tenants, to
# tell "someone else's" (403) from "absent" (404) and to let SystemAdmin reach a GUID. Under
# Citus each call is a multi-shard query (docs/scale-out.md).
OWNER_PROBES = {
    ("ownership.sql", "guid_owner"): "SystemAdmin's reach by GUID, 403 vs 404",
    ("ownership.sql", "foreign_guids"): "sync: which GUIDs of a batch are another tenant's",
    ("pieces.sql", "get_piece"): "the detail's 403 vs 404, only when the row is not visible",
}


def statements():
    return {(path.name, name): statement
            for path in sorted(SQL_DIR.glob("*.sql"))
            for name, statement in load_queries(path.name).items()}


def without_comments(statement: str) -> str:
    return re.sub(r"--[^\n]*", "", statement)


def tenant_violation(statement: str) -> str | None:
    """Why `statement` is not confined to the tenant, or None: each tenant table it reads or
    writes needs its own `company_guid = %(tenant)s` (one predicate per reference), except
    that an INSERT ... VALUES confines itself by writing %(tenant)s as company_guid."""
    sql = without_comments(statement)
    references = len(TABLE_REFERENCE.findall(sql))
    predicates = len(TENANT_PREDICATE.findall(sql))
    for columns, values in INSERT_VALUES.findall(sql.strip()):
        pairs = dict(zip((c.strip() for c in columns.split(",")),
                         (v.strip() for v in values.split(","))))
        if pairs.get("company_guid") != "%(tenant)s":
            return "an INSERT ... VALUES whose company_guid is not %(tenant)s"
        predicates += 1
    if predicates < references:
        return f"{references} tenant table references, {predicates} tenant predicates"
    return None


def test_every_statement_on_a_tenant_table_filters_on_the_tenant():
    found = statements()
    assert set(NO_TENANT_TABLE) | set(OWNER_PROBES) <= set(found)
    for key, statement in found.items():
        sql = without_comments(statement)
        if key in NO_TENANT_TABLE:
            assert not TABLE_REFERENCE.search(sql) and not OWNER_PROBE.search(sql), key
            continue
        assert bool(OWNER_PROBE.search(sql)) == (key in OWNER_PROBES), key
        if key[0] == "ownership.sql":
            continue  # nothing but the probe
        assert TABLE_REFERENCE.search(sql), f"{key}: reads no tenant table, name it above"
        assert tenant_violation(statement) is None, (key, tenant_violation(statement))


@pytest.mark.parametrize("key", sorted(key for key, statement in statements().items()
                                       if TENANT_PREDICATE.search(statement)))
def test_a_statement_that_loses_a_tenant_predicate_is_caught(key):
    """Each tenant predicate of each statement, taken away on its own, fails the check."""
    statement = statements()[key]
    for match in TENANT_PREDICATE.finditer(statement):
        lost = statement[:match.start()] + "true" + statement[match.end():]
        assert tenant_violation(lost), (key, match.group())


def test_an_insert_that_writes_another_company_guid_is_caught():
    statement = statements()[("audit.sql", "record")]
    assert tenant_violation(statement) is None
    assert tenant_violation(statement.replace("%(tenant)s", "%(other)s", 1))
