"""GET /api/v1/changes/{projects,components,assemblies,pieces}: the change feed."""
from __future__ import annotations

from flask import Response, request
from flask.views import MethodView

from ...auth import READ_ROLES, require_roles
from ...catalogue import LEVELS, Level
from ...domain import changes
from ...web.extensions import Blueprint, ErrorSchema
from ...web.links import next_link
from .. import examples
from .schemas import CHANGE_PAGES, ChangesArgs

blp = Blueprint("changes", __name__, url_prefix="/api/v1/changes",
                description="Change feeds: every write of a tenant's rows, commit-safe.")

JSON = "application/json"
LINK = {"Link": {"description": 'The next poll: `<url>; rel="next"`',
                 "schema": {"type": "string"}}}


def _register(level: Level) -> None:
    endpoint = f"{level.name}_changes"
    text = (
        f"Changes of {level.plural}\n\n"
        f"The tenant's {level.plural} written since the `since` token (none: from the "
        "beginning): inserts, updates, soft deletes (the row with `is_active: false`, its "
        "tombstone) and restores, each in full, oldest change first, at most `limit` a "
        "page. Poll again with `next` (also the `Link: rel=\"next\"` header); a page with "
        "fewer than `limit` rows means you are caught up for now. Commit-safe: a write "
        "that commits after a page was read is on a later page, never skipped. A token of "
        "another feed, tenant or a forged one: 422."
    )

    @blp.route(f"/{level.plural}", endpoint=endpoint)
    class ChangesView(MethodView):
        @blp.operation(f"list{level.title}Changes", text)
        @blp.arguments(ChangesArgs(), location="query", as_kwargs=True)
        @blp.response(200, CHANGE_PAGES[level.name], content_type=JSON,
                      example=examples.CHANGES[level.name], headers=LINK)
        @blp.alt_response(403, schema=ErrorSchema, description="company_guid not accessible")
        @require_roles(READ_ROLES)
        def get(self, *, principal, **query):
            page = changes.feed_page(principal, level, changes.ChangesQuery(**query))
            # The token is base64url: nothing in it needs escaping in JSON or a URL.
            body = f'{{"changes": {page.body}, "next": "{page.next_token}"}}'
            response = Response(body, status=200, mimetype=JSON)
            args = request.args.to_dict()
            args["since"] = page.next_token
            response.headers["Link"] = next_link(args)
            return response

    ChangesView.__name__ = f"{level.title}Changes"


for _level in LEVELS.values():
    _register(_level)
