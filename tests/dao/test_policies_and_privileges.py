"""Row-level security policies, the service roles' privileges and the change-feed token key,
read from the catalog and exercised against the real database (README "Tenancy,
authentication and row-level security", migrations 0002 and 0004).

The expected policies and grants are written out here, not derived from the migrations: a
policy or grant that is changed, dropped or added fails until this file says so too. The
tenant tables are found from the catalog (every table of the public schema with a
`company_guid` column), so a new one is checked without being named here.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass

import psycopg2
import pytest

import pieces_service.migrate as migration_runner
from helpers import Caller, Seeder, assert_error, fetch_one, make_config, ok
from pieces_service.migrate import connect

APP, PROBE = "pieces_app", "pieces_probe"
INSUFFICIENT_PRIVILEGE = "42501"
FEED = "/api/v1/changes/pieces"
KNOWN_TENANT_TABLES = {"projects", "components", "assemblies", "pieces", "audit_log"}

# --- the expected lists ------------------------------------------------------------------------

TENANT = "(company_guid = pieces_current_tenant())"

# pg_policies of the public schema: (tablename, policyname, permissive, roles, cmd, qual,
# with_check), ordered by table and name.
EXPECTED_POLICIES = [
    ("assemblies", "probe_owner_lookup", "PERMISSIVE", ["pieces_probe"], "SELECT", "true", None),
    ("assemblies", "tenant_isolation", "PERMISSIVE", ["pieces_app"], "ALL", TENANT, TENANT),
    ("audit_log", "tenant_isolation", "PERMISSIVE", ["pieces_app"], "ALL", TENANT, TENANT),
    ("components", "probe_owner_lookup", "PERMISSIVE", ["pieces_probe"], "SELECT", "true", None),
    ("components", "tenant_isolation", "PERMISSIVE", ["pieces_app"], "ALL", TENANT, TENANT),
    ("pieces", "probe_owner_lookup", "PERMISSIVE", ["pieces_probe"], "SELECT", "true", None),
    ("pieces", "tenant_isolation", "PERMISSIVE", ["pieces_app"], "ALL", TENANT, TENANT),
    ("projects", "probe_owner_lookup", "PERMISSIVE", ["pieces_probe"], "SELECT", "true", None),
    ("projects", "tenant_isolation", "PERMISSIVE", ["pieces_app"], "ALL", TENANT, TENANT),
]

GUID_OWNERS = "public.pieces_guid_owners(pg_catalog.text,pg_catalog.uuid[])"

# Every privilege granted to the role, on any object of this database or of the cluster
# (pg_identify_object's type and identity, privilege); none of them grantable.
EXPECTED_GRANTS = {
    APP: {
        ("schema", "public", "USAGE"),
        ("table", "public.projects", "SELECT"),
        ("table", "public.projects", "INSERT"),
        ("table", "public.projects", "UPDATE"),
        ("table", "public.components", "SELECT"),
        ("table", "public.components", "INSERT"),
        ("table", "public.components", "UPDATE"),
        ("table", "public.assemblies", "SELECT"),
        ("table", "public.assemblies", "INSERT"),
        ("table", "public.assemblies", "UPDATE"),
        ("table", "public.pieces", "SELECT"),
        ("table", "public.pieces", "INSERT"),
        ("table", "public.pieces", "UPDATE"),
        ("table", "public.audit_log", "SELECT"),
        ("table", "public.audit_log", "INSERT"),
        ("function", GUID_OWNERS, "EXECUTE"),
    },
    PROBE: {
        ("schema", "public", "USAGE"),
        ("table column", "public.projects.guid", "SELECT"),
        ("table column", "public.projects.company_guid", "SELECT"),
        ("table column", "public.components.guid", "SELECT"),
        ("table column", "public.components.company_guid", "SELECT"),
        ("table column", "public.assemblies.guid", "SELECT"),
        ("table column", "public.assemblies.company_guid", "SELECT"),
        ("table column", "public.pieces.guid", "SELECT"),
        ("table column", "public.pieces.company_guid", "SELECT"),
        # Its own function's ACL entry: it owns pieces_guid_owners (0002).
        ("function", GUID_OWNERS, "EXECUTE"),
    },
}

# What PUBLIC (so every role, pieces_app included) may do in the public schema, defaults
# included (a function is executable by PUBLIC unless revoked). Types are left out: every
# type is usable by PUBLIC, which reads no data.
EXPECTED_PUBLIC_GRANTS = {
    ("schema", "public", "USAGE"),
    ("function", "public.pieces_current_tenant()", "EXECUTE"),
    ("function", "public.pieces_stamp_change()", "EXECUTE"),
}

# Rows the two_tenants fixture seeds per tenant table: (tenant A's, tenant B's). A tenant
# table found in the catalog but missing here fails the behaviour tests: seed it below.
SEEDED = {
    "projects": (1, 1),
    "components": (1, 1),
    "assemblies": (1, 1),
    "pieces": (1, 2),
    "audit_log": (1, 2),
}

# --- catalog reads -----------------------------------------------------------------------------

_ACLS = """
WITH acls (classid, objid, objsubid, acl) AS (
    SELECT 'pg_class'::regclass, oid, 0, relacl FROM pg_class
    UNION ALL SELECT 'pg_class'::regclass, attrelid, attnum::int, attacl FROM pg_attribute
        WHERE attacl IS NOT NULL
    UNION ALL SELECT 'pg_proc'::regclass, oid, 0, proacl FROM pg_proc
    UNION ALL SELECT 'pg_namespace'::regclass, oid, 0, nspacl FROM pg_namespace
    UNION ALL SELECT 'pg_type'::regclass, oid, 0, typacl FROM pg_type
    UNION ALL SELECT 'pg_language'::regclass, oid, 0, lanacl FROM pg_language
    UNION ALL SELECT 'pg_largeobject'::regclass, oid, 0, lomacl FROM pg_largeobject_metadata
    UNION ALL SELECT 'pg_foreign_data_wrapper'::regclass, oid, 0, fdwacl
        FROM pg_foreign_data_wrapper
    UNION ALL SELECT 'pg_foreign_server'::regclass, oid, 0, srvacl FROM pg_foreign_server
    UNION ALL SELECT 'pg_default_acl'::regclass, oid, 0, defaclacl FROM pg_default_acl
    UNION ALL SELECT 'pg_database'::regclass, oid, 0, datacl FROM pg_database
        WHERE datname = current_database()
    UNION ALL SELECT 'pg_tablespace'::regclass, oid, 0, spcacl FROM pg_tablespace
    UNION ALL SELECT 'pg_parameter_acl'::regclass, oid, 0, paracl FROM pg_parameter_acl
)
SELECT o.type, o.identity, a.privilege_type, a.is_grantable,
       acls.classid::oid, acls.objid, acls.objsubid
