"""Bearer tokens to a frozen `Principal`, and the role table of SPEC §2.

Tokens are verified with PyJWT against the algorithms pinned by the configured key
(HS256 for a secret; RS256 or ES256 for a public key; with a JWKS, the key the token's
`kid` names and the one algorithm of its type: jwks.py), never the token's own `alg`.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from functools import wraps

import jwt
from flask import current_app, g, request

from . import jwks
from .config import JWTSettings
from .web.extensions import abort


class Role(str, Enum):
    SYSTEM_ADMIN = "SystemAdmin"
    COMPANY_ADMIN = "CompanyAdmin"
    PROJECT_MANAGER = "ProjectManager"
    OPERATOR = "Operator"
    INTEGRATION = "Integration"


READ_ROLES = frozenset(Role)
DELETE_RESTORE_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.COMPANY_ADMIN, Role.PROJECT_MANAGER})
SYNC_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.COMPANY_ADMIN, Role.INTEGRATION})
AUDIT_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.COMPANY_ADMIN})

REQUIRED_CLAIMS = ("sub", "exp", "company_guid", "role")
_MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class Principal:
    """Who is calling: subject, tenant and role, taken from a verified token."""

    subject: str
    company_guid: uuid.UUID
    role: Role

    @property
    def is_system_admin(self) -> bool:
        return self.role is Role.SYSTEM_ADMIN


class InvalidToken(Exception):
    """The credentials are missing, malformed, badly signed or expired (401)."""


class UnknownRole(Exception):
    """The token is valid but names no role we know (403)."""


def decode_token(token: str, settings: JWTSettings) -> Principal:
    """Verify `token` and return its principal; raise `InvalidToken` or `UnknownRole`."""
    return _verify(token, settings)[0]


def _jwks_key(token: str, settings: JWTSettings) -> jwks.SigningKey:
    """The published key the token's `kid` names (jwks.py); `InvalidToken` when it names
    none we know, even after the bounded refresh."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise InvalidToken("Invalid token") from None
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("Token header has no 'kid'")
    key = jwks.keys_for(settings).key(kid) if len(kid) <= jwks.MAX_KID_LENGTH else None
    if key is None:
        raise InvalidToken("Token signing key is not known")
    return key


def _verify(token: str, settings: JWTSettings
            ) -> tuple[Principal, float, "jwks.SigningKey | None"]:
    """The principal of `token`, the time until which it stays valid, and the JWKS key that
    verified it (None for a configured secret or public key)."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidToken("Token too long")
    options = {"require": list(REQUIRED_CLAIMS)}
    if settings.audience:
        options["require"].append("aud")
    if settings.issuer:
        options["require"].append("iss")
    signing_key = _jwks_key(token, settings) if settings.jwks_url else None
    try:
        claims = jwt.decode(
            token,
            signing_key.key if signing_key else settings.key,
            algorithms=[signing_key.algorithm] if signing_key else list(settings.algorithms),
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("Token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"Token is missing the '{exc.claim}' claim") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("Token audience is not accepted") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("Token issuer is not accepted") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("Token is not yet valid") from None
    except jwt.PyJWTError:
        raise InvalidToken("Invalid token") from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise InvalidToken("Token 'sub' claim must be a string of 1 to 255 characters")
    company = claims["company_guid"]
    try:
        company_guid = uuid.UUID(company) if isinstance(company, str) else None
    except ValueError:
        company_guid = None
    if company_guid is None:
        raise InvalidToken("Token 'company_guid' claim must be a UUID")
    try:
        role = Role(claims["role"])
    except (ValueError, TypeError):
        raise UnknownRole() from None
    principal = Principal(subject=subject, company_guid=company_guid, role=role)
    return principal, float(claims["exp"]) + settings.leeway_seconds, signing_key


class VerifiedTokens:
    """Tokens already verified by this process, until they expire.

    Callers reuse one token for many requests; verifying its signature each time is a few
    percent of a request. A token enters only after full verification and is served from here
    only while `exp` (plus the configured leeway) has not passed, exactly as PyJWT would
    accept it, and, with a JWKS, while the key that verified it is still published: a key
    removed from the document takes its tokens with it at the next refresh. Bounded: the
    oldest entries go first.
    """

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float, jwks.JwksKeys | None,
                                       jwks.SigningKey | None]] = {}
        self._lock = threading.Lock()

    def principal(self, token: str, settings: JWTSettings) -> Principal:
        entry = self._entries.get(token)
        if entry is not None and time.time() < entry[1] \
                and (entry[2] is None or entry[2].published(entry[3])):
            return entry[0]
        principal, valid_until, signing_key = _verify(token, settings)
        key_set = jwks.keys_for(settings) if signing_key else None
        with self._lock:
            self._entries.pop(token, None)
            while len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token] = (principal, valid_until, key_set, signing_key)
        return principal


def init_app(app) -> None:
    """Give `app` its cache of verified tokens."""
    app.extensions["pieces_tokens"] = VerifiedTokens()


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise InvalidToken("Not authenticated")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate() -> Principal:
    """The caller's principal, verified once per request and kept on `g`."""
    principal = g.get("principal")
    if principal is None:
        try:
            tokens: VerifiedTokens = current_app.extensions["pieces_tokens"]
            principal = tokens.principal(_bearer_token(), current_app.config["PIECES"].jwt)
        except InvalidToken as exc:
            abort(401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'
                                          if request.headers.get("Authorization")
                                          else "Bearer"})
        except UnknownRole:
            abort(403, "Unknown role.")
        g.principal = principal
    return principal


def require_roles(roles: frozenset[Role]):
    """Decorate a view so that it runs only for an authenticated caller with one of `roles`;
    the principal is passed as the keyword argument `principal`."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = authenticate()
            if principal.role not in roles:
                abort(403, "Your role does not allow this action.")
            return view(*args, principal=principal, **kwargs)

        return wrapper

    return decorator
