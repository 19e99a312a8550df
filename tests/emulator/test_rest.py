"""REST routes (docs/protocol.md §5): envelopes, stream admin, error statuses."""

from __future__ import annotations

import base64

import pytest
from streamfw_macrometa.emulator import Emulator

from tests.emulator.helpers import Api, ack, payload, recv, send


def assert_ok(r: object) -> object:
    body = r.json()  # type: ignore[attr-defined]
    assert r.status_code == 200, body  # type: ignore[attr-defined]
    assert r.headers["Content-Type"].startswith("application/json")  # type: ignore[attr-defined]
    assert body["error"] is False and body["code"] == 200 and "errorNum" not in body
    return body["result"]


def assert_error(r: object, status: int, error_num: int | None = None) -> str:
    body = r.json()  # type: ignore[attr-defined]
    assert r.status_code == status, body  # type: ignore[attr-defined]
    assert r.headers["Content-Type"].startswith("application/json")  # type: ignore[attr-defined]
    assert body["error"] is True and body["code"] == status
    assert body["errorNum"] == (status if error_num is None else error_num)
    assert isinstance(body["errorMessage"], str) and body["errorMessage"]
    return str(body["errorMessage"])


def test_user_answers_the_tenant(api: Api) -> None:
    result = assert_ok(api.request("GET", "/_api/user"))
    assert result[0]["tenant"] == api.emu.tenant == "demo"  # type: ignore[index]


def test_datacenter_local_leads_back_via_api_prefix(api: Api) -> None:
    port = api.emu.port
    r = api.request(
        "GET", "/datacenter/local", headers={**api.headers, "Host": f"api-localhost:{port}"}
    )
    body = r.json()
    assert r.headers["Content-Type"].startswith("application/json")
    assert "error" not in body  # a bare object, not the envelope
    assert body["tags"]["url"] == f"localhost:{port}"
    assert body["tags"]["api"] == f"api-localhost:{port}"
    r = api.request("GET", "/datacenter/local", headers={**api.headers, "Host": "api-localhost"})
    assert r.json()["tags"]["url"] == "localhost"
    assert api.request("GET", "/datacenter/all").json()[0]["tags"]["url"]


def test_create_list_and_filter(api: Api, name: str) -> None:
    assert api.create(name) == f"c8globals.{name}"
    assert api.create(name, local=True) == f"c8locals.{name}"
    result = assert_ok(api.streams("POST", f"/{name}x?global=False"))
    assert result == {"stream-id": f"c8locals.{name}x"}

    def topics(query: str) -> set[str]:
        entries = assert_ok(api.streams("GET", query))
        mine = [e for e in entries if name in e["topic"]]  # type: ignore[attr-defined]
        for e in mine:
            assert e["type"] == 4 and e["db"] == "_system" and e["tenant"] == "demo"
            assert e["local"] is e["topic"].startswith("c8locals.")
            assert "terminated" not in e  # pyC8 tests its presence, not its value
        return {e["topic"] for e in mine}

    assert topics("") == {f"c8globals.{name}", f"c8locals.{name}", f"c8locals.{name}x"}
    assert topics("?global=true") == topics("?global=True") == {f"c8globals.{name}"}
    assert topics("?global=FALSE") == {f"c8locals.{name}", f"c8locals.{name}x"}
    assert_error(api.streams("GET", "?global=maybe"), 400)


def test_create_twice_is_409_and_bad_name_400(api: Api, name: str) -> None:
    api.create(name)
    assert_error(api.streams("POST", f"/{name}?global=true"), 409, 581)
    assert_error(api.streams("POST", "/bad%20name?global=true"), 400)