FROM acls
CROSS JOIN LATERAL aclexplode(acls.acl) AS a
CROSS JOIN LATERAL pg_identify_object(acls.classid, acls.objid, acls.objsubid) AS o
WHERE a.grantee = %(role)s::regrole
"""

# pg_shdepend's record of the role in this database's objects and in the shared ones (the
# other databases' own rows left out): 'a' an ACL entry, 'o' the owner.
_SHDEPEND_HERE = """
SELECT classid::oid, objid, objsubid
FROM pg_shdepend
WHERE refclassid = 'pg_authid'::regclass AND refobjid = %(role)s::regrole
  AND deptype = %(deptype)s
  AND (dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       OR (dbid = 0 AND NOT (classid = 'pg_database'::regclass
                             AND objid <> (SELECT oid FROM pg_database
                                           WHERE datname = current_database()))))
"""


def query(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tenant_tables_of(conn) -> list[str]:
    """Every table of the public schema that has a company_guid column."""
    return [name for (name,) in query(conn, """
        SELECT c.relname FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND a.attname = 'company_guid' AND NOT a.attisdropped
        ORDER BY 1""")]


def primary_key(conn, table) -> list[str]:
    return [name for (name,) in query(conn, """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
        WHERE i.indrelid = %s::regclass AND i.indisprimary
        ORDER BY array_position(i.indkey::int2[], a.attnum)""", (table,))]


def insertable_columns(conn, table) -> list[str]:
    return [name for (name,) in query(conn, """
        SELECT attname FROM pg_attribute
        WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
          AND attidentity <> 'a' AND attgenerated = ''
        ORDER BY attnum""", (table,))]


def unique_text_columns(conn, table) -> set[str]:
    return {name for (name,) in query(conn, """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
        WHERE i.indrelid = %s::regclass AND i.indisunique
          AND a.atttypid IN ('text'::regtype, 'varchar'::regtype)""", (table,))}


def owner_rows(admin_conn, table, company) -> list[dict]:
    """`company`'s rows of `table`, every column, read as the owner (who bypasses RLS)."""
    return [row for (row,) in query(
        admin_conn, f"SELECT row_to_json(t) FROM {ident(table)} t WHERE company_guid = %s"
                    f" ORDER BY row_to_json(t)::text", (str(company),))]


