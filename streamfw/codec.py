"""Codecs and the encoding pipeline.

A pipeline is one *value* codec (a Python value <-> bytes) followed by any number of *byte*
stages (bytes <-> bytes, e.g. ``zlib``), written ``"json+zlib"``. The names of the stages that
actually ran travel with the message in the ``streamfw-codec`` property, so a consumer decodes
what the producer wrote whatever pipeline the consumer was given. A payload without that
property (written by a client that is not streamfw) is decoded with the consumer's own pipeline;
the default ``auto`` reads it as text when it is valid UTF-8 and as bytes otherwise.

``auto`` (the default value codec) is a selector: ``str`` goes out as ``text``, ``bytes`` as
``bytes``, everything else as ``json``, and the tag names the codec it picked.

A transport whose frames carry text (a base64 ``{"payload": ...}`` frame, say) adds that
encoding itself, as its last stage; loopback needs none.

The tag comes from the sender, so decoding trusts nothing in it: a payload, and the output of
every stage, is bounded by ``max_message_size`` (inflation stops at the bound, so a
decompression bomb never holds more than it); a tag may name at most ``max_codec_stages``
stages, value codec first; and whatever a stage raises, built-in or from a plugin, leaves
``Pipeline.decode`` as a ``DecodeError`` naming the tag and the stage. Encoding checks the same
bounds, so what a producer sends, a consumer with the same limits can read.
"""

from __future__ import annotations

import importlib
import json
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import attrs

from streamfw.errors import ConfigError, DecodeError, EncodeError, MessageTooLarge
from streamfw.hookspecs import hookimpl
from streamfw.options import check_limit as check_limit  # its home; imported from here too

CODEC_PROPERTY = "streamfw-codec"
AUTO = "auto"
# Pulsar's default maxMessageSize (conf/broker.conf): the largest payload, and the largest
# output of any stage, a pipeline writes or reads.
DEFAULT_MAX_MESSAGE_SIZE = 5 * 1024 * 1024
# Stages a codec tag may name, value codec included: each stage may cost up to
# max_message_size of work, so this bounds the work one message can ask for.
DEFAULT_MAX_CODEC_STAGES = 8

_orjson: Any  # the optional fast backend: pip install 'streamfw[fast]'
try:  # imported by name so that type checking works with and without it installed
    _orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


class Codec(Protocol):
    """One stage. Value codecs take any value; byte stages take and return bytes.

    A byte stage whose output can be larger than its input (a decompressor) should also offer
    ``decode_bounded(data, max_size)`` (see ``BoundedCodec``): the pipeline then never lets it
    produce more than ``max_size`` bytes. Without it the stage runs whole and its output is
    checked afterwards.
    """

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class BoundedCodec(Codec, Protocol):
    """A byte stage that stops decoding once its output would pass ``max_size`` bytes."""

    def decode_bounded(self, data: bytes, max_size: int) -> bytes:
        """Decode ``data``; raise ``DecodeError`` rather than produce over ``max_size`` bytes."""


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
            raise DecodeError(f"payload is not valid UTF-8 JSON: {exc}") from exc


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
            raise DecodeError(f"payload is not valid UTF-8: {exc}") from exc


class BytesCodec:
    """Bytes as they are."""

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"bytes: expected bytes, got {type(value).__name__}")
        return bytes(value)

    def decode(self, data: bytes) -> Any:
        return data


class ZlibCodec:
    """A byte stage: zlib compression. Decoding inflates at most ``max_size`` bytes."""

    def encode(self, value: Any) -> bytes:
        return zlib.compress(value)

    def decode(self, data: bytes) -> Any:
        return self.decode_bounded(data, DEFAULT_MAX_MESSAGE_SIZE)

    def decode_bounded(self, data: bytes, max_size: int) -> bytes:
        inflater = zlib.decompressobj()
        try:
            # One byte over the bound is enough to know the output is too large; the
            # decompressor grows its buffer as it goes, so it never allocates more.
            out = inflater.decompress(data, max_size + 1)
        except zlib.error as exc:
            raise DecodeError(f"payload is not zlib data: {exc}") from exc
        if len(out) > max_size:
            raise DecodeError(
                f"inflates to more than max_message_size ({max_size:,} bytes); stopped there"
            )
        if not inflater.eof:
            raise DecodeError("payload is not zlib data: incomplete or truncated stream")
        return out


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


