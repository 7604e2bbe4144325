"""Swagger UI's own files, served by the service from the pinned `swagger-ui-bundle` package,
so that the docs page works where the service runs, with no internet (no CDN).

The files' URL carries the Swagger UI version, so a browser may keep them for a year
(`immutable`): a new version is a new URL. They need no token, like the page itself (the
public paths in the app factory).
"""
from __future__ import annotations

from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from .extensions import abort

# The docs page, under the API prefix (flask-smorest's OPENAPI_SWAGGER_UI_PATH).
PAGE_PATH = "docs"
# Relative to the page (…/docs), so the files are found wherever the page is served from;
# the package's folder name is the version ("swagger-ui-4.15.5"), hence the URL's too.
ASSETS_URL = f"{PAGE_PATH}/assets/{swagger_ui_path.name}/"
# Only what flask-smorest's page loads, each with its media type.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
}
ONE_YEAR_S = 365 * 24 * 3600

blp = Blueprint("swagger_ui", __name__)


@blp.get(f"/{ASSETS_URL}<name>")
def asset(name: str):
    """One of Swagger UI's files; anything else is a 404 (no listing, no other path)."""
    mimetype = ASSETS.get(name)
    if mimetype is None:
        abort(404, f"No Swagger UI file named {name!r}.")
    response = send_from_directory(swagger_ui_path, name, mimetype=mimetype,
                                   max_age=ONE_YEAR_S)
    response.cache_control.immutable = True
    return response
