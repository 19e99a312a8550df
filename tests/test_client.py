"""The public API on loopback: lifecycle, validation and error paths."""

from __future__ import annotations

import concurrent.futures as cf
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import streamfw
from streamfw import Closed, ConfigError, LocalProtocolError, MessageId, StreamDeleted
from streamfw.cli import main
from streamfw.testing import ManualClock
from streamfw.testing.contract import unique
from streamfw.testing.harness import Harness


@pytest.fixture
def client() -> Iterator[streamfw.Client]:
    with streamfw.connect("loopback://client-tests") as c:
        yield c


def test_same_name_shares_a_broker_and_other_names_do_not() -> None:
    with streamfw.connect("loopback://a") as a1, streamfw.connect("loopback://a") as a2:
        a1.stream("s").create()
        assert a2.stream("s").exists()
        with streamfw.connect("loopback://b") as b:
            assert not b.stream("s").exists()
    with streamfw.connect("loopback://a") as again:  # the last client closed: state is gone
        assert not again.stream("s").exists()


def test_loopback_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        streamfw.connect("loopback://x", api_key="secret")
    clock = ManualClock()
    with (
        streamfw.connect("loopback://clocked", clock=clock),
        pytest.raises(ConfigError, match="another clock"),
    ):
        streamfw.connect("loopback://clocked", clock=ManualClock())


# None is not here: connect(None) means "no URL given", i.e. $STREAMFW_URL or loopback://.
@pytest.mark.parametrize("url", ["", "loopback", "no-scheme-here", 7])
def test_bad_urls_are_refused(url: object) -> None:
    with pytest.raises(ConfigError, match="scheme://"):
        streamfw.connect(url)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 201, 7])
def test_bad_stream_names_are_refused(client: streamfw.Client, name: object) -> None:
    with pytest.raises(ConfigError, match="stream name"):
        client.stream(name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"type": "round_robin"}, "type 'round_robin' is unknown"),
        ({"receiver_queue_size": 0}, "receiver_queue_size"),
        ({"receiver_queue_size": 1001}, "receiver_queue_size"),
        ({"ack_timeout": 0}, "ack_timeout"),
        ({"nack_delay": -1}, "nack_delay"),
        ({"initial_position": "middle"}, "initial_position"),
        ({"codec": "rot13"}, "unknown here: 'rot13'"),
        ({"max_message_size": 0}, "max_message_size must be an int of at least 1"),
        ({"max_message_size": "5MB"}, "max_message_size"),
    ],
)
def test_bad_consumer_options_are_refused(
    client: streamfw.Client, kwargs: dict[str, object], match: str
) -> None:
    stream = client.stream("opts").create(exist_ok=True)
    with pytest.raises(ConfigError, match=match):
        stream.consumer("sub", **kwargs)  # type: ignore[arg-type]
    assert stream.subscriptions() == []  # nothing half-created


def test_bad_subscription_name_and_reader_start(client: streamfw.Client) -> None:
    stream = client.stream("names").create()
    with pytest.raises(ConfigError, match="subscription name"):
        stream.consumer("bad name")
    with pytest.raises(ConfigError, match="start must be"):
        stream.reader("middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_message_size"):
        stream.reader("earliest", max_message_size=-1)


def test_producer_refuses_reserved_property_and_bad_values(client: streamfw.Client) -> None:
    with client.stream("p").create().producer() as p:
        with pytest.raises(ConfigError, match="reserved"):
            p.send("x", properties={"streamfw-codec": "json"})
        with pytest.raises(ConfigError, match="key must be"):
            p.send("x", key=5)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="str to str"):
            p.send("x", properties={"n": 1})  # type: ignore[dict-item]
        with pytest.raises(streamfw.EncodeError):
            p.send(float("nan"))


def test_send_async_callback_and_flush(client: streamfw.Client) -> None:
    done: list[MessageId] = []
    with client.stream("async").create().producer() as p:
        futures = [p.send_async(i, callback=lambda f: done.append(f.result())) for i in range(3)]
        p.flush()
    assert [f.result() for f in futures] == done and len(done) == 3


def test_closed_objects_say_so_and_close_twice(client: streamfw.Client) -> None:
    stream = client.stream("closing").create()
    p = stream.producer()
    c = stream.consumer("sub")
    p.close()
    p.close()
    c.close()
    c.close()
    with pytest.raises(Closed, match="producer"):
        p.send("x")
    with pytest.raises(Closed, match="consumer of 'sub'"):
        c.receive(0)
    client.close()
    with pytest.raises(Closed, match="client"):
        stream.exists()


