"""Every configuration variable of the service, read from the environment in one place.

`Config.from_env()` validates everything at start and raises `ConfigError` with a one-line
message naming the variable, so a misconfigured deployment fails loudly before serving.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import quote, urlsplit

from psycopg2.extensions import make_dsn

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""


def database_url(raw: str, variable: str = "DATABASE_URL") -> URL:
    """Parse a user's PostgreSQL URL and pin the psycopg2 driver.

    Users write plain `postgresql://…` (or `postgres://…`); SQLAlchemy 2.1 would map that to
    psycopg 3, so the driver is named here. A multi-host URL (docs/high-availability.md) may
    list its hosts as libpq does, `postgresql://u@h1:5432,h2:5432/db`, or as SQLAlchemy does,
    `postgresql://u@/db?host=h1:5432&host=h2:5432`; the first is rewritten to the second,
    which SQLAlchemy's psycopg2 dialect turns into libpq's `host=h1,h2 port=5432,5432`.
    """
    try:
        url = make_url(_hosts_to_query(raw.strip()))
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise ConfigError(f"{variable} is not a valid database URL") from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(f"{variable} must be a postgresql:// URL")
    if driver not in ("", "psycopg2"):
        raise ConfigError(f"{variable} must name the psycopg2 driver or none: {url.drivername}")
    return url.set(drivername="postgresql+psycopg2")


_NETLOC_HOSTS = re.compile(r"^(?P<scheme>[^:/]+://)(?P<user>[^@/]*@)?(?P<hosts>[^/@?]*,[^/?]*)"
                           r"(?P<rest>[/?].*)?$", re.DOTALL)


def _hosts_to_query(raw: str) -> str:
    """libpq's `scheme://user@h1:p1,h2:p2/db?…` as SQLAlchemy's `…@/db?host=h1:p1&host=h2:p2&…`
    (which `make_url` can read); any other URL unchanged."""
    match = _NETLOC_HOSTS.match(raw)
    if match is None:
        return raw
    rest = match.group("rest") or "/"
    path, _, query = rest.partition("?")
    hosts = "&".join(f"host={quote(host, safe=':')}"
                     for host in match.group("hosts").split(","))
    return (f"{match.group('scheme')}{match.group('user') or ''}{path or '/'}?{hosts}"
            + (f"&{query}" if query else ""))


def libpq_dsn(url: URL) -> str:
    """`url` as a libpq connection string, for everything that connects without the engine:
    psycopg2.connect (migrations, admin work, tests), psql, pgbench.

    Built by SQLAlchemy's psycopg2 dialect, the one that builds the engine's connections, so
    both read a URL alike: several hosts (`?host=h1:5432&host=h2:5432`, or a comma list)
    become libpq's `host=h1,h2 port=5432,5432`; `target_session_attrs` and the other query
    parameters pass through; a password is quoted as libpq needs."""
    url = url.set(drivername="postgresql+psycopg2")
    _args, params = url.get_dialect()().create_connect_args(url)
    return make_dsn(**{key: str(value) for key, value in params.items()})


def url_text(url: URL) -> str:
    """`url` as a `DATABASE_URL` value (what `database_url` reads back): postgresql://, with
    its password, several hosts as `?host=h1:5432&host=h2:5432`."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def replica_urls(raw: str) -> tuple[URL, ...]:
    """`PIECES_DATABASE_REPLICA_URLS`: comma-separated postgresql:// URLs, one host each (a
    libpq multi-host URL has commas of its own). Messages never repeat a URL (passwords)."""
    if not raw.strip():
        return ()
    parts = [part.strip() for part in raw.split(",")]
    if not all(parts):
        raise ConfigError("PIECES_DATABASE_REPLICA_URLS has an empty entry")
    return tuple(database_url(part, f"PIECES_DATABASE_REPLICA_URLS entry {index}")
                 for index, part in enumerate(parts, 1))


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not 0 < value <= 1:
        raise ConfigError(f"{name} must be above 0 and at most 1, got {value}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE + _FALSE:
        raise ConfigError(f"{name} must be on or off, got {env[name]!r}")
    return raw in _TRUE


def _log_level(env: Mapping[str, str]) -> str:
    raw = env.get("PIECES_LOG_LEVEL", "").strip().upper() or "INFO"
    if raw not in LOG_LEVELS:
        raise ConfigError(f"PIECES_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def _default_workers() -> int:
    return max(2, os.cpu_count() or 1)


# The algorithms a JWKS key may have, each pinned by the key's type (jwks.py).
JWKS_ALGORITHMS = ("RS256", "ES256")


@dataclass(frozen=True)
class JWTSettings:
    """How bearer tokens are verified. `algorithms` is pinned by the kind of key: the
    configured `key`, or, with `jwks_url`, each key of the JWKS document by its type
    (`key` is then None; pieces_service/jwks.py)."""

    key: str | bytes | None
    algorithms: tuple[str, ...]
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: int = 0
    jwks_url: str | None = None
    # An unknown `kid` fetches the JWKS again at most this often per process.
    jwks_min_refresh_s: int = 30


def _jwks_url(raw: str) -> str:
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) \
            and (parts.port or 0) >= 0  # .port raises on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError("PIECES_JWT_JWKS_URL must be an http:// or https:// URL")
    return raw


def jwt_settings_from_env(env: Mapping[str, str]) -> JWTSettings:
    """The token verification settings from `env`; raise `ConfigError` naming the bad variable."""
    secret = env.get("PIECES_JWT_SECRET", "").strip()
    public_pem = env.get("PIECES_JWT_PUBLIC_KEY", "").strip()
    jwks_url = env.get("PIECES_JWT_JWKS_URL", "").strip()
    audience = env.get("PIECES_JWT_AUDIENCE", "").strip() or None
    issuer = env.get("PIECES_JWT_ISSUER", "").strip() or None
    leeway = _int(env, "PIECES_JWT_LEEWAY_SECONDS", 0, 0, 300)
    min_refresh = _int(env, "PIECES_JWKS_MIN_REFRESH_S", 30, 1, 3600)
    if sum(map(bool, (secret, public_pem, jwks_url))) > 1:
        raise ConfigError("set only one of PIECES_JWT_SECRET, PIECES_JWT_PUBLIC_KEY and "
                          "PIECES_JWT_JWKS_URL")
    if jwks_url:
        return JWTSettings(None, JWKS_ALGORITHMS, audience, issuer, leeway,
                           jwks_url=_jwks_url(jwks_url), jwks_min_refresh_s=min_refresh)
    if secret:
        if len(secret) < 32:
            raise ConfigError("PIECES_JWT_SECRET must be at least 32 characters")
        return JWTSettings(secret, ("HS256",), audience, issuer, leeway)
    if public_pem:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(public_pem.replace("\\n", "\n").encode())
        except ValueError:
            raise ConfigError("PIECES_JWT_PUBLIC_KEY is not a PEM public key") from None
        if isinstance(key, rsa.RSAPublicKey):
            algorithms: tuple[str, ...] = ("RS256",)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algorithms = ("ES256",)
        else:
            raise ConfigError("PIECES_JWT_PUBLIC_KEY must be an RSA or EC (P-256) public key")
        return JWTSettings(key, algorithms, audience, issuer, leeway)
    raise ConfigError(
        "no token verification key: set PIECES_JWT_SECRET (HS256), PIECES_JWT_PUBLIC_KEY "
        "(RS256/ES256) or PIECES_JWT_JWKS_URL (keys by kid)"
    )


_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_from_env(env: Mapping[str, str]) -> bool:
    """Whether requests and their round trips are exported as OpenTelemetry spans
    (web/tracing.py): when an OTLP endpoint is set, unless `OTEL_SDK_DISABLED=true` or
    `OTEL_TRACES_EXPORTER=none`. The SDK reads these and every other `OTEL_*` variable
    itself; here they are only checked, so that a start that cannot trace fails."""
    endpoint = next((name for name in _OTLP_ENDPOINTS if env.get(name, "").strip()), None)
    if endpoint is None or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if exporter == "none":
        return False
    if exporter != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER must be otlp or none, got {exporter!r}")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol:
            if protocol != "http/protobuf":
                raise ConfigError(f"{name} must be http/protobuf (the otel extra exports "
                                  f"over OTLP/HTTP), got {protocol!r}")
            break
    try:
        installed = importlib.util.find_spec("opentelemetry.sdk") is not None \
            and importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is not None
    except ModuleNotFoundError:
        installed = False
    if not installed:
        raise ConfigError(f"{endpoint} is set but OpenTelemetry is not installed: install "
                          "pieces_service[otel], or unset it")
    return True


@dataclass(frozen=True)
class Config:
    """The service's settings. See the README's configuration table."""

    database_url: URL
    jwt: JWTSettings = field(repr=False)
    db_pool_size: int = 10
    db_max_overflow: int = 2
    db_pool_timeout_seconds: int = 5
    db_connect_timeout_seconds: int = 3
    # The one-message reads as server-side prepared statements (README, "Prepared
    # statements"); off behind a pooler in transaction mode (PgBouncer).
    db_prepared_statements: bool = True
    statement_timeout_ms: int = 5000
    cascade_timeout_ms: int = 25000
    idle_in_transaction_timeout_ms: int = 10000
    max_body_bytes: int = 16 * 1024 * 1024
    # The export's own time limit (GET /api/v1/pieces/export), not statement_timeout.
    export_timeout_s: int = 300
    sync_max_items: int = 1000
    # Read replicas (README, "Read replicas"): none means every statement goes to the primary.
    replica_urls: tuple[URL, ...] = ()
    replica_max_lag_ms: int = 5000
    replica_check_ms: int = 1000
    replica_retry_ms: int = 5000
    # Admission control, per worker process (web/admission.py, docs/operations.md "Sizing").
    admission_slots: int = 8
    tenant_share: float = 0.5
    heavy_slots: int = 1
    long_slots: int = 2
    tenant_long_slots: int = 1
    admission_wait_ms: int = 500
    tenant_queue: int = 32
    queue_timeout_ms: int = 2000
    send_timeout_s: int = 30
    # OpenTelemetry spans over OTLP/HTTP (the OTEL_* variables, web/tracing.py).
    tracing: bool = False
    debug: bool = False
    log_level: str = "INFO"
    # Read by gunicorn.conf.py only; here so that they are validated with the rest.
    port: int = 8000
    web_concurrency: int = field(default_factory=_default_workers)
    threads: int = 64

    def check_sizing(self) -> "Config":
        """Refuse threads or a pool too small for the admission slots (docs/operations.md,
        "Sizing"); `from_env` applies it (tests may build smaller configs on purpose)."""
        slots = self.admission_slots + self.heavy_slots + self.long_slots
        if self.threads < slots + 2:
            raise ConfigError(
                f"PIECES_THREADS ({self.threads}) must be at least PIECES_ADMISSION_SLOTS + "
                f"PIECES_HEAVY_SLOTS + PIECES_LONG_SLOTS + 2 ({slots + 2}): every slot "
                "needs a thread, and refusals need one free")
        if self.db_pool_size + self.db_max_overflow < slots:
            raise ConfigError(
                f"PIECES_DB_POOL_SIZE + PIECES_DB_MAX_OVERFLOW "
                f"({self.db_pool_size + self.db_max_overflow}) must be at least "
                f"PIECES_ADMISSION_SLOTS + PIECES_HEAVY_SLOTS + PIECES_LONG_SLOTS "
                f"({slots}): each admitted request holds one connection")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        """Read and validate every variable; raise `ConfigError` naming the first bad one."""
        env = os.environ if env is None else env
        raw_url = env.get("DATABASE_URL", "").strip()
        if not raw_url:
            raise ConfigError("DATABASE_URL is not set (e.g. postgresql://user@host:5432/pieces)")
        return cls(
            database_url=database_url(raw_url),
            jwt=jwt_settings_from_env(env),
            db_pool_size=_int(env, "PIECES_DB_POOL_SIZE", 10, 1, 100),
            db_max_overflow=_int(env, "PIECES_DB_MAX_OVERFLOW", 2, 0, 100),
            db_pool_timeout_seconds=_int(env, "PIECES_DB_POOL_TIMEOUT_SECONDS", 5, 1, 120),
            db_connect_timeout_seconds=_int(env, "PIECES_DB_CONNECT_TIMEOUT_SECONDS", 3, 1, 60),
            db_prepared_statements=_bool(env, "PIECES_DB_PREPARED_STATEMENTS", True),
            statement_timeout_ms=_int(env, "PIECES_STATEMENT_TIMEOUT_MS", 5000, 100, 600000),
            cascade_timeout_ms=_int(env, "PIECES_CASCADE_TIMEOUT_MS", 25000, 100, 600000),
            idle_in_transaction_timeout_ms=_int(
                env, "PIECES_IDLE_IN_TRANSACTION_TIMEOUT_MS", 10000, 100, 600000
            ),
            max_body_bytes=_int(env, "PIECES_MAX_BODY_BYTES", 16 * 1024 * 1024, 1024, 1 << 30),
            export_timeout_s=_int(env, "PIECES_EXPORT_TIMEOUT_S", 300, 1, 86400),
            replica_urls=replica_urls(env.get("PIECES_DATABASE_REPLICA_URLS", "")),
            replica_max_lag_ms=_int(env, "PIECES_REPLICA_MAX_LAG_MS", 5000, 0, 3600000),
            replica_check_ms=_int(env, "PIECES_REPLICA_CHECK_MS", 1000, 10, 60000),
            replica_retry_ms=_int(env, "PIECES_REPLICA_RETRY_MS", 5000, 10, 600000),
            admission_slots=_int(env, "PIECES_ADMISSION_SLOTS", 8, 1, 1000),
            tenant_share=_fraction(env, "PIECES_TENANT_SHARE", 0.5),
            heavy_slots=_int(env, "PIECES_HEAVY_SLOTS", 1, 1, 1000),
            long_slots=_int(env, "PIECES_LONG_SLOTS", 2, 1, 1000),
            tenant_long_slots=_int(env, "PIECES_TENANT_LONG_SLOTS", 1, 1, 1000),
            admission_wait_ms=_int(env, "PIECES_ADMISSION_WAIT_MS", 500, 0, 60000),
            tenant_queue=_int(env, "PIECES_TENANT_QUEUE", 32, 0, 1000),
            queue_timeout_ms=_int(env, "PIECES_QUEUE_TIMEOUT_MS", 2000, 10, 600000),
            send_timeout_s=_int(env, "PIECES_SEND_TIMEOUT_S", 30, 1, 3600),
            threads=_int(env, "PIECES_THREADS", 64, 1, 1000),
            tracing=tracing_from_env(env),
            debug=env.get("PIECES_DEBUG", "").strip().lower() in ("1", "true", "yes"),
            log_level=_log_level(env),
            port=_int(env, "PORT", 8000, 1, 65535),
            web_concurrency=_int(env, "WEB_CONCURRENCY", _default_workers(), 1, 256),
        ).check_sizing()
