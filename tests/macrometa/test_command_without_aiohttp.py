"""``streamfw emulator`` without aiohttp (``pip install --no-deps``): whatever options it is
given, it says what is missing and the command that installs it, never "unrecognized arguments".

Each case runs the CLI in a fresh interpreter where ``import aiohttp`` fails as if aiohttp were
not installed (``sys.modules["aiohttp"] = None``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streamfw.cli import main

NO_AIOHTTP = """
import sys
sys.modules["aiohttp"] = None  # import aiohttp: ModuleNotFoundError, as after --no-deps
from streamfw.cli import main
sys.exit(main(sys.argv[1:]))
"""
WHY = (
    "streamfw emulator needs aiohttp: pip install aiohttp (a dependency of streamfw;"
    " reinstalling streamfw brings it)"
)


def cli_without_aiohttp(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_AIOHTTP, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["emulator", "--port", "1234"],
        ["emulator", "-v", "--host", "0.0.0.0", "--tls-cert", "cert.pem", "extra"],
        ["emulator"],
    ],
    ids=" ".join,
)
def test_the_emulator_says_what_is_missing_whatever_its_options(argv: list[str]) -> None:
    done = cli_without_aiohttp(*argv)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == f"streamfw: Missing: {WHY}\n"


def test_under_json_the_missing_piece_is_one_error_object() -> None:
    done = cli_without_aiohttp("--json", "emulator", "--port", "1234")
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stderr) == {"error": "Missing", "message": WHY, "exit_code": 2}


@pytest.mark.parametrize("command", ["emulator", "plugins"])
def test_a_runnable_command_still_refuses_unknown_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--no-such-flag", "1"]) == 2
    err = capsys.readouterr().err
    assert "streamfw: UsageError: unrecognized arguments: --no-such-flag 1" in err
