"""Codecs and the encoding pipeline.

A pipeline is one *value* codec (a Python value <-> bytes) followed by any number of *byte*
stages (bytes <-> bytes, e.g. ``zlib``), written ``"json+zlib"``. The names of the stages that
actually ran travel with the message in the ``streamfw-codec`` property, so a consumer decodes
what the producer wrote whatever pipeline the consumer was given. A payload without that
property (written by a plain client such as pyC8) is decoded with the consumer's own pipeline;
the default ``auto`` reads it as text when it is valid UTF-8 and as bytes otherwise.

``auto`` (the default value codec) is a selector: ``str`` goes out as ``text``, ``bytes`` as
``bytes``, everything else as ``json``, and the tag names the codec it picked.

The Macrometa/Pulsar base64 ``{"payload": ...}`` frame is the transport's last stage (see
``streamfw.wire``); loopback needs none.
"""

from __future__ import annotations

import importlib
import json
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import attrs

from streamfw.errors import ConfigError, DecodeError, EncodeError
from streamfw.hookspecs import hookimpl

CODEC_PROPERTY = "streamfw-codec"
AUTO = "auto"

_orjson: Any  # the optional fast backend: pip install 'streamfw[fast]'
try:  # imported by name so that type checking works with and without it installed
    _orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


class Codec(Protocol):
    """One stage. Value codecs take any value; byte stages take and return bytes."""

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


@attrs.frozen
class CodecSpec:
    """What a plugin registers: a named stage and how to build it."""

    name: str
    factory: Callable[[], Codec]
    kind: Literal["value", "bytes"]
    summary: str = ""


# What ``json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))`` builds
# on every call; made once (it keeps no state between calls, so threads may share it).
def _uuid_as_text(value: Any) -> str:
    # orjson writes a UUID as its text on its own; the stdlib path does the same, so both
    # backends accept the same values. Anything else is refused.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_STRICT_JSON = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_uuid_as_text
)


# Types orjson would write on its own (datetimes, dataclasses, subclasses of str/int/dict/list)
# go to its ``default``, which we do not give: TypeError, then the stdlib path decides, so
# both backends accept and refuse the same values.
_ORJSON_STRICT = (
    0
    if _orjson is None
    else _orjson.OPT_PASSTHROUGH_DATETIME
    | _orjson.OPT_PASSTHROUGH_DATACLASS
    | _orjson.OPT_PASSTHROUGH_SUBCLASS
)


class JsonCodec:
    """UTF-8 JSON. Refuses NaN and infinities rather than writing invalid JSON."""

    def encode(self, value: Any) -> bytes:
        if _orjson is not None:
            try:
                out: bytes = _orjson.dumps(value, option=_ORJSON_STRICT)
            except TypeError:
                pass  # e.g. ints beyond 64 bits: the stdlib path handles or explains them
            else:
                # orjson writes NaN/inf as null, so a null may stand for one. If the output
                # reads back equal to the value, every null was a None (NaN equals nothing)
                # and nothing was converted (datetime, tuple, ...): keep it. Otherwise take
                # the strict path, which writes the value or explains why it cannot.
                if b"null" not in out or _reads_back_as(out, value):
                    return out
        try:
            return _STRICT_JSON.encode(value).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"json: cannot encode {type(value).__name__}: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        try:
            if _orjson is not None:
                return _orjson.loads(data)
            return json.loads(data)
        except ValueError as exc:
            raise DecodeError(f"json: payload is not valid UTF-8 JSON: {exc}") from exc


def _reads_back_as(out: bytes, value: Any) -> bool:
    assert _orjson is not None
    try:
        return bool(_orjson.loads(out) == value)
    except Exception:  # a user type's __eq__ may raise (numpy arrays do): not equal, then
        return False


class TextCodec:
    """A ``str`` as UTF-8."""

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise EncodeError(f"text: expected str, got {type(value).__name__}")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"text: not encodable as UTF-8: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"text: payload is not valid UTF-8: {exc}") from exc


class BytesCodec:
    """Bytes as they are."""

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"bytes: expected bytes, got {type(value).__name__}")
        return bytes(value)

    def decode(self, data: bytes) -> Any:
        return data


