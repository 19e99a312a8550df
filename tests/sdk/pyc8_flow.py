"""Run one pyC8 seed flow against a Macrometa endpoint and print JSON lines.

Run by the pyC8 virtualenv's python (``.cache/sdk/pyc8/bin/python``), never by the
project's .venv: pyC8 1.1.2 pins websocket-client 0.57.0.

The SDK is used unmodified, as a library. Two things in *this process* are shimmed so
that it can reach a local emulator without touching the machine (see
docs/emulator-sdks.md):

* name resolution: ``socket.getaddrinfo`` answers names starting with ``api-`` with
  ``$STREAMFW_SDK_RESOLVE_TO`` (default ``127.0.0.1``), because both SDKs always prepend
  ``api-`` to the host they are given (``api-localhost`` is in no resolver);
* the port: ``C8Client.set_port`` forces 443 for https; it is replaced by a no-op so the
  ``port=`` given to the constructor is kept.

TLS trust comes from the environment (``REQUESTS_CA_BUNDLE`` for pyC8's ``/_api/user``
call, ``WEBSOCKET_CLIENT_CA_BUNDLE`` for its WebSockets). Every line printed on stdout is
one JSON object with an ``event`` key; the last one is ``{"event": "done", ...}`` or
``{"event": "error", ...}``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pyc8_shims import install

install()  # before pyC8 or websocket-client connects anywhere

import websocket  # noqa: E402
from c8 import C8Client  # noqa: E402


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "sdk": "pyc8", **fields}, default=str), flush=True)


def error_fields(exc: BaseException) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(exc, "http_code", None)
    if status is not None:
        fields["status"] = status
    return fields


def make_client(args: argparse.Namespace) -> C8Client:
    """API key by default; with --email, pyC8's login (POST /_open/auth, then a JWT)."""
    if args.email:
        credentials = {"email": args.email, "password": args.password}
    else:
        credentials = {"apikey": args.key}
    return C8Client(
        protocol="https", host=args.host, port=args.port, geofabric=args.fabric, **credentials
    )


def ensure_stream(client: C8Client, stream: str) -> None:
    """The seed's start: create the stream unless it exists."""
    exists = client.has_stream(stream, local=False)
    emit("has_stream", stream=stream, value=exists)
    if not exists:
        result = client.create_stream(stream, local=False)
        emit("created", stream=stream, stream_id=result["stream-id"])


def flow_create(client: C8Client, args: argparse.Namespace) -> None:
    ensure_stream(client, args.stream)
    emit("has_stream", stream=args.stream, value=client.has_stream(args.stream, local=False))


def flow_produce(client: C8Client, args: argparse.Namespace) -> None:
    ensure_stream(client, args.stream)
    producer = client.create_stream_producer(args.stream, local=False)
    emit("connected", role="producer")
    try:
        for i in range(args.count):
            text = f"{args.prefix}{i}"
            producer.send(text)  # Base64Socket wraps it as {"payload": base64(text)}
            emit("sent", payload=text)
            if args.read_acks:
                producer.settimeout(args.timeout)
                emit("ack", frame=json.loads(producer.recv()))
            if args.interval:
                time.sleep(args.interval)
    finally:
        producer.close()


def flow_consume(client: C8Client, args: argparse.Namespace) -> None:
    """The seed consumer: receive, print, ack. Stops after --count or --idle seconds."""
    if args.ensure:
        ensure_stream(client, args.stream)
    consumer = client.subscribe(
        args.stream,
        local=False,
        subscription_name=args.subscription,
        consumer_type=args.type,  # pyC8 sends it as subscriptionType, unchecked
    )
    emit("subscribed", subscription=args.subscription)
    received = 0
    deadline = time.monotonic() + args.hold
    try:
        while args.count == 0 or received < args.count:
            consumer.settimeout(args.idle)
            try:
                frame = json.loads(consumer.recv())
            except websocket.WebSocketTimeoutException:
                if time.monotonic() < deadline:
                    continue
                emit("idle", seconds=args.idle)
                break
            received += 1
            payload = base64.b64decode(frame["payload"]).decode("utf-8")
            acked = args.ack_first < 0 or received <= args.ack_first
            emit(
                "message",
                payload=payload,
                messageId=frame["messageId"],
                redeliveryCount=frame.get("redeliveryCount"),
                acked=acked,
            )
            if acked:
                consumer.send(json.dumps({"messageId": frame["messageId"]}))
        while time.monotonic() < deadline:  # stay attached (exclusive-subscription tests)
            time.sleep(0.05)
    finally:
        consumer.close()
        emit("closed", received=received)


def flow_read(client: C8Client, args: argparse.Namespace) -> None:
    """A non-durable reader from --start (latest | earliest); nothing is acked."""
    reader = client.create_stream_reader(args.stream, start_message_id=args.start, local=False)
    emit("subscribed", reader=True)
    received = 0
    try:
        while args.count == 0 or received < args.count:
            reader.settimeout(args.idle)
            try:
                frame = json.loads(reader.recv())
            except websocket.WebSocketTimeoutException:
                emit("idle", seconds=args.idle)
                break
            received += 1
            payload = base64.b64decode(frame["payload"]).decode("utf-8")
            emit("message", payload=payload, messageId=frame["messageId"], acked=False)
    finally:
        reader.close()
        emit("closed", received=received)


