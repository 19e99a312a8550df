"""REST routes of docs/protocol.md §5: discovery, credentials and stream admin.

Each handler is a thin translation: parse the path and query, call the fabric's broker
through ``FabricHost.call`` (which routes the events a call may cause, e.g. deliveries after
a REST publish), and wrap the answer in the envelope of section 4. Broker exceptions become
error envelopes in ``routing.error_response``.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from aiohttp import web

from streamfw.api import StreamRef, StreamStats
from streamfw.broker import MAX_SECONDS
from streamfw.errors import ConfigError, InUse, StreamNotFound
from streamfw.message import Envelope
from streamfw_macrometa import gateway, wire
from streamfw_macrometa.emulator import envelope
from streamfw_macrometa.emulator.routing import Call, Route, route
from streamfw_macrometa.wire import encode_message_id

STREAM_TYPE = 4  # pyC8 insists on type 4 ("persistent stream") in the list
_STREAMS = gateway.STREAMS_PATH


def parse_bool(call: Call, name: str) -> bool | None:
    """A ``true``/``false`` flag in any letter case (pyC8 sends ``True``); None if absent."""
    value = call.request.query.get(name)
    if value is None or value == "":
        return None
    if value.lower() not in ("true", "false"):
        raise ConfigError(f"query parameter {name}={value!r}: expected true or false")
    return value.lower() == "true"


def parse_topic(topic: str) -> StreamRef:
    """A stream's topic name to a StreamRef (404 for anything else)."""
    ref = wire.parse_topic_name(topic)
    if ref is None:
        raise StreamNotFound(
            f"stream {topic!r} not found: topics are {wire.TOPIC_FORMS}"
            " (collection streams are not emulated)"
        )
    return ref


_DIGITS = re.compile(r"[0-9]{1,10}\Z")  # ASCII only: str.isdigit() also accepts "²"


def _seconds(text: str) -> int:
    """A path segment as whole seconds from 0 to MAX_SECONDS, else ConfigError (400)."""
    if not _DIGITS.match(text) or int(text) > MAX_SECONDS:
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise ConfigError(f"{shown!r} is not a whole number of seconds from 0 to {MAX_SECONDS}")
    return int(text)


# ----------------------------------------------------------------- discovery, credentials


@route("GET", gateway.USER_PATH)
async def user(call: Call) -> web.Response:
    tenant = call.state.auth.tenant
    return envelope.ok(
        [{"tenant": tenant, "user": "root", "email": f"root@{tenant}", "active": True, "extra": {}}]
    )


@route("POST", "_open/auth", public=True)
async def open_auth(call: Call) -> web.Response:
    try:
        body = wire.load_json(await call.request.read() or b"{}")
    except ValueError:
        return envelope.error(
            HTTPStatus.BAD_REQUEST, "body must be a JSON object with email and password"
        )
    if not isinstance(body, dict):
        return envelope.error(
            HTTPStatus.BAD_REQUEST, "body must be a JSON object with email and password"
        )
    username = body.get("email") or body.get("username")
    password = body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return envelope.error(
            HTTPStatus.BAD_REQUEST, "email (or username) and password are required"
        )
    auth = call.state.auth
    if not auth.check_password(password):
        return envelope.error(HTTPStatus.UNAUTHORIZED, "Wrong credentials")
    return envelope.bare(
        {"jwt": auth.issue_jwt(username), "tenant": auth.tenant, "username": username}
    )


def _datacenter(call: Call) -> dict[str, Any]:
    host = call.request.host
    url = host[len("api-") :] if host.startswith("api-") else host  # "api-" + url leads back
    return {
        "_key": "emulator",
        "name": "emulator",
        "local": True,
        "status": 0,
        "host": host,
        "spot_region": False,
        "tags": {"api": "api-" + url, "url": url},
        "locationInfo": {
            "city": "localhost",
            "countrycode": "",
            "countryname": "",
            "latitude": 0,
            "longitude": 0,
            "url": url,
        },
    }


@route("GET", gateway.LOCAL_DC_PATH)
async def datacenter_local(call: Call) -> web.Response:
    return envelope.bare(_datacenter(call))


@route("GET", "datacenter/all")
async def datacenter_all(call: Call) -> web.Response:
    return envelope.bare([_datacenter(call)])


