"""The codec pipeline: round trips for any value, clear errors for bad ones."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfw import ConfigError, DecodeError, EncodeError, discover
from streamfw.codec import CODEC_PROPERTY, CodecRegistry, JsonCodec
from tests.strategies import json_values

REGISTRY: CodecRegistry = discover(entry_points=False).codecs()
CHAINS = st.sampled_from(["auto", "auto+zlib", "auto+zlib+zlib"])


def round_trip(spec: str, value: object) -> object:
    payload, tag = REGISTRY.pipeline(spec).encode(value)
    return REGISTRY.pipeline("auto").decode(payload, {CODEC_PROPERTY: tag})


@given(json_values, CHAINS)
def test_any_json_value_round_trips(value: object, chain: str) -> None:
    if isinstance(value, (str, bytes)):
        value = [value]  # bare str goes out as text; still equal, but keep the JSON path
    assert round_trip(chain.replace("auto", "json"), value) == value


@given(st.text(), CHAINS)
def test_any_text_round_trips(text: str, chain: str) -> None:
    assert round_trip(chain, text) == text


@given(st.binary(), CHAINS)
def test_any_bytes_round_trip(data: bytes, chain: str) -> None:
    assert round_trip(chain, data) == data


@given(st.text())
def test_text_is_utf8_on_the_wire(text: str) -> None:
    payload, tag = REGISTRY.pipeline().encode(text)
    assert (payload, tag) == (text.encode("utf-8"), "text")


def test_auto_tags_what_it_picked() -> None:
    pipe = REGISTRY.pipeline()
    assert pipe.encode("é")[1] == "text"
    assert pipe.encode(b"\x00")[1] == "bytes"
    assert pipe.encode({"a": 1}) == (b'{"a":1}', "json")


def test_untagged_payload_decodes_as_text_or_bytes() -> None:
    pipe = REGISTRY.pipeline()
    assert pipe.decode(b"Hello Macrometa Stream!", {}) == "Hello Macrometa Stream!"
    assert pipe.decode(b"\xff\xfe", {}) == b"\xff\xfe"
    assert REGISTRY.pipeline("json").decode(b'{"a": [1]}', {}) == {"a": [1]}


@pytest.mark.parametrize("bad", [math.nan, math.inf, [1, -math.inf], {"x": object()}])
def test_json_refuses_what_it_cannot_write_faithfully(bad: object) -> None:
    with pytest.raises(EncodeError, match="json"):
        JsonCodec().encode(bad)


def test_json_keeps_none_and_big_ints() -> None:
    codec = JsonCodec()
    for value in [None, [None, 1], 2**70, {"k": None}]:
        assert codec.decode(codec.encode(value)) == value


def test_text_codec_refuses_non_str_and_lone_surrogates() -> None:
    with pytest.raises(EncodeError, match="expected str"):
        REGISTRY.pipeline("text").encode(3)
    with pytest.raises(EncodeError, match="UTF-8"):
        REGISTRY.pipeline("text").encode("\udc80")


@pytest.mark.parametrize(
    ("payload", "tag", "match"),
    [
        (b"\xff", "text", "not valid UTF-8"),
        (b"{", "json", "not valid UTF-8 JSON"),
        (b"not zlib", "bytes+zlib", "zlib"),
        (b"x", "rot13", "unknown here: 'rot13'"),
    ],
)
def test_decode_errors_name_the_problem(payload: bytes, tag: str, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        REGISTRY.pipeline().decode(payload, {CODEC_PROPERTY: tag})


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("rot13", r"codec 'rot13'; unknown here: 'rot13'.*known: auto, bytes, json, text, zlib"),
        ("zlib", "codec 'zlib', stage 'zlib': a byte stage cannot come first"),
        ("json+text", r"codec 'json\+text', stage 'text': a value codec can only come first"),
        ("json+auto", r"stage 'auto': a value codec can only come first"),
        ("", "non-empty"),
    ],
)
def test_bad_pipeline_specs_fail_early(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        REGISTRY.pipeline(spec)


def test_both_json_backends_accept_and_refuse_the_same_values() -> None:
    import datetime as dt
    import uuid

    import streamfw.codec as codec

    strict = codec.JsonCodec()
    fixed = uuid.UUID(int=7)
    assert strict.decode(strict.encode({"id": fixed})) == {"id": str(fixed)}
    assert strict.decode(strict.encode((1, None))) == [1, None]
    with pytest.raises(EncodeError, match="datetime"):
        strict.encode({"at": dt.datetime(2024, 1, 1)})
    saved = codec._orjson
    codec._orjson = None  # the stdlib path, as without the 'fast' extra
    try:
        assert strict.decode(strict.encode({"id": fixed})) == {"id": str(fixed)}
        with pytest.raises(EncodeError, match="datetime"):
            strict.encode({"at": dt.datetime(2024, 1, 1)})
    finally:
        codec._orjson = saved
