"""The exception tree: what ``except TransportError: retry`` catches, and what it must not."""

from __future__ import annotations

import inspect
import pickle

import pytest

import streamfw
from streamfw import errors


def error_classes() -> list[type[errors.StreamError]]:
    return [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.StreamError) and c.__module__ == errors.__name__
    ]


@pytest.mark.parametrize("usage", [errors.Closed, errors.ConfigError, errors.LocalProtocolError])
def test_usage_errors_are_never_transport_errors(usage: type[errors.StreamError]) -> None:
    assert issubclass(usage, errors.UsageError)
    assert not issubclass(usage, errors.TransportError)


def test_what_the_transport_closed_is_not_the_applications_close() -> None:
    assert issubclass(errors.ConnectionLost, errors.TransportError)
    assert issubclass(errors.StreamDeleted, errors.StreamNotFound)
    for cause in (errors.ConnectionLost, errors.StreamDeleted):
        assert not issubclass(cause, errors.Closed)


def test_conflicts_share_one_base() -> None:
    for conflict in (
        errors.AlreadyExists,
        errors.SubscriptionBusy,
        errors.InUse,
        errors.LimitExceeded,
    ):
        assert issubclass(conflict, errors.Conflict)


def test_a_server_error_is_a_transport_error_with_its_status() -> None:
    exc = errors.ServerError("GET /x: HTTP 503", status=503)
    assert isinstance(exc, errors.TransportError) and exc.status == 503
    assert errors.ServerError("default").status == 500


def test_every_error_is_exported_and_drawn_in_the_tree() -> None:
    drawn = {word for line in (errors.__doc__ or "").splitlines() for word in line.split()}
    for cls in error_classes():
        assert getattr(streamfw, cls.__name__) is cls
        assert cls.__name__ in drawn, cls.__name__


def test_decode_error_names_the_undecodable_message_and_keeps_a_deprecated_alias() -> None:
    exc = errors.DecodeError("bad", undecodable=None)
    assert exc.undecodable is None
    with pytest.deprecated_call(match="undecodable"):
        assert exc.message is None


def test_errors_pickle_as_their_own_type() -> None:
    for cls in (errors.Closed, errors.StreamDeleted, errors.ServerError):
        again = pickle.loads(pickle.dumps(cls("text")))
        assert type(again) is cls and str(again) == "text"
