"""The REST side: one ``requests.Session``, envelopes, bounded retries, errors mapped once.

Retry policy. Every call has a timeout. A request that surely never reached the server
(connection refused, DNS failure, connect timeout) is retried whatever its method; a call
marked idempotent (GETs) is also retried after a read timeout, a dropped connection or a
429/502/503/504 answer. Waits grow exponentially with full jitter. When the attempts run out
the caller gets ``ConnectFailed`` (or ``OperationTimeout``) naming the method and path tried,
never the query string.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from streamfw.errors import (
    AlreadyExists,
    AuthError,
    RemoteProtocolError,
    StreamError,
    StreamNotFound,
)
from streamfw_macrometa.config import Settings
from streamfw_macrometa.faults import (
    RETRYABLE_STATUSES,
    error_for_status,
    is_connect_error,
    request_failure,
)

BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): full jitter, capped."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * (0.5 + rng() / 2))


class _HeaderAuth(requests.auth.AuthBase):
    """Adds the Authorization header per request (and so keeps ~/.netrc from replacing it)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self._settings.authorization
        return r

    def __repr__(self) -> str:
        return "<macrometa auth ***>"


class Rest:
    """REST calls against one GDN (or emulator) base URL. Thread-safe."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self.session = requests.Session()
        self.session.auth = _HeaderAuth(settings)
        self.session.verify = settings.verify
        self.session.headers["Content-Type"] = "application/json"
        self.session.headers["User-Agent"] = "streamfw-macrometa"

    def close(self) -> None:
        self.session.close()

    # ----------------------------------------------------------------------------- core

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        envelope: bool = True,
        stream: str = "",
        subscription: str = "",
        on_404: type[StreamError] = StreamNotFound,
        on_409: type[StreamError] = AlreadyExists,
        timeout: float | None = None,
        attempts: int | None = None,
    ) -> Any:
        """Send one request; return the envelope's ``result`` (or the bare body).

        ``timeout`` and ``attempts`` default to the ``timeout`` and ``retries`` settings.
        """
        what = f"{method} {path}"
        url = self.settings.rest_url + path
        idempotent = method in ("GET", "HEAD") if idempotent is None else idempotent
        attempts = attempts or self.settings.retries
        timeout = timeout or self.settings.timeout
        for attempt in range(1, attempts + 1):
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    timeout=timeout,
                    verify=self.settings.verify,  # per call: requests lets REQUESTS_CA_BUNDLE
                )  # override a session-level verify (requests issue #3829)
            except requests.RequestException as exc:
                tls = isinstance(exc, requests.exceptions.SSLError)  # retrying will not help
                if not tls and attempt < attempts and (idempotent or is_connect_error(exc)):
                    self._sleep(backoff(attempt))
                    continue
                raise request_failure(
                    exc,
                    what=what,
                    base=self.settings.rest_url,
                    attempts=attempt,
                    timeout=timeout,
                ) from exc
            if response.status_code in RETRYABLE_STATUSES and idempotent and attempt < attempts:
                response.close()
                self._sleep(backoff(attempt))
                continue
            return self._result(response, what, envelope, stream, subscription, on_404, on_409)
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(
        self,
        response: requests.Response,
        what: str,
        envelope: bool,
        stream: str,
        subscription: str,
        on_404: type[StreamError],
        on_409: type[StreamError],
    ) -> Any:
        status = response.status_code
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        is_error = status >= 400 or (
            isinstance(body, dict) and ("errorNum" in body or body.get("error") is True)
        )
        if is_error:
            code = status
            detail = response.reason or ""
            if isinstance(body, dict):
                detail = str(body.get("errorMessage") or detail)
                if status < 400 and isinstance(body.get("code"), int):
                    code = body["code"]
            elif isinstance(body, str) and body:
                detail = body
            raise error_for_status(
                code,
                detail,
                what=what,
                stream=stream,
                subscription=subscription,
                on_404=on_404,
                on_409=on_409,
            )
        if not envelope:
            return body
        if not isinstance(body, dict) or "result" not in body:
            raise RemoteProtocolError(f"{what}: HTTP {status} without a result envelope")
        return body["result"]

    # ------------------------------------------------------------------- discovery, OTP

    def discover_tenant(self) -> str:
        """``GET /_api/user`` -> ``result[0].tenant`` (also proves the credentials work)."""
        result = self.call("GET", "/_api/user")
        try:
            tenant = result[0]["tenant"] if isinstance(result, list) else result["tenant"]
        except (KeyError, IndexError, TypeError) as exc:
            raise RemoteProtocolError("GET /_api/user: answer holds no tenant") from exc
        if not isinstance(tenant, str) or not tenant:
            raise AuthError("GET /_api/user: no tenant for these credentials")
        return tenant

    def otp(self, timeout: float | None = None) -> str:
        """A fresh one-time password (``POST /apid/otp``); used once, never cached.

        With ``timeout`` (a reconnect with a deadline) it is one attempt: the caller retries.
        """
        body = self.call(
            "POST", "/apid/otp", envelope=False, timeout=timeout, attempts=1 if timeout else None
        )
        otp = body.get("otp") if isinstance(body, dict) else None
        if not isinstance(otp, str) or not otp:
            raise RemoteProtocolError("POST /apid/otp: answer holds no otp")
        return otp

    def local_dc_url(self) -> str:
        """``GET /datacenter/local`` -> ``tags.url``, the region host local streams live on."""
        body = self.call("GET", "/datacenter/local", envelope=False)
        try:
            url = body["tags"]["url"]
        except (KeyError, TypeError) as exc:
            raise RemoteProtocolError("GET /datacenter/local: answer holds no tags.url") from exc
        if not isinstance(url, str) or not url or "/" in url.strip("/"):
            raise RemoteProtocolError(f"GET /datacenter/local: unusable tags.url {url!r}")
        return url.strip("/")


def loads_maybe(value: Any) -> Any:
    """GDN documents some results as "stringified JSON": accept a string or a value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
