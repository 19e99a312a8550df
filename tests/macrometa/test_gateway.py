"""The gateway's names are one pair: what the client writes, the emulator reads back."""

from __future__ import annotations

import pytest
from streamfw_macrometa import gateway


@pytest.mark.parametrize("scheme", gateway.SCHEMES)
def test_an_authorization_value_round_trips(scheme: str) -> None:
    value = gateway.authorization(scheme, "cred.ential")
    assert gateway.parse_authorization(value) == (scheme, "cred.ential")
    assert gateway.parse_authorization(value.upper()) == (scheme, "CRED.ENTIAL")


@pytest.mark.parametrize("value", [None, "", "basic x", "apikeyx y", "   "])
def test_an_unusable_authorization_value_is_none(value: str | None) -> None:
    assert gateway.parse_authorization(value) is None
