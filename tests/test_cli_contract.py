"""The CLI's output and exit-code contract (docs/cli.md): --json everywhere, errors, flags."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import streamfw
from streamfw.cli import main

UNREACHABLE = "macrometa+http://127.0.0.1:9"  # nothing listens: a command that connects fails


@pytest.fixture
def url() -> Iterator[str]:
    """A loopback broker kept alive by the test, so commands run in-process share it."""
    name = f"loopback://contract-{os.urandom(4).hex()}"
    with streamfw.connect(name):
        yield name


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_everywhere_means_json_on_stdout_and_nothing_else_on_stderr(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    u = ["--url", url, "--json"]
    documents = [
        (
            ["streams", "create", "orders", *u],
            {"stream": "orders", "local": False, "created": True},
        ),
        (
            ["streams", "create", "orders", "--exist-ok", *u],
            {"stream": "orders", "local": False, "created": False},
        ),
        (["streams", "list", *u], [{"name": "orders", "local": False}]),
        (["streams", "backlog", "orders", *u], {"stream": "orders", "local": False, "backlog": 0}),
    ]
    for argv, expected in documents:
        code, out, err = run(argv, capsys)
        assert (code, json.loads(out), err) == (0, expected, ""), argv
    with streamfw.connect(url) as client:
        client.stream("orders").consumer("s").close()
    code, out, err = run(["produce", "orders", "--message", "m{n}", "--count", "2", *u], capsys)
    assert code == 0 and err == ""
    sent = [json.loads(line) for line in out.splitlines()]
    assert [r["n"] for r in sent] == [1, 2] and all(r["id"].startswith("orders:") for r in sent)
    code, out, _ = run(["read", "orders", "--from", "earliest", "--count", "2", *u], capsys)
    assert code == 0 and [json.loads(line)["value"] for line in out.splitlines()] == ["m1", "m2"]
    code, out, err = run(["consume", "orders", "--subscription", "s", "--count", "2", *u], capsys)
    assert code == 0 and err == ""
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["value"] for r in records] == ["m1", "m2"]
    assert set(records[0]) == {
        "id",
        "value",
        "properties",
        "key",
        "publish_time",
        "redelivery_count",
        "acked",
    }
    code, out, _ = run(["subscriptions", "list", "orders", *u], capsys)
    assert json.loads(out) == [{"name": "s", "type": "exclusive", "backlog": 0, "consumers": 0}]
    code, out, _ = run(["subscriptions", "delete", "orders", "s", *u], capsys)
    assert json.loads(out) == {
        "stream": "orders",
        "local": False,
        "subscription": "s",
        "deleted": True,
    }
    assert json.loads(run(["streams", "stats", "orders", *u], capsys)[1])["published"] == 2
    code, out, _ = run(["streams", "delete", "orders", *u], capsys)
    assert json.loads(out) == {"stream": "orders", "local": False, "deleted": True}
    code, out, err = run(["plugins", "--json"], capsys)
    assert {"ok", "plugins", "transports", "codecs"} <= set(json.loads(out))


def test_demo_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["demo", "--url", "loopback://demo-json", "--count", "2", "--interval", "0.05", "--json"],
        capsys,
    )
    result = json.loads(out)
    assert code == 0 and result["ok"] is True and result["problems"] == [] and err == ""
    assert sorted(v for vs in result["acked"].values() for v in vs) == [
        "Hello streamfw #1",
        "Hello streamfw #2",
    ]


@pytest.mark.parametrize(
    ("argv", "error", "code"),
    [
        (["consume", "nope", "--subscription", "s"], "StreamNotFound", 1),
        (["consume", "nope"], "UsageError", 2),  # --subscription missing
        (["streams", "list", "--url", "macrometa+htp://x"], "UsageError", 2),
        (["read", "s", "--from", "yesterday"], "ConfigError", 2),
    ],
)
def test_errors_under_json_are_one_json_object_on_stderr(
    url: str, capsys: pytest.CaptureFixture[str], argv: list[str], error: str, code: int
) -> None:
    got, out, err = run([*argv, "--json", *([] if "--url" in argv else ["--url", url])], capsys)
    record = json.loads(err)
    assert (got, out) == (code, "")
    assert record["error"] == error and record["exit_code"] == code and record["message"]


@pytest.mark.parametrize(
    ("scheme", "hint"),
    [
        ("macrometa+htp", "did you mean 'macrometa+http'?"),
        ("lopback", "did you mean 'loopback'?"),
        ("kafka", "installed: loopback, macrometa"),
    ],
)
def test_an_unknown_url_scheme_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], scheme: str, hint: str
) -> None:
    code, _, err = run(["streams", "list", "--url", f"{scheme}://127.0.0.1:9"], capsys)
    assert code == 2 and hint in err and "Traceback" not in err


def test_arguments_are_checked_before_connecting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Against a URL where nothing listens, a bad argument is still the error reported."""
    for argv, text in [
        (["--json-value", "{bad"], "--json-value is not valid JSON"),
        (["--file", str(tmp_path / "missing.bin")], "missing.bin': no such file"),
        (["--message", "m", "--codec", "nope"], "codec 'nope'"),
    ]:
        code, _, err = run(["produce", "s", *argv, "--url", UNREACHABLE], capsys)
        assert code == 2 and text in err, err
        assert "ConnectFailed" not in err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["produce", "s", "--interval", "soon"], "argument --interval: expected seconds"),
        (["produce", "s", "--count", "many"], "argument --count: expected a whole number"),
        (["consume", "s", "--subscription", "x", "--timeout", "-1"], "argument --timeout"),
    ],
)
def test_argument_errors_name_the_flag_not_a_python_function(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2 and flag in err
    assert "_seconds" not in err and "positive_int" not in err and "invalid" not in err


def test_library_errors_are_told_in_flags(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with streamfw.connect(url) as client:
        stream = client.stream("busy").create()
        with stream.consumer("s"):
            code, _, err = run(["streams", "delete", "busy", "--url", url], capsys)
    assert code == 1 and "--force" in err and "force=True" not in err
    monkeypatch.delenv("MACROMETA_API_KEY", raising=False)
    code, _, err = run(["streams", "list", "--url", UNREACHABLE], capsys)
    assert code == 2 and "--api-key" in err and "api_key=" not in err


def test_the_old_produce_json_value_spelling_still_sends_with_a_note(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with streamfw.connect(url) as client:
        stream = client.stream("old").create()
        with stream.consumer("s") as c:
            code, out, err = run(["produce", "old", "--json", '{"n": 1}', "--url", url], capsys)
            msg = c.receive(1)
    assert code == 0 and out == "" and "--json VALUE is deprecated" in err
    assert msg is not None and msg.value == {"n": 1}
