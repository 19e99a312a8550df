"""Turn a ``macrometa://`` URL plus keyword options into a checked, immutable ``Settings``.

URL forms (the scheme picks how hosts are derived; see docs/macrometa.md):

* ``macrometa://play.paas.macrometa.io`` -- real GDN. REST and WebSocket go to
  ``https://api-<host>`` / ``wss://api-<host>`` (the SDKs' rule) unless the host already starts
  with ``api-``. TLS is always on.
* ``macrometa+https://host:port`` -- TLS to exactly this host (no ``api-`` prefix): a
  self-hosted gateway or the emulator started with a certificate; add ``ca_bundle=``.
* ``macrometa+http://127.0.0.1:port`` -- plain HTTP/WS to exactly this host: the emulator.

Options may be keyword arguments or, except credentials, URL query parameters. Credentials come
from ``api_key=`` / ``token=`` or the ``MACROMETA_API_KEY`` / ``MACROMETA_TOKEN`` variables
and are kept in a ``Secret`` whose repr and str never show them.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import warnings
from collections.abc import Mapping
from typing import Any, Literal, NoReturn
from urllib.parse import parse_qsl, urlsplit

import attrs

from streamfw.api import TransportConfig, check_name
from streamfw.errors import ConfigError

SCHEMES = ("macrometa", "macrometa+https", "macrometa+http")
ENV_API_KEY = "MACROMETA_API_KEY"
ENV_TOKEN = "MACROMETA_TOKEN"
SECRET_OPTIONS = frozenset({"api_key", "token"})
# REST answers are admin documents; the largest legitimate ones are stream lists and stats
# (~200 bytes a stream): 16 MiB holds tens of thousands of streams.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Pulsar's maxMessageSize (5 MiB) base64-encoded is 6.7 MiB; the rest is room for properties.
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
# The largest frame Pulsar's WebSocket proxy reads: webSocketMaxTextFrameSize, 1 MiB by default
# (conf/websocket.conf). A larger frame makes the server drop the connection, and a resend
# after the reconnect would drop it again, so the producer refuses such a message up front.
DEFAULT_MAX_SEND_FRAME_SIZE = 1024 * 1024
AuthMode = Literal["header", "otp"]


class InsecureTLSWarning(UserWarning):
    """TLS certificate checks were switched off with ``verify=False``."""


class Secret:
    """A credential that never shows itself in repr, str, logs, error messages or pickles.

    Pickling refuses (``TypeError``) rather than writing a redacted copy: a redacted key
    would unpickle into a client that fails with ``AuthError`` far from the cause, while a
    pickle holding the key would put it on disk or on the wire. Pass the credential (or set
    ``MACROMETA_API_KEY``) again in the other process. ``copy.copy`` and ``copy.deepcopy``
    return the same object: a ``Secret`` is immutable.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError(
            "a macrometa Secret (API key or token) cannot be pickled: pass the credential"
            " again in the other process"
        )

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@attrs.frozen
class Settings:
    """Everything a macrometa transport needs, checked. Safe to print."""

    rest_url: str  # scheme://host[:port], no trailing slash
    ws_url: str  # ws(s)://host[:port], no trailing slash; WebSocket paths go below /_ws/ws/v2
    fabric: str
    credential: Secret = attrs.field(repr=False)
    scheme_word: Literal["apikey", "bearer"]
    tenant: str | None = None  # None: discover with GET /_api/user
    auth: AuthMode = "header"
    verify: bool | str = True  # False, True or a CA bundle path (requests' convention)
    gdn: bool = True  # macrometa:// form: resolve local streams' WebSocket host via the DC
    ws_url_fixed: bool = False  # ws_url= given explicitly: never re-derive it
    timeout: float = 10.0  # whole REST call (retries included) / whole WebSocket connect
    retries: int = 3  # attempts for idempotent REST calls
    max_response_bytes: int = MAX_RESPONSE_BYTES  # largest REST answer body accepted
    reconnect_deadline: float = 30.0  # total time a dropped WebSocket may spend reconnecting
    ping_interval: float = 20.0
    busy_deadline: float = 60.0  # how long a reconnect retries 409 (old session still held)
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE  # bytes one received WebSocket message may hold
    max_send_frame_size: int = DEFAULT_MAX_SEND_FRAME_SIZE  # largest frame the server reads
    extensions: bool = False  # send emulator-only parameters (subscriptionInitialPosition)

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value (a secret: never log it)."""
        return f"{self.scheme_word} {self.credential.reveal()}"

    @property
    def sslopt(self) -> dict[str, Any]:
        """websocket-client TLS options matching ``verify``."""
        if self.verify is False:
            return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        if isinstance(self.verify, str):
            return {"ca_certs": self.verify}
        return {}


_KNOWN = {
    "api_key",
    "token",
    "fabric",
    "tenant",
    "auth",
    "verify",
    "ca_bundle",
    "rest_url",
    "ws_url",
    "timeout",
    "retries",
    "max_response_bytes",
    "reconnect_deadline",
    "ping_interval",
    "busy_deadline",
    "max_frame_size",
    "max_send_frame_size",
    "extensions",
}


def parse(config: TransportConfig, environ: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from the URL and options; raise ConfigError naming what is wrong."""
    env = os.environ if environ is None else environ
    parts = urlsplit(config.url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"URL scheme must be one of {', '.join(SCHEMES)}")
    if parts.username or parts.password:
        raise ConfigError("put credentials in api_key=/token= or the environment, not the URL")
    if parts.path not in ("", "/"):
        raise ConfigError("a macrometa URL has no path: use macrometa://host[:port]")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    leaked = SECRET_OPTIONS & set(query)
    if leaked:
        raise ConfigError(f"{', '.join(sorted(leaked))} must not be given in the URL")
    options: dict[str, Any] = {**query, **config.options}
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigError(
            f"unknown macrometa option(s): {', '.join(unknown)}"
            f" (known: {', '.join(sorted(_KNOWN))})"
        )
    host = parts.hostname
    if not host:
        raise ConfigError("the URL needs a host, e.g. macrometa://play.paas.macrometa.io")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad port in URL: {exc}") from None
    credential, word = _credential(options, env)
    verify = _verify(options)
    rest_url, ws_url = _base_urls(parts.scheme, host, port)
    if "rest_url" in options:
        rest_url = _origin(options["rest_url"], ("http", "https"), "rest_url")
    ws_fixed = "ws_url" in options
    if ws_fixed:
        ws_url = _origin(options["ws_url"], ("ws", "wss"), "ws_url")
    elif "rest_url" in options:
        ws_url = "ws" + rest_url[4:]
    auth = options.get("auth", "header")
    if auth not in ("header", "otp"):
        raise ConfigError(f"auth must be 'header' or 'otp', got {auth!r}")
    tenant = options.get("tenant")
    if tenant is not None:
        check_name("tenant", tenant)
    return Settings(
        rest_url=rest_url,
        ws_url=ws_url,
        fabric=check_name("fabric", options.get("fabric", "_system")),
        credential=credential,
        scheme_word=word,
        tenant=tenant,
        auth=auth,
        verify=verify,
        gdn=parts.scheme == "macrometa",
        ws_url_fixed=ws_fixed,
        timeout=_seconds(options, "timeout", 10.0),
        retries=_int(options, "retries", 3, low=1),
        max_response_bytes=_int(options, "max_response_bytes", MAX_RESPONSE_BYTES, low=1024),
        reconnect_deadline=_seconds(options, "reconnect_deadline", 30.0),
        ping_interval=_seconds(options, "ping_interval", 20.0),
        busy_deadline=_seconds(options, "busy_deadline", 60.0),
        max_frame_size=_int(options, "max_frame_size", DEFAULT_MAX_FRAME_SIZE, low=1024),
        max_send_frame_size=_int(
            options, "max_send_frame_size", DEFAULT_MAX_SEND_FRAME_SIZE, low=1024
        ),
        extensions=_bool(options, "extensions", False),
    )


