"""The unmodified pyC8 1.1.2 SDK runs its seed flows against the emulator.

Each test starts ``tests/sdk/pyc8_flow.py`` in pyC8's own virtualenv (see conftest.py);
the SDK reaches the emulator through ``api-localhost`` over TLS with a test CA.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sdk_harness import Sdk
from sdk_harness import ok as _ok

PY = "pyc8"


def test_create_then_has_stream(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream = unique("py_create")
    first = _ok(sdk.run(PY, "create", "--stream", stream))
    assert first.of("client")[0]["tenant"] == sdk.emulator.tenant, first.explain()
    assert [e["value"] for e in first.of("has_stream")] == [False, True], first.explain()
    assert first.of("created")[0]["stream_id"] == f"c8globals.{stream}"

    again = _ok(sdk.run(PY, "create", "--stream", stream))
    assert [e["value"] for e in again.of("has_stream")] == [True, True], again.explain()
    assert again.of("created") == []


def test_producer_to_consumer_with_acks(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, sub = unique("py_flow"), unique("sub")
    consumer = sdk.start(PY, "consume", "--stream", stream, "--subscription", sub, "--ensure")
    consumer.wait_for("subscribed")

    producer = _ok(sdk.run(PY, "produce", "--stream", stream, "--count", "3", "--read-acks"))
    assert [e["payload"] for e in producer.of("sent")] == ["hello 0", "hello 1", "hello 2"]
    acks = [e["frame"] for e in producer.of("ack")]
    assert [a.get("result") for a in acks] == ["ok"] * 3, producer.explain()
    assert all(a.get("messageId") for a in acks)

    got = _ok(consumer.finish())
    assert got.payloads() == ["hello 0", "hello 1", "hello 2"], got.explain()
    assert [e["messageId"] for e in got.of("message")] == [a["messageId"] for a in acks]
    assert {e["redeliveryCount"] for e in got.of("message")} == {0}

    # Everything was acked: a consumer coming back on the subscription gets nothing.
    # The cleared subscription has nothing left to deliver.
    back = _ok(sdk.run(PY, "consume", "--stream", stream, "--subscription", sub, "--idle", "0.5"))
    assert back.payloads() == [], back.explain()


def test_second_exclusive_consumer_gets_409(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, sub = unique("py_excl"), unique("sub")
    _ok(sdk.run(PY, "create", "--stream", stream))
    first = sdk.start(
        PY, "consume", "--stream", stream, "--subscription", sub, "--count", "1", "--hold", "30"
    )
    first.wait_for("subscribed")

    second = sdk.run(PY, "consume", "--stream", stream, "--subscription", sub, "--count", "1")
    assert second.returncode == 1, second.explain()
    err = second.last()
    assert err["event"] == "error", second.explain()
    assert err["type"] == "WebSocketBadStatusException", second.explain()
    assert err["status"] == 409, second.explain()
    assert "409" in err["message"]
    assert second.of("subscribed") == []

    # The first consumer was not disturbed and still receives.
    _ok(sdk.run(PY, "produce", "--stream", stream, "--count", "1", "--prefix", "still "))
    assert first.wait_for("message")["payload"] == "still 0"
    first.kill()


def test_consumer_on_missing_stream_is_refused_by_the_sdk(
    sdk: Sdk, unique: Callable[[str], str]
) -> None:
    run = sdk.run(PY, "consume", "--stream", unique("py_none"))
    assert run.returncode == 1, run.explain()
    assert run.last()["type"] == "StreamSubscriberError", run.explain()


def test_admin_calls(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, sub = unique("py_admin"), unique("sub")
    topic = f"c8globals.{stream}"
    consumer = sdk.start(
        PY, "consume", "--stream", stream, "--subscription", sub, "--ensure", "--count", "1"
    )
    consumer.wait_for("subscribed")
    _ok(sdk.run(PY, "produce", "--stream", stream, "--count", "1"))
    _ok(consumer.finish())

    run = _ok(sdk.run(PY, "admin", "--stream", stream, "--delete-subscription", sub, "--delete"))
    calls = [(e["call"], e) for e in run.of("admin")]
    errors = [(name, e["error"]) for name, e in calls if "error" in e]
    assert errors == [], run.explain()
    results = {}
    for name, e in calls:
        results.setdefault(name, []).append(e["result"])

    listed = results["get_streams"][0]
    mine = [s for s in listed if s["topic"] == topic]
    assert mine and mine[0]["type"] == "persistent" and mine[0]["local"] is False, listed
    assert results["has_stream"] == [True, False]
    assert results["get_stream_stats"][0] is not None
    assert results["get_stream_backlog"][0] is not None
    subs_before, subs_after = results["get_stream_subscriptions"]
    assert sub in str(subs_before), run.explain()
    assert sub not in str(subs_after), run.explain()
    assert results["delete_stream"] == [True]


def test_get_streams_reports_a_live_stream_as_active(
    sdk: Sdk, unique: Callable[[str], str]
) -> None:
    """pyC8 marks a stream "terminated" when its list entry merely *has* a terminated key.

    See tests/sdk/FINDINGS.md, F1 (fixed: the emulator omits the key for live streams).
    """
    stream = unique("py_status")
    _ok(sdk.run(PY, "create", "--stream", stream))
    run = _ok(sdk.run(PY, "admin", "--stream", stream))
    listed = next(e["result"] for e in run.of("admin") if e["call"] == "get_streams")
    mine = [s for s in listed if s["topic"] == f"c8globals.{stream}"]
    assert mine and mine[0]["status"] == "active", listed


def test_reader_from_earliest_sees_history(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream = unique("py_read")
    _ok(sdk.run(PY, "produce", "--stream", stream, "--count", "2"))  # creates the stream
    run = _ok(sdk.run(PY, "read", "--stream", stream, "--start", "earliest", "--count", "2"))
    assert run.payloads() == ["hello 0", "hello 1"], run.explain()
    latest = _ok(sdk.run(PY, "read", "--stream", stream, "--idle", "0.5"))
    assert latest.payloads() == [], latest.explain()


def test_rest_publish_reaches_consumer_and_attached_subscription_is_kept(
    sdk: Sdk, unique: Callable[[str], str]
) -> None:
    stream, sub = unique("py_pub"), unique("sub")
    consumer = sdk.start(
        PY, "consume", "--stream", stream, "--subscription", sub, "--ensure", "--hold", "30"
    )
    consumer.wait_for("subscribed")
    run = _ok(
        sdk.run(PY, "admin", "--stream", stream, "--delete-subscription", sub, "--publish", "rest")
    )
    calls = {e["call"]: e for e in run.of("admin")}
    assert calls["publish_message_stream"].get("result") is True, run.explain()
    refused = calls["delete_stream_subscription"]["error"]
    assert (refused["type"], refused["status"]) == ("StreamDeleteError", 412), run.explain()
    assert consumer.wait_for("message")["payload"] == "rest"
    consumer.kill()


def test_backlog_ttl_and_unsubscribe_calls(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, cleared, dropped = unique("py_more"), unique("subA"), unique("subB")
    _ok(sdk.run(PY, "create", "--stream", stream))
    consumers = [
        sdk.start(PY, "consume", "--stream", stream, "--subscription", s, "--count", "1")
        for s in (cleared, dropped)
    ]
    for c in consumers:
        c.wait_for("subscribed")
    _ok(sdk.run(PY, "produce", "--stream", stream, "--count", "3"))
    for c in consumers:
        _ok(c.finish())  # each acked "hello 0" only: a backlog of 2 per subscription

    args = ["--ttl", "3600", "--clear", cleared, "--unsubscribe", dropped]
    run = _ok(sdk.run(PY, "admin", "--stream", stream, *args))
    calls = run.of("admin")
    assert [e["call"] for e in calls if "error" in e] == [], run.explain()
    results: dict[str, list[Any]] = {}
    for e in calls:
        results.setdefault(e["call"], []).append(e["result"])
    assert str(results["get_message_stream_ttl"][1]) == "3600", run.explain()
    before, after = results["get_stream_backlog"]
    assert cleared in json.dumps(before), run.explain()
    assert json.dumps(after) != json.dumps(before), run.explain()  # shape is the server's
    subs_before, subs_after = results["get_stream_subscriptions"]
    assert sorted(subs_before) == sorted([cleared, dropped]), run.explain()
    assert subs_after == [cleared], run.explain()

    # The cleared subscription has nothing left to deliver.
    back = _ok(
        sdk.run(PY, "consume", "--stream", stream, "--subscription", cleared, "--idle", "0.5")
    )
    assert back.payloads() == [], back.explain()


def test_key_shared_consumers_share_a_subscription(sdk: Sdk, unique: Callable[[str], str]) -> None:
    """Issue 11: pyC8 passes consumer_type through; Key_Shared is no longer refused (400)."""
    stream, sub = unique("py_keys"), unique("sub")
    _ok(sdk.run(PY, "create", "--stream", stream))
    flags = ["--stream", stream, "--subscription", sub, "--type", "Key_Shared", "--idle", "2"]
    first = sdk.start(PY, "consume", *flags, "--count", "0")
    first.wait_for("subscribed")
    second = sdk.start(PY, "consume", *flags, "--count", "0")
    second.wait_for("subscribed")  # a second Exclusive consumer would get 409 here
    _ok(sdk.run(PY, "produce", "--stream", stream, "--count", "3"))
    got = sorted(_ok(first.finish()).payloads() + _ok(second.finish()).payloads())
    assert got == ["hello 0", "hello 1", "hello 2"]  # messages without a key: one consumer