# --- acting as a request does ------------------------------------------------------------------

@dataclass
class Outcome:
    rowcount: int | None
    rows: list | None
    error: psycopg2.Error | None

    @property
    def refused_by_rls(self) -> bool:
        return (self.error is not None and self.error.pgcode == INSUFFICIENT_PRIVILEGE
                and "row-level security" in str(self.error))

    @property
    def permission_denied(self) -> bool:
        return (self.error is not None and self.error.pgcode == INSUFFICIENT_PRIVILEGE
                and "permission denied" in str(self.error))

    def __str__(self):
        if self.error is not None:
            return f"error {self.error.pgcode}: {str(self.error).strip()}"
        return f"rowcount {self.rowcount}, rows {self.rows}"


def run_as(conn, tenant, sql, params=None, *, role=APP, commit=False) -> Outcome:
    """`sql` in a transaction of its own as a request runs it (`SET LOCAL ROLE`, the tenant
    in `pieces.tenant`), on a connection of the tables' owner; committed when `commit` and
    it succeeded, else rolled back."""
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET LOCAL ROLE {ident(role)}")
            cur.execute("SELECT set_config('pieces.tenant', %s, true)", (str(tenant),))
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else None
            outcome = Outcome(cur.rowcount, rows, None)
        conn.commit() if commit else conn.rollback()
        return outcome
    except psycopg2.Error as exc:
        conn.rollback()
        return Outcome(None, None, exc)


def app_may(admin_conn, table, privilege) -> bool:
    return fetch_one(admin_conn, "SELECT has_table_privilege(%s, %s, %s)",
                     (APP, table, privilege))[0]


@pytest.fixture
def raw(db_url):
    """A connection of the tables' owner, in transactions (run_as sets the role)."""
    conn = connect(db_url)
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture
def tenant_tables(admin_conn):
    tables = tenant_tables_of(admin_conn)
    assert KNOWN_TENANT_TABLES <= set(tables), tables  # the catalog query finds them
    return tables


def _audit_rows(admin_conn, company, count):
    with admin_conn.cursor() as cur:
        for _ in range(count):
            cur.execute("INSERT INTO audit_log (company_guid, entity_type, entity_guid, action,"
                        " actor, rows_affected) VALUES (%s, 'piece', %s, 'delete', 'seed', 1)",
                        (str(company), str(uuid.uuid4())))


