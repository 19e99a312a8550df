"""The ``streamfw`` command line (also ``python -m streamfw``).

This module is the skeleton: global options, the argument parser, the output and exit-code
contract of docs/cli.md, signals and logging. The commands themselves live in
``streamfw.commands``; plugins add theirs through the ``streamfw_register_commands`` hook.
"""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import argcomplete
from argcomplete.shell_integration import shellcode

import streamfw
from streamfw import commands
from streamfw.client_core import URL_ENV
from streamfw.errors import ConfigError, OutcomeUnknown, StreamError
from streamfw.plugins import installed
from streamfw.terminal import Terminal, cli_logging

# Exit codes (docs/cli.md "Exit codes").
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM, as shells report
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away
# A plugin command that cannot run (a dependency is missing) sets this default on its parser to
# the exception saying why; the CLI reports it for any arguments given (docs/plugins.md).
UNAVAILABLE = "unavailable"

LOG_LEVELS = ("debug", "info", "warning", "error")

# The library's errors speak Python (``force=True``); the CLI's must speak flags.
_FLAG_WORDS = {
    "delete with force=True": "pass --force",
    "force=True": "--force",
    "pass api_key= or token=": "pass --api-key (or -o token=TOKEN)",
    "pass either api_key= or token=": "pass either --api-key or -o token=TOKEN",
    "in api_key=/token=": "in --api-key / -o token=",
    "initial_position='earliest'": "--initial-position earliest",
    "extensions=True (CLI: -o extensions=1)": "-o extensions=1",
}


class UsageFailure(Exception):
    """The command line cannot be used as given (exit 2)."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled exactly as Ctrl-C (detach, leave unacked messages) but exit 143."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors reach ``main`` (for the ``--json`` error contract)."""

    def error(self, message: str) -> NoReturn:
        raise UsageFailure(message, self.format_usage())


def positive_int(text: str) -> int:
    """argparse type: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds(text: str) -> float:
    """argparse type: a positive number of seconds, ``1.5`` or ``1.5s``."""
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds such as 1.5 or 1.5s, got {text!r}"
        ) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = Parser(
        prog="streamfw",
        description="Produce and consume message streams over pluggable transports.",
        epilog="Exit codes: 0 done, 1 a streamfw error, 2 bad usage or configuration,"
        " 130 Ctrl-C, 143 SIGTERM. --json: machine-readable stdout, errors as JSON on stderr."
        " See docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"streamfw {streamfw.__version__}")
    _add_verbosity(parser, None)
    sub: commands.Subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    verbosity = Parser(add_help=False)
    _add_verbosity(verbosity, argparse.SUPPRESS)

    found = installed()
    schemes = ", ".join(f"{name}://" for name in found.transports()) or "none installed"
    transport = Parser(add_help=False, parents=[verbosity])
    transport.add_argument(
        "--api-key",
        help="API key (default: the transport's own environment variable; never printed)",
    )
    transport.add_argument(
        "--fabric", help="the transport's fabric option, as -o fabric=NAME (default: its own)"
    )
    transport.add_argument(
        "-o",
        "--option",
        dest="options",
        action="append",
        default=[],
        type=commands.key_value,
        metavar="NAME=VALUE",
        help="another transport option (repeatable), e.g. -o retries=1",
    )
    common = Parser(add_help=False, parents=[transport])
    common.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"server URL, SCHEME://...; schemes: {schemes} (default: ${URL_ENV})",
    )
    json_output = Parser(add_help=False)
    json_output.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output: JSON lines for messages, else one JSON document;"
        " errors as one JSON object on stderr",
    )
    commands.add_demo(sub, [transport, json_output], seconds, positive_int, URL_ENV)
    commands.add_produce(sub, [common], seconds, positive_int)
    commands.add_consume(sub, [common, json_output], seconds, positive_int)
    commands.add_read(sub, [common, json_output], seconds, positive_int)
    commands.add_admin(sub, [common, json_output])
    commands.add_plugins(sub, [verbosity, json_output])
    completion = sub.add_parser(
        "completion",
        parents=[verbosity],
        help="print the shell completion script (bash, zsh or fish)",
        description='Print a completion script; e.g. in ~/.bashrc: eval "$(streamfw'
        ' completion bash)"; fish: streamfw completion fish | source.',
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])

    for name, spec in found.commands().items():
        if name in sub.choices:
            continue  # a plugin cannot shadow a core command
        command = sub.add_parser(name, help=spec.summary)
        spec.add_arguments(command)
        _add_verbosity_where_free(command)
        command.set_defaults(plugin_command=spec.run)
    return parser


def _add_verbosity_where_free(command: argparse.ArgumentParser) -> None:
    """The global -v/--log-level after a plugin's command too, unless it took the flag."""
    _add_verbosity(command, argparse.SUPPRESS, yield_to_existing=True)


