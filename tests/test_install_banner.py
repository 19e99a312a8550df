"""The emulator's start banner: its ``export`` line, pasted into a shell, connects as printed."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import trustme
from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.command import YOUR_KEY, banner

CHECK = """
import streamfw

with streamfw.connect() as client:  # STREAMFW_URL and MACROMETA_API_KEY from the export
    print(client.url, client.stream("bannerStream").create().exists())
"""


def export_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("export ")]
    assert len(lines) == 1, text
    return lines[0]


def run_pasted(export: str) -> subprocess.CompletedProcess[str]:
    script = f"{export}\nexec {sys.executable} -c '{textwrap.dedent(CHECK).strip()}'\n"
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_the_export_line_connects_as_pasted() -> None:
    with Emulator.start(host="127.0.0.1", port=0, fabrics=("_system", "eu")) as emu:
        export = export_line(banner(emu, development=True))
        done = run_pasted(export)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [f"macrometa+{emu.url}", "True"]
        assert emu.api_key in export


def test_over_tls_the_banner_says_how_to_trust_the_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued = ca.issue_cert("127.0.0.1")
    issued.private_key_pem.write_to_path(str(key))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(ca_file))
    with Emulator.start(port=0, tls_cert=str(cert), tls_key=str(key)) as emu:
        text = banner(emu, development=True)
        assert "add ?ca_bundle=<its CA's PEM file> to STREAMFW_URL" in text
        export = export_line(text)
        assert run_pasted(export).returncode != 0  # untrusted, as the banner warns
        url = f"macrometa+{emu.url}?ca_bundle={ca_file}"
        done = run_pasted(export.replace(shlex.quote(f"macrometa+{emu.url}"), shlex.quote(url)))
        assert done.returncode == 0, done.stderr


def test_a_fabric_other_than_system_is_in_the_url() -> None:
    with Emulator.start(host="127.0.0.1", port=0, fabrics=("eu",)) as emu:
        assert f"STREAMFW_URL='macrometa+{emu.url}?fabric=eu'" in export_line(banner(emu, True))


def test_a_key_of_the_user_is_never_printed_not_even_in_part() -> None:
    key = "acme.ingest.S3cretValue"
    with Emulator.start(host="127.0.0.1", port=0, api_keys=[key]) as emu:
        text = banner(emu, development=False)
    assert f"MACROMETA_API_KEY={YOUR_KEY}" in export_line(text)
    # Neither the key nor a fragment of it that reads like one (the old banner printed
    # "acme.****", as if the key were "acme." and four more characters).
    for part in (key, "S3cret", "acme.ingest", "acme.*"):
        assert part not in text, part
