"""SPEC §2: row-level security is a second wall behind the tenant predicates."""
from __future__ import annotations

import uuid

import psycopg2
import pytest

from helpers import fetch_one
from pieces_service import db, errors

TABLES = ("projects", "components", "assemblies", "pieces", "audit_log")
INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture
def two_tenants(seed, tenant, other_tenant):
    return seed.tree(tenant, 2), seed.tree(other_tenant, 3)


def test_the_test_database_user_could_see_everything(admin_conn):
    """Otherwise the tests below would pass for the wrong reason."""
    assert fetch_one(admin_conn, "SELECT rolsuper OR rolbypassrls FROM pg_roles"
                                 " WHERE rolname = current_user")[0] is True


@pytest.mark.parametrize("table", ["projects", "components", "assemblies", "pieces"])
def test_query_without_tenant_predicate_sees_only_its_tenant(app, two_tenants, tenant,
                                                             other_tenant, table):
    with app.app_context(), db.transaction(tenant, readonly=True) as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == "pieces_app"
        companies = conn.exec_driver_sql(f"SELECT company_guid FROM {table}").scalars().all()
    assert companies and set(companies) == {tenant}
    with app.app_context(), db.transaction(other_tenant, readonly=True) as conn:
        companies = conn.exec_driver_sql(f"SELECT company_guid FROM {table}").scalars().all()
    assert companies and set(companies) == {other_tenant}


def test_set_tenant_switches_the_visible_rows(app, two_tenants, tenant, other_tenant):
    mine, theirs = two_tenants
    with app.app_context(), db.transaction(tenant, readonly=True) as conn:
        db.set_tenant(conn, other_tenant)
        guids = set(conn.exec_driver_sql("SELECT guid FROM pieces").scalars())
    assert guids == set(theirs.pieces)


def test_guid_lookup_of_another_tenants_row_finds_nothing(app, two_tenants, tenant):
    _, theirs = two_tenants
    with app.app_context(), db.transaction(tenant, readonly=True) as conn:
        found = conn.exec_driver_sql("SELECT count(*) FROM pieces WHERE guid = %(g)s",
                                     {"g": theirs.pieces[0]}).scalar()
    assert found == 0


def test_no_tenant_set_sees_nothing(app, two_tenants):
    with app.app_context(), db.transaction(uuid.uuid4(), readonly=True) as conn:
        conn.exec_driver_sql("SELECT set_config('pieces.tenant', '', true)")
        assert conn.exec_driver_sql("SELECT count(*) FROM pieces").scalar() == 0


def test_insert_for_another_tenant_is_refused(app, admin_conn, two_tenants, tenant, other_tenant):
    _, theirs = two_tenants
    before = fetch_one(admin_conn, "SELECT count(*) FROM projects WHERE company_guid = %s",
                       (str(other_tenant),))[0]
    with app.app_context():
        with pytest.raises(errors.DatabaseFailure) as caught:
            with db.transaction(tenant, readonly=False) as conn:
                conn.exec_driver_sql(
                    "INSERT INTO projects (guid, company_guid, code) VALUES (%(g)s, %(c)s, 'X')",
                    {"g": uuid.uuid4(), "c": other_tenant})
    assert caught.value.__cause__.orig.pgcode == INSUFFICIENT_PRIVILEGE
    assert "row-level security" in str(caught.value.__cause__.orig)
    after = fetch_one(admin_conn, "SELECT count(*) FROM projects WHERE company_guid = %s",
                      (str(other_tenant),))[0]
    assert after == before


def test_update_of_another_tenants_rows_touches_nothing(app, admin_conn, two_tenants, tenant):
    _, theirs = two_tenants
    with app.app_context(), db.transaction(tenant, readonly=False) as conn:
        result = conn.exec_driver_sql("UPDATE pieces SET barcode = 'HACKED' WHERE guid = %(g)s",
                                      {"g": theirs.pieces[0]})
        assert result.rowcount == 0
        everything = conn.exec_driver_sql("UPDATE projects SET name = 'HACKED'")
        assert everything.rowcount == 1  # only this tenant's one project
    assert fetch_one(admin_conn, "SELECT barcode FROM pieces WHERE guid = %s",
                     (str(theirs.pieces[0]),))[0] is None
    assert fetch_one(admin_conn, "SELECT name FROM projects WHERE guid = %s",
                     (str(theirs.project),))[0] is None


def test_moving_a_row_to_another_tenant_is_refused(app, admin_conn, two_tenants, tenant,
                                                   other_tenant):
    mine, _ = two_tenants
    with app.app_context():
        with pytest.raises(errors.DatabaseFailure) as caught:
            with db.transaction(tenant, readonly=False) as conn:
                conn.exec_driver_sql("UPDATE projects SET company_guid = %(o)s"
                                     " WHERE guid = %(g)s", {"o": other_tenant, "g": mine.project})
    assert caught.value.__cause__.orig.pgcode == INSUFFICIENT_PRIVILEGE
    assert fetch_one(admin_conn, "SELECT company_guid FROM projects WHERE guid = %s",
                     (str(mine.project),))[0] == tenant


def test_pieces_app_cannot_delete_rows(app, admin_conn, two_tenants, tenant):
    mine, _ = two_tenants
    with app.app_context():
        with pytest.raises(errors.DatabaseFailure) as caught:
            with db.transaction(tenant, readonly=False) as conn:
                conn.exec_driver_sql("DELETE FROM pieces WHERE guid = %(g)s",
                                     {"g": mine.pieces[0]})
    assert caught.value.__cause__.orig.pgcode == INSUFFICIENT_PRIVILEGE
    assert fetch_one(admin_conn, "SELECT count(*) FROM pieces WHERE guid = %s",
                     (str(mine.pieces[0]),))[0] == 1


