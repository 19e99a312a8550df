"""Raw WebSocket framing after a good upgrade: any opcode, flags, mask and length, fragments
and control frames out of place. RFC 6455 lets the server close such a socket (1002, 1007,
1009) or ignore what it does not understand; whatever it does, it logs no ERROR, the
bystander is undisturbed and the next socket works."""

from __future__ import annotations

import contextlib
import os

import hypothesis.strategies as st
import pytest
from hypothesis import given

from tests.emulator.helpers import Api, send
from tests.fuzz.conftest import FIGURES, over_sockets

pytestmark = pytest.mark.usefixtures("clean")


def frame(fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes, lie: int) -> bytes:
    """One WebSocket frame; ``lie`` is added to the announced length (0: the truth)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = max(0, len(payload) + lie)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


frames = st.builds(
    frame,
    fin=st.booleans(),
    rsv=st.integers(0, 7),
    opcode=st.integers(0, 15),
    masked=st.booleans() | st.just(True),
    payload=st.binary(max_size=200) | st.just(b'{"payload":"aGk="}'),
    lie=st.sampled_from([0, 0, 0, -1, 1, 1000, 1 << 40]),
)


@pytest.fixture
def topic(api: Api) -> str:
    return api.create(f"fzraw{id(api)}")


@over_sockets(60)
@given(raw=st.lists(frames, min_size=1, max_size=3), kind=st.sampled_from(["producer", "consumer"]))
def test_any_raw_framing_is_survived(api: Api, topic: str, raw: list[bytes], kind: str) -> None:
    if kind == "producer":
        ws = api.producer(topic)
    else:
        ws = api.consumer(topic, "raw", subscriptionType="Shared")
    sock = ws.sock
    assert sock is not None
    FIGURES["raw WebSocket frames sent"] += len(raw)
    try:
        sock.sendall(b"".join(raw))
        sock.settimeout(0.3)
        with contextlib.suppress(TimeoutError, OSError):  # answered, closed, or silent: all fine
            while sock.recv(65536):
                pass
    finally:
        sock.close()
    again = api.producer(topic)
    assert send(again, b"after")["result"] == "ok"
    again.close()
