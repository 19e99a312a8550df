"""The status <-> error table read both ways: what the emulator answers, the client reads back.

Every row of ``status.TABLE`` is checked through the emulator's own answer paths (the REST
dispatcher's ``error_response`` and the WebSocket ``Refused.by_table``) and the client's
``error_for_status``, and a few rows end to end over a real emulator on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
import requests
from streamfw_macrometa.emulator.routing import error_response
from streamfw_macrometa.emulator.sockets import Refused
from streamfw_macrometa.faults import error_for_status
from streamfw_macrometa.status import CLIENT_CLOSED_REQUEST, TABLE, Row, readings, status_for

from streamfw.client import Client
from streamfw.errors import (
    AlreadyExists,
    Conflict,
    InUse,
    LimitExceeded,
    RemoteProtocolError,
    StreamError,
    StreamNotFound,
    SubscriptionBusy,
    SubscriptionNotFound,
)
from streamfw.testing.contract import unique
from tests.macrometa.conftest import KEY

# Every kind of request the client sends, with the choices it passes for it (transport.py,
# rest.py, faults.handshake_error): together they must reach every reading of a status.
REQUESTS: tuple[dict[str, Any], ...] = (
    {"what": "POST /_fabric/_system/_api/streams/s"},  # create
    {"what": "DELETE /_fabric/_system/_api/streams/c8globals.s"},
    {
        "what": "DELETE /_fabric/_system/_api/streams/c8globals.s/subscriptions/sub",
        "subscription": "sub",
        "on_404": SubscriptionNotFound,
    },
    {"what": "WebSocket /_ws/ws/v2/consumer/x", "subscription": "sub", "on_409": SubscriptionBusy},
    {"what": "WebSocket /_ws/ws/v2/producer/x", "on_409": Conflict},
)


def _instance(row: Row) -> StreamError:
    return row.error(f"a {row.error.__name__}")


def _client_reads(status: int) -> set[type[StreamError]]:
    return {type(error_for_status(status, "", stream="s", **req)) for req in REQUESTS}


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.error.__name__}-{int(r.status)}")
def test_each_row_reads_back_as_documented(row: Row) -> None:
    exc = _instance(row)
    answered = status_for(exc)
    assert answered in {r.status for r in TABLE if r.error is row.error}
    assert answered == next(r.status for r in TABLE if isinstance(exc, r.error))
    # what the emulator puts on the wire for it, REST and WebSocket alike
    rest = error_response(exc)
    assert rest is not None and rest.status == answered
    assert rest.text is not None and json.loads(rest.text)["code"] == answered
    assert Refused.by_table(exc, "refused").status == answered
    # the client reads the row's status back as one of the row's documented classes, and
    # some request picks each of them
    got = _client_reads(row.status)
    assert set(row.read_as) <= got, f"{row.read_as} not all reachable: {got}"
    assert got <= set(readings(row.status)), f"{got} outside the table for {row.status}"


def test_every_status_the_emulator_answers_has_its_row() -> None:
    for row in TABLE:
        assert isinstance(row.status, HTTPStatus)
        first = next(r for r in TABLE if isinstance(_instance(row), r.error))
        assert status_for(_instance(row)) == first.status
    # subclasses come before their bases, or their rows could never be reached
    for i, row in enumerate(TABLE):
        for earlier in TABLE[:i]:
            assert not (issubclass(row.error, earlier.error) and row.error is not earlier.error)


def test_request_dependent_choices() -> None:
    assert isinstance(error_for_status(409, "", what="POST /x"), AlreadyExists)
    assert isinstance(error_for_status(412, "", what="DELETE /x"), InUse)
    assert isinstance(error_for_status(412, "", what="POST /x"), LimitExceeded)
    busy = error_for_status(409, "", what="WebSocket /c", subscription="s", on_409=SubscriptionBusy)
    assert isinstance(busy, SubscriptionBusy) and busy.subscription == "s"
    gone = error_for_status(502, "", what="GET /x")
    assert getattr(gone, "status", None) == HTTPStatus.BAD_GATEWAY
    assert type(error_for_status(HTTPStatus.METHOD_NOT_ALLOWED, "", what="GET /x")) is (
        RemoteProtocolError
    )
    assert type(error_for_status(CLIENT_CLOSED_REQUEST, "", what="GET /x")) is RemoteProtocolError


def test_not_ours_is_left_to_the_server() -> None:
    assert status_for(RuntimeError("bug")) is None
    assert error_response(RuntimeError("bug")) is None
    assert readings(418) == ()


def test_live_round_trip(emu: Any, make_client: Callable[..., Client]) -> None:
    client = make_client()
    stream = client.stream(unique("status")).create()
    with pytest.raises(AlreadyExists, match="HTTP 409"):
        stream.create()
    with pytest.raises(StreamNotFound, match="HTTP 404"):
        client.stream(unique("absent")).delete()
    with stream.consumer("only"), pytest.raises(SubscriptionBusy, match="HTTP 409"):
        stream.consumer("only")
    # the status line itself, read with a plain HTTP client, and the client's reading of it
    answer = requests.post(
        f"http://127.0.0.1:{emu.port}/_fabric/_system/_api/streams/{stream.name}",
        headers={"Authorization": f"apikey {KEY}"},
        timeout=5,
    )
    assert answer.status_code == status_for(AlreadyExists("again")) == HTTPStatus.CONFLICT
    read = error_for_status(answer.status_code, answer.text, what="POST /streams")
    assert isinstance(read, AlreadyExists)