def test_readonly_transaction_refuses_writes(app, two_tenants, tenant):
    with app.app_context():
        with pytest.raises(errors.DatabaseFailure) as caught:
            with db.transaction(tenant, readonly=True) as conn:
                conn.exec_driver_sql("UPDATE projects SET name = 'x'")
    assert caught.value.__cause__.orig.pgcode == "25006"  # read_only_sql_transaction


def test_pieces_app_cannot_bypass_rls(admin_conn):
    row = fetch_one(admin_conn, "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles"
                                " WHERE rolname = 'pieces_app'")
    assert row == (False, False, False)
    with admin_conn.cursor() as cur:
        cur.execute("SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity,"
                    " c.relforcerowsecurity FROM pg_class c"
                    " WHERE c.relname = ANY(%s) AND c.relkind = 'r'"
                    " AND c.relnamespace = 'public'::regnamespace", (list(TABLES),))
        tables = {name: (owner, enabled, forced) for name, owner, enabled, forced in cur}
    assert set(tables) == set(TABLES)
    for name, (owner, enabled, forced) in tables.items():
        assert owner != "pieces_app", name
        assert enabled and forced, name
    member_of = fetch_one(admin_conn,
                          "SELECT array_agg(r.rolname) FROM pg_auth_members m"
                          " JOIN pg_roles r ON r.oid = m.roleid"
                          " WHERE m.member = 'pieces_app'::regrole")[0]
    assert not member_of, member_of


def test_tenant_setting_does_not_leak_to_the_next_transaction(app_factory, two_tenants, tenant):
    single = app_factory(db_pool_size=1, db_max_overflow=0)
    with single.app_context():
        with db.transaction(tenant, readonly=True) as conn:
            first_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            assert conn.exec_driver_sql("SELECT count(*) FROM pieces").scalar() == 2
        with db.get_engine().connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() == first_pid
            setting, user = conn.exec_driver_sql(
                "SELECT current_setting('pieces.tenant', true), current_user").one()
            assert setting in (None, "")
            assert user != "pieces_app"
            conn.exec_driver_sql("BEGIN; SET LOCAL ROLE pieces_app")
            try:
                assert conn.exec_driver_sql("SELECT count(*) FROM pieces").scalar() == 0
            finally:
                conn.exec_driver_sql("ROLLBACK")


def test_tenant_setting_does_not_leak_after_an_error(app_factory, two_tenants, tenant,
                                                     other_tenant):
    single = app_factory(db_pool_size=1, db_max_overflow=0)
    with single.app_context():
        with pytest.raises(errors.DatabaseFailure):
            with db.transaction(tenant, readonly=True) as conn:
                conn.exec_driver_sql("SELECT 1/0")
        with db.transaction(other_tenant, readonly=True) as conn:
            companies = set(conn.exec_driver_sql("SELECT company_guid FROM pieces").scalars())
    assert companies == {other_tenant}


# db.reads(): the one-message read path of the list page and the detail.

def read_one(tenant, statement, params):
    with db.reads() as reads:
        return reads.fetch_one(tenant, statement, params)

def test_read_one_runs_as_pieces_app_read_only_in_its_tenant(app, two_tenants, tenant,
                                                              other_tenant):
    with app.app_context():
        row = read_one(tenant, "SELECT current_user, current_setting('transaction_read_only'),"
                                  " current_setting('TimeZone'),"
                                  " (SELECT array_agg(DISTINCT company_guid) FROM pieces)", {})
        assert row[:3] == ("pieces_app", "on", "UTC")
        assert row[3] == [tenant]  # no tenant predicate: RLS alone
        theirs = read_one(other_tenant, "SELECT array_agg(DISTINCT company_guid)"
                                           " FROM pieces", {})[0]
    assert theirs == [other_tenant]


def test_read_one_refuses_writes(app, two_tenants, tenant):
    with app.app_context(), pytest.raises(errors.DatabaseFailure) as caught:
        read_one(tenant, "UPDATE projects SET name = 'x' RETURNING 1", {})
    assert caught.value.__cause__.pgcode == "25006"  # read_only_sql_transaction


def test_read_one_statement_keeps_its_own_tenant_parameter(app, two_tenants, tenant):
    """The setup's tenant travels under its own name: the statement's %(tenant)s is its own."""
    with app.app_context():
        row = read_one(tenant, "SELECT %(tenant)s::text, count(*) FROM pieces"
                                  " WHERE company_guid = %(tenant)s", {"tenant": tenant})
    assert row == (str(tenant), 2)


@pytest.mark.parametrize("fails", [False, True])
def test_read_one_leaves_nothing_on_the_pooled_connection(app_factory, two_tenants, tenant,
                                                          fails):
    """Role, tenant and timeout end with the implicit transaction, after success or error."""
    single = app_factory(db_pool_size=1, db_max_overflow=0)
    with single.app_context():
        if fails:
            with pytest.raises(errors.DatabaseFailure) as caught:
                read_one(tenant, "SELECT 1/0", {})
            assert isinstance(caught.value.__cause__, psycopg2.errors.DivisionByZero)
        else:
            assert read_one(tenant, "SELECT count(*) FROM pieces", {})[0] == 2
        with db.get_engine().connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT current_user, current_setting('pieces.tenant', true),"
                " current_setting('statement_timeout'), current_setting('transaction_read_only'),"
                " pg_current_xact_id_if_assigned() IS NULL").one()
    assert row[0] != "pieces_app"
    assert row[1] in (None, "")
    assert row[2] == "0"
    assert row[3] == "off"
    assert row[4] is True
