"""The stream commands of the CLI, in-process on loopback and as processes on the emulator."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import streamfw
from streamfw.api import ProducerOptions
from streamfw.cli import main
from streamfw.codec import CODEC_PROPERTY
from streamfw.message import Envelope


@pytest.fixture
def url() -> Iterator[str]:
    """A loopback broker kept alive by the test, so commands run in-process share it."""
    name = f"loopback://cli-{os.urandom(4).hex()}"
    with streamfw.connect(name):
        yield name


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_no_url_explains_loopback_and_points_at_the_emulator(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMFW_URL", raising=False)
    code, _, err = run(["streams", "list"], capsys)
    assert code == 2
    assert "loopback:// broker lives inside one process" in err and "streamfw emulator" in err


def test_streams_and_subscriptions_admin(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["streams", "create", "orders", "--url", url], capsys)[0] == 0
    code, _, err = run(["streams", "create", "orders", "--url", url], capsys)
    assert code == 1 and "AlreadyExists" in err
    assert run(["streams", "create", "orders", "--exist-ok", "--url", url], capsys)[0] == 0
    code, out, _ = run(["streams", "list", "--json", "--url", url], capsys)
    assert json.loads(out) == [{"name": "orders", "local": False}]
    assert run(["produce", "orders", "--message", "m", "--url", url], capsys)[0] == 0
    assert run(["streams", "backlog", "orders", "--url", url], capsys)[1].strip() == (
        "stream: orders  backlog: 0"
    )
    code, out, _ = run(
        ["consume", "orders", "--subscription", "s", "--timeout", "0.05", "--url", url], capsys
    )
    code, out, _ = run(["subscriptions", "list", "orders", "--json", "--url", url], capsys)
    assert json.loads(out) == [{"name": "s", "type": "exclusive", "backlog": 0, "consumers": 0}]
    assert run(["subscriptions", "delete", "orders", "s", "--url", url], capsys)[0] == 0
    stats = json.loads(run(["streams", "stats", "orders", "--json", "--url", url], capsys)[1])
    assert stats["published"] == 1 and stats["subscriptions"] == {}
    assert run(["streams", "delete", "orders", "--url", url], capsys)[0] == 0
    code, _, err = run(["streams", "delete", "orders", "--url", url], capsys)
    assert code == 1 and "StreamNotFound" in err


def test_produce_then_consume_json_lines(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with streamfw.connect(url) as client:
        stream = client.stream("orders").create()
        consumer = stream.consumer("billing")  # creates the subscription (at latest)
        consumer.close()
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xff")
    assert (
        run(
            [
                "produce",
                "orders",
                "--json-value",
                '{"n": 1}',
                "--key",
                "k",
                "--property",
                "a=b",
                "--url",
                url,
            ],
            capsys,
        )[0]
        == 0
    )
    assert run(["produce", "orders", "--file", str(blob), "--url", url], capsys)[0] == 0
    code, out, err = run(
        ["produce", "orders", "--message", "#{n}", "--count", "2", "--json", "--url", url],
        capsys,
    )
    assert [json.loads(line)["n"] for line in out.splitlines()] == [1, 2]
    assert err == ""  # under --json, stderr carries errors only
    code, out, _ = run(
        ["consume", "orders", "--subscription", "billing", "--count", "4", "--json", "--url", url],
        capsys,
    )
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["value"] == {"n": 1} and records[0]["key"] == "k"
    assert records[0]["properties"]["a"] == "b"
    assert records[1]["payload_base64"] == "AP8="
    assert [r["value"] for r in records[2:]] == ["#1", "#2"]


def test_produce_reads_stdin_lines(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("one\ntwo\n"))
    with streamfw.connect(url) as client:
        stream = client.stream("lines").create()
        with stream.consumer("s") as c:
            assert run(["produce", "lines", "--url", url], capsys)[0] == 0
            assert [c.receive(1).value for _ in range(2)] == ["one", "two"]  # type: ignore[union-attr]


def test_consume_errors_are_clear(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["consume", "nope", "--subscription", "s", "--url", url], capsys)
    assert code == 1 and "streamfw streams create nope" in err
    with streamfw.connect(url) as client:
        stream = client.stream("busy").create()
        with stream.consumer("s"):
            code, _, err = run(["consume", "busy", "--subscription", "s", "--url", url], capsys)
    assert code == 1 and "SubscriptionBusy" in err and "'s'" in err
    code, _, err = run(["produce", "nope", "--message", "x", "--url", url], capsys)
    assert code == 1 and "or pass --create" in err
    code, _, err = run(["produce", "x", "--json-value", "{bad", "--create", "--url", url], capsys)
    assert code == 2 and "--json-value is not valid JSON" in err


def test_no_ack_leaves_messages_in_the_backlog(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with streamfw.connect(url) as client:
        stream = client.stream("keep").create()
        stream.consumer("s").close()
        with stream.producer() as p:
            p.send("x")
    run(
        ["consume", "keep", "--subscription", "s", "--count", "1", "--no-ack", "--url", url], capsys
    )
    with streamfw.connect(url) as client:
        assert client.stream("keep").backlog() == 1


def emulator_env(emulator: Any) -> dict[str, str]:
    """The environment a user sets to point the CLI at the emulator."""
    return {
        **os.environ,
        "STREAMFW_URL": f"macrometa+http://127.0.0.1:{emulator.port}",
        "MACROMETA_API_KEY": emulator.api_key,
    }


def test_seed_walkthrough_on_the_emulator(emulator: Any, tmp_path: Path) -> None:
    """Three terminals: a producer and two consumers on one exclusive subscription."""
    env = emulator_env(emulator)
    cli = [sys.executable, "-m", "streamfw"]
    stream = f"walk{os.urandom(3).hex()}"
    subprocess.run([*cli, "streams", "create", stream], env=env, check=True, timeout=60)
    first = subprocess.Popen(
        [
            *cli,
            "consume",
            stream,
            "--subscription",
            "consumer-subscription",
            "--count",
            "3",
            "--timeout",
            "20",
        ],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(200):  # until the first consumer holds the subscription
            listed = subprocess.run(
                [*cli, "subscriptions", "list", stream, "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            if any(s["consumers"] for s in json.loads(listed.stdout)):
                break
        second = subprocess.run(
            [*cli, "consume", stream, "--subscription", "consumer-subscription", "--count", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "SubscriptionBusy" in second.stderr
        produced = subprocess.run(
            [
                *cli,
                "produce",
                stream,
                "--message",
                "Hello #{n}",
                "--count",
                "3",
                "--interval",
                "0.1",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert produced.returncode == 0, produced.stderr
        out, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert [line.split("] ")[1] for line in out.splitlines()] == [
        "'Hello #1'",
        "'Hello #2'",
        "'Hello #3'",
    ]


def test_unreachable_server_says_where_and_hides_the_key() -> None:
    secret = "acme.example.SECRETKEY123"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamfw",
            "streams",
            "list",
            "--url",
            "macrometa+http://127.0.0.1:9",
            "--api-key",
            secret,
            "-o",
            "retries=1",
            "-o",
            "timeout=2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "127.0.0.1:9" in done.stderr and "ConnectFailed" in done.stderr
    assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_a_stop_signal_detaches_and_leaves_unacked_messages(
    emulator: Any, signum: signal.Signals, code: int
) -> None:
    """Ctrl-C and SIGTERM (what `kill`, systemd and Docker send) stop a consumer alike."""
    env = emulator_env(emulator)
    stream = f"intr{os.urandom(3).hex()}"
    with streamfw.connect(env["STREAMFW_URL"], api_key=emulator.api_key) as client:
        s = client.stream(stream).create()
        s.consumer("sub").close()
        with s.producer() as p:
            p.send("kept")
        consumer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamfw",
                "consume",
                stream,
                "--subscription",
                "sub",
                "--no-ack",
            ],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert consumer.stdout is not None
            assert "'kept'" in consumer.stdout.readline()  # received, not acked
            consumer.send_signal(signum)
            _, err = consumer.communicate(timeout=30)
        finally:
            consumer.kill()
        assert consumer.returncode == code and "stopped after 1 message(s)" in err
        assert "Traceback" not in err
        with s.consumer("sub") as again:  # the unacked message is there for the next one
            msg = again.receive(5)
            assert msg is not None and msg.value == "kept" and msg.redelivery_count == 0


def test_a_send_whose_outcome_is_unknown_says_a_retry_may_duplicate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamfw import SendTimeout, commands

    def stalled(*_: Any) -> int:
        raise SendTimeout("stream s: sent, but not confirmed within 1 s")

    monkeypatch.setitem(commands.STREAM_COMMANDS, "produce", stalled)
    assert main(["produce", "s", "--url", "loopback://cli-outcome", "--message", "m"]) == 1
    err = capsys.readouterr().err
    assert "SendTimeout: stream s: sent, but not confirmed" in err
    assert "may still be stored" in err and "store it twice" in err


@pytest.mark.parametrize("ack_undecodable", [False, True])
def test_consume_leaves_a_message_it_cannot_decode_in_the_backlog_unless_asked(
    url: str, capsys: pytest.CaptureFixture[str], ack_undecodable: bool
) -> None:
    """A message of an unknown codec is shown with its error, and acked only on request."""
    with streamfw.connect(url) as client:
        stream = client.stream("mixed").create()
        stream.consumer("s").close()
        link = client.transport.open_producer(stream.ref, ProducerOptions())
        try:
            link.send(Envelope(b"??", {CODEC_PROPERTY: "nope"})).result(5)
        finally:
            link.close()
        with stream.producer() as p:
            p.send("fine")
    flag = ["--ack-undecodable"] if ack_undecodable else []
    code, out, err = run(
        ["consume", "mixed", "--subscription", "s", "--count", "2", "--json", *flag, "--url", url],
        capsys,
    )
    bad, good = (json.loads(line) for line in out.splitlines())
    assert code == 0 and "nope" in bad["error"] and bad["payload_base64"] == "Pz8="
    assert (bad["acked"], good["acked"], good["value"]) == (ack_undecodable, True, "fine")
    with streamfw.connect(url) as client:
        assert client.stream("mixed").backlog() == (0 if ack_undecodable else 1)
    code, out, err = run(
        ["consume", "mixed", "--subscription", "s", "--timeout", "0.5", "--url", url], capsys
    )
    if ack_undecodable:
        assert out == ""
    else:  # still there for a consumer that can read it, with a hint
        assert "undecodable payload b'??'" in out and "--ack-undecodable" in err
