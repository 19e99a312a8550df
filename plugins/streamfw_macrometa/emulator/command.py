"""``streamfw emulator``: run the emulator in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TextIO

from streamfw.broker import REDELIVERY_RULES, Limits, Rules
from streamfw_macrometa import gateway
from streamfw_macrometa.emulator.app import MAX_FRAME, Emulator
from streamfw_macrometa.emulator.auth import OTP_LIFETIME
from streamfw_macrometa.emulator.edge import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    WS_HEARTBEAT,
    is_loopback,
)
from streamfw_macrometa.wire import GLOBAL_TOPIC, namespace_name

log = logging.getLogger("streamfw.emulator")

KEY_ENV = "STREAMFW_EMULATOR_API_KEY"  # accepted API keys, separated by whitespace or commas


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``streamfw emulator`` options on ``parser``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="file of accepted API keys, one a line (# comments); the way to give your own keys",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted API key (repeatable; visible in ps: prefer --api-key-file or {KEY_ENV})",
    )
    parser.add_argument(
        "--tenant",
        help="tenant served (default: derived from the first key as jsc8 does, else 'demo')",
    )
    parser.add_argument(
        "--fabric",
        action="append",
        dest="fabrics",
        metavar="NAME",
        help="fabric to serve (repeatable; default: _system)",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain file (enables TLS)")
    parser.add_argument("--tls-key", metavar="PEM", help="private key file of --tls-cert")
    parser.add_argument(
        "--auto-create",
        action="store_true",
        help="create a missing stream when a WebSocket attaches to it (default: answer 404)",
    )
    parser.add_argument(
        "--max-frame-size",
        type=int,
        default=MAX_FRAME,
        metavar="BYTES",
        help="largest WebSocket message (larger: the socket is closed with 1009) and REST body"
        " (larger: 413) read (default: %(default)s, Pulsar's webSocketMaxTextFrameSize)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        metavar="N",
        help="TCP connections held open, WebSockets included; past it the oldest "
        "unauthenticated (else idle) one is closed (default: %(default)s)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=HEADER_TIMEOUT,
        metavar="S",
        help="seconds a new connection has to send a request head (default: %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT,
        metavar="S",
        help="seconds to receive a whole request body, else 408 (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        metavar="S",
        help="seconds a keep-alive connection may wait for a request (default: %(default)s)",
    )
    parser.add_argument(
        "--ws-heartbeat",
        type=float,
        default=WS_HEARTBEAT,
        metavar="S",
        help="ping a consumer or reader WebSocket silent this long; no pong within half of "
        "it: dropped (producers: after 300 s of silence); 0: never (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="extra Host header name answered when bound to loopback (repeatable)",
    )
    parser.add_argument(
        "--public-dev-key",
        action="store_true",
        help="allow the public development key on a non-loopback --host (refused otherwise)",
    )
    limits = Limits()
    for flag, field, what in (
        ("--backlog-quota-messages", "backlog_quota_messages", "messages a stream holds"),
        ("--backlog-quota-bytes", "backlog_quota_bytes", "payload bytes a stream holds"),
        ("--max-streams", "max_streams", "streams per fabric"),
        ("--max-subscriptions", "max_subscriptions", "subscriptions per stream"),
    ):
        parser.add_argument(
            flag,
            type=int,
            default=getattr(limits, field),
            metavar="N",
            help=f"{what} at most (default: %(default)s)",
        )
    rules = Rules()
    parser.add_argument(
        "--redelivery-count",
        choices=REDELIVERY_RULES,
        default=rules.redelivery_count,
        help="what redelivery_count counts: pulsar (nacks and ack timeouts on Shared and "
        "Key_Shared) or every_hand_back (default: %(default)s)",
    )
    parser.add_argument(
        "--failover-delay",
        type=float,
        default=rules.failover_delay,
        metavar="S",
        help="seconds a new active Failover consumer waits before it gets messages "
        "(Pulsar's activeConsumerFailoverDelayTimeMillis; default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log level; info logs every request (default: %(default)s)",
    )


YOUR_KEY = "'<your key>'"  # what the banner shows in place of a key the user chose (a secret)


def connect_url(emu: Emulator) -> str:
    """The ``STREAMFW_URL`` that reaches ``emu``'s first fabric with the macrometa transport."""
    fabric = emu.fabrics[0]
    query = "" if fabric == gateway.DEFAULT_FABRIC else f"?fabric={fabric}"
    return f"macrometa+{emu.url}{query}"