@route("POST", gateway.OTP_PATH)
async def otp(call: Call) -> web.Response:
    return envelope.bare({gateway.OTP: call.state.auth.otps.issue()})


@route("POST", "_fabric/{fabric}/_api/key/validate", public=True)
async def validate_key(call: Call) -> web.Response:
    try:
        body = wire.load_json(await call.request.read() or b"{}")
    except ValueError:
        body = None
    auth = call.state.auth
    if isinstance(body, dict):
        key, jwt = body.get("apikey"), body.get("jwt")
        if (isinstance(key, str) and auth.check_key(key)) or (
            isinstance(jwt, str) and auth.check_jwt(jwt) is not None
        ):
            return envelope.ok({"tenant": auth.tenant, "user": "root"})
    return envelope.error(HTTPStatus.UNAUTHORIZED, "invalid apikey or jwt")


# ------------------------------------------------------------------------- stream admin


def _entry(call: Call, ref: StreamRef) -> dict[str, Any]:
    # No "terminated" key: pyC8 reports a stream as terminated when the key is present at
    # all, whatever its value (tests/sdk/FINDINGS.md F1); streams are never terminated here.
    return {
        "_key": wire.topic_name(ref),
        "_id": f"streams/{wire.topic_name(ref)}",
        "_rev": "1",
        "topic": wire.topic_name(ref),
        "local": ref.local,
        "db": call.host.name,
        "tenant": call.state.auth.tenant,
        "type": STREAM_TYPE,
    }


@route("GET", _STREAMS)
async def list_streams(call: Call) -> web.Response:
    is_global = parse_bool(call, "global")
    local = None if is_global is None else not is_global
    refs = call.host.broker.list_streams(local=local)
    return envelope.ok([_entry(call, r) for r in refs])


@route("POST", _STREAMS + "/{name}")
async def create_stream(call: Call) -> web.Response:
    name = call.params["name"]
    is_global = parse_bool(call, "global")
    local = is_global is False
    split = wire.split_topic_name(name)
    if split is not None:  # a topic given where a name was expected: be lenient
        name, local = split
    ref = StreamRef(name, local)
    # LimitExceeded (the namespace holds its maximum of topics) is answered by the dispatcher,
    # with the status table's 412 as Pulsar does.
    call.host.call(lambda: call.host.broker.create_stream(ref))
    return envelope.ok({"stream-id": wire.topic_name(ref)})


@route("DELETE", _STREAMS + "/{topic}")
async def delete_stream(call: Call) -> web.Response:
    ref = parse_topic(call.params["topic"])
    force = bool(parse_bool(call, "force"))
    call.host.call(lambda: call.host.broker.delete_stream(ref, force=force))
    return envelope.ok({})


@route("GET", _STREAMS + "/{topic}/backlog")
async def backlog(call: Call) -> web.Response:
    ref = parse_topic(call.params["topic"])
    broker = call.host.broker
    stats = broker.stats(ref)
    return envelope.ok(
        {
            "topicName": wire.topic_name(ref),
            "messageBacklog": broker.backlog(ref),
            "storageSize": stats.storage_size,
            "cursorDetails": {
                name: {"cursorBacklog": s.backlog} for name, s in stats.subscriptions.items()
            },
        }
    )


@route("GET", _STREAMS + "/{topic}/stats")
async def stats(call: Call) -> web.Response:
    return envelope.ok(pulsar_stats(call.host.broker.stats(parse_topic(call.params["topic"]))))


def pulsar_stats(stats: StreamStats) -> dict[str, Any]:
    """The broker's statistics in the shape of Pulsar's topic stats (what ``/stats`` answers).

    Field names follow Pulsar's ``TopicStats``
    (https://pulsar.apache.org/docs/next/admin-api-topics/#get-stats).
    """
    return {
        "msgInCounter": stats.published,
        "storageSize": stats.storage_size,
        "publishers": [{"producerId": p} for p in stats.producers],
        "subscriptions": {
            name: {
                "type": s.type.capitalize(),
                "msgBacklog": s.backlog,
                "unackedMessages": s.unacked,
                "consumers": [
                    {"consumerName": c.name, "unackedMessages": c.unacked} for c in s.consumers
                ],
            }
            for name, s in stats.subscriptions.items()
        },
    }