def _show(tag: str) -> str:
    # The tag comes from the sender and may be as long as a frame: quote only its start.
    return repr(tag) if len(tag) <= 80 else f"{tag[:80]!r}... ({len(tag):,} characters)"


def _failed(where: str, stage: str, exc: Exception) -> DecodeError:
    detail = str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
    return DecodeError(f"{where}, stage {_show(stage)}: {detail}")


class Pipeline:
    """A value codec (or ``auto``) followed by byte stages; built by ``CodecRegistry``.

    ``max_size`` bounds the payload and the output of every stage, both ways; ``max_stages``
    bounds the stages a message's tag may name.
    """

    def __init__(
        self,
        registry: CodecRegistry,
        value: str,
        stages: tuple[str, ...],
        *,
        max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_stages: int = DEFAULT_MAX_CODEC_STAGES,
    ) -> None:
        self._registry = registry
        self.value = value
        self.stages = stages
        self.max_size = max_size
        self.max_stages = max_stages

    @property
    def name(self) -> str:
        return "+".join((self.value, *self.stages))

    def encode(self, value: Any) -> tuple[bytes, str]:
        """Return the payload and the tag to send in the ``streamfw-codec`` property.

        Raises:
            EncodeError: the value cannot be encoded.
            MessageTooLarge: a stage wrote more than ``max_size`` bytes (a consumer with the
                same limit would refuse it); raised before anything is sent.
        """
        first = _auto_codec_for(value) if self.value == AUTO else self.value
        data = self._registry.stage(first).encode(value)
        if len(data) > self.max_size:
            self._refuse(first, first, len(data))
        if not self.stages:
            return data, first
        for name in self.stages:
            data = self._registry.stage(name).encode(data)
            if len(data) > self.max_size:
                self._refuse(first, name, len(data))
        return data, "+".join((first, *self.stages))

    def _refuse(self, first: str, stage: str, size: int) -> None:
        tag = "+".join((first, *self.stages))
        raise MessageTooLarge(
            f"codec {tag!r}, stage {stage!r}: wrote {size:,} bytes, over max_message_size"
            f" ({self.max_size:,} bytes); nothing was sent"
        )

    def decode(self, payload: bytes, properties: Mapping[str, str]) -> Any:
        """Decode with the tag's stages if the message has one, else with this pipeline.

        Raises:
            DecodeError: for anything that goes wrong, whatever the stage raised; the text
                names the tag and the stage.
        """
        tag = properties.get(CODEC_PROPERTY)
        if len(payload) > self.max_size:
            raise DecodeError(
                f"{self._where(tag)}: payload is {len(payload):,} bytes, over max_message_size"
                f" ({self.max_size:,} bytes)"
            )
        registry = self._registry
        if tag in registry.value_names:
            # The common case, one known value codec ("json"): what the general path below
            # does for it, without splitting and checking the tag stage by stage.
            try:
                return registry.stage(tag).decode(payload)
            except Exception as exc:
                raise _failed(f"codec {tag!r}", tag, exc) from exc
        if tag is None:
            first, stages = self.value, self.stages
        else:
            first, stages = registry.parse_tag(tag, self.max_stages)
        data = payload
        for name in reversed(stages):
            data = self._inflate(tag, name, data)
        if first == AUTO:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data
        try:
            return registry.stage(first).decode(data)
        except Exception as exc:
            raise _failed(self._where(tag), first, exc) from exc

    def _where(self, tag: str | None) -> str:
        if tag is None:
            return f"codec {self.name!r} (the message has no {CODEC_PROPERTY} property)"
        return f"codec {_show(tag)}"

    def _inflate(self, tag: str | None, name: str, data: bytes) -> bytes:
        """Run one byte stage backwards, never letting its output pass ``max_size``.

        ``tag`` is the message's codec tag; the text naming it is built only for an error,
        as this runs for every stage of every message.
        """
        limit = self.max_size
        try:
            stage = self._registry.stage(name)
            bounded = getattr(stage, "decode_bounded", None)
            out = bounded(data, limit) if bounded is not None else stage.decode(data)
        except Exception as exc:
            raise _failed(self._where(tag), name, exc) from exc
        if isinstance(out, (bytearray, memoryview)):
            out = bytes(out)
        if not isinstance(out, bytes):
            raise DecodeError(
                f"{self._where(tag)}, stage {name!r}: returned {type(out).__name__}, not bytes"
            )
        if len(out) > limit:
            raise DecodeError(
                f"{self._where(tag)}, stage {name!r}: decoded to {len(out):,} bytes, over"
                f" max_message_size ({limit:,} bytes)"
            )
        return out


