"""pyC8 and jsc8 against one emulator: same topics, same tenant, shared subscriptions.

pyC8 sends ``subscriptionType=Exclusive``; jsc8's seed sends no type, which means
Exclusive too, so consumers of the two SDKs on one subscription exclude each other.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sdk_harness import Sdk
from sdk_harness import ok as _ok


@pytest.mark.parametrize(("holder", "intruder"), [("pyc8", "jsc8"), ("jsc8", "pyc8")])
def test_consumers_of_both_sdks_exclude_each_other(
    sdk: Sdk, unique: Callable[[str], str], holder: str, intruder: str
) -> None:
    stream, sub = unique("x_excl"), unique("sub")
    _ok(sdk.run("pyc8", "create", "--stream", stream))
    first = sdk.start(
        holder, "consume", "--stream", stream, "--subscription", sub, "--count", "1", "--hold", "30"
    )
    first.wait_for("subscribed")

    second = sdk.run(intruder, "consume", "--stream", stream, "--subscription", sub)
    assert second.returncode == 1, second.explain()
    error = second.of("error")[0]
    assert error["status"] == 409, second.explain()
    assert second.of("subscribed") == []

    _ok(sdk.run(intruder, "produce", "--stream", stream, "--count", "1", "--prefix", "x "))
    assert first.wait_for("message")["payload"] == "x 0"
    first.kill()


def test_both_sdks_agree_on_tenant_and_topics(sdk: Sdk, unique: Callable[[str], str]) -> None:
    stream, sub = unique("x_flow"), unique("sub")
    made = _ok(sdk.run("jsc8", "create", "--stream", stream))
    seen = _ok(sdk.run("pyc8", "create", "--stream", stream))
    assert made.of("client")[0]["tenant"] == seen.of("client")[0]["tenant"]
    assert [e["value"] for e in seen.of("has_stream")] == [True, True], seen.explain()

    consumer = sdk.start("jsc8", "consume", "--stream", stream, "--subscription", sub)
    consumer.wait_for("subscribed")
    _ok(sdk.run("pyc8", "produce", "--stream", stream, "--count", "3", "--prefix", "py "))
    assert _ok(consumer.finish()).payloads() == ["py 0", "py 1", "py 2"]

    consumer = sdk.start("pyc8", "consume", "--stream", stream, "--subscription", sub)
    consumer.wait_for("subscribed")
    _ok(sdk.run("jsc8", "produce", "--stream", stream, "--count", "3", "--prefix", "js "))
    assert _ok(consumer.finish()).payloads() == ["js 0", "js 1", "js 2"]


def test_email_password_login_in_both_sdks(sdk: Sdk, unique: Callable[[str], str]) -> None:
    """pyC8 C8Client(email=, password=) and jsc8 login(): POST /_open/auth, then a JWT.

    The development emulator accepts any password; WebSockets then carry
    ``Authorization: bearer <jwt>`` (pyC8) or ``?otp=`` fetched with the JWT (jsc8).
    """
    stream, sub = unique("x_login"), unique("sub")
    login = ["--email", "root@example.com", "--password", "anything"]
    consumer = sdk.start(
        "pyc8",
        "consume",
        "--stream",
        stream,
        "--subscription",
        sub,
        "--count",
        "2",
        "--ensure",
        *login,
    )
    consumer.wait_for("subscribed")
    producer = _ok(sdk.run("jsc8", "produce", "--stream", stream, "--count", "2", *login))
    assert producer.of("client")[0]["tenant"] == sdk.emulator.tenant, producer.explain()
    got = _ok(consumer.finish())
    assert got.of("client")[0]["tenant"] == sdk.emulator.tenant, got.explain()
    assert got.payloads() == ["hello 0", "hello 1"], got.explain()


@pytest.mark.parametrize("sdk_name", ["pyc8", "jsc8"])
def test_returning_consumer_gets_what_it_did_not_ack(
    sdk: Sdk, unique: Callable[[str], str], sdk_name: str
) -> None:
    stream, sub = unique(f"{sdk_name}_back"), unique("sub")
    leaving = sdk.start(
        sdk_name,
        "consume",
        "--stream",
        stream,
        "--subscription",
        sub,
        "--ensure",
        "--ack-first",
        "1",
    )
    leaving.wait_for("subscribed")
    _ok(sdk.run(sdk_name, "produce", "--stream", stream, "--count", "3"))
    gone = _ok(leaving.finish())
    assert [(e["payload"], e["acked"]) for e in gone.of("message")] == [
        ("hello 0", True),
        ("hello 1", False),
        ("hello 2", False),
    ], gone.explain()

    # Published while nobody is attached: waits in the subscription's backlog.
    _ok(sdk.run(sdk_name, "produce", "--stream", stream, "--count", "2", "--prefix", "later "))

    back = _ok(
        sdk.run(sdk_name, "consume", "--stream", stream, "--subscription", sub, "--count", "4")
    )
    assert back.payloads() == ["hello 1", "hello 2", "later 0", "later 1"], back.explain()
    # Redelivered ids are the ones first delivered.
    first_ids = {e["payload"]: e["messageId"] for e in gone.of("message")}
    again_ids = {e["payload"]: e["messageId"] for e in back.of("message")}
    assert again_ids["hello 1"] == first_ids["hello 1"]
