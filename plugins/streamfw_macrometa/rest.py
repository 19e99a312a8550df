"""The REST side: one ``requests.Session``, envelopes, bounded retries, errors mapped once.

Retry policy. Every call has one overall deadline (``timeout``): connect, TLS, headers, body,
retries and the waits between them all fit in it (``deadline.Deadline`` shuts down a socket
still busy when it passes; a server trickling bytes cannot stretch a call). A request that
surely never reached the server (connection refused, DNS failure, connect timeout) is
retried whatever its method; a call marked idempotent (GETs) is also retried after a read
timeout, a dropped connection or a 429/502/503/504 answer. Waits grow exponentially with
full jitter. When the attempts or the time run out the caller gets ``ConnectFailed`` or
``OperationTimeout`` naming the method and path tried, never the query string; an error
answer becomes its error in ``faults.error_for_status`` (any 5xx a ``ServerError``).

Bodies are read in chunks and refused (``RemoteProtocolError``) as soon as the announced
``Content-Length`` or the bytes read pass ``max_response_bytes``, so a huge answer never
sits in memory whole.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import requests

from streamfw.errors import (
    AlreadyExists,
    AuthError,
    OperationTimeout,
    RemoteProtocolError,
    StreamError,
    StreamNotFound,
)
from streamfw_macrometa import gateway, wire
from streamfw_macrometa.config import Settings
from streamfw_macrometa.deadline import Deadline, WatchedAdapter
from streamfw_macrometa.faults import (
    RETRYABLE_STATUSES,
    error_for_status,
    is_connect_error,
    reason,
    request_failure,
)
from streamfw_macrometa.protocol.reconnect import Backoff

BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
READ_CHUNK = 65536
# Methods retried on any failure unless a call says otherwise: they change nothing on the server.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): the reconnects' backoff."""
    return Backoff(BACKOFF_BASE, BACKOFF_CAP, rng).delay(attempt)


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
        adapter = WatchedAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
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

        ``timeout`` (the whole call, retries included) and ``attempts`` default to the
        ``timeout`` and ``retries`` settings.
        """
        what = f"{method} {path}"
        url = self.settings.rest_url + path
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        attempts = attempts or self.settings.retries
        budget = timeout or self.settings.timeout
        with Deadline(budget) as deadline:
            for attempt in range(1, attempts + 1):
                try:
                    with deadline.active():
                        status, phrase, raw = self._exchange(method, url, params, deadline, what)
                except requests.RequestException as exc:
                    # each socket operation may take what was left: a timeout now is the
                    # deadline's, even if the watchdog has not fired yet
                    spent = reason(exc) == "timed out" and deadline.remaining() < 0.05
                    if deadline.expired or spent:
                        raise late(what, budget) from exc
                    tls = isinstance(exc, requests.exceptions.SSLError)  # retrying cannot help
                    retry = not tls and (idempotent or is_connect_error(exc))
                    if retry and attempt < attempts and self._wait(attempt, deadline):
                        continue
                    raise request_failure(
                        exc,
                        what=what,
                        base=self.settings.rest_url,
                        attempts=attempt,
                        timeout=budget,
                    ) from exc
                if deadline.expired:  # the answer came, but the watchdog cut its socket
                    raise late(what, budget)
                retry = status in RETRYABLE_STATUSES and idempotent
                if retry and attempt < attempts and self._wait(attempt, deadline):
                    continue
                return read_answer(
                    status, phrase, raw, what, envelope, stream, subscription, on_404, on_409
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        deadline: Deadline,
        what: str,
    ) -> tuple[int, str, bytes]:
        """One request; returns status, reason and the body, read within the size limit."""
        limit = self.settings.max_response_bytes
        response = self.session.request(
            method,
            url,
            params=params,
            timeout=max(0.001, deadline.remaining()),  # per socket operation; the deadline
            stream=True,  # bounds the whole; the body is read below, chunk by chunk
            verify=self.settings.verify,  # per call: requests lets REQUESTS_CA_BUNDLE
        )  # override a session-level verify (requests issue #3829)
        with response:
            announced = response.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > limit:
                raise too_large(what, limit, f"Content-Length {announced}")
            body = bytearray()
            for chunk in response.iter_content(READ_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise too_large(what, limit, f"more than {limit} bytes read")
            return response.status_code, response.reason or "", bytes(body)

    def _wait(self, attempt: int, deadline: Deadline) -> bool:
        """Back off before the next attempt; False if that would end past the deadline."""
        pause = backoff(attempt)
        if pause >= deadline.remaining():
            return False
        self._sleep(pause)
        return True

    # ------------------------------------------------------------------- discovery, OTP

    def discover_tenant(self) -> str:
        """``GET /_api/user`` -> ``result[0].tenant`` (also proves the credentials work)."""
        return read_tenant(self.call("GET", gateway.USER_PATH))

    def otp(self, timeout: float | None = None) -> str:
        """A fresh one-time password (``POST /apid/otp``); used once, never cached.

        ``timeout`` bounds the whole call (a WebSocket connect passes what is left of its own).
        """
        return read_otp(self.call("POST", gateway.OTP_PATH, envelope=False, timeout=timeout))

    def local_dc_url(self) -> str:
        """``GET /datacenter/local`` -> ``tags.url``, the region host local streams live on."""
        return read_dc_url(self.call("GET", gateway.LOCAL_DC_PATH, envelope=False))


# What the discovery and OTP answers hold, read here for every REST client (sync and asyncio).


def read_tenant(result: Any) -> str:
    """The tenant in ``GET /_api/user``'s result (``result[0].tenant``)."""
    try:
        tenant = result[0]["tenant"] if isinstance(result, list) else result["tenant"]
    except (KeyError, IndexError, TypeError) as exc:
        raise RemoteProtocolError("GET /_api/user: answer holds no tenant") from exc
    if not isinstance(tenant, str) or not tenant:
        raise AuthError("GET /_api/user: no tenant for these credentials")
    return tenant


