"""``streamfw demo`` and the docs' quickstart samples count only their own messages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import streamfw
from streamfw.demo import verdict

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "streamfw"]


@pytest.fixture
def server(emulator: Any) -> Iterator[tuple[str, dict[str, str]]]:
    """The emulator's URL and the environment pointing the CLI at it."""
    url = f"macrometa+http://127.0.0.1:{emulator.port}"
    yield url, {**os.environ, "STREAMFW_URL": url, "MACROMETA_API_KEY": emulator.api_key}


def leave_leftovers(url: str, api_key: str, stream: str, subscription: str) -> None:
    """Three messages of an 'earlier run' waiting, unacked, in ``subscription``."""
    with streamfw.connect(url, api_key=api_key) as client:
        s = client.stream(stream).create(exist_ok=True)
        s.consumer(subscription).close()
        with s.producer() as p:
            for n in range(1, 4):
                p.send(f"leftover {n}")


def remaining(url: str, api_key: str, stream: str, subscription: str) -> list[str]:
    values = []
    with (
        streamfw.connect(url, api_key=api_key) as client,
        client.stream(stream).consumer(subscription) as c,
    ):
        while (msg := c.receive(timeout=1.0)) is not None:
            values.append(msg.value)
            msg.ack()  # so the next test on the same stream starts clean
    return values


def demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the demo; the key goes in as --api-key, as the other stream commands take it."""
    key = env["MACROMETA_API_KEY"]
    env = {k: v for k, v in env.items() if k != "MACROMETA_API_KEY"}
    return subprocess.run(
        [*CLI, "demo", "--count", "3", "--interval", "0.1", "--api-key", key, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.parametrize("named", [False, True], ids=["fresh-subscription", "named-subscription"])
def test_demo_twice_with_leftovers_counts_and_acks_only_its_own(
    server: tuple[str, dict[str, str]], emulator: Any, named: bool
) -> None:
    url, env = server
    stream = f"quick{os.urandom(3).hex()}"
    leave_leftovers(url, emulator.api_key, stream, "consumer-subscription")
    extra = ["--subscription", "consumer-subscription"] if named else []
    for _ in range(2):
        done = demo(env, "--stream", stream, *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3/3 messages of this run delivered and acked" in done.stdout
        assert "leftover" not in "".join(
            line for line in done.stdout.splitlines() if "-> ack" in line
        )
    # The earlier run's messages are still there, untouched. Used by the demo, the
    # subscription holds none of its messages; left alone, it holds them all (every
    # subscription of a stream gets every message published after it was created).
    leftovers = ["leftover 1", "leftover 2", "leftover 3"]
    demo_messages = [] if named else [f"Hello streamfw #{n}" for n in (1, 2, 3)] * 2
    left = remaining(url, emulator.api_key, stream, "consumer-subscription")
    assert left == leftovers + demo_messages
    with streamfw.connect(url, api_key=emulator.api_key) as client:
        names = [i.name for i in client.stream(stream).subscriptions()]
    assert names == ["consumer-subscription"]  # the fresh ones were deleted


def test_demo_fails_clearly_when_it_cannot_run_its_scenario(
    server: tuple[str, dict[str, str]], emulator: Any
) -> None:
    url, env = server
    stream = f"busy{os.urandom(3).hex()}"
    with streamfw.connect(url, api_key=emulator.api_key) as client:
        s = client.stream(stream).create()
        with s.consumer("taken"):
            done = demo(env, "--stream", stream, "--subscription", "taken")
    assert done.returncode == 1
    assert "streamfw: SubscriptionBusy:" in done.stderr and "'taken'" in done.stderr


def test_verdict_names_what_was_not_delivered_acked_or_left_in_the_backlog() -> None:
    acked = {"consumer-1": ["Hello streamfw #1"], "consumer-2": ["Hello streamfw #1"]}
    problems = verdict(acked, 3, backlog=2)
    assert problems == [
        "never delivered and acked: 'Hello streamfw #2', 'Hello streamfw #3'",
        "acked more than once: 'Hello streamfw #1'",
        "the subscription still holds 2 unacked message(s)",
    ]
    assert verdict({"c": ["Hello streamfw #1"]}, 1, backlog=0) == []


QUICKSTART = re.compile(r"^```python\n(?P<code>.*?)^```", re.S | re.M)


@pytest.mark.parametrize(
    ("doc", "url_in_doc"),
    [("docs/index.md", '"loopback://quickstart"'), ("README.md", '"loopback://"')],
)
def test_quickstart_samples_are_not_fooled_by_leftovers(
    emulator: Any, tmp_path: Path, doc: str, url_in_doc: str
) -> None:
    """The samples reuse streamQuickstart/consumer-subscription: run them on a used server."""
    url = f"macrometa+http://127.0.0.1:{emulator.port}"
    sample = next(
        m["code"]
        for m in QUICKSTART.finditer((ROOT / doc).read_text(encoding="utf-8"))
        if "streamQuickstart" in m["code"]
    )
    assert f"streamfw.connect({url_in_doc})" in sample
    connect = f"streamfw.connect({url!r}, api_key={emulator.api_key!r})"
    sample = sample.replace(f"streamfw.connect({url_in_doc})", connect)
    leave_leftovers(url, emulator.api_key, "streamQuickstart", "consumer-subscription")
    script = tmp_path / "sample.py"
    script.write_text(sample, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "leftover" not in done.stdout
    left = remaining(url, emulator.api_key, "streamQuickstart", "consumer-subscription")
    assert left == ["leftover 1", "leftover 2", "leftover 3"]
