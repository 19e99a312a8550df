"""Properties and keys an application may pass, on both transports: a send either stores
them exactly (the consumer gets the same strings) or refuses at once with a typed error and
leaves nothing pending behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings
from streamfw_macrometa.emulator import Emulator

from streamfw.client import Client, Stream, connect
from streamfw.errors import StreamError
from tests.fuzz.conftest import FIGURES, examples

# Any code point, lone surrogates included (str allows them; UTF-8 does not).
ANY_TEXT = st.text(st.characters(codec=None, min_codepoint=0) | st.sampled_from("\ud800\udfff"))


@pytest.fixture(params=["loopback", "macrometa"])
def client(request: pytest.FixtureRequest, fuzz_emulator: Emulator) -> Iterator[Client]:
    if request.param == "loopback":
        c = connect("loopback://")
    else:
        c = connect(
            f"macrometa+http://127.0.0.1:{fuzz_emulator.port}",
            api_key=fuzz_emulator.api_key,
            timeout=5.0,
            reconnect_deadline=5.0,
        )
    yield c
    c.close()


@pytest.fixture
def stream(client: Client) -> Stream:
    return client.stream(f"fzprops{id(client)}").create(exist_ok=True)


def test_properties_and_keys_are_stored_exactly_or_refused(stream: Stream) -> None:
    consumer = stream.consumer("sub")
    producer = stream.producer(send_timeout=5.0)

    @settings(
        max_examples=examples(40),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        props=st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=3),
        key=st.none() | ANY_TEXT,
    )
    @example(props={"k": "\ud800"}, key=None)  # FINDINGS.md 7
    @example(props={}, key="\udfff")
    def check(props: dict[str, str], key: str | None) -> None:
        FIGURES["client sends with fuzzed properties"] += 1
        start = time.monotonic()
        try:
            producer.send("v", properties=props, key=key, timeout=5.0)
        except StreamError as exc:
            assert time.monotonic() - start < 2, f"a refusal must be at once: {exc}"
            return
        m = consumer.receive(5)
        assert m is not None, "confirmed but not delivered"
        m.ack()
        assert m.key == key
        assert {k: v for k, v in m.properties.items() if k != "streamfw-codec"} == {
            k: v for k, v in props.items() if k != "streamfw-codec"
        }

    try:
        check()
        start = time.monotonic()
        producer.close()  # nothing may be left pending by a refused send
        assert time.monotonic() - start < 5
    finally:
        consumer.close()