class ZlibCodec:
    """A byte stage: zlib compression."""

    def encode(self, value: Any) -> bytes:
        return zlib.compress(value)

    def decode(self, data: bytes) -> Any:
        try:
            return zlib.decompress(data)
        except zlib.error as exc:
            raise DecodeError(f"zlib: payload is not zlib data: {exc}") from exc


BUILTIN_CODECS = (
    CodecSpec("json", JsonCodec, "value", "UTF-8 JSON (orjson when installed)"),
    CodecSpec("text", TextCodec, "value", "str as UTF-8"),
    CodecSpec("bytes", BytesCodec, "value", "bytes unchanged"),
    CodecSpec("zlib", ZlibCodec, "bytes", "zlib compression"),
)


@hookimpl
def streamfw_register_codecs(register: Callable[[CodecSpec], None]) -> None:
    for spec in BUILTIN_CODECS:
        register(spec)


def _auto_codec_for(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    return "json"


class Pipeline:
    """A value codec (or ``auto``) followed by byte stages; built by ``CodecRegistry``."""

    def __init__(self, registry: CodecRegistry, value: str, stages: tuple[str, ...]) -> None:
        self._registry = registry
        self.value = value
        self.stages = stages

    @property
    def name(self) -> str:
        return "+".join((self.value, *self.stages))

    def encode(self, value: Any) -> tuple[bytes, str]:
        """Return the payload and the tag to send in the ``streamfw-codec`` property."""
        first = _auto_codec_for(value) if self.value == AUTO else self.value
        data = self._registry.stage(first).encode(value)
        if not self.stages:
            return data, first
        for name in self.stages:
            data = self._registry.stage(name).encode(data)
        return data, "+".join((first, *self.stages))

    def decode(self, payload: bytes, properties: Mapping[str, str]) -> Any:
        """Decode with the tag's stages if the message has one, else with this pipeline."""
        tag = properties.get(CODEC_PROPERTY)
        if type(tag) is str and "+" not in tag and tag in self._registry.specs:
            # The common case, one known value codec ("json"): what the general path below
            # does for it, without splitting and checking the tag stage by stage.
            return self._registry.stage(tag).decode(payload)
        if tag is None:
            first, stages = self.value, self.stages
        else:
            first, *rest = tag.split("+")
            stages = tuple(rest)
            unknown = [n for n in (first, *stages) if n not in self._registry.specs]
            if unknown:
                raise DecodeError(
                    f"message was written with codec {tag!r}; unknown here: {', '.join(unknown)}"
                    f" (known: {', '.join(sorted(self._registry.specs))})"
                )
        data: Any = payload
        for name in reversed(stages):
            data = self._registry.stage(name).decode(data)
        if first == AUTO:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data
        return self._registry.stage(first).decode(data)


class CodecRegistry:
    """The codec stages known to one plugin manager, by name."""

    def __init__(self, specs: Mapping[str, CodecSpec]) -> None:
        self.specs = dict(specs)
        self._instances: dict[str, Codec] = {}

    def stage(self, name: str) -> Codec:
        codec = self._instances.get(name)
        if codec is None:
            codec = self._instances[name] = self.specs[name].factory()
        return codec

    def pipeline(self, spec: str = AUTO) -> Pipeline:
        """Parse ``"json+zlib"``; unknown or misplaced names fail here, not at first use."""
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"codec must be a non-empty string like 'json+zlib', got {spec!r}")
        first, *stages = spec.split("+")
        known = ", ".join(sorted((AUTO, *self.specs)))
        for i, name in enumerate((first, *stages)):
            if name != AUTO and name not in self.specs:
                raise ConfigError(f"unknown codec {name!r} in {spec!r} (known: {known})")
            want = "value" if i == 0 else "bytes"
            kind = "value" if name == AUTO else self.specs[name].kind
            if kind != want:
                where = "first" if want == "value" else "after the first"
                raise ConfigError(
                    f"codec {name!r} is a {kind} stage; {spec!r} needs a {want} stage {where}"
                )
        return Pipeline(self, first, tuple(stages))
