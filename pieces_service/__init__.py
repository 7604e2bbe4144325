"""pieces_service: tenant-isolated HTTP service for production pieces."""
from __future__ import annotations

import sys
from typing import Mapping

from flask import Flask, request

from .config import Config, ConfigError
from .web import swagger_ui

API_PREFIX = "/api/v1"
# Reachable without a token: the API description and its viewer (the page and its files).
_PUBLIC_API_PATHS = (f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/{swagger_ui.PAGE_PATH}")


def create_app(config: Config | None = None, env: Mapping[str, str] | None = None) -> Flask:
    """Build the application. `config` (tests) or the environment (`env`, else os.environ)
    supplies the settings; nothing here touches the database."""
    config = config or Config.from_env(env)
    app = Flask(__name__, static_folder=None)
    app.config.update(
        PIECES=config,
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        API_TITLE="pieces_service",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH=swagger_ui.PAGE_PATH,
        OPENAPI_SWAGGER_UI_URL=swagger_ui.ASSETS_URL,
        JSON_SORT_KEYS=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.json.sort_keys = False

    from . import db
    from .web import admission, conditional, consistency, health, observability
    from .api import register_blueprints
    from . import auth
    from .web.extensions import Api

    # First: every request, even one refused by authentication below, gets an id and a log line.
    observability.init_app(app)
    # With tracing on, every round trip to PostgreSQL is a span (web/tracing.py).
    exporter = app.extensions["pieces_tracing"]
    db.init_app(app, cursor_factory=exporter.cursor_factory() if exporter else None)
    auth.init_app(app)
    api = Api(app, spec_kwargs={
        "components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearerAuth": []}],
        "extra_plugins": [conditional.ConditionalGetDoc(), consistency.ConsistencyDoc()],
    })
    register_blueprints(api)
    app.register_blueprint(health.blp)
    app.register_blueprint(swagger_ui.blp, url_prefix=API_PREFIX)
    # After observability, so its after_request hook (which runs first) hands the final
    # status (304) to the request log and metrics.
    conditional.init_app(app, API_PREFIX)

    @app.before_request
    def _authenticate_api_calls():
        if _is_api_call(request.path):
            auth.authenticate()

    # After authentication: a slot per tenant (web/admission.py), before any database work.
    admission.init_app(app, _is_api_call)
    return app


def _is_api_call(path: str) -> bool:
    """An API operation (token required, admitted), not the API's document or viewer."""
    return path.startswith(API_PREFIX + "/") and not path.startswith(_PUBLIC_API_PATHS)


def config_from_env_or_exit(env: Mapping[str, str] | None = None) -> Config:
    """`Config.from_env(env)`, with the JWKS fetched when `PIECES_JWT_JWKS_URL` is set (the
    keys every token is verified with: a start that cannot have them fails; jwks.py), or,
    when either fails, one line on stderr (`pieces_service: configuration error: …`) and
    exit status 78 (EX_CONFIG), no traceback."""
    from . import jwks

    try:
        config = Config.from_env(env)
        if config.jwt.jwks_url:
            jwks.keys_for(config.jwt).load()
        return config
    except (ConfigError, jwks.JwksError) as exc:
        print(f"pieces_service: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(78) from None
