"""The `pieces-service` command (also `python -m pieces_service.cli`).

    pieces-service migrate      apply pending migrations
    pieces-service demo-data    load the demo tenants (a no-op when they are there)
    pieces-service token --company <uuid> --role <Role> [--sub S] [--ttl-seconds N]

`migrate` and `demo-data` use `DATABASE_URL`, else the `pieces` database of the embedded
server under .local/. `token` signs with `PIECES_JWT_SECRET`, else the development secret
that `make run` keeps in .local/jwt-secret. Any error is one line on stderr and a non-zero
exit status, never a traceback. See docs/running.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Mapping, Sequence

import jwt
import psycopg2
from sqlalchemy.engine import URL

from . import embedded
from .auth import Role
from .config import ConfigError, JWTSettings, jwt_settings_from_env, database_url

PROG = "pieces-service"
EMBEDDED_DATABASE = "pieces"
DEV_SECRET_FILE = embedded.LOCAL_DIR / "jwt-secret"
DEFAULT_TOKEN_TTL_SECONDS = 8 * 3600
MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600


class CommandError(Exception):
    """A failure to report as one line on stderr."""


def open_database(env: Mapping[str, str]) -> tuple[URL, object | None, str]:
    """The database to work on: `DATABASE_URL`, else the embedded server's `pieces` database
    (started if needed). Returns (url, embedded server handle or None, description). Keep the
    handle while using the database: the embedded server stops when its last holder exits."""
    raw = env.get("DATABASE_URL", "").strip()
    if raw:
        url = database_url(raw)
        return url, None, url.set(drivername="postgresql").render_as_string(hide_password=True)
    server = embedded.start()
    url = database_url(embedded.database_url(server, EMBEDDED_DATABASE))
    return url, server, f"embedded PostgreSQL in {embedded.PGDATA} (database {EMBEDDED_DATABASE})"


def read_dev_secret(path: Path = DEV_SECRET_FILE) -> str | None:
    """The development secret `make run` generated, or None when there is none."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def signing_settings(env: Mapping[str, str],
                     dev_secret_file: Path = DEV_SECRET_FILE) -> tuple[JWTSettings, str]:
    """The HS256 settings to sign tokens with and where the secret came from: the
    environment's `PIECES_JWT_*` variables, with the development secret standing in for an
    unset `PIECES_JWT_SECRET`. Raises `CommandError` when no secret is available."""
    env = dict(env)
    source = "PIECES_JWT_SECRET"
    if env.get("PIECES_JWT_PUBLIC_KEY", "").strip():
        if not env.get("PIECES_JWT_SECRET", "").strip():
            raise CommandError("PIECES_JWT_PUBLIC_KEY is configured: this service only verifies "
                               "tokens; mint them with the issuer's private key")
    elif not env.get("PIECES_JWT_SECRET", "").strip():
        secret = read_dev_secret(dev_secret_file)
        if secret is None:
            raise CommandError(f"PIECES_JWT_SECRET is not set and there is no development "
                               f"secret in {dev_secret_file} (`make run` creates one)")
        env["PIECES_JWT_SECRET"] = secret
        source = f"development secret in {dev_secret_file}"
    try:
        return jwt_settings_from_env(env), source
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def mint_token(settings: JWTSettings, *, company_guid: uuid.UUID, role: Role,
               subject: str = "local-dev",
               ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS) -> str:
    """An HS256 token the service accepts: sub, exp, company_guid, role, and aud/iss when
    the settings require them."""
    if settings.algorithms != ("HS256",):
        raise CommandError("only an HS256 secret can mint tokens")
    claims = {
        "sub": subject,
        "exp": int(time.time()) + ttl_seconds,
        "company_guid": str(company_guid),
        "role": role.value,
    }
    if settings.audience:
        claims["aud"] = settings.audience
    if settings.issuer:
        claims["iss"] = settings.issuer
    return jwt.encode(claims, settings.key, algorithm="HS256")


def _cmd_migrate(args, env) -> None:
    from .migrate import migrate

    url, _server, where = open_database(env)  # the handle keeps the embedded server up
    print(f"migrating {where}")
    applied = migrate(url)
    print(f"{len(applied)} migration(s) applied" if applied else "already up to date")


def _cmd_demo_data(args, env) -> None:
    from . import demo
    from .migrate import connect

    url, _server, where = open_database(env)
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.pieces') IS NOT NULL")
            if not cur.fetchone()[0]:
                raise CommandError(f"{where} is not migrated; run `{PROG} migrate` first")
        conn.rollback()
        loaded = demo.load(conn)
    finally:
        conn.close()
    if loaded:
        for tenant in loaded:
            print(f"loaded {tenant.pieces} pieces for {tenant.name} ({tenant.company_guid})")
    else:
        print("demo data already present; nothing loaded")


def _cmd_token(args, env) -> None:
    settings, source = signing_settings(env)
    if source != "PIECES_JWT_SECRET":
        print(f"{PROG}: using the {source} (PIECES_JWT_SECRET is not set)", file=sys.stderr)
    print(mint_token(settings, company_guid=args.company, role=args.role, subject=args.sub,
                     ttl_seconds=args.ttl_seconds))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a pointer to --help), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown role {text!r} (one of {', '.join(r.value for r in Role)})") from None


def _ttl(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TOKEN_TTL_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of seconds from 1 to {MAX_TOKEN_TTL_SECONDS}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="pieces_service local and operator commands.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    commands.add_parser(
        "migrate", help="apply pending migrations (DATABASE_URL, else the embedded server)",
    ).set_defaults(run=_cmd_migrate)
    commands.add_parser(
        "demo-data", help="load the demo tenants (skipped when already loaded)",
    ).set_defaults(run=_cmd_demo_data)
    token = commands.add_parser(
        "token", help="print a signed HS256 bearer token",
        description="Print an HS256 token signed with PIECES_JWT_SECRET (else the development "
                    "secret of `make run`), with aud/iss when PIECES_JWT_AUDIENCE/ISSUER are set.")
    token.add_argument("--company", required=True, type=_uuid, metavar="UUID",
                       help="the tenant (company_guid claim)")
    token.add_argument("--role", required=True, type=_role, metavar="ROLE",
                       help=f"one of {', '.join(r.value for r in Role)}")
    token.add_argument("--sub", default="local-dev", help="the subject (default: local-dev)")
    token.add_argument("--ttl-seconds", type=_ttl, default=DEFAULT_TOKEN_TTL_SECONDS,
                       metavar="N", help=f"lifetime (default: {DEFAULT_TOKEN_TTL_SECONDS})")
    token.set_defaults(run=_cmd_token)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        args.run(args, env)
    except (CommandError, ConfigError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        print(f"{PROG}: database error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (OSError, subprocess.SubprocessError) as exc:  # e.g. the embedded server failed
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
