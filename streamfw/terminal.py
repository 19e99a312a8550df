"""What the CLI writes besides its data: status lines, a progress line, JSON errors, logging.

The contract (docs/cli.md): data goes to stdout; status, progress and errors go to stderr.
With ``--json`` stdout is JSON lines (a stream of messages) or one JSON document, and stderr
carries no status text: a failure is one JSON object with a stable ``error`` field. The
progress line is drawn only when stderr is a terminal, so pipes and logs stay clean.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

#: Seconds between redraws of the progress line (a redraw per message would cost more than
#: the message on a fast stream).
PROGRESS_REDRAW_SECONDS = 0.2


class Terminal:
    """Where status text goes for one command, given ``--json`` and whether stderr is a tty."""

    def __init__(self, *, as_json: bool, err: TextIO | None = None) -> None:
        self.as_json = as_json
        self.err = err if err is not None else sys.stderr
        self.tty = _isatty(self.err)

    def status(self, text: str) -> None:
        """A line for a person; nothing under ``--json``."""
        if not self.as_json:
            print(text, file=self.err, flush=True)

    def progress(self, verb: str, total: int | None) -> Progress:
        """A progress line with a rate; silent unless stderr is a terminal."""
        return Progress(verb, total, self.err if self.tty else None)

    def error(self, kind: str, message: str, code: int, **extra: object) -> None:
        """Report a failure: ``streamfw: KIND: message`` or, under ``--json``, one JSON object."""
        if self.as_json:
            record = {"error": kind, "message": message, "exit_code": code, **extra}
            print(json.dumps(record, ensure_ascii=False), file=self.err, flush=True)
        else:
            print(f"streamfw: {kind}: {message}", file=self.err, flush=True)


class Progress:
    """``produced 120/1000 (85.3 msg/s)`` redrawn in place on a terminal; a no-op elsewhere."""

    def __init__(self, verb: str, total: int | None, out: TextIO | None) -> None:
        self._verb = verb
        self._total = total
        self._out = out
        self._done = 0
        self._start = time.monotonic()
        self._drawn = 0.0
        self._last = self._start  # the time of the last step: the rate is up to it
        self._visible = False

    @property
    def active(self) -> bool:
        return self._out is not None

    def step(self, n: int = 1) -> None:
        self._done += n
        now = self._last = time.monotonic()
        if self._out is not None and (
            not self._visible
            or now - self._drawn >= PROGRESS_REDRAW_SECONDS
            or self._done == self._total
        ):
            self._drawn = now
            self._draw(now)

    def clear(self) -> None:
        """Erase the line before other output to the same terminal (stdout may be it too)."""
        if self._out is not None and self._visible:
            print("\r\x1b[K", end="", file=self._out, flush=True)
            self._visible = False

    def close(self) -> None:
        """Leave the last state on its own line."""
        if self._out is not None and self._done:
            self._draw(self._last)
            print(file=self._out, flush=True)
            self._visible = False

    def _draw(self, now: float) -> None:
        assert self._out is not None
        elapsed = max(now - self._start, 1e-9)
        of = f"/{self._total}" if self._total is not None else ""
        line = f"{self._verb} {self._done}{of} ({self._done / elapsed:.1f} msg/s)"
        print(f"\r\x1b[K{line}", end="", file=self._out, flush=True)
        self._visible = True


@contextmanager
def cli_logging(*, verbose: int, level: str | None, tty: bool | None) -> Iterator[None]:
    """While a command runs, send the ``streamfw.*`` loggers (no one else's) to stderr.

    ``--log-level`` wins; else ``-v`` is INFO and ``-vv`` DEBUG; else INFO when stderr is a
    terminal, so a person sees which server is tried, reconnects and resends, and WARNING
    when it is not. ``tty=None`` (a plugin's command, which may configure logging itself)
    changes nothing unless a level was asked for. Everything is put back afterwards, so a
    program (or test) calling ``main()`` keeps its own logging.
    """
    if level is not None:
        chosen = getattr(logging, level.upper())
    elif verbose:
        chosen = logging.INFO if verbose == 1 else logging.DEBUG
    elif tty is None:
        yield
        return
    else:
        chosen = logging.INFO if tty else logging.WARNING
    logger = logging.getLogger("streamfw")
    saved = logger.level, logger.propagate
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("streamfw: %(levelname)s %(name)s: %(message)s"))
    logger.setLevel(chosen)
    logger.addHandler(handler)
    logger.propagate = False  # one line per record, whatever the root logger does
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the ``sys.stderr`` of the moment (tests replace it between commands)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or wrapped stream
        return False
