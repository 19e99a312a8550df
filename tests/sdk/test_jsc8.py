"""The unmodified jsc8 1.1.0 SDK runs its seed flows against the emulator.

Each test starts ``node --require resolve_shim.js jsc8_flow.js`` (see conftest.py). As in
the seed, the WebSocket host is the configured URL minus ``https://``, trailing slash
included, so jsc8 opens ``wss://api-localhost:<port>//_ws/...`` with a one-time password.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sdk_harness import Sdk
from sdk_harness import ok as _ok

JS = "jsc8"


def test_create_then_has_stream(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream = unique("jsCreate")
    first = _ok(sdk.run(JS, "create", "--stream", stream))
    assert first.of("client")[0]["tenant"] == sdk.emulator.tenant, first.explain()
    assert [e["value"] for e in first.of("has_stream")] == [False, True], first.explain()
    assert first.of("created")[0]["stream_id"] == f"c8globals.{stream}"

    again = _ok(sdk.run(JS, "create", "--stream", stream))
    assert [e["value"] for e in again.of("has_stream")] == [True, True], again.explain()
    assert again.of("created") == []


def test_producer_to_consumer_with_acks(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, sub = unique("jsFlow"), unique("sub")
    consumer = sdk.start(JS, "consume", "--stream", stream, "--subscription", sub, "--ensure")
    consumer.wait_for("subscribed")

    producer = _ok(sdk.run(JS, "produce", "--stream", stream, "--count", "3"))
    assert [e["payload"] for e in producer.of("sent")] == ["hello 0", "hello 1", "hello 2"]
    acks = [e["frame"] for e in producer.of("ack")]
    assert [a.get("result") for a in acks] == ["ok"] * 3, producer.explain()

    got = _ok(consumer.finish())
    assert got.payloads() == ["hello 0", "hello 1", "hello 2"], got.explain()
    assert [e["messageId"] for e in got.of("message")] == [a["messageId"] for a in acks]

    back = _ok(sdk.run(JS, "consume", "--stream", stream, "--subscription", sub, "--idle", "0.5"))
    assert back.payloads() == [], back.explain()


def test_second_exclusive_consumer_gets_409(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, sub = unique("jsExcl"), unique("sub")
    _ok(sdk.run(JS, "create", "--stream", stream))
    first = sdk.start(
        JS, "consume", "--stream", stream, "--subscription", sub, "--count", "1", "--hold", "30"
    )
    first.wait_for("subscribed")

    second = sdk.run(JS, "consume", "--stream", stream, "--subscription", sub, "--count", "1")
    assert second.returncode == 1, second.explain()
    errors = second.of("error")
    assert len(errors) == 1, second.explain()
    assert errors[0]["message"] == "Unexpected server response: 409", second.explain()
    assert errors[0]["status"] == 409
    assert second.of("subscribed") == []
    assert second.of("closed")[0]["code"] == 1006, second.explain()

    _ok(sdk.run(JS, "produce", "--stream", stream, "--count", "1", "--prefix", "still "))
    assert first.wait_for("message")["payload"] == "still 0"
    first.kill()


def test_client_helpers_use_datacenter_local(sdk: Sdk, unique: Callable[[str], str]) -> None:
    """client.subscribe / createStreamProducer take the host from GET /datacenter/local."""
    stream, sub = unique("jsHelp"), unique("sub")
    _ok(sdk.run(JS, "create", "--stream", stream))
    consumer = sdk.start(
        JS, "consume", "--stream", stream, "--subscription", sub, "--via-client", "--count", "2"
    )
    consumer.wait_for("subscribed")
    producer = _ok(sdk.run(JS, "produce", "--stream", stream, "--count", "2", "--via-client"))
    assert len(producer.of("ack")) == 2, producer.explain()
    assert _ok(consumer.finish()).payloads() == ["hello 0", "hello 1"]


def test_admin_calls(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, sub = unique("jsAdmin"), unique("sub")
    consumer = sdk.start(
        JS, "consume", "--stream", stream, "--subscription", sub, "--ensure", "--count", "1"
    )
    consumer.wait_for("subscribed")
    _ok(sdk.run(JS, "produce", "--stream", stream, "--count", "1"))
    _ok(consumer.finish())

    run = _ok(sdk.run(JS, "admin", "--stream", stream, "--subscription", sub))
    calls = run.of("admin")
    assert [e["call"] for e in calls if "error" in e] == [], run.explain()
    results: dict[str, list[Any]] = {}
    for e in calls:
        results.setdefault(e["call"], []).append(e["result"])
    topics = [s["topic"] for s in results["getStreams"][0]["result"]]
    assert f"c8globals.{stream}" in topics
    assert results["hasStream"] == [True, False]
    before, after = (r["result"] for r in results["getSubscriptionList"])
    assert sub in before and sub not in after, run.explain()
    for name in ("publishMessage", "getStreamStatistics", "backlog", "deleteStream"):
        assert results[name][0]["error"] is False, run.explain()


def test_consumer_on_missing_stream_gets_404(sdk: Sdk, unique: Callable[[str], str]) -> None:
    """jsc8 does not check first (unlike pyC8); the emulator refuses the upgrade with 404."""
    run = sdk.run(JS, "consume", "--stream", unique("jsNone"))
    assert run.returncode == 1, run.explain()
    assert run.of("error")[0]["message"] == "Unexpected server response: 404", run.explain()
    assert run.of("subscribed") == []


def test_dead_letter_options_pass_through(sdk: Sdk, unique: Callable[[str], str]) -> None:
    """Issue 11: jsc8 passes consumer query parameters through unchanged; a message nacked
    past ``maxRedeliverCount`` leaves its subscription for ``deadLetterTopic``, once."""
    stream, dead, sub = unique("jsDlq"), unique("jsDead"), unique("sub")
    _ok(sdk.run(JS, "create", "--stream", stream))
    _ok(sdk.run(JS, "create", "--stream", dead))
    parked = sdk.start(JS, "consume", "--stream", dead, "--subscription", sub, "--idle", "4")
    parked.wait_for("subscribed")
    params = {
        "subscriptionType": "Shared",
        "maxRedeliverCount": "1",
        "deadLetterTopic": dead,
        "negativeAckRedeliveryDelay": "100",
    }
    nacker = sdk.start(
        JS, "consume", "--stream", stream, "--subscription", sub, "--nack", "--count", "0",
        "--idle", "2", "--params", json.dumps(params),
    )  # fmt: skip
    nacker.wait_for("subscribed")
    _ok(sdk.run(JS, "produce", "--stream", stream, "--count", "1"))

    tried = _ok(nacker.finish())
    # Delivered at count 0, nacked, redelivered at count 1 (the limit), nacked: dead-lettered.
    seen = [(m["payload"], m["redeliveryCount"]) for m in tried.of("message")]
    assert seen == [("hello 0", 0), ("hello 0", 1)], tried.explain()
    landed = _ok(parked.finish())
    assert landed.payloads() == ["hello 0"], landed.explain()
