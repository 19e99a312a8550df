"""TLS with a trustme certificate, and the ``streamfw emulator`` command's start/stop."""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import trustme
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.command import KEY_ENV, add_arguments, api_keys, banner, run

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
    assert "SECRET" not in out.getvalue() and "acme.k" not in out.getvalue()


def test_run_reports_a_bad_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_args("--tls-cert", "only-cert.pem"), stop=threading.Event()) == 2
    assert "cannot start" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_cleanly(sig: signal.Signals) -> None:
    code = (
        "import argparse, sys\n"
        "from streamfw_macrometa.emulator.command import add_arguments, run\n"
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


def _serve_once(args: argparse.Namespace, *accepted: str) -> Emulator:
    """Run the command with ``args`` until it listens, check that it takes each ``accepted``
    key (and no request without one), stop it and return the emulator."""
    stop = threading.Event()
    seen: list[Emulator] = []

    def ready(emu: Emulator) -> None:
        seen.append(emu)
        try:
            assert requests.get(emu.url + "/_api/user", timeout=5).status_code == 401
            for key in accepted:
                headers = {"Authorization": f"apikey {key}"}
                assert requests.get(emu.url + "/_api/user", headers=headers, timeout=5).ok
        finally:
            stop.set()

    assert run(args, stop=stop, ready=ready, out=io.StringIO()) == 0
    return seen[0]


def test_api_keys_from_a_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nacme.k.FILE1\n\n  acme.k.FILE2  # laptop\n")
    monkeypatch.setenv(KEY_ENV, "acme.k.ENV1, acme.k.ENV2")
    args = _args("--api-key-file", str(keys))
    assert api_keys(args, os.environ) == [
        "acme.k.FILE1",
        "acme.k.FILE2",
        "acme.k.ENV1",
        "acme.k.ENV2",
    ]
    caplog.set_level(logging.WARNING)
    emu = _serve_once(args, "acme.k.FILE1", "acme.k.FILE2", "acme.k.ENV1", "acme.k.ENV2")
    assert emu.api_key == "acme.k.FILE1" and emu.tenant == "acme"
    assert not [r for r in caplog.records if "--api-key" in r.getMessage()]  # the right way


def test_api_key_on_the_command_line_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    emu = _serve_once(_args("--api-key", "acme.k.SECRET"), "acme.k.SECRET")
    assert emu.api_key == "acme.k.SECRET"
    warned = [r.getMessage() for r in caplog.records if "ps" in r.getMessage()]
    assert warned and "--api-key-file" in warned[0] and "SECRET" not in warned[0]


def test_a_missing_key_file_is_a_clean_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_args("--api-key-file", "no/such/keys"), stop=threading.Event()) == 2
    assert "cannot start" in capsys.readouterr().err


def test_public_host_with_the_development_key_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(_args("--host", "0.0.0.0"), stop=threading.Event()) == 2
    err = capsys.readouterr().err
    assert "refusing to serve the public development key" in err and "--public-dev-key" in err


def test_edge_limits_reach_the_emulator() -> None:
    args = _args(
        *("--max-connections", "7", "--header-timeout", "1.5", "--body-timeout", "2"),
        *("--idle-timeout", "3", "--ws-heartbeat", "0", "--allow-host", "box.test"),
    )
    assert (args.max_connections, args.header_timeout, args.body_timeout) == (7, 1.5, 2.0)
    assert (args.idle_timeout, args.ws_heartbeat, args.allow_host) == (3.0, 0.0, ["box.test"])
    emu = _serve_once(args)
    assert emu.max_connections == 7


def test_banner_warns_off_loopback() -> None:
    with Emulator.start(port=0) as emu:
        assert "WARNING" not in banner(emu, development=True)
        emu.host = "0.0.0.0"
        assert "WARNING    anyone who can reach" in banner(emu, development=True)
        assert "WARNING" not in banner(emu, development=False)
