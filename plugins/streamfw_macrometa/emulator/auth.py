"""Credentials of the emulator: API keys, the tenant, signed JWTs and one-time passwords.

Pure bookkeeping: no sockets, no logging. Time comes from the injected clock so that tests
can expire one-time passwords without sleeping.

The emulator serves exactly one tenant. jsc8 never asks the server which tenant a key
belongs to: it cuts the last two dot-separated parts off the key (docs/protocol.md §3.2).
``tenant_of_key`` does the same, and ``/_api/user`` answers that tenant, so both SDKs build
the same WebSocket paths.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from streamfw_macrometa import gateway

DEV_KEY_SUFFIX = "streamfw.emulator"
DEFAULT_TENANT = "demo"
OTP_LIFETIME = 60.0  # seconds; each OTP is also accepted only once
MAX_OTPS = 10_000  # outstanding OTPs kept; the oldest are forgotten first
JWT_LIFETIME = 24 * 3600.0


def tenant_of_key(key: str) -> str:
    """The tenant jsc8 derives from an API key: the key minus its last two dot parts."""
    parts = key.split(".")
    return ".".join(parts[:-2]) if len(parts) >= 3 else "_mm"


def dev_key(tenant: str) -> str:
    """The development key of ``tenant``: jsc8 derives ``tenant`` back from it."""
    return f"{tenant}.{DEV_KEY_SUFFIX}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _utf8(text: str) -> bytes:
    # Credentials arrive from headers and JSON bodies as any str, lone surrogates included.
    return text.encode("utf-8", "surrogatepass")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings, whatever characters they hold.

    ``hmac.compare_digest`` refuses ``str`` with non-ASCII characters (TypeError), so
    compare the UTF-8 bytes instead: a non-ASCII credential is simply wrong, never an error.
    """
    return hmac.compare_digest(_utf8(given), _utf8(expected))


class OtpStore:
    """One-time passwords: each is accepted once, within ``lifetime`` seconds of issue."""

    def __init__(self, clock: Callable[[], float], lifetime: float = OTP_LIFETIME) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._issued: collections.OrderedDict[str, float] = collections.OrderedDict()

    def issue(self) -> str:
        now = self._clock()
        self._forget_expired(now)
        while len(self._issued) >= MAX_OTPS:
            self._issued.popitem(last=False)
        otp = secrets.token_hex(16)
        self._issued[otp] = now + self._lifetime
        return otp

    def redeem(self, otp: str) -> bool:
        """True once for a live OTP; it is gone afterwards, whatever the outcome."""
        expires = self._issued.pop(otp, None)
        return expires is not None and self._clock() <= expires

    def __len__(self) -> int:
        return len(self._issued)

    def _forget_expired(self, now: float) -> None:
        while self._issued:
            otp, expires = next(iter(self._issued.items()))
            if expires >= now:
                return
            del self._issued[otp]


class Authenticator:
    """Decides whether a request's credentials are good.

    Args:
        api_keys: accepted keys; empty means "development mode": only ``dev_key(tenant)``.
        tenant: the tenant served; default: the jsc8 tenant of the first key, else ``demo``.
        clock: wall-clock seconds, for OTP and JWT lifetimes.
    """

    def __init__(
        self, api_keys: Iterable[str] | None, tenant: str | None, clock: Callable[[], float]
    ) -> None:
        keys = list(api_keys or ())
        if any(not k or any(c.isspace() for c in k) for k in keys):
            raise ValueError("API keys must be non-empty and contain no whitespace")
        self.development = not keys
        if tenant is None:
            tenant = tenant_of_key(keys[0]) if keys else DEFAULT_TENANT
        if not tenant or "/" in tenant:
            raise ValueError(f"tenant {tenant!r} is not usable in a path")
        self.tenant = tenant
        self.api_keys: tuple[str, ...] = tuple(keys) if keys else (dev_key(tenant),)
        self.otps = OtpStore(clock)
        self._clock = clock
        self._secret = secrets.token_bytes(32)  # JWTs die with the process

    def mismatched_keys(self) -> list[str]:
        """Keys from which jsc8 would derive another tenant than the one served."""
        return [k for k in self.api_keys if tenant_of_key(k) != self.tenant]

    def check_key(self, key: str) -> bool:
        return any(same_secret(key, k) for k in self.api_keys)

    def check_password(self, password: str) -> bool:
        """``/_open/auth``: any password in development mode, else one of the API keys."""
        return self.development or self.check_key(password)

    def check_header(self, value: str | None) -> bool:
        """``Authorization: apikey <key>`` or ``bearer <jwt>``; the scheme is case-insensitive."""
        parsed = gateway.parse_authorization(value)
        if parsed is None:
            return False
        scheme, credential = parsed
        if scheme == gateway.API_KEY_SCHEME:
            return self.check_key(credential)
        return self.check_jwt(credential) is not None

    def authenticate(self, header: str | None, otp: str | None) -> bool:
        """The one check of a request that may carry either credential (a WebSocket upgrade):
        a valid ``Authorization`` header, else a live one-time password, used up here."""
        return self.check_header(header) or (otp is not None and self.otps.redeem(otp))

    def issue_jwt(self, username: str) -> str:
        now = self._clock()
        claims = {
            "tenant": self.tenant,
            "username": username,
            "iat": int(now),
            "exp": int(now + JWT_LIFETIME),
        }
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        return f"{head}.{body}.{self._sign(f'{head}.{body}')}"

    def check_jwt(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this emulator issued and that has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 3 or not same_secret(parts[2], self._sign(f"{parts[0]}.{parts[1]}")):
            return None
        try:
            claims = json.loads(_unb64url(parts[1]))
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < self._clock():
            return None
        return claims

    def _sign(self, data: str) -> str:
        return _b64url(hmac.new(self._secret, _utf8(data), hashlib.sha256).digest())
