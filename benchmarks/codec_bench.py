"""Benchmark 1: codec work per message, value -> frame text -> value.

streamfw: ``Pipeline.encode`` -> ``Envelope`` (as ``Producer`` builds it) ->
``wire.publish_frame`` -> ``wire.parse_publish`` -> ``Pipeline.decode``, i.e. everything a
message costs in codec work on its way through the Macrometa base64 ``{"payload": ...}``
frame. The baseline is the same job written by hand with the stdlib: ``json.dumps`` the
value (same compact bytes), base64 it into a ``{"payload": ...}`` frame, and back.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from benchmarks.payload import make_value
from benchmarks.timing import interleave, time_loop


def baseline_roundtrip(value: Any) -> Any:
    """What a hand-written stdlib client would do, on the same 1 KiB compact payload."""
    payload = json.dumps(value, separators=(",", ":")).encode("utf-8")
    text = json.dumps({"payload": base64.b64encode(payload).decode("ascii")})
    frame = json.loads(text)
    return json.loads(base64.b64decode(frame["payload"]))


def run(rounds: int, number: int) -> dict[str, Any]:
    """Interleave the streamfw and baseline round trips; seconds per message, per round."""
    from streamfw_macrometa import wire

    from streamfw.codec import CODEC_PROPERTY
    from streamfw.message import Envelope, Properties
    from streamfw.plugins import discover

    pipeline = discover().codecs().pipeline()  # the default: "auto" -> json for a dict
    value = make_value()

    def streamfw_roundtrip() -> Any:
        payload, tag = pipeline.encode(value)
        text = wire.publish_frame(Envelope(payload, Properties({CODEC_PROPERTY: tag})))
        envelope = wire.parse_publish(text).envelope
        return pipeline.decode(envelope.payload, envelope.properties)

    if streamfw_roundtrip() != value or baseline_roundtrip(value) != value:
        raise AssertionError("a round trip did not give the value back")
    samples = interleave(
        {
            "streamfw": lambda: time_loop(streamfw_roundtrip, number),
            "baseline": lambda: time_loop(lambda: baseline_roundtrip(value), number),
        },
        rounds,
    )
    return {"json_backend": json_backend(), **samples}


def json_backend() -> str:
    """Which JSON backend streamfw's codec picked up in this process."""
    return "orjson" if sys.modules.get("orjson") is not None else "stdlib"