def _add_verbosity(
    parser: argparse.ArgumentParser, default: Any, *, yield_to_existing: bool = False
) -> None:
    flags: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (
            ("-v", "--verbose"),
            {
                "action": "count",
                "default": 0 if default is None else default,
                "help": "log more of what the library does: -v info, -vv debug",
            },
        ),
        (
            ("--log-level",),
            {
                "dest": "cli_log_level",  # not log_level: a plugin's command may have its own
                "choices": LOG_LEVELS,
                "default": default,
                "help": "level of the streamfw.* loggers, on stderr (default: info on a"
                " terminal, else warning)",
            },
        ),
    ]
    for names, settings in flags:
        try:
            parser.add_argument(*names, **settings)
        except argparse.ArgumentError:
            if not yield_to_existing:
                raise
            # A plugin command's own flag of that name wins (the emulator's --log-level).


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, except that a plugin command that cannot run takes any arguments: it
    declared no options, and what it lacks is the answer, not "unrecognized arguments"."""
    args, unknown = parser.parse_known_args(argv)
    if unknown and getattr(args, UNAVAILABLE, None) is None:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (docs/cli.md)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    term = Terminal(as_json="--json" in argv)
    parser = build_parser()
    argcomplete.autocomplete(parser)  # a no-op unless a shell's completion called us
    try:
        args = _parse(parser, argv)
    except UsageFailure as exc:
        if not term.as_json:
            print(exc.usage, end="", file=sys.stderr)
        term.error("UsageError", str(exc), EXIT_USAGE)
        return EXIT_USAGE
    unavailable: BaseException | None = getattr(args, UNAVAILABLE, None)
    if unavailable is not None:
        term.error(type(unavailable).__name__, str(unavailable), EXIT_USAGE)
        return EXIT_USAGE
    # True, not a string: `produce --json VALUE` is the deprecated payload spelling.
    term = Terminal(as_json=getattr(args, "json", False) is True)
    plugin_run: Callable[[argparse.Namespace], int] | None = getattr(args, "plugin_command", None)
    logs = cli_logging(
        verbose=args.verbose,
        level=args.cli_log_level,
        tty=None if plugin_run is not None else term.tty,
    )
    try:
        with logs:
            if plugin_run is not None:
                return plugin_run(args)
            with _sigterm_as_interrupt():
                return _run(args, term)
    except BrokenPipeError:  # `streamfw consume ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace, term: Terminal) -> int:
    try:
        if args.command == "completion":
            print(shellcode(["streamfw"], shell=args.shell))
            return EXIT_OK
        if args.command == "plugins":
            return commands.plugins_command(args, sys.stdout)
        check = commands.VALIDATORS.get(args.command)
        if check is not None:
            check(args)
            term.as_json = getattr(args, "json", False) is True
        check_url(args.url)
        with connect(args, term) as client:
            if args.command == "demo":
                return commands.demo_command(client, args, sys.stdout, term)
            return commands.STREAM_COMMANDS[args.command](client, args, sys.stdout, term)
    except ConfigError as exc:
        term.error(type(exc).__name__, _flag_words(str(exc)), EXIT_USAGE)
        return EXIT_USAGE
    except UsageFailure as exc:
        term.error("UsageError", str(exc), EXIT_USAGE)
        return EXIT_USAGE
    except OutcomeUnknown as exc:
        term.error(
            type(exc).__name__,
            f"{exc}; that message may still be stored: check the stream before sending"
            " it again, or a retry may store it twice",
            EXIT_FAILED,
        )
        return EXIT_FAILED
    except StreamError as exc:
        term.error(type(exc).__name__, _flag_words(str(exc)), EXIT_FAILED)
        return EXIT_FAILED
    except Terminated:
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def check_url(url: str | None) -> None:
    """Refuse a missing URL or an unknown scheme before anything connects.

    Raises:
        UsageFailure: no URL, no ``://`` or an unknown scheme ("did you mean" a near one).
    """
    if not url:
        raise UsageFailure(
            f"no server given: pass --url or set ${URL_ENV}. The default loopback:// broker"
            " lives inside one process, so what this command did would vanish when it exits;"
            " run a server in another terminal (a plugin may offer one, e.g. `streamfw emulator`;"
            " see `streamfw --help`) and pass its URL"
        )
    found = installed()
    schemes = sorted(found.transports())
    if "://" not in url:
        raise UsageFailure(f"--url must look like SCHEME://..., got {url!r} (schemes: {schemes})")
    scheme = urlsplit(url).scheme
    if scheme in schemes:
        return
    near = difflib.get_close_matches(scheme, schemes, n=1)
    if near:
        raise UsageFailure(f"unknown URL scheme {scheme!r} in --url; did you mean {near[0]!r}?")
    if any(not i.loaded for i in found.infos):
        return  # perhaps the broken plugin's scheme: connect() explains the load failure
    raise UsageFailure(f"unknown URL scheme {scheme!r} in --url; installed: {', '.join(schemes)}")


def connect(args: argparse.Namespace, term: Terminal) -> streamfw.Client:
    """The client for ``--url`` with ``--api-key``, ``--fabric`` and ``-o`` options."""
    options: dict[str, Any] = dict(args.options)
    if args.api_key:
        options["api_key"] = args.api_key
    if args.fabric:
        options["fabric"] = args.fabric
    if term.tty:
        term.status(f"connecting to {_shown(args.url)} ...")
    return streamfw.connect(args.url, **options)


def _shown(url: str) -> str:
    """The URL without user info, query or fragment: where a mistaken secret would sit."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: the transport will say so
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _flag_words(text: str) -> str:
    for words, flag in _FLAG_WORDS.items():
        text = text.replace(words, flag)
    return text


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises ``Terminated`` where Ctrl-C raises its own."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
