"""MessageId: the checked constructor refuses bad parts; the broker's trusted one agrees."""

from __future__ import annotations

import pickle

import attrs
import pytest

from streamfw.message import MessageId


@pytest.mark.parametrize(("ledger", "entry"), [(-1, 0), (0, -1)])
def test_a_negative_ledger_or_entry_is_refused(ledger: int, entry: int) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        MessageId("s", ledger, entry)


def test_the_trusted_id_is_the_checked_id() -> None:
    """Equal, same hash, order, repr, str and pickle: only the checks are skipped."""
    trusted, checked = MessageId.trusted("s", 3, 7), MessageId("s", 3, 7)
    assert trusted == checked
    assert hash(trusted) == hash(checked)
    assert {trusted: 1}[checked] == 1
    assert repr(trusted) == repr(checked)
    assert str(trusted) == "s:3:7"
    assert MessageId.trusted("s", 3, 6) < checked < MessageId.trusted("s", 3, 8)
    assert pickle.loads(pickle.dumps(trusted)) == checked
    with pytest.raises(AttributeError):
        trusted.entry = 8  # type: ignore[misc]


def test_the_trusted_delivery_is_the_checked_delivery() -> None:
    """A first delivery built by the broker equals one built (and converted) by attrs."""
    import datetime as dt

    from streamfw.message import Delivery, Properties

    mid, when, props = (
        MessageId("s", 0, 1),
        dt.datetime.now(dt.timezone.utc),
        Properties({"a": "b"}),
    )
    trusted = Delivery.trusted(mid, b"x", props, "k", when)
    checked = Delivery(mid, b"x", {"a": "b"}, "k", when)
    assert trusted == checked and hash(trusted) == hash(checked)
    assert repr(trusted) == repr(checked)
    assert pickle.loads(pickle.dumps(trusted)) == checked
    # what the broker does to a redelivered copy works on it as on any attrs instance
    assert attrs.evolve(trusted, redelivery_count=2).redelivery_count == 2