def banner(emu: Emulator, development: bool) -> str:
    """How to connect, as printed on start: the lines to paste, then the details.

    A key the user chose is a secret and never printed, not even a part of it; the development
    key is public and printed whole, so the ``export`` line works as pasted.
    """
    ws = emu.url.replace("http", "ws", 1)
    key = shlex.quote(emu.api_key) if development else YOUR_KEY
    fabric = emu.fabrics[0]
    if development:
        key_line = (
            f"  API key    {key}  (development key; --api-key-file or {KEY_ENV} sets your own)"
        )
    else:
        key_line = f"  API key    yours (--api-key-file, {KEY_ENV} or --api-key; never printed)"
    lines = [
        f"streamfw emulator: Macrometa GDN streams on {emu.url}",
        f"  tenant     {emu.tenant}",
        f"  fabrics    {', '.join(emu.fabrics)}",
        key_line,
        "Connect (streamfw CLI, streamfw.connect(), examples/): paste",
        f"  export STREAMFW_URL={shlex.quote(connect_url(emu))} MACROMETA_API_KEY={key}",
        "Then:",
        "  streamfw demo",
        f'  curl -H "Authorization: apikey $MACROMETA_API_KEY" {emu.url}/_api/user',
        f"  WebSocket  {ws}/_ws/ws/v2/consumer/persistent/{emu.tenant}"
        f"/{namespace_name(fabric, False)}/{GLOBAL_TOPIC}<stream>/<subscription>",
        f"  limits     frames {emu.max_frame_size // 1024} KiB, one-time passwords"
        f" {OTP_LIFETIME:.0f} s,"
        " single use",
        "  streamfw: docs/macrometa.md   pyC8/jsC8: docs/emulator-sdks.md",
        "Press Ctrl-C to stop.",
    ]
    if emu.url.startswith("https:"):
        sep = "&" if "?" in connect_url(emu) else "?"
        lines.insert(
            lines.index("Then:"),
            f"  (a certificate your system does not trust: add {sep}ca_bundle=<its CA's PEM file>"
            " to STREAMFW_URL)",
        )
    if development and not is_loopback(emu.host):
        lines.insert(1, f"  WARNING    anyone who can reach {emu.url} can use the public key below")
    return "\n".join(lines)


def run(
    args: argparse.Namespace,
    *,
    stop: threading.Event | None = None,
    ready: Callable[[Emulator], None] | None = None,
    out: TextIO | None = None,
) -> int:
    """Serve until Ctrl-C, SIGTERM or ``stop`` is set; return the exit status (0).

    Args:
        args: parsed ``add_arguments`` options.
        stop: set it (from any thread) to stop; tests use this instead of a signal.
        ready: called with the running emulator once it listens.
        out: where the banner goes (default stdout).
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
    stop = stop or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return _serve(args, stop, ready, out or sys.stdout)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def api_keys(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """The keys from ``--api-key-file``, ``STREAMFW_EMULATOR_API_KEY`` and ``--api-key``.

    Raises:
        OSError: the key file cannot be read.
    """
    keys: list[str] = []
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as file:
            for line in file:
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.append(line)
    keys += environ.get(KEY_ENV, "").replace(",", " ").split()
    if args.api_keys:
        log.warning(
            "--api-key shows the key to every local user (ps, /proc): "
            "give it with --api-key-file or %s instead",
            KEY_ENV,
        )
        keys += args.api_keys
    return keys


def _serve(
    args: argparse.Namespace,
    stop: threading.Event,
    ready: Callable[[Emulator], None] | None,
    out: TextIO,
) -> int:
    try:
        keys = api_keys(args, os.environ)
        emu = Emulator.start(
            args.host,
            args.port,
            api_keys=keys,
            tenant=args.tenant,
            fabrics=args.fabrics or (gateway.DEFAULT_FABRIC,),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            auto_create=args.auto_create,
            max_connections=args.max_connections,
            max_frame_size=args.max_frame_size,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            idle_timeout=args.idle_timeout,
            ws_heartbeat=args.ws_heartbeat,
            allowed_hosts=args.allow_host,
            public_dev_key=args.public_dev_key,
            limits=Limits(
                max_streams=args.max_streams,
                max_subscriptions=args.max_subscriptions,
                backlog_quota_messages=args.backlog_quota_messages,
                backlog_quota_bytes=args.backlog_quota_bytes,
            ),
            rules=Rules(redelivery_count=args.redelivery_count, failover_delay=args.failover_delay),
        )
    except (OSError, ValueError) as exc:
        print(f"streamfw emulator: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        print(banner(emu, not keys), file=out, flush=True)
        if ready is not None:
            ready(emu)
        while not stop.wait(0.2):  # short waits keep Ctrl-C responsive on every platform
            pass
    except KeyboardInterrupt:
        pass
    finally:
        _stop_ignoring_interrupts(emu)
    return 0


def _stop_ignoring_interrupts(emu: Emulator) -> None:
    """Stop; a second Ctrl-C while the sockets close must not abort the clean stop."""
    if threading.current_thread() is not threading.main_thread():
        emu.stop()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        emu.stop()
    finally:
        signal.signal(signal.SIGINT, previous)
