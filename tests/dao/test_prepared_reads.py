"""The one-message reads as server-side prepared statements (PIECES_DB_PREPARED_STATEMENTS):
prepared once per connection, the same rows as the plain text, the row-level security wall
kept under a generic plan, and a plain-text fallback when a pooler loses them."""
from __future__ import annotations

import logging
import uuid

import pytest

from pieces_service import db
from pieces_service.dao import prepared_read
from pieces_service.dao import pieces as pieces_dao

# The prepared statements of the connection a read runs on (a view every role may read).
_PREPARED_HERE = ("SELECT coalesce(json_object_agg(name, json_build_array(generic_plans,"
                  " custom_plans)), '{}') FROM pg_prepared_statements")


def _list_args(tree, **overrides):
    return {**dict(tenant=tree.company, project_guid=tree.project, component_guid=None,
                   assembly_guid=None, include_inactive=False, limit=100, offset=0,
                   after=None), **overrides}


def _detail(reads, tree, guid, tenant=None):
    return pieces_dao.get_piece(reads, tenant=tenant or tree.company, guid=guid,
                                include_inactive=False)


@pytest.fixture
def tree(seed, tenant):
    tree = seed.tree(tenant, 3)
    seed.piece(tenant, tree.project, tree.component, tree.assembly, active=False)
    return tree


def test_positional_text_and_execute_call():
    read = prepared_read("SELECT %(b)s::int + %(a)s::int, %(b)s::int, 100 %% 7",
                         generic_plan=True)
    assert read.prepare.endswith("AS\nSELECT $1::int + $2::int, $1::int, 100 % 7")
    assert read.execute == f"EXECUTE {read.name}(%(b)s, %(a)s)"
    assert read.name.startswith("pieces_")
    assert prepared_read("SELECT 2", generic_plan=True).name != read.name  # one name, one text


