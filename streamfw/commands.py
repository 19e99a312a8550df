"""The core commands of the CLI: their arguments, their checks before connecting, their runs.

Data goes to stdout (JSON lines or one JSON document with ``--json``), status to stderr, so
both pipe well; the shapes are documented in docs/cli.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeAlias

from streamfw.client import Client, Stream
from streamfw.codec import AUTO, DEFAULT_MAX_MESSAGE_SIZE
from streamfw.errors import AlreadyExists, ConfigError, DecodeError, StreamNotFound
from streamfw.message import Message, MessageId
from streamfw.options import (
    INITIAL_POSITIONS,
    SUBSCRIPTION_TYPES,
    ConsumerOptions,
    ReaderOptions,
)
from streamfw.plugins import installed
from streamfw.terminal import Terminal

Parents = Sequence[argparse.ArgumentParser]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
ArgType = Callable[[str], Any]

UNDECODABLE_HINT = (
    "left unacked: it stays in the subscription's backlog (redelivered after this consumer"
    " detaches); pass --ack-undecodable to ack such messages, or --codec to decode them"
)


def key_value(text: str) -> tuple[str, str]:
    """argparse type: ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


# ------------------------------------------------------------------------------ arguments


def add_demo(
    sub: Subparsers, parents: Parents, seconds: ArgType, count: ArgType, url_env: str
) -> None:
    demo = sub.add_parser(
        "demo",
        parents=parents,
        help="the seed scenario: one producer, two exclusive consumers; fails unless every"
        " message of the run is delivered and acked",
    )
    demo.add_argument(
        "--url",
        default=os.environ.get(url_env, "loopback://demo"),
        help=f"server URL (default: ${url_env} or %(default)s)",
    )
    demo.add_argument(
        "--count", type=count, metavar="N", default=6, help="messages to send (default: 6)"
    )
    demo.add_argument(
        "--interval",
        type=seconds,
        metavar="S",
        default=0.5,
        help="seconds between messages (default: 0.5)",
    )
    demo.add_argument(
        "--stream", default="streamQuickstart", help="stream to use (default: %(default)s)"
    )
    demo.add_argument(
        "--subscription",
        help="exclusive subscription to use (default: a fresh one for this run, deleted after);"
        " messages of other runs on it are left unacked and not counted",
    )


def add_produce(sub: Subparsers, parents: Parents, seconds: ArgType, count: ArgType) -> None:
    p = sub.add_parser("produce", parents=parents, help="send messages to a stream")
    p.add_argument("stream")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--message", metavar="TEXT", help="text to send; {n} becomes the message number (1, 2, ...)"
    )
    source.add_argument(
        "--json-value", metavar="JSON", help="a JSON value to send, e.g. '{\"n\": 1}'"
    )
    source.add_argument("--file", type=Path, help="send this file's bytes as one message")
    p.add_argument(
        "--interval", type=seconds, metavar="S", help="seconds between messages, e.g. 1 or 1s"
    )
    p.add_argument(
        "--count",
        type=count,
        metavar="N",
        help="messages to send (default: 1; with --interval: until Ctrl-C)",
    )
    p.add_argument("--key", help="message key")
    p.add_argument(
        "--property",
        dest="properties",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="message property (repeatable)",
    )
    _add_codec(
        p,
        "the codec values are written with (default: auto: str as text, bytes as"
        " they are, anything else JSON), e.g. json+zlib",
    )
    p.add_argument("--local", action="store_true", help="a local (not global) stream")
    p.add_argument("--create", action="store_true", help="create the stream if it is missing")
    p.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=False,
        metavar="VALUE",
        help='machine-readable output: one JSON line per sent message, {"n", "id"}.'
        " (--json VALUE, the old spelling of --json-value VALUE, still sends VALUE but is"
        " deprecated)",
    )
    p.add_argument("--output-json", action="store_true", help=argparse.SUPPRESS)  # deprecated
    p.epilog = "Without --message/--json-value/--file, each line of standard input is a message."