def test_delete_refused_while_in_use_unless_forced(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    assert_error(api.streams("DELETE", f"/{topic}"), 412)
    assert_error(api.streams("DELETE", f"/{topic}?force=false"), 412)
    assert assert_ok(api.streams("DELETE", f"/{topic}?force=true")) == {}
    consumer.settimeout(3)
    assert consumer.recv() == ""  # closed by the server
    assert_error(api.streams("DELETE", f"/{topic}"), 404)
    assert_error(api.streams("DELETE", "/notatopic"), 404)


def test_publish_stats_backlog_subscriptions(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    result = assert_ok(api.streams("POST", f"/{topic}/publish", data=b"plain text"))
    assert isinstance(result["messageId"], str)  # type: ignore[index]
    frame = recv(consumer)
    assert payload(frame) == b"plain text" and frame["messageId"] == result["messageId"]
    consumer.close()
    assert assert_ok(api.streams("GET", f"/{topic}/subscriptions?global=true")) == ["s"]
    backlog = assert_ok(api.streams("GET", f"/{topic}/backlog?global=true"))
    assert backlog["messageBacklog"] == 1  # type: ignore[index]
    stats = assert_ok(api.streams("GET", f"/{topic}/stats?global=True"))
    assert stats["subscriptions"]["s"]["msgBacklog"] == 1  # type: ignore[index]
    assert stats["msgInCounter"] == 1  # type: ignore[index]


def test_delete_subscription_412_404(api: Api, topic: str) -> None:
    consumer = api.consumer(topic, "s")
    assert_error(api.streams("DELETE", f"/{topic}/subscriptions/s?global=true"), 412)
    consumer.close()
    api.streams("GET", "")  # a round trip: the close has been handled by now
    assert_ok(api.streams("DELETE", f"/{topic}/subscriptions/s?global=true"))
    assert_error(api.streams("DELETE", f"/{topic}/subscriptions/s?global=true"), 404)
    assert_error(api.streams("DELETE", f"/{topic}/subscriptions/nope"), 404)


def test_delete_subscription_everywhere(api: Api, name: str) -> None:
    one, two = api.create(name), api.create(name + "b")
    for t in (one, two):
        api.consumer(t, name).close()
    held = api.consumer(two, name)
    assert_error(api.streams("DELETE", f"/subscription/{name}?global=true"), 412)
    held.close()
    api.streams("GET", "")
    gone = assert_ok(api.streams("DELETE", f"/subscription/{name}?global=true"))
    assert sorted(gone) == [one, two]  # type: ignore[arg-type]
    for t in (one, two):
        assert assert_ok(api.streams("GET", f"/{t}/subscriptions")) == []


def test_clear_backlog_one_and_all(api: Api, name: str) -> None:
    topic = api.create(name)
    for sub in ("a", "b"):
        api.consumer(topic, sub).close()
    producer = api.producer(topic)
    for i in range(3):
        assert send(producer, b"%d" % i)["result"] == "ok"

    def backlog() -> int:
        return int(assert_ok(api.streams("GET", f"/{topic}/backlog"))["messageBacklog"])  # type: ignore[index]

    assert backlog() == 6
    assert_ok(api.streams("POST", "/clearbacklog/a"))
    assert backlog() == 3
    assert_ok(api.streams("POST", "/clearbacklog?global=true"))
    assert backlog() == 0
    consumer = api.consumer(topic, "b")
    assert send(producer, b"new")["result"] == "ok"
    assert payload(recv(consumer)) == b"new"  # the cleared ones are not delivered


def test_ttl_get_set_and_expiry(api: Api, name: str) -> None:
    fresh = Emulator.start(port=0)
    try:
        own = Api(fresh)
        assert assert_ok(own.streams("GET", "/ttl?global=True")) == "0"
        assert_ok(own.streams("POST", "/ttl/3600?global=True"))
        assert assert_ok(own.streams("GET", "/ttl")) == "3600"
        assert_error(own.streams("POST", "/ttl/-1"), 400)
    finally:
        fresh.stop()
    topic = api.create(name)
    api.consumer(topic, "s").close()
    api.streams("POST", f"/{topic}/publish", data=b"old")
    assert_ok(api.streams("POST", f"/{topic}/expiry/0"))
    assert assert_ok(api.streams("GET", f"/{topic}/backlog"))["messageBacklog"] == 0  # type: ignore[index]
    assert_error(api.streams("POST", f"/{topic}/expiry/soon"), 400)


def test_unknown_routes_methods_and_fabrics(api: Api) -> None:
    assert_error(api.request("GET", "/nothing/here"), 404)
    assert_error(api.request("PUT", "/_api/user"), 405)
    assert_error(api.request("GET", "/_fabric/nope/_api/streams"), 404, 1228)
    # legacy jsc8 routes that current GDN does not document either
    assert_error(api.streams("POST", "/unsubscribe/s"), 404)


def test_rest_publish_body_limit(api: Api, topic: str) -> None:
    assert_error(api.streams("POST", f"/{topic}/publish", data=b"x" * (1024 * 1024 + 1)), 413)
    consumer = api.consumer(topic, "s")
    assert_ok(api.streams("POST", f"/{topic}/publish", data=b"x" * 1000))
    frame = recv(consumer)
    assert len(base64.b64decode(frame["payload"])) == 1000
    ack(consumer, frame)


@pytest.mark.parametrize(
    "path", ["/_api/user", "/datacenter/local", "/apid/otp", "/_fabric/_system/_api/streams"]
)
def test_credentials_required(api: Api, path: str) -> None:
    method = "POST" if "otp" in path else "GET"
    assert_error(api.request(method, path, headers={}), 401)
    assert_error(api.request(method, path, headers={"Authorization": "apikey wrong.key.x"}), 401)
