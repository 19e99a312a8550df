"""The ``streamfw`` command line (also ``python -m streamfw``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import streamfw
from streamfw import commands
from streamfw.errors import ConfigError, OutcomeUnknown, StreamError
from streamfw.plugins import installed

URL_ENV = "STREAMFW_URL"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text.removesuffix("s"))
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamfw",
        description="Produce and consume message streams over pluggable transports.",
    )
    parser.add_argument("--version", action="version", version=f"streamfw {streamfw.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the seed scenario: one producer, two exclusive consumers")
    demo.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, "loopback://demo"),
        help=f"transport URL (default: ${URL_ENV} or %(default)s)",
    )
    demo.add_argument(
        "--count", type=_positive_int, default=6, help="messages to send (default: 6)"
    )
    demo.add_argument(
        "--interval", type=_seconds, default=0.5, help="seconds between messages (default: 0.5)"
    )

    found = installed()
    schemes = ", ".join(f"{name}://" for name in found.transports()) or "none installed"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"server URL, SCHEME://...; schemes: {schemes} (or ${URL_ENV})",
    )
    common.add_argument(
        "--api-key",
        help="API key (default: the transport's own environment variable; never printed)",
    )
    common.add_argument(
        "--fabric", help="the transport's fabric option, as -o fabric=NAME (default: its own)"
    )
    common.add_argument(
        "-o",
        "--option",
        dest="options",
        action="append",
        default=[],
        type=commands._property,
        metavar="NAME=VALUE",
        help="another transport option (repeatable)",
    )
    commands.add_produce(sub, common, _seconds, _positive_int)
    commands.add_consume(sub, common, _seconds, _positive_int)
    commands.add_admin(sub, common)

    plugins = sub.add_parser("plugins", help="list discovered plugins, transports and codecs")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")

    for name, spec in found.commands().items():
        if name in sub.choices:
            continue  # a plugin cannot shadow a core command
        command = sub.add_parser(name, help=spec.summary)
        spec.add_arguments(command)
        command.set_defaults(plugin_command=spec.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from streamfw.demo import demo_main

            with streamfw.connect(args.url) as client:
                return demo_main(client, args.count, args.interval, sys.stdout)
        if args.command == "plugins":
            return _plugins(args.json)
        if args.command in _STREAM_COMMANDS:
            with _connect(args) as client:
                return _STREAM_COMMANDS[args.command](client, args, sys.stdout)
        run: Callable[[argparse.Namespace], int] | None = getattr(args, "plugin_command", None)
        if run is not None:
            return run(args)
    except ConfigError as exc:
        print(f"streamfw: {exc}", file=sys.stderr)
        return 2
    except OutcomeUnknown as exc:
        print(f"streamfw: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(
            "streamfw: that message may still be stored: check the stream before sending"
            " it again, or a retry may store it twice",
            file=sys.stderr,
        )
        return 1
    except StreamError as exc:
        print(f"streamfw: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")  # argparse makes this unreachable


_STREAM_COMMANDS = {
    "produce": commands.produce,
    "consume": commands.consume,
    "streams": commands.streams_command,
    "subscriptions": commands.subscriptions_command,
}


def _connect(args: argparse.Namespace) -> streamfw.Client:
    if not args.url:
        raise ConfigError(
            f"no server given: pass --url or set ${URL_ENV}. The default loopback:// broker"
            " lives inside one process, so what this command did would vanish when it exits;"
            " run a server in another terminal (a plugin may offer one, e.g. `streamfw emulator`;"
            " see `streamfw --help`) and pass its URL"
        )
    options: dict[str, Any] = dict(args.options)
    if args.api_key:
        options["api_key"] = args.api_key
    if args.fabric:
        options["fabric"] = args.fabric
    return streamfw.connect(args.url, **options)


def _plugins(as_json: bool) -> int:
    found = installed()
    sources = found.transport_sources()
    transports = {
        name: {"plugin": sources[name], "summary": spec.summary}
        for name, spec in sorted(found.transports().items())
    }
    codecs = {n: {"kind": s.kind, "summary": s.summary} for n, s in found.codecs().specs.items()}
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
    if as_json:
        print(
            json.dumps({"plugins": plugins, "transports": transports, "codecs": codecs}, indent=2)
        )
        return 0
    print("plugins:")
    for p in plugins:
        origin = f"{p['distribution']} {p['version'] or ''}".strip()
        state = "ok" if p["loaded"] else f"FAILED: {p['error']}"
        print(f"  {p['name']:<16} {p['module']:<24} {origin:<22} {state}")
    print("transports (URL schemes):")
    for name, t in transports.items():
        print(f"  {name + '://':<18} from {t['plugin']:<12} {t['summary']}")
    print("codecs:")
    for name, c in codecs.items():
        print(f"  {name:<18} {c['kind']:<6} {c['summary']}")
    return 0 if all(p["loaded"] for p in plugins) else 1