@pytest.fixture
def two_tenants(admin_conn, seed, tenant, other_tenant, tenant_tables):
    """Tenant A (`tenant`) and B (`other_tenant`) with the rows SEEDED says, written as the
    owner. Returns (A, B)."""
    missing = set(tenant_tables) - set(SEEDED)
    assert not missing, f"tenant tables with no seed in this test: {sorted(missing)}"
    seed.tree(tenant, pieces_per_assembly=SEEDED["pieces"][0])
    seed.tree(other_tenant, pieces_per_assembly=SEEDED["pieces"][1])
    _audit_rows(admin_conn, tenant, SEEDED["audit_log"][0])
    _audit_rows(admin_conn, other_tenant, SEEDED["audit_log"][1])
    for table in tenant_tables:
        counts = (len(owner_rows(admin_conn, table, tenant)),
                  len(owner_rows(admin_conn, table, other_tenant)))
        assert counts == SEEDED[table], (table, counts)
    return tenant, other_tenant


def fresh_copy(admin_conn, table, row: dict) -> str:
    """`row` as JSON, made a new row: a new guid, a suffix on text columns of unique keys."""
    copy = dict(row)
    if "guid" in copy:
        copy["guid"] = str(uuid.uuid4())
    for column in unique_text_columns(admin_conn, table):
        copy[column] = f"{copy[column]}-copy-{uuid.uuid4().hex[:8]}"
    return json.dumps(copy)


def insert_statement(admin_conn, table) -> str:
    columns = ", ".join(ident(c) for c in insertable_columns(admin_conn, table))
    return (f"INSERT INTO {ident(table)} ({columns}) SELECT {columns}"
            f" FROM json_populate_record(NULL::{ident(table)}, %s::json)")


def by_key(admin_conn, table) -> str:
    """A WHERE clause matching the rows whose primary key is in the JSON array %s."""
    key = ", ".join(ident(c) for c in primary_key(admin_conn, table))
    return (f"({key}) IN (SELECT {key}"
            f" FROM json_populate_recordset(NULL::{ident(table)}, %s::json))")


# --- 1. the policies, as the catalog holds them ------------------------------------------------

def test_the_policies_are_exactly_the_expected_list(admin_conn):
    found = query(admin_conn, """
        SELECT tablename::text, policyname::text, permissive, roles::text[], cmd, qual,
               with_check
        FROM pg_policies WHERE schemaname = 'public' ORDER BY tablename, policyname""")
    assert [tuple(row) for row in found] == EXPECTED_POLICIES


def test_every_tenant_table_has_rls_enabled_forced_and_tenant_isolation(admin_conn,
                                                                         tenant_tables):
    """Found from the catalog: a new table with a company_guid and no policy fails here."""
    problems = {}
    for table in tenant_tables:
        enabled, forced = fetch_one(admin_conn, "SELECT relrowsecurity, relforcerowsecurity"
                                                " FROM pg_class WHERE oid = %s::regclass",
                                    (table,))
        policies = query(admin_conn, """
            SELECT policyname::text, permissive, roles::text[], cmd, qual, with_check
            FROM pg_policies WHERE schemaname = 'public' AND tablename = %s
              AND roles && ARRAY['pieces_app', 'public']::name[]""", (table,))
        expected = [("tenant_isolation", "PERMISSIVE", [APP], "ALL", TENANT, TENANT)]
        if not (enabled and forced) or [tuple(p) for p in policies] != expected:
            problems[table] = {"enabled": enabled, "forced": forced,
                               "policies for pieces_app": policies}
    assert not problems, problems


# --- 2. every policy, by behaviour -------------------------------------------------------------

def test_select_sees_only_the_tenants_own_rows(raw, admin_conn, tenant_tables, two_tenants):
    a, b = two_tenants
    problems = []
    for table in tenant_tables:
        t = ident(table)
        # Positive control: every row of A, and only A's, with no tenant predicate at all.
        seen = run_as(raw, a, f"SELECT company_guid::text, count(*) FROM {t} GROUP BY 1")
        if seen.error or seen.rows != [(str(a), SEEDED[table][0])]:
            problems.append((table, "A sees", str(seen)))
        theirs = run_as(raw, a, f"SELECT count(*) FROM {t} WHERE company_guid = %s", (str(b),))
        if theirs.error or theirs.rows != [(0,)]:
            problems.append((table, "A sees B's rows by company_guid", str(theirs)))
        keys = json.dumps(owner_rows(admin_conn, table, b))
        by_pk = run_as(raw, a, f"SELECT count(*) FROM {t} WHERE {by_key(admin_conn, table)}",
                       (keys,))
        if by_pk.error or by_pk.rows != [(0,)]:
            problems.append((table, "A sees B's rows by primary key", str(by_pk)))
        # The same statement in B's transaction finds them: the key lookup itself works.
        control = run_as(raw, b, f"SELECT count(*) FROM {t} WHERE {by_key(admin_conn, table)}",
                         (keys,))
        if control.error or control.rows != [(SEEDED[table][1],)]:
            problems.append((table, "B sees its own rows by primary key", str(control)))
    assert not problems, problems


