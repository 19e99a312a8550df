"""REST admin mapped onto the emulator, status -> exception mapping, retries, headers, limits.

The scenarios both client APIs share run on each of them (``client_api``, the sync one and
``streamfw.aio``); the rest reach into the sync client's ``Rest`` or were written for it alone.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest
from streamfw_macrometa.config import parse
from streamfw_macrometa.rest import Rest, loads_maybe

from streamfw.api import TransportConfig
from streamfw.client import Client, connect
from streamfw.errors import (
    AlreadyExists,
    AuthError,
    ConnectFailed,
    InUse,
    OperationTimeout,
    RemoteProtocolError,
    ServerError,
    StreamNotFound,
    SubscriptionNotFound,
    TransportError,
    Unsupported,
)
from streamfw.testing.contract import unique
from tests.macrometa.apis import Api
from tests.macrometa.conftest import KEY
from tests.macrometa.fake_http import FakeServer, RawServer

ERR = {"error": True, "code": 0, "errorMessage": "", "errorNum": 0}


def err(status: int, text: str) -> tuple[int, dict[str, Any]]:
    return status, {**ERR, "code": status, "errorMessage": text, "errorNum": status}


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def fake_client(fake: FakeServer, **options: Any) -> Client:
    opts = {"api_key": KEY, "timeout": 2.0, **options}
    return connect(f"macrometa+http://127.0.0.1:{fake.port}", **opts)


def connect_to(api: Api, port: int, **options: Any) -> Client:
    """A client of ``api`` on 127.0.0.1:``port`` with ``KEY`` and a 2 s timeout, unless given."""
    opts = {"api_key": KEY, "timeout": 2.0, **options}
    return api.connect(f"macrometa+http://127.0.0.1:{port}", **opts)


# ------------------------------------------------------------------ against the emulator


def test_admin_round_trip(make_client: Callable[..., Client]) -> None:
    client = make_client()
    g, loc = client.stream(unique("g")), client.stream(unique("l"), local=True)
    g.create()
    loc.create()
    with pytest.raises(AlreadyExists, match=g.name):
        g.create()
    assert g.exists() and loc.exists()
    assert g.name in [s.name for s in client.streams(local=False)]
    assert loc.name in [s.name for s in client.streams(local=True)]
    assert {g.name, loc.name} <= {s.name for s in client.streams()}
    with loc.consumer("audit"), loc.producer() as p:
        p.send("x")
        assert loc.stats()["msgInCounter"] == 1
    assert loc.backlog() == 1
    [info] = loc.subscriptions()
    assert (info.name, info.type, info.backlog, info.consumers) == ("audit", "exclusive", 1, 0)
    loc.clear_backlog()
    assert loc.backlog() == 0
    g.delete()
    loc.delete()
    with pytest.raises(StreamNotFound):
        g.delete()
    with pytest.raises(StreamNotFound):
        g.backlog()


def test_subscription_errors(make_client: Callable[..., Client]) -> None:
    client = make_client()
    s = client.stream(unique("subs")).create()
    with pytest.raises(SubscriptionNotFound):
        s.delete_subscription("nobody")
    with pytest.raises(StreamNotFound):
        client.stream(unique("gone")).delete_subscription("nobody")
    c = s.consumer("busy")
    with pytest.raises(InUse):
        s.delete_subscription("busy")
    with pytest.raises(InUse):
        s.delete()
    c.close()
    s.delete_subscription("busy")
    with pytest.raises(SubscriptionNotFound):
        s.clear_backlog("busy")


def test_clear_backlog_stays_on_its_stream(make_client: Callable[..., Client]) -> None:
    client = make_client()
    a, b = client.stream(unique("a")).create(), client.stream(unique("b")).create()
    for s in (a, b):
        with s.consumer("shared-name"):
            pass
        with s.producer() as p:
            p.send(1)
    a.clear_backlog()  # per stream: b keeps its backlog
    assert (a.backlog(), b.backlog()) == (0, 1)
    with pytest.raises(Unsupported, match=b.name):  # GDN's route would clear b's too
        a.clear_backlog("shared-name")
    b.delete_subscription("shared-name")
    with a.producer() as p:
        p.send(2)
    a.clear_backlog("shared-name")
    assert a.backlog() == 0


def test_bad_key_is_an_auth_error(url: str) -> None:
    with pytest.raises(AuthError, match="GET /_api/user: HTTP 401") as e:
        connect(url, api_key="acme.example.WRONGKEY")
    assert "WRONGKEY" not in str(e.value)


def test_jwt_token_is_sent_as_bearer(url: str, emu: Any) -> None:
    import requests

    jwt = requests.post(
        f"{emu.url}/_open/auth", json={"email": "a@b", "password": KEY}, timeout=5
    ).json()["jwt"]
    with connect(url, token=jwt) as client:
        s = client.stream(unique("jwt")).create()
        with s.consumer("c") as c, s.producer() as p:
            p.send("via bearer")
            assert c.receive(5).value == "via bearer"


# ------------------------------------------------------------------ against a fake server


def test_headers_paths_and_flags(client_api: Api, fake: FakeServer) -> None:
    ok = (200, {"error": False, "code": 200, "result": {}})
    fake.answers[("POST", "/_fabric/prod/_api/streams/orders")] = [ok]
    fake.answers[("DELETE", "/_fabric/prod/_api/streams/c8locals.orders")] = [ok]
    with connect_to(client_api, fake.port, fabric="prod") as client:
        client.stream("orders", local=True).create()
        client.stream("orders", local=True).delete(force=True)
    (_, _, user_headers), create, delete = fake.requests
    assert user_headers["Authorization"] == f"apikey {KEY}"
    assert create[:2] == ("POST", "/_fabric/prod/_api/streams/orders?global=false")
    assert delete[:2] == ("DELETE", "/_fabric/prod/_api/streams/c8locals.orders?force=true")


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, StreamNotFound),
        (412, InUse),
        (429, TransportError),
        (500, ServerError),
        (503, ServerError),
        (599, ServerError),
    ],
)
def test_status_mapping(
    client_api: Api, fake: FakeServer, status: int, exc: type[Exception]
) -> None:
    fake.answers[("DELETE", "/_fabric/_system/_api/streams/c8globals.x")] = [err(status, "why")]
    client = connect_to(client_api, fake.port)
    with client, pytest.raises(exc, match=f"HTTP {status}.*why"):
        client.stream("x").delete()


def test_a_5xx_answer_is_a_server_error_carrying_its_status(fake: FakeServer) -> None:
    fake.answers[("DELETE", "/_fabric/_system/_api/streams/c8globals.x")] = [err(502, "gw")]
    with fake_client(fake) as client, pytest.raises(ServerError) as e:
        client.stream("x").delete()
    assert e.value.status is HTTPStatus.BAD_GATEWAY
    assert isinstance(e.value, TransportError)  # the retry point catches it


def test_a_409_on_create_is_already_exists(client_api: Api, fake: FakeServer) -> None:
    fake.answers[("POST", "/_fabric/_system/_api/streams/x")] = [err(409, "exists")]
    with connect_to(client_api, fake.port) as client, pytest.raises(AlreadyExists):
        client.stream("x").create()


def test_error_inside_a_200_envelope_is_an_error(fake: FakeServer) -> None:
    fake.answers[("POST", "/_fabric/_system/_api/streams/x")] = [
        (200, {**ERR, "code": 409, "errorMessage": "exists", "errorNum": 581})
    ]
    with fake_client(fake) as client, pytest.raises(AlreadyExists):
        client.stream("x").create()


def test_idempotent_calls_retry_transient_statuses(client_api: Api, fake: FakeServer) -> None:
    path = "/_fabric/_system/_api/streams"
    fake.answers[("GET", path)] = [err(503, "busy"), err(502, "gw"), (200, {"result": []})]
    with connect_to(client_api, fake.port, retries=3) as client:
        assert client.streams() == []
    assert fake.paths("GET").count(path) == 3


def test_non_idempotent_calls_do_not_retry_a_server_answer(
    client_api: Api, fake: FakeServer
) -> None:
    fake.answers[("POST", "/_fabric/_system/_api/streams/x")] = [err(503, "busy")]
    client = connect_to(client_api, fake.port, retries=3)
    with client, pytest.raises(TransportError, match="503"):
        client.stream("x").create()
    assert len(fake.paths("POST")) == 1


def test_unreachable_server_fails_fast_naming_where(client_api: Api) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConnectFailed) as e:
        client_api.connect(f"macrometa+http://127.0.0.1:{port}?fabric=f", api_key=KEY, retries=3)
    assert time.monotonic() - start < 5
    text = str(e.value)
    assert f"GET /_api/user at http://127.0.0.1:{port}" in text
    assert "3 attempt" in text and "refused" in text.lower()
    assert "?" not in text and "S3cr3t" not in text


def test_timeout_bounds_the_whole_call(client_api: Api) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(OperationTimeout, match=r"timeout=0\.3"):
            connect_to(client_api, port, timeout=0.3, retries=3)
        assert time.monotonic() - start < 2


def test_explicit_tenant_skips_discovery(fake: FakeServer) -> None:
    fake.answers[("GET", "/_fabric/_system/_api/streams")] = [(200, {"result": []})]
    with fake_client(fake, tenant="acme") as client:
        assert client.streams() == []
    assert "/_api/user" not in fake.paths()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"result": []}, "no tenant"),
        ({"error": False, "code": 200}, "without a result envelope"),
        ("not json at all", "without a result envelope"),
    ],
)
def test_malformed_answers_are_protocol_errors(fake: FakeServer, body: Any, match: str) -> None:
    fake.answers[("GET", "/_api/user")] = [(200, body)]
    with pytest.raises(RemoteProtocolError, match=match):
        fake_client(fake)


# ------------------------------------------------------------------ answer size limits

MiB = 1024 * 1024


@contextlib.contextmanager
def raw_server(respond: Callable[[RawServer, socket.socket], None]) -> Iterator[RawServer]:
    server = RawServer(respond)
    try:
        yield server
    finally:
        server.close()


def test_announced_oversize_body_is_refused_before_reading_it(client_api: Api) -> None:
    def announce(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 314572800\r\n\r\n{")
        server.count(1)
        while not server.stopped:  # and then nothing: a refusal must not wait for the body
            time.sleep(0.05)

    with (
        raw_server(announce) as server,
        pytest.raises(RemoteProtocolError, match="Content-Length 314572800") as e,
    ):
        connect_to(client_api, server.port, timeout=30)
    assert f"max_response_bytes={16 * MiB}" in str(e.value)  # the default, named


def test_unannounced_oversize_body_is_refused_while_reading(client_api: Api) -> None:
    """Chunked, no length: the client stops at the limit, long before the server is done."""
    piece = b"x" * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    def stream(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4096):  # 256 MiB if nobody stops it
            conn.sendall(frame)
            server.count(len(piece))

    with (
        raw_server(stream) as server,
        pytest.raises(RemoteProtocolError, match=f"more than {MiB} bytes read"),
    ):
        connect_to(client_api, server.port, timeout=30, max_response_bytes=MiB)
    assert server.sent < 64 * MiB  # read incrementally: only socket buffers beyond the limit


def test_compressed_body_is_limited_by_its_decoded_size(client_api: Api) -> None:
    bomb = gzip.compress(b"0" * (64 * MiB))

    def deflate(server: RawServer, conn: socket.socket) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        conn.sendall(head.encode() + bomb)
        server.count(len(bomb))

    with (
        raw_server(deflate) as server,
        pytest.raises(RemoteProtocolError, match="max_response_bytes=1048576"),
    ):
        connect_to(client_api, server.port, timeout=30, max_response_bytes=MiB)
    assert len(bomb) < MiB  # the limit held against what it decodes to, not what it weighs


def test_deeply_nested_answer_is_a_protocol_error() -> None:
    body = b"[" * 100_000 + b"]" * 100_000  # past the JSON parser's recursion limit

    def nested(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with (
        raw_server(nested) as server,
        pytest.raises(RemoteProtocolError, match="nested deeper than 32 levels"),
    ):
        connect(f"macrometa+http://127.0.0.1:{server.port}", api_key=KEY, timeout=30)


def nested(depth: int) -> Any:
    """A value whose answer ``{"result": value}`` is ``depth`` levels deep."""
    value: Any = "bottom"
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("result", "match"),
    [
        (nested(32), None),  # the deepest JSON a peer may send, result envelope included
        (nested(33), "nested deeper than 32 levels"),
        ("\ud800", "lone surrogate"),
        ({"stringified": "bad \udfff"}, "lone surrogate"),
    ],
)
def test_rest_answers_go_through_the_one_depth_and_surrogate_checked_parser(
    fake: FakeServer, result: Any, match: str | None
) -> None:
    fake.answers[("GET", "/x")] = [(200, {"result": result})]
    rest = Rest(parse(TransportConfig(f"macrometa+http://127.0.0.1:{fake.port}", {"api_key": KEY})))
    try:
        if match is None:
            assert rest.call("GET", "/x") == result
        else:
            with pytest.raises(RemoteProtocolError, match=f"GET /x: HTTP 200 .*{match}"):
                rest.call("GET", "/x")
    finally:
        rest.close()


def test_an_error_page_that_is_not_json_still_maps_its_status(fake: FakeServer) -> None:
    fake.answers[("GET", "/x")] = [(503, nested(40))]  # not usable JSON: its text is the detail
    rest = Rest(parse(TransportConfig(f"macrometa+http://127.0.0.1:{fake.port}", {"api_key": KEY})))
    with contextlib.closing(rest), pytest.raises(ServerError) as caught:
        rest.call("GET", "/x", attempts=1)
    assert caught.value.status == 503


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"a": [1]}', {"a": [1]}),
        ("plain words", "plain words"),  # not JSON: the value itself
        ({"a": 1}, {"a": 1}),
    ],
)
def test_stringified_results_are_parsed_like_bodies(value: Any, expected: Any) -> None:
    assert loads_maybe(value) == expected


@pytest.mark.parametrize("bad", ["[" * 33 + "]" * 33, '"\\ud800"'])
def test_unusable_stringified_json_is_a_protocol_error(bad: str) -> None:
    with pytest.raises(RemoteProtocolError, match="GET /stats: the result is not usable JSON"):
        loads_maybe(bad, "GET /stats")


@pytest.mark.parametrize(
    ("names", "stats", "backlog_reads_it"),
    [
        ([{"a": 1}, {"b": 2}], {"subscriptions": {}}, False),  # names that are not strings
        (["sub"], {"subscriptions": ["sub"]}, True),  # figures that are not an object
        (["sub"], {"subscriptions": {"sub": 7}}, True),
        (["sub"], {"subscriptions": {"sub": {"msgBacklog": "many"}}}, True),
        (["sub"], {"subscriptions": {"sub": {"msgBacklog": True}}}, True),
        (["sub"], {"subscriptions": {"sub": {"consumers": 3}}}, False),
    ],
)
def test_malformed_subscription_figures_are_protocol_errors(
    fake: FakeServer, names: Any, stats: Any, backlog_reads_it: bool
) -> None:
    """Found by tests/fuzz/test_client_rest.py: these raised TypeError or ValueError."""
    base = "/_fabric/_system/_api/streams/c8globals.s"
    fake.answers[("GET", f"{base}/subscriptions")] = [(200, {"result": names})]
    fake.answers[("GET", f"{base}/stats")] = [(200, {"result": stats})]
    fake.answers[("GET", f"{base}/backlog")] = [(200, {"result": {"no": "count"}})]
    with fake_client(fake) as client:
        with pytest.raises(RemoteProtocolError, match="stream 's'"):
            client.stream("s").subscriptions()
        if backlog_reads_it:
            with pytest.raises(RemoteProtocolError, match="stream 's'"):
                client.stream("s").backlog()
