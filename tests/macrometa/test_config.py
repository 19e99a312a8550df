"""URL forms, the api- host rule, options and credentials (no network)."""

from __future__ import annotations

import warnings
from pathlib import Path

import attrs
import pytest
from streamfw_macrometa import config
from streamfw_macrometa.config import InsecureTLSWarning, Secret, Settings, parse

from streamfw.api import TransportConfig
from streamfw.errors import ConfigError

KEY = "acme.example.S3cr3tK3yValue"


def settings(url: str, env: dict[str, str] | None = None, **options: object):  # type: ignore[no-untyped-def]
    return parse(TransportConfig(url, options), environ=env or {})


@pytest.mark.parametrize(
    ("url", "rest", "ws"),
    [
        (
            "macrometa://play.paas.macrometa.io",
            "https://api-play.paas.macrometa.io",
            "wss://api-play.paas.macrometa.io",
        ),
        (
            "macrometa://api-gdn.example.com",
            "https://api-gdn.example.com",
            "wss://api-gdn.example.com",
        ),
        (
            "macrometa://gdn.example.com:8443/",
            "https://api-gdn.example.com:8443",
            "wss://api-gdn.example.com:8443",
        ),
        ("macrometa+https://localhost:8443", "https://localhost:8443", "wss://localhost:8443"),
        ("macrometa+http://127.0.0.1:9000", "http://127.0.0.1:9000", "ws://127.0.0.1:9000"),
        ("macrometa+http://[::1]:9000", "http://[::1]:9000", "ws://[::1]:9000"),
    ],
)
def test_url_forms_and_the_api_host_rule(url: str, rest: str, ws: str) -> None:
    s = settings(url, api_key=KEY)
    assert (s.rest_url, s.ws_url) == (rest, ws)
    assert s.gdn == url.startswith("macrometa://")


