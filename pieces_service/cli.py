"""The `pieces-service` command (also `python -m pieces_service.cli`): operator commands.

    pieces-service migrate      apply pending migrations to DATABASE_URL
    pieces-service token --company <uuid> --role <Role> [--sub S] [--ttl-seconds N]

`migrate` works on `DATABASE_URL`; `token` signs with `PIECES_JWT_SECRET`. This command
starts no database and reads no local files: the development conveniences (the embedded
PostgreSQL, the development secret, the demo data) are `python -m devtools` in a source
checkout, which builds on the functions here. Any error is one line on stderr and a
non-zero exit status, never a traceback. See docs/running.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from typing import Callable, Mapping, Sequence

import jwt
import psycopg2
from sqlalchemy.engine import URL

from .auth import Role
from .config import ConfigError, JWTSettings, jwt_settings_from_env, database_url

PROG = "pieces-service"
DEFAULT_TOKEN_TTL_SECONDS = 8 * 3600
MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600


class CommandError(Exception):
    """A failure to report as one line on stderr."""


def open_database(env: Mapping[str, str]) -> tuple[URL, None, str]:
    """The database to work on: `DATABASE_URL`. Returns (url, None, description), the shape
    of `devtools.cli.open_database`, whose middle element is the embedded server it started.
    Raises `CommandError` when `DATABASE_URL` is not set."""
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        raise CommandError("DATABASE_URL is not set (for a local embedded PostgreSQL use "
                           "`make migrate` from a source checkout)")
    url = database_url(raw)
    return url, None, url.set(drivername="postgresql").render_as_string(hide_password=True)


def signing_settings(env: Mapping[str, str]) -> JWTSettings:
    """The HS256 settings to sign tokens with: the environment's `PIECES_JWT_*` variables.
    Raises `CommandError` when `PIECES_JWT_SECRET` is not set or not usable."""
    if not env.get("PIECES_JWT_SECRET", "").strip():
        if env.get("PIECES_JWT_JWKS_URL", "").strip():
            raise CommandError("PIECES_JWT_JWKS_URL is configured: the keys are the identity "
                               "provider's JWKS and this service has no private key to sign "
                               "with; get tokens from the identity provider (README, "
                               "\"Testing against a JWKS\")")
        if env.get("PIECES_JWT_PUBLIC_KEY", "").strip():
            raise CommandError("PIECES_JWT_PUBLIC_KEY is configured: this service only verifies "
                               "tokens; mint them with the issuer's private key")
        raise CommandError("PIECES_JWT_SECRET is not set: tokens are signed with the "
                           "service's HS256 secret")
    try:
        return jwt_settings_from_env(env)
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
    from .migrate import MigrationError, migrate

    url, _server, where = open_database(env)  # the handle keeps the embedded server up
    print(f"migrating {where}")
    try:
        applied = migrate(url)
    except MigrationError as exc:  # no migrations shipped, a file refused, a file failed
        raise CommandError(str(exc)) from exc
    print(f"{len(applied)} migration(s) applied" if applied else "already up to date")


def _cmd_token(args, env) -> None:
    settings = signing_settings(env)
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


Command = Callable[[argparse.Namespace, Mapping[str, str]], None]


def new_parser(prog: str, description: str):
    """(parser, its subcommands) with one-line usage errors; add commands with
    `add_migrate_command`, `add_token_command` or `commands.add_parser(…).set_defaults(run=…)`."""
    parser = _Parser(prog=prog, description=description)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    return parser, commands


def add_migrate_command(commands, run: Command, help: str) -> None:
    commands.add_parser("migrate", help=help).set_defaults(run=run)


def add_token_command(commands, run: Command, description: str) -> None:
    token = commands.add_parser("token", help="print a signed HS256 bearer token",
                                description=description)
    token.add_argument("--company", required=True, type=_uuid, metavar="UUID",
                       help="the tenant (company_guid claim)")
    token.add_argument("--role", required=True, type=_role, metavar="ROLE",
                       help=f"one of {', '.join(r.value for r in Role)}")
    token.add_argument("--sub", default="local-dev", help="the subject (default: local-dev)")
    token.add_argument("--ttl-seconds", type=_ttl, default=DEFAULT_TOKEN_TTL_SECONDS,
                       metavar="N", help=f"lifetime (default: {DEFAULT_TOKEN_TTL_SECONDS})")
    token.set_defaults(run=run)


def build_parser() -> argparse.ArgumentParser:
    parser, commands = new_parser(PROG, "pieces_service operator commands.")
    add_migrate_command(commands, _cmd_migrate,
                        help="apply pending migrations to DATABASE_URL (safe to repeat)")
    add_token_command(
        commands, _cmd_token,
        description="Print an HS256 token signed with PIECES_JWT_SECRET, with aud/iss when "
                    "PIECES_JWT_AUDIENCE/ISSUER are set.")
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                env: Mapping[str, str] | None, prog: str) -> int:
    """Parse `argv`, run the chosen command with `env` (else os.environ) and return the
    exit status; errors become one line on stderr, prefixed with `prog`."""
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    try:
        args.run(args, env)
    except (CommandError, ConfigError) as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        print(f"{prog}: database error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (OSError, subprocess.SubprocessError) as exc:  # e.g. devtools' embedded server
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; return the exit status."""
    return run_command(build_parser(), argv, env, PROG)


if __name__ == "__main__":
    sys.exit(main())
