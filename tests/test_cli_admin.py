"""``streams create --exist-ok`` says what it did; ``plugins`` fails when a plugin did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import streamfw
from streamfw.cli import main
from tests.test_plugins import install_dist


def test_create_exist_ok_on_an_existing_stream_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"loopback://admin-{os.urandom(4).hex()}"
    with streamfw.connect(url):
        assert main(["streams", "create", "orders", "--url", url]) == 0
        assert capsys.readouterr().out == "created stream 'orders'\n"
        assert main(["streams", "create", "orders", "--exist-ok", "--url", url]) == 0
        out = capsys.readouterr().out
    assert out == "stream 'orders' already exists; --exist-ok: left as it was\n"


def plugins(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "streamfw", "plugins", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plugins_lists_every_codec_including_auto_and_checks_clean() -> None:
    done = plugins("--json")
    listed = json.loads(done.stdout)
    assert done.returncode == 0 and listed["ok"] is True
    assert {"auto", "text", "bytes", "json", "zlib"} <= set(listed["codecs"])
    assert listed["codecs"]["auto"]["kind"] == "value"
    assert "  auto " in plugins().stdout
    checked = plugins("--check")
    assert (checked.returncode, checked.stdout) == (0, "")


def test_a_plugin_that_failed_to_load_fails_the_plugins_command(tmp_path: Path) -> None:
    install_dist(tmp_path, "streamfw-broken", {"broken": "broken_plugin"}, {"broken_plugin": "1/0"})
    text = plugins(path=tmp_path)
    assert text.returncode == 1 and "FAILED: ZeroDivisionError" in text.stdout
    as_json = plugins("--json", path=tmp_path)
    listed = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and listed["ok"] is False
    assert [p["name"] for p in listed["plugins"] if not p["loaded"]] == ["broken"]
    checked = plugins("--check", path=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.startswith("plugin broken (broken_plugin) FAILED: ZeroDivisionError")
    assert len(checked.stdout.splitlines()) == 1