class CodecRegistry:
    """The codec stages known to one plugin manager, by name."""

    def __init__(self, specs: Mapping[str, CodecSpec]) -> None:
        self.specs = dict(specs)
        self.value_names = frozenset(n for n, s in self.specs.items() if s.kind == "value")
        # what each name may be in a received tag, and in a spec (which may also say "auto")
        self._tag_kinds: dict[str, str] = {n: spec.kind for n, spec in self.specs.items()}
        self._spec_kinds = {**self._tag_kinds, AUTO: "value"}
        self._instances: dict[str, Codec] = {}

    def stage(self, name: str) -> Codec:
        codec = self._instances.get(name)
        if codec is None:
            codec = self._instances[name] = self.specs[name].factory()
        return codec

    def pipeline(
        self,
        spec: str = AUTO,
        *,
        max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_stages: int = DEFAULT_MAX_CODEC_STAGES,
    ) -> Pipeline:
        """Parse ``"json+zlib"``; unknown or misplaced names fail here, not at first use.

        Args:
            spec: the value codec (or ``auto``) and byte stages, joined by ``+``.
            max_size: the largest payload and stage output, in bytes (``max_message_size``).
            max_stages: the most stages a spec or a received tag may name
                (``max_codec_stages``).
        """
        check_limit("max_message_size", max_size)
        check_limit("max_codec_stages", max_stages)
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"codec must be a non-empty string like 'json+zlib', got {spec!r}")
        first, stages = self._read_stages(spec, max_stages, ConfigError, auto=True)
        return Pipeline(self, first, stages, max_size=max_size, max_stages=max_stages)

    def parse_tag(self, tag: str, max_stages: int) -> tuple[str, tuple[str, ...]]:
        """Split a received ``streamfw-codec`` tag into its value codec and byte stages.

        Raises:
            DecodeError: the tag names too many stages, unknown ones, or stages in the wrong
                places (a byte stage first, a value codec after it).
        """
        return self._read_stages(tag, max_stages, DecodeError, auto=False)

    def _read_stages(
        self,
        text: str,
        max_stages: int,
        error: type[ConfigError] | type[DecodeError],
        *,
        auto: bool,
    ) -> tuple[str, tuple[str, ...]]:
        """The one reading of a codec spec or tag: a value codec, then byte stages.

        A spec (``pipeline``) may start with ``auto`` and is refused with ``ConfigError``; a
        received tag names the stages it was written with, and is refused with
        ``DecodeError``. Both name the spec or tag, the stage at fault and the rule.
        """
        names = text.split("+", max_stages)  # never more pieces than we would accept
        if len(names) > max_stages:
            raise error(
                f"codec {_show(text)}: names more than max_codec_stages ({max_stages}) stages"
            )
        known = self._spec_kinds if auto else self._tag_kinds
        unknown = [n for n in names if n not in known]
        if unknown:
            raise error(
                f"codec {_show(text)}; unknown here: {', '.join(_show(n) for n in unknown)}"
                f" (known: {', '.join(sorted(known))})"
            )
        first, *stages = names
        if known[first] != "value":
            raise error(
                f"codec {_show(text)}, stage {first!r}: a byte stage cannot come first;"
                " a codec starts with a value codec"
            )
        misplaced = [n for n in stages if known[n] == "value"]
        if misplaced:
            raise error(
                f"codec {_show(text)}, stage {misplaced[0]!r}: a value codec can only come first"
            )
        return first, tuple(stages)
