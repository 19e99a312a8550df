"""``streamfw produce | consume | streams | subscriptions``: the stream commands of the CLI.

Status lines go to stderr, data to stdout (JSON lines with ``--json``), so both pipe well.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from streamfw.client import Client, Stream
from streamfw.errors import ConfigError, DecodeError, StreamNotFound
from streamfw.message import Message
from streamfw.options import INITIAL_POSITIONS, SUBSCRIPTION_TYPES, ConsumerOptions


def _iso_millis(t: dt.datetime) -> str:
    """ISO-8601 in UTC to the millisecond, ``Z`` suffix (the form Pulsar's REST answers use)."""
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _property(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_produce(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    seconds: Any,
    count: Any,
) -> None:
    p = sub.add_parser("produce", parents=[common], help="send messages to a stream")
    p.add_argument("stream")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--message", metavar="TEXT", help="text to send; {n} becomes the message number (1, 2, ...)"
    )
    source.add_argument("--json", dest="json_value", metavar="JSON", help="a JSON value to send")
    source.add_argument("--file", type=Path, help="send this file's bytes as one message")
    p.add_argument("--interval", type=seconds, help="seconds between messages, e.g. 1 or 1s")
    p.add_argument(
        "--count", type=count, help="messages to send (default: 1; with --interval: until Ctrl-C)"
    )
    p.add_argument("--key", help="message key")
    p.add_argument(
        "--property",
        dest="properties",
        type=_property,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="message property (repeatable)",
    )
    p.add_argument("--local", action="store_true", help="a local (not global) stream")
    p.add_argument("--create", action="store_true", help="create the stream if it is missing")
    p.add_argument("--output-json", action="store_true", help="print sent ids as JSON lines")
    p.epilog = "Without --message/--json/--file, each line of standard input is one message."


def add_consume(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    seconds: Any,
    count: Any,
) -> None:
    c = sub.add_parser("consume", parents=[common], help="receive messages from a subscription")
    c.add_argument("stream")
    c.add_argument("--subscription", required=True, help="subscription name")
    defaults = ConsumerOptions()  # the defaults are written there only
    c.add_argument("--type", default=defaults.type, choices=SUBSCRIPTION_TYPES)
    c.add_argument(
        "--initial-position",
        default=defaults.initial_position,
        choices=INITIAL_POSITIONS,
        help="where a NEW subscription starts (default: %(default)s)",
    )
    c.add_argument("--count", type=count, help="stop after this many messages")
    c.add_argument("--timeout", type=seconds, help="stop after this long with no message")
    c.add_argument(
        "--no-ack",
        action="store_true",
        help="do not ack: the messages stay in the subscription's backlog",
    )
    c.add_argument("--json", action="store_true", help="print messages as JSON lines")
    c.add_argument("--local", action="store_true", help="a local (not global) stream")


def add_admin(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    streams = sub.add_parser("streams", help="list, create, delete and inspect streams")
    ssub = streams.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = ssub.add_parser("list", parents=[common], help="list streams")
    scope = ls.add_mutually_exclusive_group()
    scope.add_argument("--local", action="store_const", const=True, dest="scope")
    scope.add_argument("--global", action="store_const", const=False, dest="scope")
    ls.add_argument("--json", action="store_true")
    for action, text in [
        ("create", "create a stream"),
        ("delete", "delete a stream"),
        ("backlog", "unacked messages over all subscriptions"),
        ("stats", "Pulsar-like statistics"),
    ]:
        a = ssub.add_parser(action, parents=[common], help=text)
        a.add_argument("stream")
        a.add_argument("--local", action="store_true", help="a local (not global) stream")
        a.add_argument("--json", action="store_true")
        if action == "delete":
            a.add_argument(
                "--force",
                action="store_true",
                help="delete even with consumers or producers attached",
            )
        if action == "create":
            a.add_argument("--exist-ok", action="store_true", help="no error if it exists")

    subs = sub.add_parser("subscriptions", help="list and delete subscriptions of a stream")
    bsub = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("list", "delete"):
        a = bsub.add_parser(action, parents=[common], help=f"{action} subscriptions")
        a.add_argument("stream")
        if action == "delete":
            a.add_argument("subscription")
        a.add_argument("--local", action="store_true", help="a local (not global) stream")
        a.add_argument("--json", action="store_true")


# ------------------------------------------------------------------------------- produce


def _values(args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """(value, short text for status lines) for each message to send."""
    if args.file is not None:
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"--file {args.file}: {exc.strerror}") from exc
        yield data, f"{len(data)} bytes from {args.file}"
        return
    if args.message is None and args.json_value is None:
        for line in sys.stdin:
            text = line.rstrip("\n")
            yield text, repr(text)
        return
    if args.json_value is not None:
        try:
            value = json.loads(args.json_value)
        except ValueError as exc:
            raise ConfigError(f"--json is not valid JSON: {exc}") from exc
    limit = args.count if args.count is not None else (None if args.interval else 1)
    n = 0
    while limit is None or n < limit:
        n += 1
        if args.message is not None:
            text = args.message.replace("{n}", str(n))
            yield text, repr(text)
        else:
            yield value, args.json_value


def produce(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    stream = _stream(client, args, create=args.create)
    sent = 0
    with stream.producer() as producer:
        _status(f"producing to {stream.name!r} on {client!r} (Ctrl-C stops)")
        try:
            for value, shown in _values(args):
                if sent and args.interval:
                    time.sleep(args.interval)
                mid = producer.send(value, properties=dict(args.properties), key=args.key)
                sent += 1
                if args.output_json:
                    print(json.dumps({"n": sent, "id": str(mid)}), file=out, flush=True)
                _status(f"sent #{sent} {shown} (id {mid})")
        except KeyboardInterrupt:
            _status(f"stopped after {sent} message(s)")
            return 130
    return 0


# ------------------------------------------------------------------------------- consume


def _as_json(msg: Message, error: str | None = None) -> str:
    record: dict[str, Any] = {"id": str(msg.id)}
    value = msg.value
    if error is not None:
        record["error"] = error
        record["payload_base64"] = base64.b64encode(msg.payload).decode()
    elif isinstance(value, bytes):
        record["payload_base64"] = base64.b64encode(value).decode()
    else:
        record["value"] = value
    record.update(
        properties=dict(msg.properties),
        key=msg.key,
        publishTime=_iso_millis(msg.publish_time),
        redeliveryCount=msg.redelivery_count,
    )
    return json.dumps(record, ensure_ascii=False)


def _as_text(msg: Message) -> str:
    extras = [f"key={msg.key}"] if msg.key is not None else []
    props = {k: v for k, v in msg.properties.items() if k != "streamfw-codec"}
    if props:
        extras.append(f"properties={props}")
    if msg.redelivery_count:
        extras.append(f"redelivery {msg.redelivery_count}")
    tail = f"  ({', '.join(extras)})" if extras else ""
    return f"[{msg.id}] {msg.value!r}{tail}"


def consume(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    stream = _stream(client, args, create=False)
    consumer = stream.consumer(
        args.subscription, type=args.type, initial_position=args.initial_position
    )
    received = 0
    _status(
        f"consuming {stream.name!r} as {args.subscription!r} ({args.type}) on {client!r}"
        " (Ctrl-C stops; unacked messages stay for redelivery)"
    )
    try:
        with consumer:
            while args.count is None or received < args.count:
                try:
                    msg = consumer.receive(timeout=args.timeout)
                except DecodeError as err:
                    assert err.undecodable is not None
                    msg, line = err.undecodable, _as_json(err.undecodable, str(err))
                    if not args.json:
                        line = f"[{msg.id}] undecodable payload {msg.payload!r}: {err}"
                else:
                    if msg is None:
                        _status(f"no message for {args.timeout} s; stopping")
                        break
                    line = _as_json(msg) if args.json else _as_text(msg)
                # Counted before it is shown: a Ctrl-C landing right after the print must not
                # report one message fewer than the user saw.
                received += 1
                print(line, file=out, flush=True)
                if not args.no_ack:
                    msg.ack()
    except KeyboardInterrupt:
        _status(f"stopped after {received} message(s)")
        return 130
    return 0


# --------------------------------------------------------------------------------- admin


def streams_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "list":
        found = client.streams(local=args.scope)
        if args.json:
            print(json.dumps([{"name": s.name, "local": s.local} for s in found]), file=out)
        for s in [] if args.json else found:
            print(f"{s.name}{'  (local)' if s.local else ''}", file=out)
        return 0
    stream = client.stream(args.stream, local=args.local)
    if args.action == "create":
        stream.create(exist_ok=args.exist_ok)
        result: Any = {"created": stream.name, "local": stream.local}
    elif args.action == "delete":
        stream.delete(force=args.force)
        result = {"deleted": stream.name, "local": stream.local}
    elif args.action == "backlog":
        result = {"stream": stream.name, "backlog": stream.backlog()}
    else:
        result = stream.stats()
    _print(result, args.json, out)
    return 0


def subscriptions_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    stream = client.stream(args.stream, local=args.local)
    if args.action == "delete":
        stream.delete_subscription(args.subscription)
        _print({"deleted": args.subscription, "stream": stream.name}, args.json, out)
        return 0
    infos = stream.subscriptions()
    if args.json:
        print(
            json.dumps(
                [
                    {"name": i.name, "type": i.type, "backlog": i.backlog, "consumers": i.consumers}
                    for i in infos
                ]
            ),
            file=out,
        )
    for i in [] if args.json else infos:
        print(f"{i.name:<30} {i.type:<10} backlog {i.backlog:<8} consumers {i.consumers}", file=out)
    return 0


def _print(result: Any, as_json: bool, out: TextIO) -> None:
    if as_json or not isinstance(result, dict) or any(isinstance(v, dict) for v in result.values()):
        print(json.dumps(result, indent=None if as_json else 2), file=out)
    else:
        print("  ".join(f"{k}: {v}" for k, v in result.items()), file=out)


def _stream(client: Client, args: argparse.Namespace, *, create: bool) -> Stream:
    stream = client.stream(args.stream, local=args.local)
    if create:
        stream.create(exist_ok=True)
    elif not stream.exists():
        raise StreamNotFound(
            f"stream {stream.ref} does not exist on {client!r}; create it with"
            f" `streamfw streams create {stream.name}`"
            + (" --local" if stream.local else "")
            + (" or pass --create" if args.command == "produce" else "")
        )
    return stream
