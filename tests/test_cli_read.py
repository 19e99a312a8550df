"""``streamfw read`` (a non-durable reader), ``--codec`` and ``--initial-position`` on the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

import streamfw
from streamfw.api import ProducerOptions
from streamfw.cli import main
from streamfw.message import Envelope


@pytest.fixture(params=["loopback", "emulator"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    """A URL and the flags to reach it, on loopback (kept alive) and on the emulator."""
    if request.param == "loopback":
        url = f"loopback://read-{os.urandom(4).hex()}"
        with streamfw.connect(url):
            yield url, ["--url", url]
    else:
        emulator: Any = request.getfixturevalue("emulator")
        url = f"macrometa+http://127.0.0.1:{emulator.port}"
        yield url, ["--url", url, "--api-key", emulator.api_key]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def values(out: str) -> list[Any]:
    return [json.loads(line)["value"] for line in out.splitlines()]


def test_read_from_earliest_an_id_or_latest(
    server: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, flags = server
    stream = f"read{os.urandom(3).hex()}"
    _, out, _ = run(
        ["produce", stream, "--create", "--message", "m{n}", "--count", "3", "--json", *flags],
        capsys,
    )
    ids = [json.loads(line)["id"] for line in out.splitlines()]
    read = ["read", stream, "--json", "--timeout", "0.5", *flags]
    assert values(run([*read, "--from", "earliest"], capsys)[1]) == ["m1", "m2", "m3"]
    assert values(run([*read, "--from", ids[0]], capsys)[1]) == ["m2", "m3"]  # just after it
    short = ids[1].split(":", 1)[1]  # LEDGER:ENTRY, without the stream
    assert values(run([*read, "--from", short], capsys)[1]) == ["m3"]
    assert values(run([*read, "--from", "latest"], capsys)[1]) == []
    with streamfw.connect(server[0], **_key(flags)) as client:
        assert client.stream(stream).subscriptions() == []  # a reader leaves nothing behind


def _key(flags: list[str]) -> dict[str, Any]:
    return {"api_key": flags[flags.index("--api-key") + 1]} if "--api-key" in flags else {}


def test_codec_on_produce_consume_and_read(
    server: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, flags = server
    stream = f"codec{os.urandom(3).hex()}"
    with streamfw.connect(server[0], **_key(flags)) as client:
        s = client.stream(stream).create()
        s.consumer("s").close()
        link = client.transport.open_producer(s.ref, ProducerOptions())
        try:  # as a foreign client writes it: JSON, but no codec tag
            link.send(Envelope(b'{"u": 1}')).result(5)
        finally:
            link.close()
    produce = ["produce", stream, "--json-value", '{"n": 1}', "--codec", "json+zlib", *flags]
    assert run(produce, capsys)[0] == 0
    read = ["read", stream, "--from", "earliest", "--count", "2", "--json", *flags]
    assert values(run([*read, "--codec", "json"], capsys)[1]) == [{"u": 1}, {"n": 1}]
    assert values(run(read, capsys)[1]) == ['{"u": 1}', {"n": 1}]  # auto: untagged is text
    consume = ["consume", stream, "--subscription", "s", "--count", "2", "--json", *flags]
    _, out, _ = run([*consume, "--codec", "json"], capsys)
    assert values(out) == [{"u": 1}, {"n": 1}]
    assert json.loads(out.splitlines()[1])["properties"]["streamfw-codec"] == "json+zlib"


def test_read_refuses_a_position_it_cannot_parse_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(
        ["read", "s", "--from", "12", "--url", "macrometa+http://127.0.0.1:9"], capsys
    )
    assert code == 2 and "--from must be earliest, latest or a message id" in err


def test_initial_position_earliest_explains_the_extension(
    emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["consume", "--help"])
    assert "-o extensions=1" in " ".join(capsys.readouterr().out.split())
    url = f"macrometa+http://127.0.0.1:{emulator.port}"
    stream = f"pos{os.urandom(3).hex()}"
    with (
        streamfw.connect(url, api_key=emulator.api_key) as client,
        client.stream(stream).create().producer() as p,
    ):
        p.send("old")
    consume = ["consume", stream, "--subscription", "s", "--initial-position", "earliest"]
    flags = ["--url", url, "--api-key", emulator.api_key, "--count", "1", "--json"]
    code, _, err = run([*consume, *flags], capsys)
    assert code == 1 and json.loads(err)["error"] == "Unsupported"
    assert "--initial-position earliest" in err and "-o extensions=1" in err
    code, out, _ = run([*consume, *flags, "-o", "extensions=1"], capsys)
    assert code == 0 and values(out) == ["old"]