def _call(name: str, fn: Callable[[], Any]) -> None:
    try:
        emit("admin", call=name, result=fn())
    except Exception as exc:
        emit("admin", call=name, error=error_fields(exc))


def flow_admin(client: C8Client, args: argparse.Namespace) -> None:
    topic = f"c8globals.{args.stream}"
    if args.publish is not None:
        _call("publish_message_stream", lambda: client.publish_message_stream(topic, args.publish))
    _call("get_streams", client.get_streams)
    _call("has_stream", lambda: client.has_stream(args.stream, local=False))
    _call("get_stream_stats", lambda: client.get_stream_stats(args.stream, local=False))
    _call("get_stream_backlog", lambda: client.get_stream_backlog(args.stream, local=False))
    _call(
        "get_stream_subscriptions",
        lambda: client.get_stream_subscriptions(args.stream, local=False),
    )
    if args.ttl:
        _call("get_message_stream_ttl", lambda: client.get_message_stream_ttl(local=False))
        _call("set_message_stream_ttl", lambda: client.set_message_stream_ttl(args.ttl))
        _call("get_message_stream_ttl", lambda: client.get_message_stream_ttl(local=False))
        _call("set_message_expiry_stream", lambda: client.set_message_expiry_stream(topic, 60))
    if args.clear:
        _call("clear_stream_backlog", lambda: client.clear_stream_backlog(args.clear))
        _call("get_stream_backlog", lambda: client.get_stream_backlog(args.stream, local=False))
    if args.unsubscribe:
        _call("unsubscribe", lambda: client.unsubscribe(args.unsubscribe, local=False))
        _call(
            "get_stream_subscriptions",
            lambda: client.get_stream_subscriptions(args.stream, local=False),
        )
    if args.delete_subscription:
        sub = args.delete_subscription
        _call(
            "delete_stream_subscription",
            lambda: client.delete_stream_subscription(topic, sub, local=False),
        )
        _call(
            "get_stream_subscriptions",
            lambda: client.get_stream_subscriptions(args.stream, local=False),
        )
    if args.delete:
        _call("delete_stream", lambda: client.delete_stream(topic, force=True))
        _call("has_stream", lambda: client.has_stream(args.stream, local=False))


FLOWS: dict[str, Callable[[C8Client, argparse.Namespace], None]] = {
    "create": flow_create,
    "produce": flow_produce,
    "consume": flow_consume,
    "admin": flow_admin,
    "read": flow_read,
}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("flow", choices=sorted(FLOWS))
    p.add_argument("--host", default=os.environ.get("STREAMFW_SDK_HOST", "localhost"))
    p.add_argument("--port", type=int, default=int(os.environ.get("STREAMFW_SDK_PORT", "443")))
    p.add_argument("--key", default=os.environ.get("STREAMFW_SDK_API_KEY"))
    p.add_argument("--email", help="log in with email + password instead of the API key")
    p.add_argument("--password", default="")
    p.add_argument("--fabric", default="_system")
    p.add_argument("--stream", default="stream_quickstart")
    p.add_argument("--subscription", default="consumer_subscription")
    p.add_argument("--type", default="Exclusive", help="consume: pyC8's consumer_type")
    p.add_argument("--count", type=int, default=3, help="messages to send / to receive (0: any)")
    p.add_argument("--prefix", default="hello ")
    p.add_argument("--interval", type=float, default=0.0, help="seconds between sends")
    p.add_argument("--read-acks", action="store_true", help="read each producer ack")
    p.add_argument("--idle", type=float, default=5.0, help="stop after this long without data")
    p.add_argument("--hold", type=float, default=0.0, help="stay attached at least this long")
    p.add_argument("--ack-first", type=int, default=-1, help="ack only the first N (-1: all)")
    p.add_argument("--ensure", action="store_true", help="consume: create the stream if missing")
    p.add_argument("--delete", action="store_true", help="admin: delete the stream at the end")
    p.add_argument("--ttl", type=int, help="admin: get, set and get the message TTL; expiry")
    p.add_argument("--clear", metavar="SUB", help="admin: clear_stream_backlog(SUB)")
    p.add_argument("--unsubscribe", metavar="SUB", help="admin: unsubscribe(SUB)")
    p.add_argument("--delete-subscription", metavar="SUB", help="admin: delete SUB of the stream")
    p.add_argument("--publish", help="admin: first publish this text over REST")
    p.add_argument("--start", default="latest", help="read: latest | earliest")
    p.add_argument("--timeout", type=float, default=5.0)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        client = make_client(args)
        emit("client", url=client.base_url, tenant=client._tenant._conn.tenant_name)
        FLOWS[args.flow](client, args)
    except Exception as exc:
        emit("error", **error_fields(exc))
        return 1
    emit("done", flow=args.flow)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
