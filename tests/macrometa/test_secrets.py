"""No API key, token or OTP in logs, reprs or error messages (including chained causes)."""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import pickle
import socket
import types
from collections.abc import Callable, Iterator

import pytest
from streamfw_macrometa.config import Secret, parse
from streamfw_macrometa.rest import Rest

from streamfw.api import TransportConfig
from streamfw.client import Client, connect
from streamfw.errors import StreamError
from streamfw.testing.contract import unique
from tests.macrometa.conftest import KEY
from tests.macrometa.proxy import Proxy


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


@pytest.mark.parametrize("auth", ["header", "otp"])
def test_no_secret_anywhere(
    auth: str,
    proxy: Proxy,
    make_client: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    otps: list[str] = []
    original = Rest.otp

    def spy(self: Rest, timeout: float | None = None) -> str:
        otps.append(original(self, timeout))
        return otps[-1]

    monkeypatch.setattr(Rest, "otp", spy)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    errors: list[BaseException] = []

    def expect_error(fn: Callable[[], object]) -> None:
        try:
            fn()
        except StreamError as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected a StreamError")

    url = f"macrometa+http://127.0.0.1:{proxy.port}"
    client = make_client(url, auth=auth, reconnect_deadline=1.0)
    s = client.stream(unique("secret")).create()
    consumer = s.consumer("sub")
    producer = s.producer()
    producer.send("x")
    consumer.receive(5)
    expect_error(lambda: s.consumer("sub"))  # 409
    expect_error(lambda: client.stream("missing").consumer("sub"))  # 404
    expect_error(lambda: connect(url, api_key=KEY + "x"))  # 401 on /_api/user
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    expect_error(lambda: connect(f"macrometa+http://127.0.0.1:{dead}", api_key=KEY, retries=1))
    proxy.refusing.set()
    proxy.cut()  # the links give up after reconnect_deadline
    expect_error(lambda: consumer.receive(5))
    expect_error(lambda: producer.send("y", timeout=5))
    texts += [repr(x) for x in (client, client.transport, client.transport.settings, s)]
    texts += [repr(consumer), repr(producer), repr(client.transport.rest.session.auth)]
    texts += [r.getMessage() for r in caplog.records]
    texts += [f"{e!s} {e!r}" for err in errors for e in chain(err)]
    assert len(errors) == 6
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # the capture works
    # ... and holds the links' own story: connects, the reconnect attempts, the give-up
    ours = [r.getMessage() for r in caplog.records if r.name == "streamfw.macrometa"]
    for step in ("connected to", "reconnecting", "gave up reconnecting"):
        assert any(step in text for text in ours), step
    if auth == "otp":
        assert otps
    blob = "\n".join(texts)
    for secret in (KEY, "S3cr3tK3yValue", *otps):
        assert secret not in blob


def test_secret_refuses_to_pickle_and_copies_as_itself() -> None:
    secret = Secret(KEY)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled") as e:
            pickle.dumps(secret, protocol)
        assert KEY not in str(e.value)
    assert copy.copy(secret) is secret and copy.deepcopy([secret])[0] is secret
    settings = parse(TransportConfig("macrometa+http://127.0.0.1:1", {"api_key": KEY}), {})
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(settings)
    assert copy.deepcopy(settings) == settings


_OPAQUE = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)
_OPAQUE += (types.CodeType, types.FrameType, types.MethodType)


def reachable(*roots: object) -> Iterator[object]:
    """Every object reachable from ``roots`` through references, except into a ``Secret``
    (holding the key is its job) and through code, classes and modules (shared by all)."""
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        yield obj
        if not isinstance(obj, Secret):
            todo.extend(gc.get_referents(obj))


@pytest.mark.parametrize("auth", ["header", "otp"])
def test_nothing_reachable_pickles_or_reprs_the_key(
    auth: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(auth=auth)
    s = client.stream(unique("reach")).create()
    with s.consumer("sub") as consumer, s.producer() as producer:
        producer.send("x")
        assert consumer.receive(5) is not None
        leaks = []
        visited: set[str] = set()
        for obj in reachable(client, consumer, producer):
            visited.add(type(obj).__name__)
            with contextlib.suppress(Exception):
                if KEY in repr(obj):
                    leaks.append(f"repr of {type(obj).__name__}")
            try:
                blob = pickle.dumps(obj)
            except Exception:
                continue  # refused (a Secret inside, a lock, a socket): nothing written
            if KEY.encode() in blob:
                leaks.append(f"pickle of {type(obj).__name__}")
        inside = {"MacrometaTransport", "Settings", "Secret", "Session", "_HeaderAuth"}
        inside |= {"MacrometaProducer", "MacrometaConsumer", "Connector", "BufferedWebSocket"}
        assert inside <= visited  # the walk really went through the client's insides
        assert not leaks, leaks
