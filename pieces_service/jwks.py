"""Token signing keys from the identity provider's JWKS document (`PIECES_JWT_JWKS_URL`).

Keys rotate without a restart: the document is fetched at start and kept, and fetched
again (each process on its own):
- in the background before its `Cache-Control: max-age` runs out (at 90% of it;
  `DEFAULT_MAX_AGE_S` without one), never more often than every `PIECES_JWKS_MIN_REFRESH_S`
  (also the retry interval while fetches fail);
- when a token names a `kid` the kept document lacks, at most once per
  `PIECES_JWKS_MIN_REFRESH_S`, so tokens with made-up kids cost at most that one fetch;
  meanwhile such a token is simply not verified (401). A background fetch does not hold
  this one back: a key published just after it is still fetched for the first token that
  names it.

When the endpoint is down, or serves a document we refuse, the kept keys stay in use (one
WARNING per outage, one INFO when it is back). Keys are pinned by their type, never by a
token's `alg`: RSA (2048 bits or more) → RS256, EC P-256 → ES256. A document with a
signing key of any other type (an HS256 `oct` secret, P-384, Ed25519), a private key, or a
key without a `kid`, is refused as a whole: at start the service does not start
(`pieces_service.config_from_env_or_exit`); later the kept keys stay. Keys marked
`"use": "enc"` are not for signatures and are skipped.

PyJWT's `PyJWKClient` refetches on every unknown kid and has no background refresh or
outage rule, so the cache is ours; each key is parsed by PyJWT's `PyJWK`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .config import JWTSettings

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 300       # a document without Cache-Control: max-age is kept this long
FETCH_TIMEOUT_S = 5
MAX_DOCUMENT_BYTES = 1 << 20
MAX_KID_LENGTH = 256
MIN_RSA_BITS = 2048
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class JwksError(Exception):
    """The JWKS document could not be fetched or is refused (the message is one line that
    names the variable and never the URL, which may carry credentials)."""


@dataclass(frozen=True, eq=False)
class SigningKey:
    """One published key: its `kid`, the one algorithm its type allows, and the key."""

    kid: str
    algorithm: str
    key: object = field(repr=False)
    jwk: str = field(repr=False)  # its JWK as canonical JSON: an unchanged key keeps its object


def parse_keys(document: bytes) -> dict[str, SigningKey]:
    """The signing keys of a JWKS document by `kid`; raise `JwksError` for a document that
    is not a JWKS or has a key we refuse (see the module's docstring)."""
    try:
        parsed = json.loads(document)
    except ValueError:
        raise JwksError("PIECES_JWT_JWKS_URL did not serve JSON") from None
    entries = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(entries, list):
        raise JwksError("PIECES_JWT_JWKS_URL did not serve a JWKS (an object with \"keys\")")
    keys: dict[str, SigningKey] = {}
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise JwksError(f"PIECES_JWT_JWKS_URL: key {number} is not an object")
        if entry.get("use") == "enc":
            continue  # for encryption, never for a signature
        key = _signing_key(number, entry)
        if key.kid in keys:
            raise JwksError(f"PIECES_JWT_JWKS_URL: kid {key.kid!r} appears twice")
        keys[key.kid] = key
    if not keys:
        raise JwksError("PIECES_JWT_JWKS_URL serves no signing key")
    return keys


def _signing_key(number: int, entry: dict) -> SigningKey:
    kid = entry.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise JwksError(f"PIECES_JWT_JWKS_URL: key {number} has no kid (keys are chosen by "
                        "kid)")
    what = f"PIECES_JWT_JWKS_URL: key {kid!r}"
    kty, crv = entry.get("kty"), entry.get("crv")
    if kty == "RSA":
        algorithm = "RS256"
    elif kty == "EC" and crv == "P-256":
        algorithm = "ES256"
    else:
        shown = f"{kty} {crv}" if crv else str(kty)
        if kty == "oct":
            shown += " (an HS256 secret)"
        raise JwksError(f"{what} is of type {shown}: only RSA (RS256) and EC P-256 (ES256) "
                        "keys are accepted")
    if entry.get("alg", algorithm) != algorithm:
        raise JwksError(f"{what} is an {kty} key but says alg {entry['alg']!r}: {kty} keys "
                        f"verify {algorithm} only")
    if "d" in entry:
        raise JwksError(f"{what} is a private key: publish the public key only")
    try:
        key = jwt.PyJWK(entry, algorithm).key
    except (jwt.PyJWTError, TypeError, ValueError):
        raise JwksError(f"{what} is not a valid {kty} public key") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise JwksError(f"{what} has {key.key_size} bits: RSA keys need {MIN_RSA_BITS} or more")
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise JwksError(f"{what} is not a public key")
    return SigningKey(kid, algorithm, key, json.dumps(entry, sort_keys=True))


def max_age(cache_control: str | None) -> float:
    """How long a document may be kept, from its `Cache-Control` (0 for no-cache/no-store,
    `DEFAULT_MAX_AGE_S` without a max-age)."""
    if not cache_control:
        return DEFAULT_MAX_AGE_S
    if _NO_CACHE.search(cache_control):
        return 0
    match = _MAX_AGE.search(cache_control)
    return int(match.group(1)) if match else DEFAULT_MAX_AGE_S


def fetch(url: str) -> tuple[dict[str, SigningKey], float]:
    """(the document's keys, its max-age in seconds); raise `JwksError`."""
    request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   "User-Agent": "pieces_service"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
            body = response.read(MAX_DOCUMENT_BYTES + 1)
            cache_control = response.headers.get("Cache-Control")
    except urllib.error.HTTPError as exc:
        raise JwksError(f"PIECES_JWT_JWKS_URL answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JwksError(f"PIECES_JWT_JWKS_URL could not be fetched: {reason}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise JwksError(f"PIECES_JWT_JWKS_URL serves more than {MAX_DOCUMENT_BYTES} bytes")
    return parse_keys(body), max_age(cache_control)


class JwksKeys:
    """The kept JWKS of one URL in one process, and its refreshes (see the module)."""

    def __init__(self, url: str, min_refresh_s: float):
        self.url = url
        self.min_refresh_s = min_refresh_s
        self._keys: dict[str, SigningKey] | None = None  # replaced whole, read without a lock
        self._lock = threading.Lock()      # one fetch at a time
        self._last_unknown_kid_fetch = float("-inf")
        self._refresh_at = float("inf")
        self._failing = False
        self._stop = threading.Event()
        self._refresher_pid: int | None = None

    def load(self) -> None:
        """Fetch the document if this process has none yet (a gunicorn worker has its
        master's); raise `JwksError` if it cannot be had or is refused."""
        with self._lock:
            if self._keys is None:
                self._fetch(start=True)

    def key(self, kid: str) -> SigningKey | None:
        """The published key `kid`, fetching the document again first when it is unknown
        and the last fetch is `min_refresh_s` old; None when it stays unknown."""
        self._ensure_refresher()
        keys = self._keys
        key = keys.get(kid) if keys is not None else None
        if key is None:
            with self._lock:  # a fetch under way may bring it: wait for it, then look again
                keys = self._keys
                key = keys.get(kid) if keys is not None else None
                if key is None and self._may_fetch():
                    self._last_unknown_kid_fetch = time.monotonic()
                    self._refresh("a token names an unknown kid")
                    keys = self._keys
                    key = keys.get(kid) if keys is not None else None
        return key

    def published(self, key: SigningKey) -> bool:
        """Whether `key` is still in the kept document (a verified token is kept no longer
        than its key: auth.VerifiedTokens)."""
        keys = self._keys
        return keys is not None and keys.get(key.kid) is key

    def close(self) -> None:
        """Stop this process's background refresh (tests)."""
        self._stop.set()

    def _may_fetch(self) -> bool:
        """Whether an unknown kid may fetch the document now."""
        return time.monotonic() - self._last_unknown_kid_fetch >= self.min_refresh_s

    def _fetch(self, *, start: bool = False) -> None:
        """Fetch and keep the document (under `_lock`); raise `JwksError`."""
        now = time.monotonic()
        self._refresh_at = now + self.min_refresh_s  # a retry, unless the fetch succeeds
        keys, seconds = fetch(self.url)
        old = self._keys or {}
        # An unchanged key keeps its object, so tokens verified with it stay verified.
        self._keys = {kid: old[kid] if kid in old and old[kid].jwk == key.jwk else key
                      for kid, key in keys.items()}
        self._refresh_at = now + max(self.min_refresh_s, 0.9 * seconds)
        if not start:
            log.debug("JWKS fetched", extra={"kids": sorted(self._keys),
                                             "max_age_s": seconds})

    def _refresh(self, why: str) -> None:
        """`_fetch`, keeping the kept keys when it fails (logged once per outage)."""
        try:
            self._fetch()
        except JwksError as exc:
            if not self._failing:
                self._failing = True
                log.warning("JWKS refresh failed; tokens are verified with the kept keys "
                            "until it succeeds", extra={"error": str(exc), "cause": why})
            return
        if self._failing:
            self._failing = False
            log.info("JWKS refresh succeeded again", extra={"kids": sorted(self._keys)})

    def _ensure_refresher(self) -> None:
        """Start this process's background refresh (threads do not survive a fork)."""
        if self._refresher_pid != os.getpid():
            with self._lock:
                if self._refresher_pid != os.getpid():
                    self._refresher_pid = os.getpid()
                    if self._keys is None:
                        self._refresh_at = time.monotonic()  # never loaded: fetch at once
                    threading.Thread(target=self._run, name="jwks-refresh",
                                     daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self._refresh_at - time.monotonic())):
            with self._lock:
                if time.monotonic() >= self._refresh_at:  # not moved by a fetch meanwhile
                    self._refresh("max-age")


# One per URL and process (a gunicorn worker inherits its master's, loaded at start).
_KEY_SETS: dict[tuple[str, int], JwksKeys] = {}
_KEY_SETS_LOCK = threading.Lock()


def keys_for(settings: JWTSettings) -> JwksKeys:
    """This process's `JwksKeys` for `settings.jwks_url`."""
    slot = (settings.jwks_url, settings.jwks_min_refresh_s)
    keys = _KEY_SETS.get(slot)
    if keys is None:
        with _KEY_SETS_LOCK:
            keys = _KEY_SETS.setdefault(slot, JwksKeys(*slot))
    return keys