def _credential(options: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Secret, Any]:
    key, token = options.get("api_key"), options.get("token")
    if key is not None and token is not None:
        raise ConfigError("pass either api_key= or token=, not both")
    if key is None and token is None:
        key, token = env.get(ENV_API_KEY) or None, env.get(ENV_TOKEN) or None
        if key is not None and token is not None:
            raise ConfigError(f"both {ENV_API_KEY} and {ENV_TOKEN} are set: unset one")
    if key is None and token is None:
        raise ConfigError(f"no credentials: pass api_key= or token=, or set {ENV_API_KEY}")
    value, word = (key, "apikey") if key is not None else (token, "bearer")
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ConfigError(f"the {'API key' if word == 'apikey' else 'token'} is empty or malformed")
    return Secret(value), word


def _verify(options: Mapping[str, Any]) -> bool | str:
    verify = _bool(options, "verify", True)
    bundle = options.get("ca_bundle")
    if bundle is not None:
        if verify is False:
            raise ConfigError("ca_bundle= and verify=False contradict each other")
        bundle = os.fspath(bundle)
        if not os.path.isfile(bundle):
            raise ConfigError(f"ca_bundle {bundle!r} is not a file")
        return str(bundle)
    if verify is False:
        warnings.warn(
            "macrometa: TLS certificate verification is OFF (verify=False); anyone on the path"
            " can read your credentials. Use ca_bundle= for a private CA instead.",
            InsecureTLSWarning,
            stacklevel=4,
        )
    return verify


def _base_urls(scheme: str, host: str, port: int | None) -> tuple[str, str]:
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    suffix = f":{port}" if port is not None else ""
    if scheme == "macrometa+http":
        return f"http://{host}{suffix}", f"ws://{host}{suffix}"
    if scheme == "macrometa":
        if _is_ip(host.strip("[]")):
            raise ConfigError(
                "macrometa:// derives 'api-<host>' and needs a DNS name; for an address use"
                " macrometa+https://HOST:PORT (TLS) or macrometa+http://HOST:PORT (plain)"
            )
        if not host.startswith("api-"):
            host = "api-" + host
    return f"https://{host}{suffix}", f"wss://{host}{suffix}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _origin(value: object, schemes: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name} must look like {schemes[-1]}://host[:port]")
    if parts.query or parts.username or parts.path.strip("/"):
        raise ConfigError(f"{name} takes scheme://host[:port] only (no path, query or user)")
    return f"{parts.scheme}://{parts.netloc}"


def _bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _seconds(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    return seconds


def _int(options: Mapping[str, Any], name: str, default: int, *, low: int) -> int:
    value = options.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if number < low:
        raise ConfigError(f"{name} must be >= {low}, got {number}")
    return number