def test_close_wakes_a_blocked_iterator(client: streamfw.Client) -> None:
    stream = client.stream("iter").create()
    consumer = stream.consumer("sub")
    got: list[object] = []
    t = threading.Thread(target=lambda: got.extend(m.value for m in consumer))
    t.start()
    with stream.producer() as p:
        p.send("one")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    consumer.close()
    t.join(5)
    assert not t.is_alive() and got == ["one"]


def test_forced_delete_closes_a_blocked_receive(client: streamfw.Client) -> None:
    stream = client.stream("doomed").create()
    consumer = stream.consumer("sub")
    with cf.ThreadPoolExecutor(1) as pool:
        future = pool.submit(consumer.receive, 10)
        time.sleep(0.05)
        stream.delete(force=True)
        with pytest.raises(StreamDeleted, match="deleted"):
            future.result(5)


def test_message_without_consumer_cannot_be_acked() -> None:
    import datetime as dt

    msg = streamfw.Message(
        MessageId("s", 1, 0), None, b"", {}, None, dt.datetime.now(dt.timezone.utc), 0, "s", None
    )
    with pytest.raises(LocalProtocolError, match="not received by a consumer"):
        msg.ack()


def test_reprs_name_things_without_secrets(client: streamfw.Client) -> None:
    stream = client.stream("r").create()
    assert repr(client) == "<Client loopback://client-tests>"
    with stream.producer(codec="json+zlib") as p, stream.consumer("sub") as c:
        assert repr(p) == "<Producer stream='r' codec='json+zlib' open>"
        assert repr(c) == "<Consumer consumer of 'sub' on stream 'r' open>"


def test_demo_plays_the_seed_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--count", "4", "--interval", "0.05", "--url", "loopback://demo-t"]) == 0
    out = capsys.readouterr().out
    assert "consumer-2  refused: subscription 'consumer-subscription-" in out
    assert "leaving WITHOUT ack" in out and "(left unacked by consumer-1) -> ack" in out
    assert "4/4 messages of this run delivered and acked" in out


def test_cli_rejects_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--count", "0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_python_dash_m_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streamfw", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip() == f"streamfw {streamfw.__version__}"


def test_unknown_scheme_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--url", "kafka://x"]) == 2  # a usage error (docs/cli.md)
    assert "unknown URL scheme 'kafka' in --url; installed:" in capsys.readouterr().err


def test_demo_runs_the_same_scenario_on_the_emulator(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamfw_macrometa.emulator import Emulator

    with Emulator.start(host="127.0.0.1", port=0) as emulator:  # its own: the demo's names
        monkeypatch.setenv("MACROMETA_API_KEY", emulator.api_key)
        url = f"macrometa+http://127.0.0.1:{emulator.port}"
        assert main(["demo", "--count", "4", "--interval", "0.1", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "consumer-2  refused:" in out and "Exclusive consumer is already connected" in out
    assert "(left unacked by consumer-1)" in out
    assert "4/4 messages of this run delivered and acked" in out


@pytest.mark.parametrize(
    ("properties", "key", "named"),
    [
        ({"k": "\ud800"}, None, "property 'k'"),
        ({"\udfff": "v"}, None, "property name"),
        ({}, "a\udbff", "message key"),
    ],
)
def test_text_utf8_cannot_carry_is_refused_at_once_on_every_transport(
    streamfw_harness: Harness, properties: dict[str, str], key: str | None, named: str
) -> None:
    with streamfw_harness.client() as client:
        stream = client.stream(unique("surrogates")).create()
        with stream.consumer("sub") as consumer, stream.producer() as producer:
            with pytest.raises(ConfigError, match=f"{named}.*lone surrogate"):
                producer.send("v", properties=properties, key=key, timeout=5)
            producer.send("after", timeout=5)  # nothing was left pending
            msg = consumer.receive(timeout=5)
            assert msg is not None and msg.value == "after"
            msg.ack()


def test_a_producer_without_a_send_timeout_waits_for_its_confirmation(
    client: streamfw.Client,
) -> None:
    stream = client.stream(unique("no-timeout")).create()
    with stream.producer(send_timeout=None) as producer:  # type: ignore[arg-type]
        assert isinstance(producer.send("x"), MessageId)