def test_each_statement_is_prepared_once_per_connection(app_factory, tree):
    app = app_factory()  # its own pool: connections no other test has used
    detail = prepared_read(pieces_dao._Q["get_piece"], generic_plan=True)
    listing = prepared_read(pieces_dao.list_statement(0), generic_plan=False)
    with app.app_context(), db.reads() as reads:
        for _ in range(8):
            assert _detail(reads, tree, tree.pieces[0]).body is not None
            assert pieces_dao.list_pieces(reads, **_list_args(tree)).row_count == 3
        (plans,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
    # The detail's plan is generic after PostgreSQL's five custom ones; the list's stays
    # planned for each execution's values (plan_cache_mode = force_custom_plan).
    generic, custom = plans[detail.name]
    assert generic + custom == 8 and generic >= 1
    assert plans[listing.name] == [0, 8]


@pytest.mark.parametrize("generic_plan, plans", [(True, [3, 5]), (False, [0, 8])])
def test_a_statement_may_be_planned_for_each_execution(app, tree, generic_plan, plans):
    """PostgreSQL would take a generic plan after five custom ones for this statement (its
    plan is the same for every value); one that must be planned for its values never is."""
    statement = prepared_read(f"SELECT %(n)s::int + 1 AS {'generic' if generic_plan else 'custom'}",
                              generic_plan=generic_plan)
    with app.app_context(), db.reads() as reads:
        for n in range(8):
            assert reads.fetch_one(tree.company, statement, {"n": n}) == (n + 1,)
        (seen,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
    assert seen[statement.name] == plans


def test_prepared_and_plain_reads_return_the_same_rows(app, seed, tree, other_tenant):
    theirs = seed.tree(other_tenant, 1)
    inactive = tree.pieces[-1]
    first = None
    with app.app_context(), db.reads() as reads:
        first = pieces_dao.list_pieces(reads, **_list_args(tree, limit=2))
    key = first.last_key.split(" ")
    after = (int(key[0]), uuid.UUID(key[1]))
    lists = [
        _list_args(tree),
        _list_args(tree, limit=2),
        _list_args(tree, include_inactive=True),
        _list_args(tree, project_guid=None, assembly_guid=tree.assembly),
        _list_args(tree, component_guid=tree.component, after=after),
        _list_args(tree, project_guid=theirs.project),
        _list_args(tree, offset=1000),  # the deep statement
        _list_args(tree, count_exact=True),
    ]
    details = [(tree.company, tree.pieces[0]), (tree.company, inactive),
               (tree.company, theirs.pieces[0]), (tree.company, uuid.uuid4())]
    with app.app_context(), db.reads() as reads:
        for args in lists:
            statement = pieces_dao.list_statement(args["offset"])
            params = pieces_dao.list_parameters(**args)
            for _ in range(7):  # beyond the five executions before a plan may be generic
                prepared = reads.fetch_one(args["tenant"], prepared_read(
                    statement, generic_plan=False), params)
            assert prepared == reads.fetch_one(args["tenant"], statement, params), args
        for company, guid in details:
            params = {"tenant": company, "guid": guid, "include_inactive": False}
            for _ in range(7):
                prepared = reads.fetch_one(company, prepared_read(
                    pieces_dao._Q["get_piece"], generic_plan=True), params)
            assert prepared == reads.fetch_one(company, pieces_dao._Q["get_piece"], params)
    assert prepared[2] is None  # the last one: absent


def test_a_generic_plan_keeps_the_row_level_security_wall(app, tree, other_tenant):
    """The tenant of the RLS policy is read when the plan runs, not when it was made: a
    generic plan made for one tenant shows nothing to another, even when the statement's
    own predicate names the first tenant."""
    guid = tree.pieces[0]
    statement = prepared_read(pieces_dao._Q["get_piece"], generic_plan=True)
    params = {"tenant": tree.company, "guid": guid, "include_inactive": False}
    with app.app_context(), db.reads() as reads:
        for _ in range(8):
            assert reads.fetch_one(tree.company, statement, params)[2] is not None
        (plans,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
        assert plans[statement.name][0] >= 1  # generic by now
        owner, _, body = reads.fetch_one(other_tenant, statement, params)
    assert body is None and owner == tree.company  # only the owner probe answers


def test_a_pooler_that_loses_prepared_statements_gets_plain_text(app_factory, tree, caplog):
    """Behind a pooler in transaction mode the next message may reach a session that never
    prepared the statement: the read is sent again as plain text (no error), and the process
    prepares nothing more."""
    app = app_factory()
    with app.app_context(), db.reads() as reads:
        expected = _detail(reads, tree, tree.pieces[0])
        reads.fetch_one(tree.company, "DEALLOCATE ALL; SELECT 1", {})  # as a pooler would
        with caplog.at_level(logging.WARNING, logger="pieces_service.db"):
            assert _detail(reads, tree, tree.pieces[0]) == expected
        assert reads.fetch_one(tree.company, _PREPARED_HERE, {}) == ({},)
    assert "prepared statements are off in this process" in caplog.text
    with app.app_context(), db.reads() as reads:
        assert _detail(reads, tree, tree.pieces[0]) == expected
        assert pieces_dao.list_pieces(reads, **_list_args(tree)).row_count == 3
        assert reads.fetch_one(tree.company, _PREPARED_HERE, {}) == ({},)


def test_turned_off_nothing_is_prepared(app_factory, tree):
    app = app_factory(db_prepared_statements=False)
    with app.app_context(), db.reads() as reads:
        assert _detail(reads, tree, tree.pieces[0]).body is not None
        assert pieces_dao.list_pieces(reads, **_list_args(tree)).row_count == 3
        assert reads.fetch_one(tree.company, _PREPARED_HERE, {}) == ({},)


def test_fields_narrowed_reads_are_sent_as_plain_text(app, tree):
    """A connection holds only the whole representations' statements, never one per
    `fields=` choice."""
    with app.app_context(), db.reads() as reads:
        row = pieces_dao.get_piece(reads, tenant=tree.company, guid=tree.pieces[0],
                                   include_inactive=False, fields=("guid",))
        assert row.body == f'{{"guid":"{tree.pieces[0]}"}}'
        (plans,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
    narrowed_names = {prepared_read(text, generic_plan=True).name for text in (
        pieces_dao.narrowed(pieces_dao._Q["get_piece"], pieces_dao.DETAIL_FIELDS,
                            ("guid",)),)}
    assert not narrowed_names & set(plans)