def test_insert_for_another_tenant_is_refused(raw, admin_conn, tenant_tables, two_tenants):
    a, b = two_tenants
    problems = []
    for table in tenant_tables:
        before = owner_rows(admin_conn, table, b)
        insert = insert_statement(admin_conn, table)
        theirs = run_as(raw, a, insert, (fresh_copy(admin_conn, table, before[0]),),
                        commit=True)
        own = run_as(raw, a, insert,
                     (fresh_copy(admin_conn, table, owner_rows(admin_conn, table, a)[0]),))
        if app_may(admin_conn, table, "INSERT"):
            if not theirs.refused_by_rls:
                problems.append((table, "insert for B", str(theirs)))
            if own.error or own.rowcount != 1:  # positive control, rolled back
                problems.append((table, "insert for A", str(own)))
        elif not (theirs.permission_denied and own.permission_denied):
            problems.append((table, "insert without the privilege", str(theirs), str(own)))
        if owner_rows(admin_conn, table, b) != before:
            problems.append((table, "B's rows changed"))
    assert not problems, problems


def test_update_of_another_tenants_rows_changes_nothing(raw, admin_conn, tenant_tables,
                                                         two_tenants):
    a, b = two_tenants
    problems = []
    for table in tenant_tables:
        t = ident(table)
        before = owner_rows(admin_conn, table, b)
        mine = owner_rows(admin_conn, table, a)
        attacks = {
            "in place": run_as(raw, a, f"UPDATE {t} SET company_guid = company_guid"
                                       f" WHERE company_guid = %s", (str(b),), commit=True),
            "by key": run_as(raw, a, f"UPDATE {t} SET company_guid = company_guid"
                                     f" WHERE {by_key(admin_conn, table)}",
                             (json.dumps(before),), commit=True),
            "taken over": run_as(raw, a, f"UPDATE {t} SET company_guid = %s"
                                         f" WHERE company_guid = %s", (str(a), str(b)),
                                 commit=True),
        }
        # Positive controls, rolled back: A's own row by key, and every row A can see.
        own = run_as(raw, a, f"UPDATE {t} SET company_guid = company_guid"
                             f" WHERE {by_key(admin_conn, table)}", (json.dumps(mine[:1]),))
        everything = run_as(raw, a, f"UPDATE {t} SET company_guid = company_guid")
        given_away = run_as(raw, a, f"UPDATE {t} SET company_guid = %s"
                                    f" WHERE {by_key(admin_conn, table)}",
                            (str(b), json.dumps(mine[:1])), commit=True)
        if app_may(admin_conn, table, "UPDATE"):
            for name, outcome in attacks.items():
                if outcome.error or outcome.rowcount != 0:
                    problems.append((table, f"update of B's rows {name}", str(outcome)))
            if own.error or own.rowcount != 1:
                problems.append((table, "update of A's own row", str(own)))
            if everything.error or everything.rowcount != SEEDED[table][0]:
                problems.append((table, "update of every visible row", str(everything)))
            if not given_away.refused_by_rls:
                problems.append((table, "moving A's row to B", str(given_away)))
        else:
            for name, outcome in {**attacks, "own": own, "everything": everything,
                                  "given away": given_away}.items():
                if not outcome.permission_denied:
                    problems.append((table, f"update ({name}) without the privilege",
                                     str(outcome)))
        if owner_rows(admin_conn, table, b) != before:
            problems.append((table, "B's rows changed"))
        if owner_rows(admin_conn, table, a) != mine:
            problems.append((table, "A's rows changed"))
    assert not problems, problems