def add_consume(sub: Subparsers, parents: Parents, seconds: ArgType, count: ArgType) -> None:
    c = sub.add_parser(
        "consume",
        parents=parents,
        help="receive (and ack) messages from a durable subscription",
        epilog="A message that does not decode is shown (with its error) and left unacked"
        " unless --ack-undecodable. Ctrl-C or SIGTERM detaches: unacked messages stay for"
        " redelivery (exit 130 or 143).",
    )
    c.add_argument("stream")
    c.add_argument("--subscription", required=True, help="subscription name")
    defaults = ConsumerOptions()  # the defaults are written there only
    c.add_argument("--type", default=defaults.type, choices=SUBSCRIPTION_TYPES)
    c.add_argument(
        "--initial-position",
        default=defaults.initial_position,
        choices=INITIAL_POSITIONS,
        help="where a NEW subscription starts (default: %(default)s). Not every server has"
        " this option: on one that has it only as an extension (the streamfw emulator) pass"
        " -o extensions=1, elsewhere earliest is refused (Unsupported); `streamfw read --from"
        " earliest` reads old messages on any server",
    )
    c.add_argument(
        "--max-redeliveries",
        type=count,
        default=None,
        metavar="N",
        help="after N redeliveries, the next nack or ack timeout sends a message to the"
        " dead-letter stream (max_redeliver_count; counted on shared and key_shared)",
    )
    c.add_argument(
        "--dead-letter-stream",
        default=None,
        metavar="NAME",
        help="where those go (default: STREAM-SUBSCRIPTION-DLQ); needs --max-redeliveries",
    )
    _add_stop_flags(c, seconds, count)
    c.add_argument(
        "--no-ack",
        action="store_true",
        help="do not ack: the messages stay in the subscription's backlog",
    )
    c.add_argument(
        "--ack-undecodable",
        action="store_true",
        help="ack messages that do not decode too (default: leave them in the backlog)",
    )
    _add_codec(c, "decodes messages that carry no codec tag (default: auto)")
    c.add_argument("--local", action="store_true", help="a local (not global) stream")


def add_read(sub: Subparsers, parents: Parents, seconds: ArgType, count: ArgType) -> None:
    r = sub.add_parser(
        "read",
        parents=parents,
        help="read messages with a non-durable reader (no subscription, no acks)",
    )
    r.add_argument("stream")
    r.add_argument(
        "--from",
        dest="start",
        default=ReaderOptions().start,
        metavar="earliest|latest|ID",
        help="where to start: earliest, latest (default: only new messages) or just after a"
        " message id as printed by produce/consume (STREAM:LEDGER:ENTRY or LEDGER:ENTRY)",
    )
    _add_stop_flags(r, seconds, count)
    _add_codec(r, "decodes messages that carry no codec tag (default: auto)")
    r.add_argument("--local", action="store_true", help="a local (not global) stream")


def _add_stop_flags(p: argparse.ArgumentParser, seconds: ArgType, count: ArgType) -> None:
    p.add_argument("--count", type=count, metavar="N", help="stop after this many messages")
    p.add_argument(
        "--timeout", type=seconds, metavar="S", help="stop after this long with no message"
    )


