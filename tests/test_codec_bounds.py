"""The codec pipeline's size bounds: payloads, every stage's output, the stages a tag names.

The bomb is built here: zeros deflated twice, 64 MiB that fit in well under a kilobyte.
Memory is asserted with tracemalloc's peak (zlib's buffers go through Python's allocator, so
they are counted), never with timing.
"""

from __future__ import annotations

import contextlib
import functools
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import streamfw
from streamfw import ConfigError, DecodeError, EncodeError, discover
from streamfw.codec import (
    CODEC_PROPERTY,
    DEFAULT_MAX_CODEC_STAGES,
    DEFAULT_MAX_MESSAGE_SIZE,
    CodecRegistry,
    ZlibCodec,
)

REGISTRY: CodecRegistry = discover(entry_points=False).codecs()
BOMB_SIZE = 64 * 1024 * 1024  # what the bomb inflates to: 12 times the default bound
KIB = 1024


@functools.cache
def bomb() -> bytes:
    """Zeros deflated twice: ``bytes+zlib+zlib`` that inflates to ``BOMB_SIZE`` bytes."""
    deflate = zlib.compressobj(9)
    chunk = bytes(1024 * KIB)
    inner = b"".join(deflate.compress(chunk) for _ in range(BOMB_SIZE // len(chunk)))
    return zlib.compress(inner + deflate.flush(), 9)


def peak_bytes(fn: Callable[[], Any]) -> int:
    """The most memory Python held at once while ``fn`` ran (its exception is swallowed)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with contextlib.suppress(DecodeError):
            fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_default_bound_is_pulsars_max_message_size() -> None:
    assert DEFAULT_MAX_MESSAGE_SIZE == 5_242_880  # maxMessageSize in Pulsar's broker.conf
    pipe = REGISTRY.pipeline()
    assert (pipe.max_size, pipe.max_stages) == (DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_CODEC_STAGES)


def test_the_bomb_is_what_the_issue_describes() -> None:
    # Guard against a test that cannot fail: unbounded, this really inflates to BOMB_SIZE.
    assert len(bomb()) < 2 * KIB
    assert len(zlib.decompress(zlib.decompress(bomb()))) == BOMB_SIZE


@pytest.mark.parametrize("limit", [64 * KIB, DEFAULT_MAX_MESSAGE_SIZE])
def test_a_bomb_stops_at_the_bound_in_bounded_memory(limit: int) -> None:
    pipe = REGISTRY.pipeline(max_size=limit)
    with pytest.raises(DecodeError) as err:
        pipe.decode(bomb(), {CODEC_PROPERTY: "bytes+zlib+zlib"})
    assert "codec 'bytes+zlib+zlib', stage 'zlib'" in str(err.value)
    assert f"max_message_size ({limit:,} bytes)" in str(err.value)
    # One stage's output (at most limit + 1 bytes) and the buffer it is joined from, plus the
    # outer stage's output (~65 KiB): never the 64 MiB the bomb asks for.
    peak = peak_bytes(lambda: pipe.decode(bomb(), {CODEC_PROPERTY: "bytes+zlib+zlib"}))
    assert peak < 3 * limit + 256 * KIB, f"peak {peak:,} bytes for a bound of {limit:,}"


def test_every_stage_is_bounded_not_only_the_last() -> None:
    # The outer stage alone inflates past the bound: it stops there, the inner never runs.
    inner = zlib.compress(bytes(range(256)) * 1024)  # 256 KiB of data, ~1.5 KiB deflated
    wrapped = zlib.compress(inner + bytes(512 * KIB), 9)  # the outer layer inflates to ~513 KiB
    pipe = REGISTRY.pipeline(max_size=300 * KIB)
    peak = peak_bytes(lambda: pipe.decode(wrapped, {CODEC_PROPERTY: "bytes+zlib+zlib"}))
    assert peak < 3 * 300 * KIB + 256 * KIB
    with pytest.raises(DecodeError, match="inflates to more than max_message_size"):
        pipe.decode(wrapped, {CODEC_PROPERTY: "bytes+zlib+zlib"})


def test_output_exactly_at_the_bound_decodes() -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes
    pipe = REGISTRY.pipeline(max_size=len(data))
    assert pipe.decode(zlib.compress(data), {CODEC_PROPERTY: "bytes+zlib"}) == data
    with pytest.raises(DecodeError, match="10,239 bytes"):
        REGISTRY.pipeline(max_size=len(data) - 1).decode(
            zlib.compress(data), {CODEC_PROPERTY: "bytes+zlib"}
        )


def test_zlib_stage_alone_is_bounded_and_keeps_its_errors() -> None:
    codec = ZlibCodec()
    assert codec.decode_bounded(zlib.compress(b"abc"), 3) == b"abc"
    with pytest.raises(DecodeError, match="more than"):
        codec.decode_bounded(zlib.compress(b"abcd"), 3)
    with pytest.raises(DecodeError, match="truncated"):
        codec.decode_bounded(zlib.compress(b"abcdef" * 100)[:-5], 10_000)
    with pytest.raises(DecodeError, match="not zlib data"):
        codec.decode_bounded(b"not zlib", 10_000)
    with pytest.raises(DecodeError, match="more than"):  # decode() has the default bound
        codec.decode(zlib.compress(bytes(DEFAULT_MAX_MESSAGE_SIZE + 1)))


@pytest.mark.parametrize(("tag", "payload"), [(None, b"x" * 1001), ("bytes", b"x" * 1001)])
def test_a_payload_over_the_bound_is_refused_before_decoding(
    tag: str | None, payload: bytes
) -> None:
    props = {} if tag is None else {CODEC_PROPERTY: tag}
    with pytest.raises(
        DecodeError, match=r": payload is 1,001 bytes, over max_message_size \(1,000"
    ):
        REGISTRY.pipeline(max_size=1000).decode(payload, props)
    assert REGISTRY.pipeline(max_size=1001).decode(payload, props) is not None


def test_a_tag_naming_too_many_stages_is_refused() -> None:
    data: bytes = b"x"
    for _ in range(DEFAULT_MAX_CODEC_STAGES):
        data = zlib.compress(data)
    tag = "+".join(["bytes"] + ["zlib"] * DEFAULT_MAX_CODEC_STAGES)
    with pytest.raises(DecodeError, match=r"more than max_codec_stages \(8\)"):
        REGISTRY.pipeline().decode(data, {CODEC_PROPERTY: tag})
    assert REGISTRY.pipeline(max_stages=9).decode(data, {CODEC_PROPERTY: tag}) == b"x"
    # A huge tag is neither split whole nor quoted whole.
    with pytest.raises(DecodeError) as err:
        REGISTRY.pipeline().decode(b"x", {CODEC_PROPERTY: "bytes" + "+zlib" * 200_000})
    assert len(str(err.value)) < 300 and "1,000,005 characters" in str(err.value)


def test_a_spec_naming_too_many_stages_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"names more than max_codec_stages \(8\) stages"):
        REGISTRY.pipeline("json" + "+zlib" * 8)
    assert REGISTRY.pipeline("json" + "+zlib" * 8, max_stages=9).name.count("zlib") == 8
    # read by the same function as a received tag: a huge spec is neither split whole nor
    # quoted whole, and its rules and messages are the tag's
    with pytest.raises(ConfigError) as err:
        REGISTRY.pipeline("json" + "+zlib" * 200_000)
    assert len(str(err.value)) < 300 and "1,000,004 characters" in str(err.value)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "5MB", True, None])
def test_limits_must_be_positive_ints(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_message_size must be an int of at least 1"):
        REGISTRY.pipeline(max_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_codec_stages must be an int of at least 1"):
        REGISTRY.pipeline(max_stages=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_message_size"):
        streamfw.connect("loopback://limits", max_message_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_codec_stages"):
        streamfw.connect("loopback://limits", max_codec_stages=bad)  # type: ignore[arg-type]


def test_encoding_over_the_bound_names_size_stage_and_limit() -> None:
    with pytest.raises(EncodeError) as err:
        REGISTRY.pipeline(max_size=1000).encode(b"x" * 1001)
    assert str(err.value) == (
        "codec 'bytes', stage 'bytes': wrote 1,001 bytes, over max_message_size (1,000 bytes);"
        " nothing was sent"
    )
    assert REGISTRY.pipeline(max_size=1001).encode(b"x" * 1001)[0] == b"x" * 1001


def test_encoding_checks_every_stage_so_consumers_can_decode_it() -> None:
    # Compressed it would fit, but a consumer with the same bound could not inflate it.
    value = {"text": "x" * 5000}
    with pytest.raises(EncodeError, match=r"codec 'json\+zlib', stage 'json': wrote 5,011"):
        REGISTRY.pipeline("json+zlib", max_size=1000).encode(value)
    payload, tag = REGISTRY.pipeline("json+zlib", max_size=6000).encode(value)
    assert REGISTRY.pipeline(max_size=6000).decode(payload, {CODEC_PROPERTY: tag}) == value
