"""`python -m devtools`: the development commands of a source checkout (docs/running.md).

    python -m devtools migrate      apply pending migrations (`make migrate`)
    python -m devtools demo-data    load the demo tenants (`make demo-data`); a no-op when
                                    they are there
    python -m devtools token --company <uuid> --role <Role> [--sub S] [--ttl-seconds N]
    python -m devtools client [--output DIR]
                                    generate the typed Python client from the OpenAPI
                                    document (`make client`; devtools/client.py)

`migrate` and `token` are the installed `pieces-service` command's, with local fallbacks:
the database is `DATABASE_URL`, else the `pieces` database of the embedded server under
.local/ (started if needed); tokens are signed with `PIECES_JWT_SECRET`, else the
development secret that `make run` keeps in .local/jwt-secret. Errors as there: one line on
stderr and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping, Sequence

from sqlalchemy.engine import URL

from pieces_service import cli
from pieces_service.cli import CommandError
from pieces_service.config import database_url, url_text

from . import client as typed_client
from . import embedded

PROG = "python -m devtools"
EMBEDDED_DATABASE = "pieces"
DEV_SECRET_FILE = embedded.LOCAL_DIR / "jwt-secret"


def open_database(env: Mapping[str, str]) -> tuple[URL, object | None, str]:
    """The database to work on: `DATABASE_URL`, else the embedded server's `pieces` database
    (started if needed). Returns (url, embedded server handle or None, description). Keep the
    handle while using the database: the embedded server stops when its last holder exits."""
    if env.get("DATABASE_URL", "").strip():
        return cli.open_database(env)
    server = embedded.start()
    url = database_url(embedded.database_url(server, EMBEDDED_DATABASE))
    return url, server, f"embedded PostgreSQL in {embedded.PGDATA} (database {EMBEDDED_DATABASE})"


def raw_url(url: URL) -> str:
    """`url` as a `DATABASE_URL` value: postgresql://, with its password."""
    return url_text(url)


def read_dev_secret(path: Path = DEV_SECRET_FILE) -> str | None:
    """The development secret `make run` generated, or None when there is none."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def with_dev_secret(env: Mapping[str, str],
                    path: Path = DEV_SECRET_FILE) -> tuple[dict[str, str], str | None]:
    """A copy of `env` to sign tokens with: when none of `PIECES_JWT_SECRET`,
    `PIECES_JWT_PUBLIC_KEY` and `PIECES_JWT_JWKS_URL` is set, the development secret in
    `path` stands in for the secret. Returns (env, a note saying so, else None); raises
    `CommandError` when there is no development secret."""
    env = dict(env)
    if any(env.get(name, "").strip() for name in (
            "PIECES_JWT_SECRET", "PIECES_JWT_PUBLIC_KEY", "PIECES_JWT_JWKS_URL")):
        return env, None
    secret = read_dev_secret(path)
    if secret is None:
        raise CommandError(f"PIECES_JWT_SECRET is not set and there is no development "
                           f"secret in {path} (`make run` creates one)")
    env["PIECES_JWT_SECRET"] = secret
    return env, f"using the development secret in {path} (PIECES_JWT_SECRET is not set)"


def _cmd_migrate(args, env) -> None:
    env = dict(env)
    url, server, where = open_database(env)  # the handle keeps the embedded server up
    if server is not None:
        print(f"DATABASE_URL is not set: using the {where}")
        env["DATABASE_URL"] = raw_url(url)
    cli._cmd_migrate(args, env)  # the operator's migrate, on that database


def _cmd_demo_data(args, env) -> None:
    from pieces_service.migrate import connect

    from . import demo

    url, _server, where = open_database(env)
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.pieces') IS NOT NULL")
            if not cur.fetchone()[0]:
                raise CommandError(f"{where} is not migrated; run `make migrate` first")
    finally:
        conn.close()
    loaded = demo.load(url)
    if loaded:
        for tenant in loaded:
            print(f"loaded {tenant.pieces} pieces for {tenant.name} ({tenant.company_guid})")
    else:
        print("demo data already present; nothing loaded")


def _cmd_token(args, env) -> None:
    env, note = with_dev_secret(env, DEV_SECRET_FILE)  # looked up now (tests replace it)
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    cli._cmd_token(args, env)


def _cmd_client(args, env) -> None:
    project = typed_client.generate(args.output)
    print(f"generated {project / typed_client.PACKAGE} from {args.output / 'openapi.json'}")


def build_parser():
    parser, commands = cli.new_parser(
        PROG, "Development commands: pieces-service's, with the embedded PostgreSQL and the "
              "development secret of `make run` as fallbacks, and the demo data.")
    cli.add_migrate_command(
        commands, _cmd_migrate,
        help="apply pending migrations (DATABASE_URL, else the embedded server)")
    commands.add_parser(
        "demo-data", help="load the demo tenants (skipped when already loaded)",
    ).set_defaults(run=_cmd_demo_data)
    cli.add_token_command(
        commands, _cmd_token,
        description="Print an HS256 token signed with PIECES_JWT_SECRET (else the development "
                    "secret of `make run`), with aud/iss when PIECES_JWT_AUDIENCE/ISSUER are set.")
    client = commands.add_parser(
        "client", help="generate the typed Python client from the OpenAPI document")
    client.add_argument("--output", type=Path, default=typed_client.DEFAULT_OUTPUT,
                        metavar="DIR", help="where to write openapi.json and the client "
                                            "project (default: build/client)")
    client.set_defaults(run=_cmd_client)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; return the exit status."""
    return cli.run_command(build_parser(), argv, env, PROG)


if __name__ == "__main__":
    sys.exit(main())
