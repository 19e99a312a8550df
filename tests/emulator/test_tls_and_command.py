"""TLS with a trustme certificate, and the ``streamfw emulator`` command's start/stop."""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import trustme

from streamfw.emulator import Emulator
from streamfw.emulator.command import add_arguments, run
from tests.emulator.helpers import Api, recv, send


def test_tls_rest_and_wss(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "api-localhost", "127.0.0.1")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with Emulator.start(port=0, tls_cert=str(cert_file), tls_key=str(key_file)) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        api = Api(emu)
        api.verify = str(ca_file)
        topic = api.create("tls")
        consumer = api.connect(
            api.ws_url("consumer", topic, "s"), sslopt={"ca_certs": str(ca_file)}
        )
        producer = api.connect(api.ws_url("producer", topic), sslopt={"ca_certs": str(ca_file)})
        assert send(producer, b"secure")["result"] == "ok"
        assert recv(consumer)["payload"] == "c2VjdXJl"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(emu.url + "/_api/user", timeout=5)  # an untrusted CA is refused
        with pytest.raises((ConnectionError, requests.exceptions.ConnectionError)):
            requests.get(emu.url.replace("https", "http") + "/_api/user", timeout=5)


def test_tls_needs_both_files() -> None:
    with pytest.raises(ValueError, match="both"):
        Emulator.start(port=0, tls_cert="cert.pem")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--port", "0", *argv])  # a later --port wins


def test_run_serves_until_stopped() -> None:
    stop = threading.Event()
    seen: list[Emulator] = []
    out = io.StringIO()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run(
                _args("--fabric", "f1", "--fabric", "f2", "--tenant", "acme"),
                stop=stop,
                ready=seen.append,
                out=out,
            )
        )
    )
    thread.start()
    try:
        for _ in range(100):
            if seen:
                break
            thread.join(0.05)
        emu = seen[0]
        assert emu.tenant == "acme" and emu.fabrics == ("f1", "f2")
        api = Api(emu, fabric="f2")
        assert api.create("c") == "c8globals.c"
        assert api.streams("GET", "").json()["result"][0]["db"] == "f2"
        assert Api(emu, fabric="_system").streams("GET", "").status_code == 404
    finally:
        stop.set()
        thread.join(10)
    assert result == [0] and not thread.is_alive()
    banner = out.getvalue()
    assert emu.url in banner and "acme.streamfw.emulator" in banner and "tenant     acme" in banner
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emu.url + "/_api/user", timeout=2)


def test_run_hides_user_keys_in_banner() -> None:
    stop = threading.Event()
    stop.set()  # start, print, stop at once
    out = io.StringIO()
    assert run(_args("--api-key", "acme.k.SECRET"), stop=stop, out=out) == 0
    assert "SECRET" not in out.getvalue() and "acme.****" in out.getvalue()


def test_run_reports_a_bad_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_args("--tls-cert", "only-cert.pem"), stop=threading.Event()) == 2
    assert "cannot start" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_cleanly(sig: signal.Signals) -> None:
    code = (
        "import argparse, sys\n"
        "from streamfw.emulator.command import add_arguments, run\n"
        "p = argparse.ArgumentParser(); add_arguments(p)\n"
        "sys.exit(run(p.parse_args(['--port', '0'])))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" on ")[1].strip()
        assert (
            requests.get(
                url + "/_api/user",
                headers={"Authorization": "apikey demo.streamfw.emulator"},
                timeout=5,
            ).status_code
            == 200
        )
        proc.send_signal(sig)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_fails_cleanly(emulator: Emulator) -> None:
    with pytest.raises(OSError):
        Emulator.start(port=emulator.port)
    assert run(_args("--port", str(emulator.port)), stop=threading.Event()) == 2
    assert requests.get(emulator.url + "/_api/user", timeout=5).status_code == 401  # still up


def test_poke_after_stop_is_an_error() -> None:
    emu = Emulator.start(port=0)
    emu.poke()
    emu.stop()
    with pytest.raises(RuntimeError):
        emu.poke()
