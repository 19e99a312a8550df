"""Credentials (docs/protocol.md §3): keys, tenants, JWTs, one-time passwords, log hygiene."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import requests
import websocket
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.auth import Authenticator, OtpStore, dev_key, tenant_of_key

from streamfw.testing import ManualClock
from tests.emulator.helpers import Api, refused, send


@pytest.mark.parametrize(
    ("key", "tenant"),
    [
        ("acme_example.com.mykey.SECRET", "acme_example.com"),
        ("demo.example.secret", "demo"),
        ("two.parts", "_mm"),
        ("single", "_mm"),
    ],
)
def test_tenant_of_key_as_jsc8(key: str, tenant: str) -> None:
    assert tenant_of_key(key) == tenant


def test_dev_key_round_trips_its_tenant() -> None:
    assert tenant_of_key(dev_key("acme.io")) == "acme.io"
    auth = Authenticator(None, "acme.io", ManualClock())
    assert auth.api_keys == (dev_key("acme.io"),) and auth.development


def test_otp_single_use_and_lifetime() -> None:
    clock = ManualClock()
    store = OtpStore(clock, lifetime=60)
    a, b = store.issue(), store.issue()
    assert store.redeem(a) and not store.redeem(a)
    clock.advance(60)
    assert store.redeem(b)  # still valid at exactly 60 s
    c = store.issue()
    clock.advance(60.5)
    assert not store.redeem(c)
    store.issue()
    assert len(store) == 1  # expired ones are forgotten


def test_api_key_header_scheme_is_case_insensitive(api: Api) -> None:
    for scheme in ("apikey", "APIKEY", "ApiKey"):
        r = api.request(
            "GET", "/_api/user", headers={"Authorization": f"{scheme} {api.emu.api_key}"}
        )
        assert r.status_code == 200
    assert api.request("GET", "/_api/user", headers={"Authorization": "basic x"}).status_code == 401


def test_explicit_keys_and_tenant_derivation() -> None:
    with Emulator.start(port=0, api_keys=["acme.io.k1.SECRET", "acme.io.k2.OTHER"]) as emu:
        assert emu.tenant == "acme.io" and emu.api_key == "acme.io.k1.SECRET"
        for key in ("acme.io.k1.SECRET", "acme.io.k2.OTHER"):
            r = requests.get(
                emu.url + "/_api/user", headers={"Authorization": f"apikey {key}"}, timeout=5
            )
            assert r.json()["result"][0]["tenant"] == "acme.io"
        dev = {"Authorization": f"apikey {dev_key('acme.io')}"}
        assert requests.get(emu.url + "/_api/user", headers=dev, timeout=5).status_code == 401


def test_open_auth_jwt_works_as_bearer_everywhere() -> None:
    with Emulator.start(port=0, api_keys=["t.k.SECRET"]) as emu:
        bad = requests.post(
            emu.url + "/_open/auth", json={"email": "a@b", "password": "no"}, timeout=5
        )
        assert bad.status_code == 401 and bad.json()["errorNum"] == 401
        r = requests.post(
            emu.url + "/_open/auth", data=b'{"email":"a@b","password":"t.k.SECRET"}', timeout=5
        )  # pyC8 sends no content type
        body = r.json()
        assert r.status_code == 200 and body["tenant"] == "t" and body["username"] == "a@b"
        jwt = body["jwt"]
        for scheme in ("Bearer", "bearer"):
            user = requests.get(
                emu.url + "/_api/user", headers={"Authorization": f"{scheme} {jwt}"}, timeout=5
            )
            assert user.json()["result"][0]["tenant"] == "t"
        api = Api(emu)
        topic = api.create("j")
        ws = websocket.create_connection(
            api.ws_url("producer", topic), header=[f"Authorization: bearer {jwt}"], timeout=3
        )
        assert send(ws, b"x")["result"] == "ok"
        forged = jwt[:-4] + ("AAAA" if not jwt.endswith("AAAA") else "BBBB")
        assert (
            requests.get(
                emu.url + "/_api/user", headers={"Authorization": f"bearer {forged}"}, timeout=5
            ).status_code
            == 401
        )


def test_open_auth_accepts_anything_in_development_mode(api: Api) -> None:
    r = api.request(
        "POST", "/_open/auth", headers={}, json={"email": "dev@example.com", "password": "whatever"}
    )
    assert r.status_code == 200 and r.json()["tenant"] == "demo"
    assert api.request("POST", "/_open/auth", headers={}, data=b"[]").status_code == 400


def test_key_validate(api: Api) -> None:
    path = "/_fabric/_system/_api/key/validate"
    r = api.request("POST", path, headers={}, json={"apikey": api.emu.api_key})
    assert r.status_code == 200 and r.json()["result"]["tenant"] == "demo"
    assert "errorNum" not in r.json()
    r = api.request("POST", path, headers={}, json={"apikey": "nope.nope.nope"})
    assert r.status_code == 401 and r.json()["errorMessage"]
    jwt = api.request("POST", "/_open/auth", json={"email": "e", "password": "p"}).json()["jwt"]
    assert api.request("POST", path, headers={}, json={"jwt": jwt}).status_code == 200


def test_websocket_with_otp_single_use(api: Api, topic: str) -> None:
    otp = api.otp()
    url = api.ws_url("producer", topic, otp=otp)
    ws = api.connect(url, auth=False)
    assert send(ws, b"x")["result"] == "ok"
    err = refused(api, url, auth=False)
    assert err.status_code == 401 and b"Failed to authenticate" in err.resp_body
    assert refused(api, api.ws_url("producer", topic), auth=False).status_code == 401
    assert refused(api, api.ws_url("producer", topic, otp="made-up"), auth=False).status_code == 401


def test_otp_expires_after_its_lifetime(name: str) -> None:
    clock = ManualClock()
    with Emulator.start(port=0, clock=clock) as emu:
        api = Api(emu)
        topic = api.create(name)
        fresh, stale = api.otp(), api.otp()
        clock.advance(59)
        api.connect(api.ws_url("producer", topic, otp=fresh), auth=False).close()
        clock.advance(2)
        url = api.ws_url("producer", topic, otp=stale)
        assert refused(api, url, auth=False).status_code == 401


def test_secrets_never_logged(caplog: pytest.LogCaptureFixture, name: str) -> None:
    secret_key = "acme.k.TOPSECRETKEY"
    caplog.set_level(logging.DEBUG)
    with Emulator.start(port=0, api_keys=[secret_key]) as emu:
        api = Api(emu)
        topic = api.create(name)
        otp = api.otp()
        api.connect(api.ws_url("consumer", topic, "s", otp=otp), auth=False).close()
        refused(api, api.ws_url("consumer", topic, "s", otp=otp), auth=False)  # reused: 401
        jwt = api.request(
            "POST", "/_open/auth", json={"email": "e", "password": secret_key}
        ).json()["jwt"]
        api.request("GET", "/_api/user", headers={"Authorization": f"bearer {jwt}"})
        api.request("GET", "/_api/user", headers={"Authorization": "apikey wrong.k.GUESS"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/_ws/ws/v2/consumer" in text  # requests were logged ...
    for secret in (secret_key, "TOPSECRETKEY", otp, jwt, "GUESS"):
        assert secret not in text  # ... without their credentials


def test_malformed_request_lines_are_logged_without_their_query(
    caplog: pytest.LogCaptureFixture, emulator: Emulator
) -> None:
    caplog.set_level(logging.DEBUG)
    for line in (b"GET /_ws/ws/v2/x?otp=SECRETA HTTP/9.9", b"GET /x?otp=SECRETB\x01 HTTP/1.1"):
        with socket.create_connection((emulator.host, emulator.port), timeout=5) as s:
            s.sendall(line + b"\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.")
    time.sleep(0.05)  # the loop thread logs after answering
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "SECRETA" not in text and "SECRETB" not in text


NON_ASCII = ["ключ", "demo.streamfw.emulatoré", "\U0001f511.k.SECRET", "\ud800.lone"]


def _raw_request(emu: Emulator, head: bytes, body: bytes = b"") -> int:
    """Send bytes no HTTP library would (non-ASCII headers); return the status code."""
    with socket.create_connection((emu.host, emu.port), timeout=5) as s:
        s.sendall(head + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        return int(s.recv(100).split()[1])


@pytest.mark.parametrize("value", NON_ASCII)
def test_non_ascii_credentials_are_401_never_500(emulator: Emulator, value: str) -> None:
    """hmac.compare_digest refuses non-ASCII str: every check compares bytes instead."""
    raw = value.encode("utf-8", "surrogatepass")
    for scheme in (b"apikey", b"bearer"):
        for path in (b"/_api/user", b"/_ws/ws/v2/producer/persistent/demo/c8global._system/x"):
            head = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
            assert _raw_request(emulator, head + scheme + b" " + raw) == 401
    jwt_like = "a.b." + value
    assert (
        _raw_request(
            emulator,
            b"GET /_api/user HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: bearer " + jwt_like.encode("utf-8", "surrogatepass"),
        )
        == 401
    )
    bodies = {
        "/_open/auth": {"email": value, "password": value},
        "/_fabric/_system/_api/key/validate": {"apikey": value, "jwt": jwt_like},
    }
    with Emulator.start(port=0, api_keys=["acme.k.SECRET"]) as keyed:
        for route, body in bodies.items():
            r = requests.post(keyed.url + route, json=body, timeout=5)  # JSON escapes \ud800
            # A body escaping a lone surrogate is no text at all: /_open/auth refuses it as
            # malformed (400); key/validate answers any body it cannot use with 401.
            want = 400 if route == "/_open/auth" and "\ud800" in value else 401
            assert r.status_code == want, (route, r.text)
            assert r.json()["errorNum"] == want


def test_a_malformed_header_is_a_quiet_400_that_logs_no_key(
    caplog: pytest.LogCaptureFixture, emulator: Emulator
) -> None:
    """aiohttp logged it at ERROR, quoting the raw header line: a key with a stray byte."""
    caplog.set_level(logging.DEBUG)
    head = b"GET /_api/user HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: apikey SECRETC\x01"
    assert _raw_request(emulator, head) == 400
    time.sleep(0.05)  # the loop thread logs after answering
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "SECRETC" not in text


def test_a_websocket_upgrade_checks_its_credentials_once(name: str) -> None:
    """The dispatcher's check both trusts the connection and admits the upgrade."""
    with Emulator.start(port=0) as emu:
        api = Api(emu)
        topic = api.create(name)
        auth = emu._state.auth
        checked: list[str | None] = []
        check_header = auth.check_header

        def counted(value: str | None) -> bool:
            checked.append(value)
            return check_header(value)

        auth.check_header = counted  # type: ignore[method-assign]
        api.producer(topic).close()
        assert len(checked) == 1  # the header: one constant-time key comparison, not two
        otp = api.otp()
        checked.clear()
        api.connect(api.ws_url("producer", topic, otp=otp), auth=False).close()
        assert checked == [None]  # no header; the one-time password was used up once
        assert not auth.otps.redeem(otp)
