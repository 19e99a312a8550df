"""The frame parsers of plugins/streamfw_macrometa/wire.py, fed every kind of frame: they
return a value or raise the protocol error (``FrameError``, a ``RemoteProtocolError``),
nothing else, ever.

Both sides use them: the client reads receipts, deliveries and error frames; the emulator
reads publish, ack, nack, permit and control frames and the consumer's query parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from streamfw_macrometa import wire

from streamfw.errors import ConfigError, RemoteProtocolError
from streamfw.message import Delivery, MessageId
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import FIGURES, examples

PARSERS: dict[str, tuple[Callable[[Any], object], st.SearchStrategy[Any]]] = {
    "parse_publish": (wire.parse_publish, fs.producer_in),
    "parse_consumer_frame": (wire.parse_consumer_frame, fs.consumer_in),
    "parse_receipt": (wire.parse_receipt, fs.server_out),
    "parse_delivery": (lambda f: wire.parse_delivery("s", f), fs.server_out),
    "decode_message_id": (
        lambda f: wire.decode_message_id("s", f),
        st.one_of(fs.hostile_ids, fs.JSON),
    ),
    "parse_time": (wire.parse_time, st.one_of(fs.timestamps, fs.JSON)),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_parser_raises_only_the_protocol_error(name: str) -> None:
    parse, frames = PARSERS[name]

    @settings(max_examples=examples(150))
    @given(frame=frames)
    def check(frame: Any) -> None:
        FIGURES[f"frames parsed by wire.{name}"] += 1
        try:
            parse(frame)
        except RemoteProtocolError as exc:
            assert str(exc), "a protocol error must say what was wrong"

    check()


@settings(max_examples=examples(150))
@given(
    query=st.dictionaries(
        st.sampled_from(fs.CONSUMER_QUERY_NAMES),
        st.text(max_size=12) | fs.RAW_VALUES | st.integers(-(10**400), 10**400).map(str),
    )
)
def test_consumer_query_parameters_fail_only_as_config_errors(query: dict[str, str]) -> None:
    FIGURES["consumer queries parsed"] += 1
    try:
        options = wire.consumer_options_from_query(query)
    except ConfigError as exc:
        assert str(exc)
        return
    assert 1 <= options.receiver_queue_size <= 1000
    assert options.ack_timeout is None or 0 < options.ack_timeout < float("inf")
    assert 0 <= options.nack_delay < float("inf")


@settings(max_examples=examples(200))
@given(
    ledger=st.integers(0, 2**63 - 1),
    entry=st.integers(0, 2**63 - 1),
    payload=st.binary(max_size=300),
    count=st.integers(0, 2**31 - 1),
)
def test_valid_deliveries_survive_the_round_trip(
    ledger: int, entry: int, payload: bytes, count: int
) -> None:
    sent = Delivery(MessageId("s", ledger, entry), payload, redelivery_count=count)
    frame = wire.parse_delivery("s", wire.delivery_frame(sent))
    got, raw_id = frame.delivery, frame.raw_id
    assert got.message_id == sent.message_id and raw_id == wire.encode_message_id(sent.message_id)
    assert (got.payload, got.redelivery_count) == (payload, count)
