"""What GDN's HTTP gateway is called, written once for the client and the emulator.

The client builds its requests with these names and the emulator serves and parses them with
the same ones (docs/protocol.md §3 for credentials, §5 for the REST routes), so the two cannot
drift apart. WebSocket frames and topic names are ``wire``'s; this module is the HTTP side.
"""

from __future__ import annotations

from urllib.parse import quote

API_KEY_SCHEME = "apikey"  # Authorization: apikey <key>
BEARER_SCHEME = "bearer"  # Authorization: bearer <jwt>
SCHEMES = (API_KEY_SCHEME, BEARER_SCHEME)

DEFAULT_FABRIC = "_system"  # the fabric every tenant has
USER_PATH = "/_api/user"  # who the credential belongs to: the tenant
LOCAL_DC_PATH = "/datacenter/local"  # the region this host serves
OTP_PATH = "/apid/otp"  # POST: a one-time password for one WebSocket upgrade
OTP = "otp"  # the one-time password: its key in OTP_PATH's answer, and the upgrade's parameter
STREAMS_PATH = "/_fabric/{fabric}/_api/streams"  # the stream admin routes sit below it
WS_ROOT = "/_ws/ws/v2"  # the WebSocket sessions' paths sit below it

# The largest text frame Pulsar's WebSocket proxy reads: webSocketMaxTextFrameSize, 1 MiB by
# default (conf/websocket.conf); the emulator reads no more, and the client sends no more.
PULSAR_MAX_TEXT_FRAME = 1024 * 1024


def authorization(scheme: str, credential: str) -> str:
    """The ``Authorization`` header value (a secret: never log it)."""
    return f"{scheme} {credential}"


def parse_authorization(value: str | None) -> tuple[str, str] | None:
    """An ``Authorization`` value as (scheme in lower case, credential); None if unusable.

    The scheme is case-insensitive (RFC 9110 section 11.1); an unknown one is unusable.
    """
    if not value:
        return None
    scheme, _, credential = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        return None
    return scheme, credential.strip()


def ws_path(session: str) -> str:
    """The URL path of a WebSocket session (``producer/persistent/<tenant>/...``), quoted."""
    return WS_ROOT + "/" + "/".join(quote(p, safe="._-") for p in session.split("/"))
