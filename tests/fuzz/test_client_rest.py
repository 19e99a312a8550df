"""What a REST server answers, fuzzed, towards streamfw's macrometa client: every admin call
returns or raises a typed ``StreamError`` naming the call, within the client's timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from streamfw.client import Client, connect
from streamfw.errors import StreamError
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import FIGURES, examples
from tests.fuzz.fake_gdn import FakeRest

TIMEOUT = 1.0
ok_envelopes = st.fixed_dictionaries(
    {"error": st.just(False), "code": st.just(200), "result": fs.JSON},
)
error_envelopes = st.fixed_dictionaries(
    {"error": st.just(True), "code": st.integers(400, 599)},
    optional={"errorMessage": fs.JSON, "errorNum": fs.JSON},
)
answers = fs.bodies(ok_envelopes | error_envelopes) | fs.bodies(
    st.fixed_dictionaries({"result": st.lists(st.fixed_dictionaries({"tenant": fs.JSON}))})
)
CALLS: dict[str, Callable[[Client], Any]] = {
    "streams": lambda c: c.streams(),
    "create": lambda c: c.stream("s").create(),
    "delete": lambda c: c.stream("s").delete(),
    "backlog": lambda c: c.stream("s").backlog(),
    "stats": lambda c: c.stream("s").stats(),
    "subscriptions": lambda c: c.stream("s").subscriptions(),
    "clear_backlog": lambda c: c.stream("s").clear_backlog(),
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRest]:
    server = FakeRest()
    yield server
    server.close()


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=answers,
    status=st.sampled_from([200, 200, 200, 400, 401, 404, 409, 412, 503]),
    call=st.sampled_from(sorted(CALLS)),
)
def test_any_rest_answer_gives_a_result_or_a_typed_error(
    fake: FakeRest, body: bytes, status: int, call: str
) -> None:
    FIGURES["REST answers sent to the client"] += 1
    fake.status, fake.body = status, body
    start = time.monotonic()
    try:
        client = connect(
            f"macrometa+http://127.0.0.1:{fake.port}",
            api_key="demo.streamfw.emulator",
            tenant="demo",
            timeout=TIMEOUT,
            retries=2,
        )
        with client:
            CALLS[call](client)
    except StreamError as exc:
        assert str(exc), "a typed error must say what went wrong"
    elapsed = time.monotonic() - start
    assert elapsed < 2 * TIMEOUT + 3, f"{call} took {elapsed:.1f} s with timeout={TIMEOUT}"


def test_the_fake_answers_what_it_is_told(fake: FakeRest) -> None:
    fake.status, fake.body = 200, json.dumps({"error": False, "code": 200, "result": []}).encode()
    with connect(
        f"macrometa+http://127.0.0.1:{fake.port}", api_key="demo.streamfw.emulator", tenant="demo"
    ) as client:
        assert client.streams() == []