def test_delete_of_another_tenants_rows_changes_nothing(raw, admin_conn, tenant_tables,
                                                         two_tenants):
    a, b = two_tenants
    problems = []
    for table in tenant_tables:
        t = ident(table)
        before = owner_rows(admin_conn, table, b)
        attacks = [
            run_as(raw, a, f"DELETE FROM {t} WHERE company_guid = %s", (str(b),), commit=True),
            run_as(raw, a, f"DELETE FROM {t} WHERE {by_key(admin_conn, table)}",
                   (json.dumps(before),), commit=True),
        ]
        for outcome in attacks:
            refused_or_nothing = outcome.permission_denied or (
                outcome.error is None and outcome.rowcount == 0)
            if not refused_or_nothing:
                problems.append((table, "delete of B's rows", str(outcome)))
            if not app_may(admin_conn, table, "DELETE") and not outcome.permission_denied:
                problems.append((table, "delete without the privilege", str(outcome)))
        if owner_rows(admin_conn, table, b) != before:
            problems.append((table, "B's rows changed"))
    assert not problems, problems


# --- 3. privileges -----------------------------------------------------------------------------

@pytest.mark.parametrize("role", [APP, PROBE])
def test_the_service_roles_cannot_read_service_keys(raw, admin_conn, tenant, role):
    outcome = run_as(raw, tenant, "SELECT secret FROM service_keys", role=role)
    assert outcome.permission_denied, str(outcome)
    assert "service_keys" in str(outcome.error)
    assert fetch_one(admin_conn, "SELECT has_any_column_privilege(%s, 'service_keys', 'SELECT')",
                     (role,))[0] is False


def test_pieces_app_cannot_change_any_policy(raw, tenant, tenant_tables):
    problems = []
    for table in tenant_tables:
        t = ident(table)
        for statement in (
                f"CREATE POLICY sneak ON {t} TO pieces_app USING (true) WITH CHECK (true)",
                f"CREATE POLICY sneak ON {t} AS RESTRICTIVE FOR SELECT USING (true)",
                f"ALTER POLICY tenant_isolation ON {t} USING (true) WITH CHECK (true)",
                f"ALTER POLICY tenant_isolation ON {t} TO public",
                f"DROP POLICY tenant_isolation ON {t}",
                f"ALTER TABLE {t} DISABLE ROW LEVEL SECURITY",
                f"ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY",
                f"ALTER TABLE {t} OWNER TO pieces_app"):
            outcome = run_as(raw, tenant, statement)  # rolled back whatever happens
            if outcome.error is None or outcome.error.pgcode != INSUFFICIENT_PRIVILEGE:
                problems.append((statement, str(outcome)))
    assert not problems, problems


def test_pieces_app_owns_nothing(admin_conn):
    for catalog, owner in (("pg_class", "relowner"), ("pg_proc", "proowner"),
                           ("pg_type", "typowner"), ("pg_namespace", "nspowner")):
        owned = query(admin_conn, f"SELECT oid FROM {catalog} WHERE {owner} = %s::regrole",
                      (APP,))
        assert owned == [], (catalog, owned)
    # Across the cluster: every database, and the shared objects (databases, tablespaces).
    owned = query(admin_conn, "SELECT dbid, classid::regclass::text, objid FROM pg_shdepend"
                              " WHERE refclassid = 'pg_authid'::regclass"
                              " AND refobjid = %s::regrole AND deptype = 'o'", (APP,))
    assert owned == []


