"""TLS: verified by default, a private CA through ca_bundle=, verify=False only with a warning.

Every scenario runs on both client APIs, the sync one and ``streamfw.aio`` (``client_api``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from streamfw_macrometa import InsecureTLSWarning

from streamfw.errors import ConnectFailed
from streamfw.testing.contract import must_receive, unique
from tests.macrometa.apis import Api
from tests.macrometa.conftest import KEY


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tls_emu(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from streamfw_macrometa.emulator import Emulator

    cert = ca.issue_cert("localhost", "127.0.0.1")
    d: Path = tmp_path_factory.mktemp("tls")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(d / "cert.pem"), append=True)
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    with Emulator.start(
        host="127.0.0.1",
        port=0,
        api_keys=[KEY],
        tls_cert=str(d / "cert.pem"),
        tls_key=str(d / "key.pem"),
    ) as emu:
        yield emu


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_private_ca_end_to_end(client_api: Api, tls_emu: Any, ca_file: str, host: str) -> None:
    url = f"macrometa+https://{host}:{tls_emu.port}"
    with client_api.connect(url, api_key=KEY, ca_bundle=ca_file, timeout=5) as client:
        assert client_api.is_native(client)
        s = client.stream(unique("tls")).create()
        with s.consumer("c") as c, s.producer() as p:
            p.send("over wss")
            assert must_receive(c).value == "over wss"


def test_untrusted_certificate_is_refused(client_api: Api, tls_emu: Any) -> None:
    url = f"macrometa+https://localhost:{tls_emu.port}"
    with pytest.raises(ConnectFailed, match="TLS") as e:
        client_api.connect(url, api_key=KEY, timeout=5)
    assert KEY not in str(e.value)


def test_ca_bundle_in_the_query(client_api: Api, tls_emu: Any, ca_file: str) -> None:
    url = f"macrometa+https://localhost:{tls_emu.port}?ca_bundle={ca_file}"
    with client_api.connect(url, api_key=KEY) as client:
        assert client.stream(unique("q")).create().exists()


def test_verify_false_works_but_warns(client_api: Api, tls_emu: Any) -> None:
    url = f"macrometa+https://localhost:{tls_emu.port}"
    with pytest.warns(InsecureTLSWarning):
        client = client_api.connect(url, api_key=KEY, verify=False)
    with client:
        s = client.stream(unique("insecure")).create()
        with s.consumer("c") as c, s.producer() as p:
            p.send(1)
            assert must_receive(c).value == 1


def test_plain_client_against_tls_server_fails_cleanly(client_api: Api, tls_emu: Any) -> None:
    url = f"macrometa+http://127.0.0.1:{tls_emu.port}"
    with pytest.raises(ConnectFailed):
        client_api.connect(url, api_key=KEY, timeout=2, retries=1)
