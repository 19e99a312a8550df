"""schemathesis against docs/emulator-openapi.yaml: every route the description lists, with
valid and invalid inputs drawn from it, sent to the fuzz emulator over real sockets.

Checked on every answer: no server error, a documented status and content type, and a body
matching the schema where the description gives one. A few examples per route keep this
to seconds; ``STREAMFW_FUZZ_EXAMPLES`` raises the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from streamfw_macrometa.emulator import Emulator

from tests.fuzz.conftest import FIGURES, examples

SPEC = Path(__file__).resolve().parents[2] / "docs" / "emulator-openapi.yaml"
schema = schemathesis.openapi.from_path(SPEC)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def reset_ttl(fuzz_emulator: Emulator) -> Iterator[None]:
    """Generated cases may set the fabric's TTL: put it back for the other tests."""
    yield
    requests.post(
        f"{fuzz_emulator.url}/_fabric/_system/_api/streams/ttl/0",
        headers={"Authorization": f"apikey {fuzz_emulator.api_key}"},
        timeout=5,
    ).raise_for_status()


@pytest.mark.usefixtures("clean", "reset_ttl")
@schema.parametrize()
@settings(
    max_examples=examples(8),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_emulator_keeps_to_its_openapi_description(
    case: schemathesis.Case[Any], fuzz_emulator: Emulator, session: requests.Session
) -> None:
    FIGURES["schemathesis requests"] += 1
    case.call_and_validate(
        base_url=fuzz_emulator.url,
        session=session,
        headers={"Authorization": f"apikey {fuzz_emulator.api_key}"},
        checks=CHECKS,
        timeout=10,
    )