def test_pieces_probe_owns_only_pieces_guid_owners(admin_conn):
    owned = query(admin_conn, f"SELECT o.identity FROM ({_SHDEPEND_HERE}) d,"
                              " pg_identify_object(d.classid, d.objid, d.objsubid) o",
                  {"role": PROBE, "deptype": "o"})
    assert owned == [(GUID_OWNERS,)]
    elsewhere = query(admin_conn, "SELECT DISTINCT classid::regclass::text FROM pg_shdepend"
                                  " WHERE refclassid = 'pg_authid'::regclass"
                                  " AND refobjid = %s::regrole AND deptype = 'o'", (PROBE,))
    assert elsewhere == [("pg_proc",)]  # other databases of the server: its function there


@pytest.mark.parametrize("role", [APP, PROBE])
def test_the_grants_of_the_service_roles_are_exactly_the_expected_list(admin_conn, role):
    found = query(admin_conn, _ACLS, {"role": role})
    assert {(kind, identity, privilege) for kind, identity, privilege, *_ in found} \
        == EXPECTED_GRANTS[role]
    assert [row[:3] for row in found if row[3]] == []  # nothing grantable
    # The catalogs read above are all there are: pg_shdepend records every object whose ACL
    # names the role (its own objects aside).
    recorded = set(query(admin_conn, _SHDEPEND_HERE, {"role": role, "deptype": "a"}))
    owned = set(query(admin_conn, _SHDEPEND_HERE, {"role": role, "deptype": "o"}))
    assert {tuple(row[4:]) for row in found} - owned == recorded


def test_what_public_may_do_in_the_public_schema(admin_conn):
    found = query(admin_conn, """
        WITH acls (classid, objid, objsubid, acl) AS (
            SELECT 'pg_class'::regclass, oid, 0,
                   coalesce(relacl, acldefault(CASE relkind WHEN 'S' THEN 's'
                                                            ELSE 'r' END::"char", relowner))
            FROM pg_class WHERE relnamespace = 'public'::regnamespace
            UNION ALL SELECT 'pg_class'::regclass, attrelid, attnum::int, attacl
            FROM pg_attribute
            WHERE attacl IS NOT NULL AND attrelid IN (
                SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
            UNION ALL SELECT 'pg_proc'::regclass, oid, 0,
                   coalesce(proacl, acldefault('f', proowner))
            FROM pg_proc WHERE pronamespace = 'public'::regnamespace
            UNION ALL SELECT 'pg_namespace'::regclass, oid, 0,
                   coalesce(nspacl, acldefault('n', nspowner))
            FROM pg_namespace WHERE nspname = 'public'
        )
        SELECT o.type, o.identity, a.privilege_type
        FROM acls
        CROSS JOIN LATERAL aclexplode(acls.acl) AS a
        CROSS JOIN LATERAL pg_identify_object(acls.classid, acls.objid, acls.objsubid) AS o
        WHERE a.grantee = 0""")
    assert set(found) == EXPECTED_PUBLIC_GRANTS


@pytest.mark.parametrize("role", [APP, PROBE])
def test_the_service_roles_are_plain_members_of_nothing(admin_conn, role):
    attributes = fetch_one(admin_conn, "SELECT rolsuper, rolcanlogin, rolbypassrls,"
                                       " rolcreaterole, rolcreatedb, rolreplication"
                                       " FROM pg_roles WHERE rolname = %s", (role,))
    assert attributes == (False,) * 6
    member_of = query(admin_conn, "SELECT roleid::regrole::text FROM pg_auth_members"
                                  " WHERE member = %s::regrole", (role,))
    assert member_of == []


# --- 4. the change-feed token key --------------------------------------------------------------

# A feed token (domain/changes.py), written out here: base64url without padding of a payload
# of 43 bytes (version 1, level code, has-position flag: one byte each; the tenant, 16; the
# change_xid, 8, big-endian; the guid, 16) and the first 16 bytes of its HMAC-SHA256.
PAYLOAD_BYTES, MAC_BYTES = 43, 16


def stored_key(conn) -> bytes:
    (secret,) = fetch_one(conn, "SELECT secret FROM service_keys WHERE name = 'change_token'")
    return bytes(secret)


