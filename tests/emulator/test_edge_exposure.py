"""Exposure: the public development key off loopback, and Host checks against DNS rebinding."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests
import websocket
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.edge import HostCheck, is_loopback

from tests.emulator.helpers import Api

ALLOWED = [
    "127.0.0.1:{port}",
    "localhost:{port}",
    "LOCALHOST",
    "api-localhost:{port}",  # what pyC8 and jsC8 send (they prefix the host with api-)
    "api-localhost",
    "[::1]:{port}",
    "127.3.2.1",
    "emu.localhost:{port}",
    "my-emulator.test:{port}",  # given with allowed_hosts
]
REFUSED = [
    "evil.example",
    "evil.example:{port}",
    "api-evil.example:{port}",
    "127.0.0.1.evil.example",
    "localhost.evil.example:{port}",
    "",
]


@pytest.fixture(scope="module")
def guarded() -> Iterator[Emulator]:
    with Emulator.start(port=0, allowed_hosts=["my-emulator.test"]) as emu:
        yield emu


@pytest.mark.parametrize("host", ALLOWED)
def test_loopback_names_are_answered(guarded: Emulator, host: str) -> None:
    headers = {"Authorization": f"apikey {guarded.api_key}", "Host": host.format(port=guarded.port)}
    assert requests.get(guarded.url + "/_api/user", headers=headers, timeout=5).status_code == 200


@pytest.mark.parametrize("host", REFUSED)
def test_other_host_names_are_refused_on_loopback(guarded: Emulator, host: str) -> None:
    headers = {"Authorization": f"apikey {guarded.api_key}", "Host": host.format(port=guarded.port)}
    r = requests.get(guarded.url + "/_api/user", headers=headers, timeout=5)
    assert r.status_code == 403 and "DNS rebinding" in r.json()["errorMessage"]


def test_websocket_upgrades_are_host_checked_too(guarded: Emulator) -> None:
    api = Api(guarded)
    topic = api.create("rebound")
    url = api.ws_url("consumer", topic, "s")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        api.connect(url, host="evil.example")
    assert info.value.status_code == 403
    api.connect(url, host=f"api-localhost:{guarded.port}").close()


def test_the_public_key_is_refused_off_loopback() -> None:
    with pytest.raises(ValueError, match="--public-dev-key"):
        Emulator.start(host="0.0.0.0", port=0)


def test_off_loopback_needs_a_flag_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with Emulator.start(host="0.0.0.0", port=0, public_dev_key=True) as emu:
        loud = [r for r in caplog.records if "PUBLIC DEVELOPMENT KEY" in r.getMessage()]
        assert loud and loud[0].levelno == logging.WARNING
        headers = {"Authorization": f"apikey {emu.api_key}", "Host": "emulator.lan"}
        url = f"http://127.0.0.1:{emu.port}/_api/user"  # any name: it serves a network now
        assert requests.get(url, headers=headers, timeout=5).status_code == 200


def test_own_keys_off_loopback_need_no_flag() -> None:
    with Emulator.start(host="0.0.0.0", port=0, api_keys=["acme.k.SECRET"]) as emu:
        assert emu.url.startswith("http://0.0.0.0:")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.8.8", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_check_accepts_the_bound_name() -> None:
    assert HostCheck("my.box").allows("api-my.box:443")
    assert not HostCheck("my.box").allows("other.box")
