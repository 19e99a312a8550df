"""Codec tags and payloads as a sender may write them, decoded as a consumer decodes them:
any failure of any stage is a ``DecodeError`` naming the codec, and decoding never inflates
past ``max_message_size``."""

from __future__ import annotations

import json
import zlib

import hypothesis.strategies as st
from hypothesis import given, settings

from streamfw.codec import CODEC_PROPERTY
from streamfw.errors import DecodeError
from streamfw.plugins import discover
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import FIGURES, examples

LIMIT = 64 * 1024
REGISTRY = discover().codecs()
STAGES = ["json", "text", "bytes", "zlib", "auto", "nope", "", "JSON", "zlib "]
tags = st.lists(st.sampled_from(STAGES), min_size=1, max_size=40).map("+".join) | st.text(
    max_size=20
)


def _zlib_times(data: bytes, n: int) -> bytes:
    for _ in range(n):
        data = zlib.compress(data, 9)
    return data


payloads = (
    st.binary(max_size=300)
    | fs.JSON.map(lambda v: json.dumps(v).encode())
    | fs.deep.map(str.encode)
    | st.builds(
        _zlib_times, st.sampled_from([bytes(16 * LIMIT), b"{}", b"\xff"]), st.integers(1, 3)
    )
)


@settings(max_examples=examples(400))
@given(tag=tags, payload=payloads, codec=st.sampled_from(["auto", "json", "bytes", "json+zlib"]))
def test_any_tag_and_payload_decode_or_raise_decode_error(
    tag: str, payload: bytes, codec: str
) -> None:
    FIGURES["codec tags decoded"] += 1
    pipeline = REGISTRY.pipeline(codec, max_size=LIMIT)
    try:
        value = pipeline.decode(payload, {CODEC_PROPERTY: tag})
    except DecodeError as exc:
        assert str(exc)
        return
    if isinstance(value, (bytes, str)):
        assert len(value) <= LIMIT  # a str of LIMIT bytes has at most LIMIT characters