@route("GET", _STREAMS + "/{topic}/subscriptions")
async def subscriptions(call: Call) -> web.Response:
    subs = call.host.broker.subscriptions(parse_topic(call.params["topic"]))
    return envelope.ok([s.name for s in subs])


@route("DELETE", _STREAMS + "/{topic}/subscriptions/{sub}")
async def delete_subscription(call: Call) -> web.Response:
    ref = parse_topic(call.params["topic"])
    call.host.call(lambda: call.host.broker.delete_subscription(ref, call.params["sub"]))
    return envelope.ok({})


def _streams_with(call: Call, sub: str | None) -> list[StreamRef]:
    """The fabric's streams (as filtered by ``global``) holding ``sub`` (any, if None)."""
    is_global = parse_bool(call, "global")
    broker = call.host.broker
    refs = broker.list_streams(local=None if is_global is None else not is_global)
    if sub is None:
        return refs
    return [r for r in refs if any(s.name == sub for s in broker.subscriptions(r))]


@route("DELETE", _STREAMS + "/subscription/{sub}")
async def delete_subscription_everywhere(call: Call) -> web.Response:
    sub = call.params["sub"]
    broker = call.host.broker
    refs = _streams_with(call, sub)
    busy = [
        wire.topic_name(r)
        for r in refs
        for s in broker.subscriptions(r)
        if s.name == sub and s.consumers
    ]
    if busy:  # refuse the whole request rather than half of it
        raise InUse(f"subscription {sub!r} has active connected consumers on {busy}")
    for ref in refs:
        call.host.call(lambda ref=ref: broker.delete_subscription(ref, sub))  # type: ignore[misc]
    return envelope.ok([wire.topic_name(r) for r in refs])


async def _clear(call: Call, sub: str | None) -> web.Response:
    refs = _streams_with(call, sub)
    for ref in refs:
        call.host.call(lambda ref=ref: call.host.broker.clear_backlog(ref, sub))  # type: ignore[misc]
    return envelope.ok([wire.topic_name(r) for r in refs])


@route("POST", _STREAMS + "/clearbacklog")
async def clear_all_backlogs(call: Call) -> web.Response:
    return await _clear(call, None)


@route("POST", _STREAMS + "/clearbacklog/{sub}")
async def clear_subscription_backlog(call: Call) -> web.Response:
    return await _clear(call, call.params["sub"])


@route("GET", _STREAMS + "/ttl")
async def get_ttl(call: Call) -> web.Response:
    return envelope.ok(str(call.host.broker.message_ttl))  # a string, as in GDN's spec


@route("POST", _STREAMS + "/ttl/{seconds}")
async def set_ttl(call: Call) -> web.Response:
    seconds = _seconds(call.params["seconds"])

    def apply() -> None:
        call.host.broker.message_ttl = seconds

    call.host.call(apply)
    return envelope.ok({})


@route("POST", _STREAMS + "/{topic}/expiry/{seconds}")
async def expire(call: Call) -> web.Response:
    ref = parse_topic(call.params["topic"])
    seconds = _seconds(call.params["seconds"])
    call.host.call(lambda: call.host.broker.expire(ref, seconds))
    return envelope.ok({})


@route("POST", _STREAMS + "/{topic}/publish")
async def publish(call: Call) -> web.Response:
    ref = parse_topic(call.params["topic"])
    body = await call.request.read()  # raw bytes: GDN sends the text as the message
    # BacklogQuotaExceeded is answered by the dispatcher with the status table's 429: retry
    # once consumers have caught up.
    mid = call.host.call(lambda: call.host.broker.publish(ref, Envelope(body)))
    return envelope.ok({"messageId": encode_message_id(mid)})


ROUTES: tuple[Route, ...] = (
    user,
    open_auth,
    datacenter_local,
    datacenter_all,
    otp,
    validate_key,
    list_streams,
    create_stream,
    delete_stream,
    backlog,
    stats,
    subscriptions,
    delete_subscription,
    delete_subscription_everywhere,
    clear_all_backlogs,
    clear_subscription_backlog,
    get_ttl,
    set_ttl,
    expire,
    publish,
)
