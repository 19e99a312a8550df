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
import math
import os
import ssl
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn
from urllib.parse import parse_qsl, urlsplit

import attrs

from streamfw.api import TransportConfig, check_name
from streamfw.errors import ConfigError
from streamfw_macrometa import gateway

SCHEMES = ("macrometa", "macrometa+https", "macrometa+http")
ENV_API_KEY = "MACROMETA_API_KEY"
ENV_TOKEN = "MACROMETA_TOKEN"
SECRET_OPTIONS = frozenset({"api_key", "token"})
# REST answers are admin documents; the largest legitimate ones are stream lists and stats
# (~200 bytes a stream): 16 MiB holds tens of thousands of streams.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Pulsar's maxMessageSize (5 MiB) base64-encoded is 6.7 MiB; the rest is room for properties.
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
# A frame larger than the server reads makes it drop the connection, and a resend after the
# reconnect would drop it again, so the producer refuses such a message up front.
DEFAULT_MAX_SEND_FRAME_SIZE = gateway.PULSAR_MAX_TEXT_FRAME
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


# Metadata key of the Settings fields a user sets (keyword or URL query): how to read one.
_READ = "streamfw_macrometa.read"
Reader = Callable[[str, Any], Any]


def _reads(read: Reader) -> dict[str, Reader]:
    """Metadata of a ``Settings`` field the user may set: ``read(name, value)`` converts and
    checks a value given as a keyword or in the URL query."""
    return {_READ: read}


def _read_bool(name: str, value: object) -> bool:
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name} must be true or false, got {value!r:.80}")


def _read_seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r:.80}") from None
    if not 0 < seconds < math.inf:
        raise ConfigError(f"{name} must be > 0 and finite, got {value!r:.80}")
    return seconds


def _at_least(low: int) -> Reader:
    def read(name: str, value: Any) -> int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, got {value!r:.80}") from None
        if number < low:
            raise ConfigError(f"{name} must be >= {low}, got {number}")
        return number

    return read


def _read_name(name: str, value: object) -> str:
    return check_name(name, value)


def _read_name_or_none(name: str, value: object) -> str | None:
    return None if value is None else check_name(name, value)


def _read_auth(name: str, value: object) -> AuthMode:
    if value not in ("header", "otp"):
        raise ConfigError(f"{name} must be 'header' or 'otp', got {value!r:.80}")
    return "otp" if value == "otp" else "header"


@attrs.frozen(kw_only=True)
class Settings:
    """Everything a macrometa transport needs, checked. Safe to print.

    The fields with ``_reads`` metadata are the user's options; their defaults are written here
    only, and ``parse`` reads them by these fields' names.
    """

    rest_url: str  # scheme://host[:port], no trailing slash
    ws_url: str  # ws(s)://host[:port], no trailing slash; WebSocket paths go below /_ws/ws/v2
    credential: Secret = attrs.field(repr=False)
    scheme_word: str  # gateway.API_KEY_SCHEME or gateway.BEARER_SCHEME
    fabric: str = attrs.field(default=gateway.DEFAULT_FABRIC, metadata=_reads(_read_name))
    # None: discover with GET /_api/user
    tenant: str | None = attrs.field(default=None, metadata=_reads(_read_name_or_none))
    auth: AuthMode = attrs.field(default="header", metadata=_reads(_read_auth))
    verify: bool | str = True  # False, True or a CA bundle path (requests' convention)
    gdn: bool = True  # macrometa:// form: resolve local streams' WebSocket host via the DC
    ws_url_fixed: bool = False  # ws_url= given explicitly: never re-derive it
    # the whole of one REST call (retries included) / of one WebSocket connect
    timeout: float = attrs.field(default=10.0, metadata=_reads(_read_seconds))
    # attempts for idempotent REST calls
    retries: int = attrs.field(default=3, metadata=_reads(_at_least(1)))
    # the largest REST answer body accepted
    max_response_bytes: int = attrs.field(
        default=MAX_RESPONSE_BYTES, metadata=_reads(_at_least(1024))
    )
    # total time a dropped WebSocket may spend reconnecting
    reconnect_deadline: float = attrs.field(default=30.0, metadata=_reads(_read_seconds))
    ping_interval: float = attrs.field(default=20.0, metadata=_reads(_read_seconds))
    # how long a reconnect retries 409 (the old session still held)
    busy_deadline: float = attrs.field(default=60.0, metadata=_reads(_read_seconds))
    # the first wait between WebSocket reconnect attempts, doubled after each, up to the max
    reconnect_backoff: float = attrs.field(default=0.1, metadata=_reads(_read_seconds))
    reconnect_backoff_max: float = attrs.field(default=2.0, metadata=_reads(_read_seconds))
    # bytes one received WebSocket message may hold
    max_frame_size: int = attrs.field(
        default=DEFAULT_MAX_FRAME_SIZE, metadata=_reads(_at_least(1024))
    )
    # the largest frame the server reads
    max_send_frame_size: int = attrs.field(
        default=DEFAULT_MAX_SEND_FRAME_SIZE, metadata=_reads(_at_least(1024))
    )
    # send emulator-only parameters (subscriptionInitialPosition)
    extensions: bool = attrs.field(default=False, metadata=_reads(_read_bool))

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value (a secret: never log it)."""
        return gateway.authorization(self.scheme_word, self.credential.reveal())

    @property
    def sslopt(self) -> dict[str, Any]:
        """websocket-client TLS options matching ``verify``."""
        if self.verify is False:
            return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        if isinstance(self.verify, str):
            return {"ca_certs": self.verify}
        return {}


# Options read by hand in parse(), not one to one into a field of the same name.
_DERIVED = frozenset({"api_key", "token", "verify", "ca_bundle", "rest_url", "ws_url"})
_READ_AS_IS = {field.name: field for field in attrs.fields(Settings) if _READ in field.metadata}
_KNOWN = _DERIVED | set(_READ_AS_IS)


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
    read = {
        name: field.metadata[_READ](name, options[name])
        for name, field in _READ_AS_IS.items()
        if name in options
    }
    _check_backoff(read)
    return Settings(
        rest_url=rest_url,
        ws_url=ws_url,
        credential=credential,
        scheme_word=word,
        verify=verify,
        gdn=parts.scheme == "macrometa",
        ws_url_fixed=ws_fixed,
        **read,
    )


def _check_backoff(read: Mapping[str, Any]) -> None:
    """A cap below the first wait would silently shorten every wait: refuse it."""
    fields = attrs.fields(Settings)
    first = read.get("reconnect_backoff", fields.reconnect_backoff.default)
    cap = read.get("reconnect_backoff_max", fields.reconnect_backoff_max.default)
    if cap < first:
        raise ConfigError(
            f"reconnect_backoff_max ({cap:g} s) must be >= reconnect_backoff ({first:g} s)"
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
    value, word = (
        (key, gateway.API_KEY_SCHEME) if key is not None else (token, gateway.BEARER_SCHEME)
    )
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        what = "API key" if word == gateway.API_KEY_SCHEME else "token"
        raise ConfigError(f"the {what} is empty or malformed")
    return Secret(value), word


def _verify(options: Mapping[str, Any]) -> bool | str:
    verify = _read_bool("verify", options.get("verify", attrs.fields(Settings).verify.default))
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