def token_parts(token: str) -> tuple[bytes, bytes]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == PAYLOAD_BYTES + MAC_BYTES, token
    return raw[:PAYLOAD_BYTES], raw[PAYLOAD_BYTES:]


def signed_with(token: str, key: bytes) -> bool:
    payload, mac = token_parts(token)
    return hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES])


def sign(payload: bytes, key: bytes) -> str:
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def migrated(url):
    migration_runner.migrate(url, echo=lambda *_: None)
    return url


def test_the_token_key_is_at_least_32_bytes(admin_conn):
    key = stored_key(admin_conn)
    assert len(key) >= 32
    assert len(set(key)) > 8, key.hex()  # not a run of one byte


def test_two_new_databases_get_different_keys(new_database, admin_conn):
    keys = []
    for url in (migrated(new_database()), migrated(new_database())):
        conn = connect(url)
        try:
            keys.append(stored_key(conn))
        finally:
            conn.close()
    assert all(len(key) >= 32 for key in keys)
    assert keys[0] != keys[1]
    assert stored_key(admin_conn) not in keys


def changes_eventually(caller, count, *, since, timeout_s=10.0) -> list:
    """The page from `since` once it holds `count` rows: the feed serves a committed row
    only once every transaction writing on the server when it committed has ended, and
    other runs share the server."""
    deadline = time.monotonic() + timeout_s
    while True:
        changes = ok(caller.get(FEED, since=since))["changes"]
        if len(changes) >= count or time.monotonic() > deadline:
            return changes
        time.sleep(0.05)


def test_feed_tokens_are_signed_with_the_key_in_the_database(as_tenant, seed, tenant,
                                                             admin_conn):
    seed.tree(tenant, pieces_per_assembly=2)
    caller = as_tenant(tenant, "Operator")
    key = stored_key(admin_conn)
    token = ok(caller.get(FEED))["next"]
    payload, _ = token_parts(token)
    assert signed_with(token, key)
    assert payload[0] == 1 and payload[3:19] == tenant.bytes
    # A token made here, at the beginning of the same feed, signed with the database's key:
    # the service takes it; signed with any other key, it does not.
    beginning = payload[:2] + b"\x00" + tenant.bytes + bytes(8) + bytes(16)
    assert len(changes_eventually(caller, 2, since=sign(beginning, key))) == 2
    response = caller.get(FEED, since=sign(beginning, os.urandom(32)))
    body = assert_error(response, 422, "Validation error: since")
    assert body["errors"] == {"since": ["Not a valid token for this feed."]}


def test_a_rotated_key_takes_effect_in_a_new_app(new_database, app_factory, tenant):
    """The key is cached per app (app.extensions, read once on first use): a running app
    keeps the old one, as the README's "UPDATE the row, restart" says; a new app, in this
    process as after a restart, reads the new one."""
    url = migrated(new_database())
    admin = connect(url)
    admin.autocommit = True
    try:
        Seeder(admin).tree(tenant, pieces_per_assembly=2)
        old_key = stored_key(admin)
        running = app_factory(config=make_config(url))
        before = Caller(running.test_client(), tenant, "Operator")
        old_token = ok(before.get(FEED))["next"]
        assert signed_with(old_token, old_key)

        new_key = os.urandom(32)
        with admin.cursor() as cur:
            cur.execute("UPDATE service_keys SET secret = %s WHERE name = 'change_token'",
                        (psycopg2.Binary(new_key),))
            assert cur.rowcount == 1
        ok(before.get(FEED, since=old_token))  # the running app: still the old key

        restarted = app_factory(config=make_config(url))
        after = Caller(restarted.test_client(), tenant, "Operator")
        body = assert_error(after.get(FEED, since=old_token), 422, "Validation error: since")
        assert body["errors"] == {"since": ["Not a valid token for this feed."]}
        new_token = ok(after.get(FEED))["next"]
        assert signed_with(new_token, new_key) and not signed_with(new_token, old_key)
        ok(after.get(FEED, since=new_token))
    finally:
        admin.close()
