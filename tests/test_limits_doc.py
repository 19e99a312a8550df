"""docs/limits.md, the index of defaults, states the values the code uses.

Each entry of ROWS names a table row of docs/limits.md (by the start of its section heading
and of its first cell) and the values the code holds for it; the row's default cell must state
each of them. A default changed in the code without the page, or the other way round, fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from streamfw_macrometa import wire
from streamfw_macrometa.config import Settings
from streamfw_macrometa.emulator import auth, edge, sockets
from streamfw_otel.telemetry import DEFAULT_MAX_OPEN_SPANS

from streamfw.broker import Limits, Rules
from streamfw.codec import DEFAULT_MAX_CODEC_STAGES, DEFAULT_MAX_MESSAGE_SIZE
from streamfw.options import MAX_NAME_LENGTH, ConsumerOptions, ProducerOptions
from streamfw.testing import machine

PAGE = Path(__file__).resolve().parent.parent / "docs" / "limits.md"


def count(n: int) -> str:
    return str(n)


def seconds(value: float | None) -> str:
    assert value is not None
    return f"{value:g} s"


def mib(size: int) -> str:
    assert size % 2**20 == 0, size
    return f"{size // 2**20} MiB"


def setting(name: str) -> Any:
    return attrs.fields_dict(Settings)[name].default


# (start of the section heading, start of the row's first cell, what its default cell states)
ROWS: list[tuple[str, str, list[Callable[[], str]]]] = [
    (
        "Client: every transport",
        "message size",
        [lambda: mib(DEFAULT_MAX_MESSAGE_SIZE), lambda: f"{DEFAULT_MAX_MESSAGE_SIZE} bytes"],
    ),
    ("Client: every transport", "codec stages", [lambda: count(DEFAULT_MAX_CODEC_STAGES)]),
    (
        "Client: every transport",
        "unconfirmed sends",
        [lambda: count(ProducerOptions().max_pending)],
    ),
    ("Client: every transport", "time for one", [lambda: seconds(ProducerOptions().send_timeout)]),
    ("Client: every transport", "process spans", [lambda: count(DEFAULT_MAX_OPEN_SPANS)]),
    (
        "Client: every transport",
        "messages a consumer is sent",
        [lambda: count(ConsumerOptions().receiver_queue_size)],
    ),
    ("Client: every transport", "names", [lambda: count(MAX_NAME_LENGTH)]),
    (
        "Brokers",
        "backlog per stream",
        [
            lambda: f"{Limits().backlog_quota_messages} messages",
            lambda: mib(Limits().backlog_quota_bytes),
        ],
    ),
    ("Brokers", "streams", [lambda: count(Limits().max_streams)]),
    ("Brokers", "durable subscriptions", [lambda: count(Limits().max_subscriptions)]),
    ("Brokers", "Key_Shared messages", [lambda: count(Limits().key_shared_lookahead)]),
    ("Brokers", "Failover delay", [lambda: seconds(Rules().failover_delay)]),
    ("`macrometa://` client", "`timeout`", [lambda: seconds(setting("timeout"))]),
    ("`macrometa://` client", "`retries`", [lambda: count(setting("retries"))]),
    (
        "`macrometa://` client",
        "`max_response_bytes`",
        [lambda: mib(setting("max_response_bytes"))],
    ),
    ("`macrometa://` client", "`max_frame_size`", [lambda: mib(setting("max_frame_size"))]),
    (
        "`macrometa://` client",
        "`max_send_frame_size`",
        [lambda: mib(setting("max_send_frame_size"))],
    ),
    ("`macrometa://` client", "JSON nesting", [lambda: f"{wire.MAX_DEPTH} levels"]),
    (
        "`macrometa://` client",
        "`reconnect_deadline`",
        [lambda: seconds(setting("reconnect_deadline"))],
    ),
    ("`macrometa://` client", "`busy_deadline`", [lambda: seconds(setting("busy_deadline"))]),
    (
        "`macrometa://` client",
        "`reconnect_backoff`",
        [
            lambda: seconds(setting("reconnect_backoff")),
            lambda: seconds(setting("reconnect_backoff_max")),
        ],
    ),
    ("`macrometa://` client", "`ping_interval`", [lambda: seconds(setting("ping_interval"))]),
    ("`streamfw emulator`", "WebSocket message", [lambda: mib(sockets.MAX_FRAME)]),
    ("`streamfw emulator`", "TCP connections", [lambda: count(edge.MAX_CONNECTIONS)]),
    ("`streamfw emulator`", "request head", [lambda: seconds(edge.HEADER_TIMEOUT)]),
    ("`streamfw emulator`", "request body", [lambda: seconds(edge.BODY_TIMEOUT)]),
    ("`streamfw emulator`", "idle keep-alive", [lambda: seconds(edge.IDLE_TIMEOUT)]),
    (
        "`streamfw emulator`",
        "silent consumer",
        [
            lambda: f"after {seconds(edge.WS_HEARTBEAT)}",
            lambda: f"{seconds(edge.WS_HEARTBEAT / 2)} later",
            lambda: f"after {seconds(edge.PULSAR_IDLE_TIMEOUT)}",
        ],
    ),
    (
        "`streamfw emulator`",
        "answers queued",
        [lambda: f"{sockets.MAX_QUEUED} (producer", lambda: f"{2 * sockets.MAX_QUEUED} (consumer"],
    ),
    (
        "`streamfw emulator`",
        "one-time passwords",
        [lambda: seconds(auth.OTP_LIFETIME), lambda: f"{auth.MAX_OTPS} outstanding"],
    ),
    ("Test suite", "the hypothesis state machine", [lambda: seconds(machine.BUDGET)]),
]


def _rows() -> dict[tuple[str, str], str]:
    """(section, first cell) -> default cell, thousands separators dropped."""
    found: dict[tuple[str, str], str] = {}
    section = ""
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("| ") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            found[section, cells[0]] = re.sub(r"(?<=\d),(?=\d{3})", "", cells[1])
    return found


@pytest.mark.parametrize(("section", "limit", "values"), ROWS, ids=[r[1] for r in ROWS])
def test_the_page_states_the_default_the_code_uses(
    section: str, limit: str, values: list[Callable[[], str]]
) -> None:
    matches = [
        cell
        for (heading, first), cell in _rows().items()
        if heading.startswith(section) and first.startswith(limit)
    ]
    assert len(matches) == 1, f"docs/limits.md, {section}: one row about {limit!r} expected"
    for value in values:
        stated = re.search(rf"(?<![\w.]){re.escape(value())}(?![\w.])", matches[0])
        assert stated, f"docs/limits.md, {section}, {limit!r} does not state {value()!r}"
