"""OpenTelemetry tracing and metrics for streamfw messages (docs/tracing.md).

Registered under the ``streamfw`` entry-point group as ``otel = "streamfw_otel:plugin"``.
``plugin`` traces when ``opentelemetry-api`` is installed (``pip install 'streamfw[otel]'``)
and ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` does not name ``streamfw``; otherwise it
implements no hook, and streamfw's producers and consumers call nothing for it. Spans and
counters go to the global tracer and meter providers unless ``plugin.configure()`` names
others.
"""

from __future__ import annotations

import os

DISABLE_VARIABLE = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"  # OpenTelemetry's own switch


class Inactive:
    """Stands in for the plugin when it cannot or must not trace; implements no hook."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<streamfw_otel inactive: {self.reason}>"


def _disabled() -> bool:
    names = os.environ.get(DISABLE_VARIABLE, "")
    return "streamfw" in (name.strip() for name in names.split(","))


def _make_plugin() -> object:
    if _disabled():
        return Inactive(f"{DISABLE_VARIABLE} names streamfw")
    try:
        from streamfw_otel.telemetry import Telemetry
    except ImportError as exc:  # opentelemetry-api is optional
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        return Inactive(f"opentelemetry-api is not installed ({exc}): pip install 'streamfw[otel]'")
    return Telemetry()


plugin = _make_plugin()

__all__ = ["DISABLE_VARIABLE", "Inactive", "plugin"]
