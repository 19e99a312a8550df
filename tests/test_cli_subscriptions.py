"""CLI flags of issue 11: consume --type key_shared, --max-redeliveries, --dead-letter-stream."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import streamfw
from streamfw.cli import main


@pytest.fixture
def url() -> Iterator[str]:
    """A loopback broker kept alive by the test, so commands run in-process share it."""
    name = f"loopback://cli-sub-{os.urandom(4).hex()}"
    with streamfw.connect(name) as client:
        with client.stream("orders").create().producer() as producer:
            producer.send("one", key="k")
        yield name


def consume(url: str, *flags: str) -> list[str]:
    base = ["consume", "orders", "--subscription", "s", "--initial-position", "earliest"]
    return [*base, "--count", "1", "--timeout", "2", "--url", url, *flags]


def test_key_shared_with_a_dead_letter_policy_consumes(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(consume(url, "--type", "key_shared", "--max-redeliveries", "3"))
    out, err = capsys.readouterr()
    assert code == 0 and "'one'" in out, err


def test_the_dead_letter_options_reach_the_broker(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(consume(url, "--max-redeliveries", "1", "--dead-letter-stream", "orders"))
    _, err = capsys.readouterr()
    assert code != 0 and "cannot be orders itself" in err


def test_a_dead_letter_stream_needs_max_redeliveries(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(consume(url, "--dead-letter-stream", "poison"))
    _, err = capsys.readouterr()
    assert code != 0 and "needs max_redeliver_count" in err
