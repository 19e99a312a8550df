"""Fixtures of the fuzz suite: its own emulator, its ERROR log, a bystander, the figures.

The suite has an emulator of its own (fuzzed admin calls change TTLs and clear backlogs; no
other test should see that) serving two fabrics: ``_system`` takes the fuzz, ``bystander``
carries a producer and a consumer exchanging messages the whole time. Every ERROR record the
emulator's thread logs is kept; tests assert there is none.

Example counts: each test names a modest count for CI (the ``ci`` profile of
tests/conftest.py; ``dev`` runs half as many); ``STREAMFW_FUZZ_EXAMPLES=N`` runs every test
with N examples instead (the figures in benchmarks/README.md use 300).
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket
from hypothesis import HealthCheck, settings
from streamfw_macrometa.emulator import Emulator

from tests.emulator.helpers import Api

EMULATOR_THREAD = "streamfw-emulator"
FIGURES: collections.Counter[str] = collections.Counter()
FIGURES.update(dict.fromkeys(["REST server errors", "sockets closed unexpectedly"], 0))


def examples(default: int) -> int:
    """The example count of one test: ``default`` under the ``ci`` profile (60 examples),
    scaled with the loaded profile's ``max_examples`` (``dev``: half), or
    ``STREAMFW_FUZZ_EXAMPLES`` if set."""
    override = os.environ.get("STREAMFW_FUZZ_EXAMPLES")
    if override:
        return int(override)
    return max(1, default * settings().max_examples // 60)


def over_sockets(n: int) -> settings:
    """Settings of a test that talks to the emulator: ``n`` examples (see ``examples``), no
    deadline (a busy machine), function-scoped fixtures shared by every example."""
    return settings(
        max_examples=examples(n),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


class ErrorLog(logging.Handler):
    """Keeps every ERROR (or worse) record logged on the emulator's thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName == EMULATOR_THREAD:
            self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.name}: {r.getMessage()}\n{r.exc_text or ''}" for r in self.records)


@pytest.fixture(scope="session")
def fuzz_emulator() -> Iterator[Emulator]:
    with Emulator.start(host="127.0.0.1", port=0, fabrics=("_system", "bystander")) as emu:
        yield emu


@pytest.fixture
def api(fuzz_emulator: Emulator) -> Iterator[Api]:
    """An ``Api`` on the fuzz emulator, its HTTP session closed afterwards."""
    a = Api(fuzz_emulator)
    yield a
    a.session.close()


@pytest.fixture(scope="session")
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    handler.setFormatter(logging.Formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


class Bystander:
    """A producer and a consumer on fabric ``bystander``, one message every 20 ms.

    ``trouble`` lists everything that went wrong for them: a send without a receipt in 5 s,
    a message not delivered in 5 s or not the one sent, a socket that closed.
    """

    def __init__(self, emu: Emulator) -> None:
        base = emu.url.replace("http", "ws", 1) + f"/_ws/ws/v2/%s/persistent/{emu.tenant}"
        base += "/c8global.bystander/c8globals.bystander"
        header = [f"Authorization: apikey {emu.api_key}"]
        requests.post(
            f"{emu.url}/_fabric/bystander/_api/streams/bystander?global=true",
            headers={"Authorization": f"apikey {emu.api_key}"},
            timeout=5,
        ).raise_for_status()
        self.consumer = websocket.create_connection(base % "consumer" + "/b", header=header)
        self.producer = websocket.create_connection(base % "producer", header=header)
        self.consumer.settimeout(5)
        self.producer.settimeout(5)
        self.exchanged = 0
        self.trouble: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bystander")
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.02) and not self.trouble:
            n += 1
            start = time.monotonic()
            try:
                self.producer.send(json.dumps({"payload": base64.b64encode(b"%d" % n).decode()}))
                receipt = json.loads(self.producer.recv())
                if receipt.get("result") != "ok":
                    self.trouble.append(f"message {n}: receipt {receipt}")
                frame = json.loads(self.consumer.recv())
                if base64.b64decode(frame["payload"]) != b"%d" % n:
                    self.trouble.append(f"message {n}: got {frame}")
                self.consumer.send(json.dumps({"messageId": frame["messageId"]}))
            except Exception as exc:
                self.trouble.append(
                    f"message {n}: {type(exc).__name__}: {exc} after "
                    f"{time.monotonic() - start:.1f} s"
                )
                return
            self.exchanged = n

    def check(self) -> None:
        """Fail the calling test if the bystander was disturbed so far."""
        assert self._thread.is_alive() or self._stop.is_set(), "bystander thread ended"
        assert not self.trouble, f"bystander disturbed: {self.trouble}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.producer.close()
        self.consumer.close()


@pytest.fixture(scope="session")
def bystander(fuzz_emulator: Emulator) -> Iterator[Bystander]:
    b = Bystander(fuzz_emulator)
    yield b
    b.close()
    FIGURES["bystander messages exchanged"] = b.exchanged
    FIGURES["bystanders disturbed"] = int(bool(b.trouble))


@pytest.fixture
def clean(error_log: ErrorLog, bystander: Bystander) -> Iterator[None]:
    """After the test: no ERROR on the emulator's thread, the bystander undisturbed."""
    before = len(error_log.records)
    yield
    new = error_log.records[before:]
    FIGURES["emulator ERROR records"] += len(new)
    assert not new, "the emulator logged errors:\n" + ErrorLog.text(_Records(new))
    bystander.check()


class _Records(ErrorLog):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if sum(FIGURES.values()):
        terminalreporter.write_sep("-", "fuzz figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value:,}")