def test_explicit_rest_and_ws_urls_win() -> None:
    s = settings(
        "macrometa://play.paas.macrometa.io",
        api_key=KEY,
        rest_url="https://api-gdn-us-west.paas.macrometa.io",
        ws_url="wss://ws.example.com:444",
    )
    assert s.rest_url == "https://api-gdn-us-west.paas.macrometa.io"
    assert s.ws_url == "wss://ws.example.com:444" and s.ws_url_fixed
    only_rest = settings("macrometa://x.example.com", api_key=KEY, rest_url="http://10.0.0.1:80")
    assert only_rest.ws_url == "ws://10.0.0.1:80"


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("macrometa://127.0.0.1:8443", {}, "macrometa\\+https"),
        ("macrometa://host?api_key=x", {}, "must not be given in the URL"),
        ("macrometa://user:pw@host", {}, "not the URL"),
        ("macrometa://host/some/path", {}, "no path"),
        ("macrometa://host", {"bogus": 1}, "unknown macrometa option"),
        ("macrometa://host", {"auth": "cookie"}, "auth must be"),
        ("macrometa://host", {"timeout": 0}, "timeout"),
        ("macrometa://host", {"rest_url": "https://h/x?y=1"}, "rest_url"),
        ("macrometa://host", {"ca_bundle": "/no/such/file.pem"}, "not a file"),
        ("macrometa://host", {"fabric": "a/b"}, "fabric"),
        ("macrometa://host", {"max_response_bytes": 10}, "max_response_bytes must be >= 1024"),
        ("macrometa://host", {"max_response_bytes": "lots"}, "max_response_bytes must be an"),
        ("macrometa://host", {"reconnect_backoff": "nan"}, "reconnect_backoff must be > 0"),
        ("macrometa://host", {"reconnect_backoff": "inf"}, "reconnect_backoff must be > 0"),
        ("macrometa://host", {"reconnect_backoff": 0}, "reconnect_backoff must be > 0"),
        ("macrometa://host", {"reconnect_backoff": "①"}, "reconnect_backoff must be a number"),
        ("macrometa://host", {"reconnect_backoff": [[[1]]]}, "reconnect_backoff must be a num"),
        ("macrometa://host", {"reconnect_backoff_max": "x" * 10**6}, "must be a number"),
        ("macrometa://host", {"reconnect_backoff_max": -2}, "reconnect_backoff_max must be > 0"),
        ("macrometa://host", {"reconnect_backoff": 5}, "reconnect_backoff_max \\(2 s\\) must"),
        (
            "macrometa://host",
            {"reconnect_backoff": 1, "reconnect_backoff_max": 0.5},
            "must be >= reconnect_backoff",
        ),
    ],
)
def test_bad_urls_and_options_are_refused_loudly(url: str, options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        settings(url, api_key=KEY, **options)


def test_credentials_from_options_or_environment() -> None:
    assert settings("macrometa://h", api_key=KEY).authorization == f"apikey {KEY}"
    assert settings("macrometa://h", token="a.b.c").authorization == "bearer a.b.c"
    assert settings("macrometa://h", {"MACROMETA_API_KEY": KEY}).authorization == f"apikey {KEY}"
    assert settings("macrometa://h", {"MACROMETA_TOKEN": "j.w.t"}).scheme_word == "bearer"
    # an explicit option beats the environment
    assert settings("macrometa://h", {"MACROMETA_TOKEN": "j.w.t"}, api_key=KEY).scheme_word == (
        "apikey"
    )
    with pytest.raises(ConfigError, match="no credentials"):
        settings("macrometa://h")
    with pytest.raises(ConfigError, match="not both"):
        settings("macrometa://h", api_key=KEY, token="t")
    with pytest.raises(ConfigError, match="unset one"):
        settings("macrometa://h", {"MACROMETA_API_KEY": KEY, "MACROMETA_TOKEN": "t"})
    with pytest.raises(ConfigError, match="malformed"):
        settings("macrometa://h", api_key="has space")


def test_settings_never_show_the_secret() -> None:
    s = settings("macrometa://h", api_key=KEY)
    for text in (repr(s), str(s), repr(s.credential), str(s.credential), f"{s.credential}"):
        assert "S3cr3t" not in text
    assert s.credential == Secret(KEY)
    with pytest.raises(ConfigError) as err:
        settings("macrometa://h", api_key=KEY, verify="maybe")
    assert "S3cr3t" not in str(err.value)


def test_verify_false_warns_and_ca_bundle_is_kept(tmp_path: Path) -> None:
    with pytest.warns(InsecureTLSWarning, match="verification is OFF"):
        s = settings("macrometa+https://h:1", api_key=KEY, verify=False)
    assert s.verify is False and s.sslopt["check_hostname"] is False
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = settings("macrometa+https://h:1", api_key=KEY, ca_bundle=str(bundle))
    assert s.verify == str(bundle) and s.sslopt == {"ca_certs": str(bundle)}
    with pytest.raises(ConfigError, match="contradict"):
        settings("macrometa+https://h:1", api_key=KEY, ca_bundle=str(bundle), verify=False)


def test_non_secret_options_may_come_from_the_query() -> None:
    s = settings("macrometa+http://127.0.0.1:1?fabric=prod&auth=otp&extensions=1", api_key=KEY)
    assert (s.fabric, s.auth, s.extensions) == ("prod", "otp", True)


def test_limits_default_and_can_be_changed() -> None:
    s = settings("macrometa://h", api_key=KEY)
    assert (s.timeout, s.max_response_bytes) == (10.0, 16 * 1024 * 1024)
    s = settings("macrometa://h?max_response_bytes=65536&timeout=2.5", api_key=KEY)
    assert (s.timeout, s.max_response_bytes) == (2.5, 65536)


def test_websocket_host_for_local_streams_on_gdn() -> None:
    from streamfw_macrometa.ws import make_ws_base

    gdn = settings("macrometa://play.paas.macrometa.io", api_key=KEY)
    asked: list[int] = []

    def dc() -> str:
        asked.append(1)
        return "gdn-us-west.paas.macrometa.io"

    assert make_ws_base(gdn, False, dc) == "wss://api-play.paas.macrometa.io"  # global
    assert make_ws_base(gdn, True, dc) == "wss://api-gdn-us-west.paas.macrometa.io"  # local
    assert len(asked) == 1
    fixed = settings("macrometa://play.paas.macrometa.io", api_key=KEY, ws_url="wss://w:1")
    assert make_ws_base(fixed, True, dc) == "wss://w:1"
    local = settings("macrometa+https://localhost:8443", api_key=KEY)
    assert make_ws_base(local, True, dc) == "wss://localhost:8443"
    assert len(asked) == 1


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    from streamfw_macrometa.rest import BACKOFF_CAP, backoff

    assert [backoff(n, lambda: 1.0) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert backoff(1, lambda: 0.0) == 0.05
    assert backoff(30, lambda: 1.0) == BACKOFF_CAP


def test_every_settings_option_is_known_and_defaults_to_the_field_default() -> None:
    fields = attrs.fields_dict(Settings)
    options = {name for name, f in fields.items() if "streamfw_macrometa.read" in f.metadata}
    assert options <= config._KNOWN
    assert config._KNOWN - options == {"api_key", "token", "verify", "ca_bundle"} | {
        "rest_url",
        "ws_url",
    }
    plain = settings("macrometa+http://127.0.0.1:9", api_key=KEY)
    for name in options:
        assert getattr(plain, name) == fields[name].default, name


@pytest.mark.parametrize(
    ("option", "bad"),
    [
        ("fabric", None),
        ("fabric", "a/b"),
        ("tenant", ""),
        ("auth", "basic"),
        ("timeout", "inf"),
        ("timeout", 0),
        ("retries", True),
        ("retries", "0"),
        ("max_response_bytes", 10),
        ("busy_deadline", "soon"),
        ("max_frame_size", 1.5j),
        ("extensions", "maybe"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(option: str, bad: object) -> None:
    with pytest.raises(ConfigError, match=option):
        settings("macrometa+http://127.0.0.1:9", api_key=KEY, **{option: bad})


def test_options_in_the_url_query_are_read_like_keywords() -> None:
    got = settings("macrometa+http://127.0.0.1:9?timeout=2.5&retries=5&extensions=on", api_key=KEY)
    assert (got.timeout, got.retries, got.extensions) == (2.5, 5, True)