def _add_codec(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--codec", default=AUTO, metavar="SPEC", help=f"{text}; see `streamfw plugins`")


def add_admin(sub: Subparsers, parents: Parents) -> None:
    streams = sub.add_parser("streams", help="list, create, delete and inspect streams")
    ssub = streams.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = ssub.add_parser("list", parents=parents, help="list streams")
    scope = ls.add_mutually_exclusive_group()
    scope.add_argument("--local", action="store_const", const=True, dest="scope")
    scope.add_argument("--global", action="store_const", const=False, dest="scope")
    for action, text in [
        ("create", "create a stream"),
        ("delete", "delete a stream"),
        ("backlog", "unacked messages over all subscriptions"),
        ("stats", "the transport's statistics document"),
    ]:
        a = ssub.add_parser(action, parents=parents, help=text)
        a.add_argument("stream")
        a.add_argument("--local", action="store_true", help="a local (not global) stream")
        if action == "delete":
            a.add_argument(
                "--force",
                action="store_true",
                help="delete even with consumers or producers attached",
            )
        if action == "create":
            a.add_argument(
                "--exist-ok", action="store_true", help="no error if it exists (and say so)"
            )

    subs = sub.add_parser("subscriptions", help="list and delete subscriptions of a stream")
    bsub = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("list", "delete"):
        a = bsub.add_parser(action, parents=parents, help=f"{action} subscriptions")
        a.add_argument("stream")
        if action == "delete":
            a.add_argument("subscription")
        a.add_argument("--local", action="store_true", help="a local (not global) stream")


def add_plugins(sub: Subparsers, parents: Parents) -> None:
    p = sub.add_parser(
        "plugins",
        parents=parents,
        help="list discovered plugins, transports and codecs (exit 1 if a plugin failed)",
    )
    p.add_argument("--check", action="store_true", help="print only plugins that failed to load")


# ------------------------------------------------------------- checks before connecting


def _check_codec(args: argparse.Namespace) -> None:
    installed().codecs().pipeline(args.codec, max_size=DEFAULT_MAX_MESSAGE_SIZE)


def check_produce(args: argparse.Namespace) -> None:
    """Refuse bad values, files and codecs before anything connects (usage errors, exit 2)."""
    if isinstance(args.json, str):  # the old spelling: --json VALUE
        if args.json_value is not None or args.message is not None or args.file is not None:
            raise ConfigError("--json VALUE (deprecated) cannot be combined with another source")
        print(
            "streamfw: --json VALUE is deprecated: write --json-value VALUE (--json alone now"
            " asks for JSON output)",
            file=sys.stderr,
        )
        args.json_value, args.json = args.json, False
    args.json = bool(args.json or args.output_json)
    if args.json_value is not None:
        try:
            args.value = json.loads(args.json_value)
        except ValueError as exc:
            raise ConfigError(f"--json-value is not valid JSON: {exc}") from None
    if args.file is not None and not args.file.is_file():
        raise ConfigError(f"--file {str(args.file)!r}: no such file")
    if args.file is not None and not os.access(args.file, os.R_OK):
        raise ConfigError(f"--file {str(args.file)!r}: not readable")
    _check_codec(args)


def check_read(args: argparse.Namespace) -> None:
    _check_codec(args)
    if args.start not in ("earliest", "latest"):
        parts = args.start.rsplit(":", 2)
        if len(parts) < 2 or not all(p.isdigit() for p in parts[-2:]):
            raise ConfigError(
                f"--from must be earliest, latest or a message id such as orders:0:12 or 0:12,"
                f" got {args.start!r}"
            )


VALIDATORS: dict[str, Callable[[argparse.Namespace], None]] = {
    "produce": check_produce,
    "consume": _check_codec,
    "read": check_read,
}


# -------------------------------------------------------------------------------- produce


def _values(args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """(value, short text for status lines) for each message to send."""
    if args.file is not None:
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"--file {str(args.file)!r}: {exc.strerror}") from exc
        yield data, f"{len(data)} bytes from {args.file}"
        return
    if args.message is None and args.json_value is None:
        for line in sys.stdin:
            text = line.rstrip("\n")
            yield text, repr(text)
        return
    limit = args.count if args.count is not None else (None if args.interval else 1)
    n = 0
    while limit is None or n < limit:
        n += 1
        if args.message is not None:
            text = args.message.replace("{n}", str(n))
            yield text, repr(text)
        else:
            yield args.value, args.json_value


def produce(client: Client, args: argparse.Namespace, out: TextIO, term: Terminal) -> int:
    stream = _stream(client, args, create=args.create)
    sent = 0
    with stream.producer(codec=args.codec) as producer:
        term.status(f"producing to {stream.name!r} on {client!r} (Ctrl-C stops)")
        progress = term.progress("produced", args.count)
        try:
            for value, shown in _values(args):
                if sent and args.interval:
                    time.sleep(args.interval)
                mid = producer.send(value, properties=dict(args.properties), key=args.key)
                sent += 1
                if args.json:
                    print(json.dumps({"n": sent, "id": str(mid)}), file=out, flush=True)
                if progress.active:
                    progress.step()
                else:
                    term.status(f"sent #{sent} {shown} (id {mid})")
        except KeyboardInterrupt:
            progress.close()
            term.status(f"stopped after {sent} message(s)")
            raise
        progress.close()
    return 0


# ------------------------------------------------------------------------ consume / read


def message_record(msg: Message, *, error: str | None = None) -> dict[str, Any]:
    """The JSON shape of a received message (docs/cli.md)."""
    record: dict[str, Any] = {"id": str(msg.id)}
    if error is not None:
        record["error"] = error
        record["payload_base64"] = base64.b64encode(msg.payload).decode()
    elif isinstance(msg.value, bytes):
        record["payload_base64"] = base64.b64encode(msg.value).decode()
    else:
        record["value"] = msg.value
    record.update(
        properties=dict(msg.properties),
        key=msg.key,
        publish_time=_iso_millis(msg.publish_time),
        redelivery_count=msg.redelivery_count,
    )
    return record


def _iso_millis(t: dt.datetime) -> str:
    """ISO-8601 in UTC to the millisecond, ``Z`` suffix (the form Pulsar's REST answers use)."""
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_text(msg: Message) -> str:
    extras = [f"key={msg.key}"] if msg.key is not None else []
    props = {k: v for k, v in msg.properties.items() if k != "streamfw-codec"}
    if props:
        extras.append(f"properties={props}")
    if msg.redelivery_count:
        extras.append(f"redelivery {msg.redelivery_count}")
    tail = f"  ({', '.join(extras)})" if extras else ""
    return f"[{msg.id}] {msg.value!r}{tail}"


def consume(client: Client, args: argparse.Namespace, out: TextIO, term: Terminal) -> int:
    stream = _stream(client, args, create=False)
    dead_letters: dict[str, Any] = {}  # issue 11: only when asked for (a transport may refuse)
    if args.max_redeliveries is not None or args.dead_letter_stream is not None:
        dead_letters = {
            "max_redeliver_count": args.max_redeliveries,
            "dead_letter_stream": args.dead_letter_stream,
        }
    consumer = stream.consumer(
        args.subscription,
        codec=args.codec,
        type=args.type,
        initial_position=args.initial_position,
        **dead_letters,
    )
    term.status(
        f"consuming {stream.name!r} as {args.subscription!r} ({args.type}) on {client!r}"
        " (Ctrl-C stops; unacked messages stay for redelivery)"
    )
    return _drain(consumer, args, out, term, ack=not args.no_ack)


def read(client: Client, args: argparse.Namespace, out: TextIO, term: Terminal) -> int:
    stream = _stream(client, args, create=False)
    start: Any = args.start
    if start not in ("earliest", "latest"):
        ledger, entry = start.rsplit(":", 2)[-2:]
        start = MessageId(stream.name, int(ledger), int(entry))
    reader = stream.reader(start, codec=args.codec)
    term.status(f"reading {stream.name!r} from {args.start} on {client!r} (Ctrl-C stops)")
    return _drain(reader, args, out, term, ack=None)


def _drain(
    consumer: Any, args: argparse.Namespace, out: TextIO, term: Terminal, *, ack: bool | None
) -> int:
    """Show messages until --count or --timeout; ack them if ``ack`` (None: a reader)."""
    received = left = 0
    progress = term.progress("received", args.count)
    out_is_tty = progress.active and out.isatty()
    try:
        with consumer:
            while args.count is None or received < args.count:
                try:
                    msg = consumer.receive(timeout=args.timeout)
                    error = None
                except DecodeError as err:
                    assert err.undecodable is not None
                    msg, error = err.undecodable, str(err)
                if msg is None:
                    term.status(f"no message for {args.timeout} s; stopping")
                    break
                acks = bool(ack) and (error is None or args.ack_undecodable)
                # Counted before it is shown: a Ctrl-C landing right after the print must not
                # report one message fewer than the user saw.
                received += 1
                if out_is_tty:
                    progress.clear()
                _show(msg, error, acks if ack is not None else None, out, args.json)
                progress.step()
                if acks:
                    msg.ack()
                elif error is not None and ack:
                    left += 1
                    term.status(f"[{msg.id}] does not decode: {error}; {UNDECODABLE_HINT}")
    except KeyboardInterrupt:
        progress.close()
        term.status(f"stopped after {received} message(s)")
        raise
    progress.close()
    if left:
        term.status(f"{left} message(s) that did not decode were left unacked")
    return 0


def _show(msg: Message, error: str | None, acked: bool | None, out: TextIO, as_json: bool) -> None:
    if as_json:
        record = message_record(msg, error=error)
        if acked is not None:
            record["acked"] = acked
        line = json.dumps(record, ensure_ascii=False)
    elif error is not None:
        line = f"[{msg.id}] undecodable payload {msg.payload!r}: {error}"
    else:
        line = _as_text(msg)
    print(line, file=out, flush=True)


# --------------------------------------------------------------------------------- admin


def streams_command(client: Client, args: argparse.Namespace, out: TextIO, term: Terminal) -> int:
    if args.action == "list":
        found = client.streams(local=args.scope)
        if args.json:
            print(json.dumps([{"name": s.name, "local": s.local} for s in found]), file=out)
        for s in [] if args.json else found:
            print(f"{s.name}{'  (local)' if s.local else ''}", file=out)
        return 0
    stream = client.stream(args.stream, local=args.local)
    result: dict[str, Any] = {"stream": stream.name, "local": stream.local}
    if args.action == "create":
        try:
            stream.create()
            result["created"], text = True, f"created stream {stream.name!r}"
        except AlreadyExists:
            if not args.exist_ok:
                raise
            result["created"] = False
            text = f"stream {stream.name!r} already exists; --exist-ok: left as it was"
    elif args.action == "delete":
        stream.delete(force=args.force)
        result["deleted"], text = True, f"deleted stream {stream.name!r}"
    elif args.action == "backlog":
        result["backlog"] = stream.backlog()
        text = f"stream: {stream.name}  backlog: {result['backlog']}"
    else:
        result, text = stream.stats(), ""
        text = json.dumps(result, indent=2)
    print(json.dumps(result) if args.json else text, file=out)
    return 0


def subscriptions_command(
    client: Client, args: argparse.Namespace, out: TextIO, term: Terminal
) -> int:
    stream = client.stream(args.stream, local=args.local)
    if args.action == "delete":
        stream.delete_subscription(args.subscription)
        result = {
            "stream": stream.name,
            "local": stream.local,
            "subscription": args.subscription,
            "deleted": True,
        }
        text = f"deleted subscription {args.subscription!r} of {stream.name!r}"
        print(json.dumps(result) if args.json else text, file=out)
        return 0
    infos = stream.subscriptions()
    if args.json:
        records = [
            {"name": i.name, "type": i.type, "backlog": i.backlog, "consumers": i.consumers}
            for i in infos
        ]
        print(json.dumps(records), file=out)
    for i in [] if args.json else infos:
        print(f"{i.name:<30} {i.type:<10} backlog {i.backlog:<8} consumers {i.consumers}", file=out)
    return 0


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


STREAM_COMMANDS: dict[str, Callable[[Client, argparse.Namespace, TextIO, Terminal], int]] = {
    "produce": produce,
    "consume": consume,
    "read": read,
    "streams": streams_command,
    "subscriptions": subscriptions_command,
}


# ------------------------------------------------------------------------ demo, plugins


def demo_command(client: Client, args: argparse.Namespace, out: TextIO, term: Terminal) -> int:
    from streamfw.demo import run_demo

    narrative = io.StringIO() if args.json else out
    result = run_demo(
        client,
        count=args.count,
        interval=args.interval,
        out=narrative,
        stream_name=args.stream,
        subscription=args.subscription,
    )
    if args.json:
        print(json.dumps(result.as_dict()), file=out)
    return 0 if result.ok else 1


def plugins_command(args: argparse.Namespace, out: TextIO) -> int:
    found = installed()
    sources = found.transport_sources()
    transports = {
        name: {
            "plugin": sources[name],
            "summary": spec.summary,
            # native: the plugin offers the async SPI; threads: streamfw.aio's thread adapter
            "asyncio": "native" if spec.async_factory is not None else "threads",
        }
        for name, spec in sorted(found.transports().items())
    }
    codecs = {
        AUTO: {
            "kind": "value",
            "summary": "the default: str as UTF-8 text, bytes as they are, anything else JSON",
        },
        **{n: {"kind": s.kind, "summary": s.summary} for n, s in found.codecs().specs.items()},
    }
    plugins = [
        {
            "name": i.name,
            "module": i.module,
            "distribution": i.distribution,
            "version": i.version,
            "loaded": i.loaded,
            "error": i.error,
        }
        for i in found.infos
    ]
    code = 0 if all(p["loaded"] for p in plugins) else 1
    if args.json:
        shown = [p for p in plugins if not p["loaded"]] if args.check else plugins
        document: dict[str, Any] = {"ok": code == 0, "plugins": shown}
        if not args.check:
            document.update(transports=transports, codecs=codecs)
        print(json.dumps(document, indent=2), file=out)
        return code
    if args.check:
        for p in plugins:
            if not p["loaded"]:
                print(f"plugin {p['name']} ({p['module']}) FAILED: {p['error']}", file=out)
        return code
    print("plugins:", file=out)
    for p in plugins:
        origin = f"{p['distribution']} {p['version'] or ''}".strip()
        state = "ok" if p["loaded"] else f"FAILED: {p['error']}"
        print(f"  {p['name']:<16} {p['module']:<24} {origin:<22} {state}", file=out)
    print("transports (URL schemes):", file=out)
    for name, t in transports.items():
        line = f"from {t['plugin']:<12} asyncio: {t['asyncio']:<7} {t['summary']}"
        print(f"  {name + '://':<18} {line}", file=out)
    print("codecs:", file=out)
    for name, c in codecs.items():
        print(f"  {name:<18} {c['kind']:<6} {c['summary']}", file=out)
    return code