def read_otp(body: Any) -> str:
    """The one-time password in ``POST /apid/otp``'s answer (a secret: never log it)."""
    otp = body.get(gateway.OTP) if isinstance(body, dict) else None
    if not isinstance(otp, str) or not otp:
        raise RemoteProtocolError("POST /apid/otp: answer holds no otp")
    return otp


def read_dc_url(body: Any) -> str:
    """``tags.url`` in ``GET /datacenter/local``'s answer: the region's host."""
    try:
        url = body["tags"]["url"]
    except (KeyError, TypeError) as exc:
        raise RemoteProtocolError("GET /datacenter/local: answer holds no tags.url") from exc
    if not isinstance(url, str) or not url or "/" in url.strip("/"):
        raise RemoteProtocolError(f"GET /datacenter/local: unusable tags.url {url!r}")
    return url.strip("/")


def loads_maybe(value: Any, what: str = "a REST answer") -> Any:
    """GDN documents some results as "stringified JSON": accept a string or a value.

    A string that is not JSON is the value itself; JSON too deep or holding a lone surrogate
    is a ``RemoteProtocolError``, as it would be in the answer's body.
    """
    if not isinstance(value, str):
        return value
    try:
        return wire.load_json(value)
    except json.JSONDecodeError:
        return value
    except ValueError as exc:
        raise RemoteProtocolError(f"{what}: the result is not usable JSON: {exc}") from exc


def late(what: str, budget: float) -> OperationTimeout:
    return OperationTimeout(f"{what}: no complete answer within timeout={budget:g} s")


def too_large(what: str, limit: int, seen: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"{what}: answer refused: larger than max_response_bytes={limit} ({seen});"
        " raise that option if such answers are expected"
    )


def read_answer(
    status: int,
    phrase: str,
    raw: bytes,
    what: str,
    envelope: bool,
    stream: str,
    subscription: str,
    on_404: type[StreamError],
    on_409: type[StreamError],
) -> Any:
    """The envelope's ``result`` (or the bare body); an error status or envelope raises."""
    body: Any = None
    if raw:
        try:
            body = wire.load_json(raw)
        except ValueError as exc:
            if status < HTTPStatus.BAD_REQUEST:
                raise RemoteProtocolError(
                    f"{what}: HTTP {status} answer is not usable JSON: {exc}"
                ) from exc
            body = raw.decode("utf-8", "replace")  # an error page: its text is the detail
    is_error = status >= HTTPStatus.BAD_REQUEST or (
        isinstance(body, dict) and ("errorNum" in body or body.get("error") is True)
    )
    if is_error:
        code = status
        detail = phrase
        if isinstance(body, dict):
            detail = str(body.get("errorMessage") or detail)
            if status < HTTPStatus.BAD_REQUEST and isinstance(body.get("code"), int):
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
