"""What the CLI says on a terminal (progress, the server tried, logs) and not in a pipe."""

from __future__ import annotations

import json
import logging
import os
import pty
import subprocess
import sys
from typing import Any

import pytest

from streamfw.cli import main

CLI = [sys.executable, "-m", "streamfw"]


def run_with_tty_stderr(
    argv: list[str], env: dict[str, str], *, stdout_too: bool = False
) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe unless ``stdout_too``)."""
    master, slave = pty.openpty()
    stdout: int = slave if stdout_too else subprocess.PIPE
    proc = subprocess.Popen([*CLI, *argv], env=env, stdout=stdout, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
        proc.kill()
    return proc.returncode, out, b"".join(chunks).decode()


def env_for(emulator: Any) -> dict[str, str]:
    return {
        **os.environ,
        "STREAMFW_URL": f"macrometa+http://127.0.0.1:{emulator.port}",
        "MACROMETA_API_KEY": emulator.api_key,
    }


def test_produce_and_consume_count_show_progress_with_a_rate_on_a_terminal(
    emulator: Any,
) -> None:
    env = env_for(emulator)
    stream = f"prog{os.urandom(3).hex()}"
    subprocess.run([*CLI, "streams", "create", stream], env=env, check=True, timeout=60)
    subprocess.run(
        [*CLI, "consume", stream, "--subscription", "s", "--timeout", "0.1"],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    code, out, err = run_with_tty_stderr(
        ["produce", stream, "--message", "m{n}", "--count", "40"], env
    )
    assert code == 0 and out == ""
    assert f"connecting to {env['STREAMFW_URL']} ..." in err
    assert "produced 40/40 (" in err and " msg/s)" in err
    assert "sent #" not in err  # the progress line stands for the per-message lines
    assert "INFO streamfw.macrometa" in err and "connected to" in err  # info logs on a tty
    assert env["MACROMETA_API_KEY"] not in err
    code, out, err = run_with_tty_stderr(
        ["consume", stream, "--subscription", "s", "--count", "40"], env
    )
    assert code == 0 and len(out.splitlines()) == 40
    assert "received 40/40 (" in err and " msg/s)" in err
    subprocess.run(
        [*CLI, "produce", stream, "--message", "again{n}", "--count", "3"],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    code, _, both = run_with_tty_stderr(
        ["consume", stream, "--subscription", "s", "--count", "3"], env, stdout_too=True
    )
    # The progress line is erased before each message, so every message starts its own line.
    lines = [line.rsplit("\x1b[K", 1)[-1] for line in both.splitlines()]
    assert [line.split("] ")[1] for line in lines if line.startswith("[")] == [
        "'again1'",
        "'again2'",
        "'again3'",
    ]


def test_nothing_but_status_lines_when_stderr_is_not_a_terminal(emulator: Any) -> None:
    env = env_for(emulator)
    stream = f"pipe{os.urandom(3).hex()}"
    done = subprocess.run(
        [*CLI, "produce", stream, "--create", "--message", "m{n}", "--count", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "msg/s" not in done.stderr and "\r" not in done.stderr
    assert "connecting to" not in done.stderr and "INFO" not in done.stderr
    assert [line.split(" (id")[0] for line in done.stderr.splitlines()[1:]] == [
        "sent #1 'm1'",
        "sent #2 'm2'",
        "sent #3 'm3'",
    ]


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ([], False),
        (["-v"], True),
        (["--log-level", "info"], True),
        (["-v", "--log-level", "error"], False),
    ],
)
def test_verbose_and_log_level_choose_what_the_library_logs(
    emulator: Any, flags: list[str], shown: bool
) -> None:
    env = env_for(emulator)
    stream = f"log{os.urandom(3).hex()}"
    done = subprocess.run(
        [*CLI, *flags, "produce", stream, "--create", "--message", "m"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert ("INFO streamfw.macrometa" in done.stderr) is shown, done.stderr
    assert env["MACROMETA_API_KEY"] not in done.stderr


def test_log_flags_work_after_the_command_too(
    emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"macrometa+http://127.0.0.1:{emulator.port}"
    stream = f"late{os.urandom(3).hex()}"
    argv = ["produce", stream, "--create", "--message", "m", "--url", url, "--json"]
    logger = logging.getLogger("streamfw")
    before = logger.level, logger.propagate, list(logger.handlers)
    assert main([*argv, "--api-key", emulator.api_key, "-v"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 1 and "INFO streamfw.macrometa" in err
    # A program (or test) calling main() keeps its own logging afterwards.
    assert (logger.level, logger.propagate, logger.handlers) == before


def test_a_plugin_command_takes_the_global_verbosity_after_its_name_too() -> None:
    """``streamfw emulator -v`` was refused while ``streamfw -v emulator`` worked; the
    emulator's own --log-level stays its own."""
    from streamfw.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["emulator", "-vv", "--log-level", "info", "--port", "0"])
    assert args.verbose == 2 and args.log_level == "info"
    assert parser.parse_args(["-v", "emulator"]).verbose == 1


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_complete_the_commands(shell: str) -> None:
    script = subprocess.run(
        [*CLI, "completion", shell], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "streamfw" in script and "_ARGCOMPLETE" in script
    # What the script asks for on <TAB>: the program itself, in argcomplete's protocol.
    line = "streamfw pro"
    asked = subprocess.run(
        [*CLI],
        env={
            **os.environ,
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SHELL": shell,
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": "/dev/stdout",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "produce" in asked.stdout


def test_the_server_shown_on_a_terminal_never_carries_a_secret_put_in_the_url() -> None:
    url = "macrometa+http://user:SECRETPW@127.0.0.1:9/?token=SECRETTOKEN"
    code, _, err = run_with_tty_stderr(["streams", "list", "--url", url], dict(os.environ))
    assert code == 2 and "connecting to macrometa+http://127.0.0.1:9/ ..." in err
    assert "SECRET" not in err and "--api-key" in err
