"""The REST side of the asyncio transport: the sync ``Rest``'s rules on an aiohttp session.

The same retry policy, read from the same places: ``settings.retries`` attempts, the backoff
of ``rest.backoff``, retried statuses ``faults.RETRYABLE_STATUSES``; a request that surely
never reached the server (connection refused, DNS) is retried whatever its method, an
idempotent one (GET) also after a dropped connection or a retryable status. One deadline
(``timeout``) bounds the whole call, retries and waits included (``asyncio.timeout``). Bodies
are read in chunks and refused past ``max_response_bytes``. Answers are read by
``rest.read_answer`` (the status -> error table of ``faults``), so both clients raise the same
errors for the same answers. Messages name the method and path, never the query or a header.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import aiohttp

from streamfw.errors import (
    AlreadyExists,
    ConnectFailed,
    OperationTimeout,
    StreamError,
    StreamNotFound,
)
from streamfw_macrometa import gateway
from streamfw_macrometa.config import Settings
from streamfw_macrometa.faults import RETRYABLE_STATUSES, reason
from streamfw_macrometa.rest import (
    IDEMPOTENT_METHODS,
    READ_CHUNK,
    backoff,
    late,
    read_answer,
    read_dc_url,
    read_otp,
    read_tenant,
    too_large,
)


class AsyncRest:
    """REST calls against one GDN (or emulator) base URL over a shared session."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session

    async def call(
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
    ) -> Any:
        """Send one request; the envelope's ``result`` (or the bare body). See ``Rest.call``."""
        what = f"{method} {path}"
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        budget = timeout or self.settings.timeout
        answer = (stream, subscription, on_404, on_409)
        try:
            return await asyncio.wait_for(
                self._attempts(method, path, params, idempotent, what, envelope, answer), budget
            )
        except asyncio.TimeoutError as exc:
            raise late(what, budget) from exc

    async def _attempts(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        idempotent: bool,
        what: str,
        envelope: bool,
        answer: tuple[str, str, type[StreamError], type[StreamError]],
    ) -> Any:
        attempts = self.settings.retries
        for attempt in range(1, attempts + 1):
            try:
                status, phrase, raw = await self._exchange(method, path, params, what)
            except aiohttp.ClientError as exc:
                tls = isinstance(exc, aiohttp.ClientSSLError)  # retrying cannot help
                never_sent = isinstance(exc, aiohttp.ClientConnectorError) and not tls
                if not tls and (idempotent or never_sent) and attempt < attempts:
                    await asyncio.sleep(backoff(attempt))
                    continue
                raise self._failure(exc, what, attempt) from exc
            if status in RETRYABLE_STATUSES and idempotent and attempt < attempts:
                await asyncio.sleep(backoff(attempt))
                continue
            return read_answer(status, phrase, raw, what, envelope, *answer)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self, method: str, path: str, params: Mapping[str, str] | None, what: str
    ) -> tuple[int, str, bytes]:
        limit = self.settings.max_response_bytes
        async with self.session.request(
            method,
            self.settings.rest_url + path,
            params=params,
            headers={
                "Authorization": self.settings.authorization,
                "Content-Type": "application/json",
            },
        ) as response:
            announced = response.content_length
            if announced is not None and announced > limit:
                raise too_large(what, limit, f"Content-Length {announced}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise too_large(what, limit, f"more than {limit} bytes read")
            return response.status, response.reason or "", bytes(body)

    def _failure(self, exc: aiohttp.ClientError, what: str, attempts: int) -> StreamError:
        base = self.settings.rest_url
        if isinstance(exc, aiohttp.ClientSSLError):
            return ConnectFailed(f"{what} at {base}: TLS failed: {client_reason(exc)}")
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return OperationTimeout(f"{what}: no complete answer")
        verb = (
            "could not connect"
            if isinstance(exc, aiohttp.ClientConnectorError)
            else "connection failed"
        )
        return ConnectFailed(
            f"{what} at {base}: {verb} after {attempts} attempt(s): {client_reason(exc)}"
        )

    # ------------------------------------------------------------------- discovery, OTP

    async def discover_tenant(self) -> str:
        """``GET /_api/user`` -> the tenant (also proves the credentials work)."""
        return read_tenant(await self.call("GET", gateway.USER_PATH))

    async def otp(self, timeout: float | None = None) -> str:
        """A fresh one-time password (``POST /apid/otp``); used once, never cached."""
        body = await self.call("POST", gateway.OTP_PATH, envelope=False, timeout=timeout)
        return read_otp(body)

    async def local_dc_url(self) -> str:
        """``GET /datacenter/local`` -> the region host local streams live on."""
        return read_dc_url(await self.call("GET", gateway.LOCAL_DC_PATH, envelope=False))


def client_reason(exc: BaseException) -> str:
    """``faults.reason`` for an aiohttp exception (its certificate error is wrapped)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return reason(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        # asyncio words it "Connect call failed (host, port)"; the errno says why
        return os.strerror(exc.os_error.errno)
    return reason(exc)
