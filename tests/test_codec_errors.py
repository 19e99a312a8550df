"""Whatever a codec stage does with a payload, decoding ends in a value or a DecodeError.

The tag in ``streamfw-codec`` comes from the sender, so every combination of stage names is
possible: misplaced stages, unknown names, stages from plugins that raise anything or return
the wrong type. Each failure names the tag and the stage.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamfw.codec as codec_module
from streamfw import CodecSpec, DecodeError, discover, hookimpl
from streamfw.codec import CODEC_PROPERTY, CodecRegistry

REGISTRY: CodecRegistry = discover(entry_points=False).codecs()


class Exploding:
    """A byte stage from a careless plugin: raises something that is not a DecodeError."""

    ERRORS = (TypeError, KeyError, AttributeError, IndexError, ZeroDivisionError, OSError)

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, data: bytes) -> bytes:
        raise self.ERRORS[len(data) % len(self.ERRORS)](f"plugin bug on {len(data)} bytes")


class NotBytes:
    """A byte stage that returns the wrong type."""

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, data: bytes) -> Any:
        return len(data)


class Expanding:
    """A byte stage without ``decode_bounded``: its output is checked once it returns."""

    def encode(self, value: bytes) -> bytes:
        return value[::1000]

    def decode(self, data: bytes) -> bytes:
        return data * 1000


class Recursive:
    """A value codec that recurses without end on any payload."""

    def encode(self, value: Any) -> bytes:
        return b""

    def decode(self, data: bytes) -> Any:
        return self.decode(data)


def _broken_factory() -> Any:
    raise RuntimeError("this plugin cannot build its codec")


class CarelessCodecs:
    @hookimpl
    def streamfw_register_codecs(self, register: Callable[[CodecSpec], None]) -> None:
        register(CodecSpec("explode", Exploding, "bytes"))
        register(CodecSpec("notbytes", NotBytes, "bytes"))
        register(CodecSpec("expand", Expanding, "bytes"))
        register(CodecSpec("recurse", Recursive, "value"))
        register(CodecSpec("broken", _broken_factory, "bytes"))


PLUGINS = discover(entry_points=False, extra={"careless": CarelessCodecs()})
CARELESS: CodecRegistry = PLUGINS.codecs()
NAMES = sorted(CARELESS.specs)


@pytest.fixture(params=["orjson", "stdlib"])
def json_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with each JSON backend."""
    saved = codec_module._orjson
    if request.param == "stdlib":
        codec_module._orjson = None
    elif saved is None:  # pragma: no cover - the test extra installs orjson
        pytest.skip("orjson is not installed")
    try:
        yield request.param
    finally:
        codec_module._orjson = saved


@pytest.mark.parametrize(
    ("tag", "payload", "match"),
    [
        ("text+json", b'{"a": 1}', r"codec 'text\+json', stage 'json': a value codec can only"),
        ("zlib+json", b'{"a": 1}', r"codec 'zlib\+json', stage 'zlib': a byte stage cannot come"),
        ("zlib", zlib.compress(b"x"), r"codec 'zlib', stage 'zlib': a byte stage cannot come"),
        ("json+text", b'"x"', r"stage 'text': a value codec can only come first"),
        ("json+", b"1", r"codec 'json\+'; unknown here: ''"),
        ("", b"1", r"codec ''; unknown here: ''"),
        ("auto", b"1", r"codec 'auto'; unknown here: 'auto'"),
        ("json+zlib", b"1", r"codec 'json\+zlib', stage 'zlib': payload is not zlib data"),
        ("bytes+zlib", zlib.compress(b"x")[:-2], r"stage 'zlib': .*truncated"),
        ("text", b"\xff", r"codec 'text', stage 'text': payload is not valid UTF-8"),
    ],
)
def test_ill_formed_tags_and_payloads_raise_decode_error(
    tag: str, payload: bytes, match: str
) -> None:
    with pytest.raises(DecodeError, match=match):
        REGISTRY.pipeline().decode(payload, {CODEC_PROPERTY: tag})


@pytest.mark.parametrize("tag", [None, "json"])
def test_deeply_nested_json_is_a_decode_error_with_either_backend(
    json_backend: str, tag: str | None
) -> None:
    props = {} if tag is None else {CODEC_PROPERTY: tag}
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(DecodeError, match="stage 'json'"):
        REGISTRY.pipeline("json").decode(deep, props)
    assert REGISTRY.pipeline("json").decode(b"[[1]]", props) == [[1]]  # still usable


@pytest.mark.parametrize(
    ("tag", "match", "cause"),
    [
        (
            "bytes+explode",
            r"codec 'bytes\+explode', stage 'explode': \w+Error: .*plugin bug",
            Exception,
        ),
        ("bytes+notbytes", r"stage 'notbytes': returned int, not bytes", None),
        (
            "bytes+expand",
            r"stage 'expand': decoded to 1,000,000 bytes, over max_message_size",
            None,
        ),
        ("recurse", r"codec 'recurse', stage 'recurse': RecursionError", RecursionError),
        ("recurse+zlib", r"stage 'recurse': RecursionError", RecursionError),
        ("bytes+broken", r"stage 'broken': RuntimeError: this plugin cannot build", RuntimeError),
    ],
)
def test_plugin_stage_failures_become_decode_errors(
    tag: str, match: str, cause: type[Exception] | None
) -> None:
    payload = zlib.compress(b"x" * 1000) if tag.endswith("zlib") else b"x" * 1000
    with pytest.raises(DecodeError, match=match) as err:
        CARELESS.pipeline(max_size=100_000).decode(payload, {CODEC_PROPERTY: tag})
    if cause is not None:  # the plugin's own exception is kept for debugging
        assert isinstance(err.value.__cause__, cause)


def test_untagged_payloads_name_the_consumers_codec() -> None:
    with pytest.raises(
        DecodeError, match=r"codec 'json\+zlib' \(the message has no streamfw-codec"
    ):
        REGISTRY.pipeline("json+zlib").decode(b"not zlib", {})


tags = st.lists(st.sampled_from([*NAMES, "auto", "rot13", ""]), min_size=1, max_size=10).map(
    "+".join
)
payloads = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(zlib.compress),
    st.binary(max_size=300).map(zlib.compress).map(zlib.compress),
    st.sampled_from([b"[" * 5000, b'{"a": [1, 2.5, null]}', zlib.compress(bytes(100_000))]),
)


@given(payload=payloads, tag=tags, limit=st.integers(1, 200_000))
def test_any_tag_on_any_bytes_decodes_or_raises_decode_error(
    payload: bytes, tag: str, limit: int
) -> None:
    pipe = CARELESS.pipeline(max_size=limit)
    try:
        pipe.decode(payload, {CODEC_PROPERTY: tag})
    except DecodeError as exc:
        assert repr(tag)[:40] in str(exc)  # it names the tag it was given


@given(payload=payloads, spec=st.sampled_from(["auto", "json", "text+zlib", "bytes+zlib+zlib"]))
def test_any_untagged_bytes_decode_or_raise_decode_error(payload: bytes, spec: str) -> None:
    try:
        REGISTRY.pipeline(spec, max_size=50_000).decode(payload, {})
    except DecodeError as exc:
        assert f"codec {spec!r}" in str(exc)
