"""The one-message reads as server-side prepared statements (PIECES_DB_PREPARED_STATEMENTS):
the list specialized to the filters a request gives, prepared once per connection, a plan
kept for all values, the same rows as the plain text, the row-level security wall kept under
a generic plan, and a plain-text fallback when a pooler loses them."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import uuid

import pytest

from pieces_service import db
from pieces_service.catalogue import PIECE
from pieces_service.dao import audit as audit_dao
from pieces_service.dao import changes as changes_dao
from pieces_service.dao import narrowed, prepared_for, prepared_read, specialized
from pieces_service.dao import pieces as pieces_dao

# The prepared statements of the connection a read runs on (a view every role may read).
_PREPARED_HERE = ("SELECT coalesce(json_object_agg(name, json_build_array(generic_plans,"
                  " custom_plans)), '{}') FROM pg_prepared_statements")
LIST_STATEMENTS = {"list_pieces": pieces_dao._Q["list_pieces"],
                   "list_pieces_deep": pieces_dao._Q["list_pieces_deep"],
                   "list_validator": pieces_dao._Q["list_validator"]}
# The optional filters of the list's statements, written out here: a request gives some.
LIST_FILTERS = ("project_guid", "component_guid", "assembly_guid", "barcode", "piece_id",
                "after_us")


def _list_args(tree, **overrides):
    return {**dict(tenant=tree.company, project_guid=tree.project, component_guid=None,
                   assembly_guid=None, include_inactive=False, limit=100, offset=0,
                   after=None), **overrides}


def _detail(reads, tree, guid, tenant=None):
    return pieces_dao.get_piece(reads, tenant=tenant or tree.company, guid=guid,
                                include_inactive=False)


def _list_read(args):
    """What `list_pieces` sends for `args`: its statement for the filters given."""
    params = pieces_dao.list_parameters(**args)
    return prepared_for(pieces_dao.list_statement(args["offset"]), params), params


def same_rows(shape, first: tuple, second: tuple) -> bool:
    """Two reads of a list statement agree, but for `horizon`: the snapshot's xmin, which
    any transaction of the server that ends between the two reads moves on."""
    def without_horizon(row):
        return dataclasses.replace(shape(*row), horizon=None)
    return without_horizon(first) == without_horizon(second)


@pytest.fixture
def tree(seed, tenant):
    tree = seed.tree(tenant, 3)
    seed.piece(tenant, tree.project, tree.component, tree.assembly, active=False)
    return tree


def test_specialized_keeps_the_filters_given_and_drops_the_others():
    statement = ("WHERE a = %(t)s\n  AND (%(x)s::uuid IS NULL OR p.x = %(x)s)\n"
                 "  AND (%(after)s::bigint IS NULL\n       OR (p.c, p.g) > (f(%(after)s), %(g)s))")
    assert specialized(statement, frozenset({"x"})) == (
        "WHERE a = %(t)s\n  AND (p.x = %(x)s)\n  AND true")
    assert specialized(statement, frozenset({"after", "unrelated"})) == (
        "WHERE a = %(t)s\n  AND true\n  AND ((p.c, p.g) > (f(%(after)s), %(g)s))")
    with pytest.raises(ValueError, match="unbalanced"):
        specialized("(%(x)s::uuid IS NULL OR (x = 1)", frozenset())


@pytest.mark.parametrize("name", LIST_STATEMENTS)
def test_every_optional_filter_of_the_list_statements_is_specialized(name):
    """A filter written another way would keep its `IS NULL OR` in every shape (and its plan
    would serve only one of its two cases)."""
    statement = LIST_STATEMENTS[name]
    for filter_name in LIST_FILTERS:
        assert f"%({filter_name})s::" in statement
    for given in (frozenset(), frozenset(LIST_FILTERS)):
        assert "IS NULL" not in specialized(statement, given)


def test_positional_text_and_execute_call():
    read = prepared_read("SELECT %(b)s::int + %(a)s::int, %(b)s::int, 100 %% 7")
    assert read.prepare.endswith("AS\nSELECT $1::int + $2::int, $1::int, 100 % 7")
    assert read.execute == f"EXECUTE {read.name}(%(b)s, %(a)s)"
    assert read.name.startswith("pieces_")
    assert prepared_read("SELECT 2").name != read.name  # one name, one text


def test_each_statement_is_prepared_once_per_connection(app_factory, tree):
    """One PREPARE per statement and connection, then EXECUTEs. After its first five custom
    plans PostgreSQL keeps the detail's generic plan (planned no more); for a list shape it
    chooses by cost, which on this small test database keeps custom plans (on the 1M-piece
    bench data set it takes the generic one: BENCHMARKS.md)."""
    app = app_factory()  # its own pool: connections no other test has used
    detail = prepared_read(specialized(pieces_dao._Q["get_piece"], frozenset()))
    listing, _ = _list_read(_list_args(tree))
    with app.app_context(), db.reads() as reads:
        for _ in range(8):
            assert _detail(reads, tree, tree.pieces[0]).body is not None
            assert pieces_dao.list_pieces(reads, **_list_args(tree)).row_count == 3
        (plans,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
    assert set(plans) == {detail.name, listing.name}
    assert sum(plans[listing.name]) == sum(plans[detail.name]) == 8
    assert plans[detail.name][0] >= 1, plans


def test_prepared_and_plain_reads_return_the_same_rows(app, seed, tree, other_tenant):
    """Every shape of the list (each combination of the optional filters, a cursor, a deep
    offset, a count), run past the five custom plans, against the plain text."""
    theirs = seed.tree(other_tenant, 1)
    with app.app_context(), db.reads() as reads:
        first = pieces_dao.list_pieces(reads, **_list_args(tree, limit=2))
    micros, guid = first.last_key.split(" ")
    after = (int(micros), uuid.UUID(guid))
    filters = {"project_guid": tree.project, "component_guid": tree.component,
               "assembly_guid": tree.assembly, "after": after}
    lists = []
    for chosen in itertools.chain.from_iterable(
            itertools.combinations(filters, k) for k in range(len(filters) + 1)):
        lists.append(_list_args(tree, **{"project_guid": None,
                                         **{name: filters[name] for name in chosen}}))
    lists += [_list_args(tree, limit=2), _list_args(tree, include_inactive=True),
              _list_args(tree, project_guid=theirs.project), _list_args(tree, offset=1000),
              _list_args(tree, count_exact=True), _list_args(tree, barcode="none"),
              _list_args(tree, piece_id="none", project_guid=None)]
    details = [(tree.company, tree.pieces[0]), (tree.company, tree.pieces[-1]),
               (tree.company, theirs.pieces[0]), (tree.company, uuid.uuid4())]
    with app.app_context(), db.reads() as reads:
        for args in lists:
            statement, params = _list_read(args)
            for _ in range(7):
                prepared = reads.fetch_one(args["tenant"], statement, params)
            plain = pieces_dao.list_statement(args["offset"])
            assert same_rows(pieces_dao.PiecePage, prepared,
                             reads.fetch_one(args["tenant"], plain, params)), args
            validator = prepared_for(pieces_dao._Q["list_validator"], params)
            for _ in range(7):
                prepared = reads.fetch_one(args["tenant"], validator, params)
            assert same_rows(pieces_dao.PageValidator, prepared, reads.fetch_one(
                args["tenant"], pieces_dao._Q["list_validator"], params)), args
        for company, guid in details:
            params = {"tenant": company, "guid": guid, "include_inactive": False}
            for _ in range(7):
                prepared = reads.fetch_one(company, prepared_read(pieces_dao._Q["get_piece"]),
                                           params)
            assert prepared == reads.fetch_one(company, pieces_dao._Q["get_piece"], params)
    assert prepared[2] is None  # the last one: absent


def test_a_generic_plan_keeps_the_row_level_security_wall(app, tree, other_tenant):
    """The tenant of the RLS policy is read when the plan runs, not when it was made: a
    generic plan made for one tenant shows nothing to another, even when the statement's
    own predicate names the first tenant. (Generic forced here: PostgreSQL chooses by cost,
    and on a small database it may keep the list's custom plans. The EXECUTEs are sent as
    text, after the setup of a plain read: what `OneMessageReads` sends on its prepared path
    is shown on the server by tests/dao/test_server_side_setup.py.)"""
    detail = prepared_read(pieces_dao._Q["get_piece"])
    detail_params = {"tenant": tree.company, "guid": tree.pieces[0], "include_inactive": False}
    listing, list_params = _list_read(_list_args(tree))
    generic = "SET LOCAL plan_cache_mode = force_generic_plan;\n"
    with app.app_context(), db.reads() as reads:
        for _ in range(3):
            assert reads.fetch_one(tree.company, detail, detail_params)[2] is not None
            assert reads.fetch_one(tree.company, listing, list_params)[7] != "[]"
        (before,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
        mine = reads.fetch_one(tree.company, generic + listing.execute, list_params)
        owner, _, body = reads.fetch_one(other_tenant, generic + detail.execute, detail_params)
        page = pieces_dao.PiecePage(*reads.fetch_one(other_tenant, generic + listing.execute,
                                                     list_params))
        (after,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
    assert after[listing.name][0] == before[listing.name][0] + 2  # both ran generic plans
    assert after[detail.name][0] >= 1
    assert pieces_dao.PiecePage(*mine).row_count == 3
    assert body is None and owner == tree.company  # only the owner probe answers
    assert (page.project_found, page.row_count, page.body) == (False, 0, "[]")


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


def test_fields_narrowed_reads_are_sent_as_plain_text(app_factory, tree):
    """A connection holds only the whole representations' statements, never one per
    `fields=` choice."""
    app = app_factory()
    with app.app_context(), db.reads() as reads:
        row = pieces_dao.get_piece(reads, tenant=tree.company, guid=tree.pieces[0],
                                   include_inactive=False, fields=("guid",))
        assert row.body == f'{{"guid":"{tree.pieces[0]}"}}'
        page = pieces_dao.list_pieces(reads, **_list_args(tree), fields=("guid",))
        assert page.row_count == 3
        (plans,) = reads.fetch_one(tree.company, _PREPARED_HERE, {})
    assert plans == {}
    assert narrowed(pieces_dao._Q["get_piece"], pieces_dao.DETAIL_FIELDS, ("guid",)) \
        != pieces_dao._Q["get_piece"]


def test_the_change_feed_and_the_audit_trail_are_prepared_per_shape(app_factory, seed, tenant):
    """Their optional filter (the feed's position, the audit's entity) is specialized like
    the list's; prepared and plain give the same rows."""
    app = app_factory()
    tree = seed.tree(tenant, 2)
    pieces = PIECE
    with app.app_context(), db.reads() as reads:
        first = changes_dao.changes_page(reads, tenant=tenant, level=pieces, after=None,
                                         limit=1)
        xid, guid = first.last_key.split(" ")
        feeds = [changes_dao.parameters(tenant=tenant, after=after, limit=10)
                 for after in (None, (int(xid), uuid.UUID(guid)))]
        audits = [{"tenant": tenant, "entity_guid": entity, "limit": 10, "offset": 0}
                  for entity in (None, tree.pieces[0])]
        for statement, params in [(changes_dao.statement(pieces), p) for p in feeds] + [
                (audit_dao._Q["list_entries"], p) for p in audits]:
            assert "IS NULL" not in prepared_for(statement, params).text
            for _ in range(7):
                prepared = reads.fetch_one(tenant, prepared_for(statement, params), params)
            assert prepared == reads.fetch_one(tenant, statement, params)
        (plans,) = reads.fetch_one(tenant, _PREPARED_HERE, {})
    assert len(plans) == 4 and all(sum(counts) >= 7 for counts in plans.values())
    assert first.row_count == 1
