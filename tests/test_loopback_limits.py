"""Loopback brokers take the same ``Limits`` as the emulator, through ``connect(limits=)``."""

from __future__ import annotations

import pytest

import streamfw
from streamfw import BacklogQuotaExceeded, Limits


def test_connect_limits_reach_the_loopback_broker() -> None:
    limits = Limits(backlog_quota_messages=2)
    with streamfw.connect("loopback://limited", limits=limits) as client:
        stream = client.stream("orders").create()
        with stream.consumer("billing"), stream.producer() as producer:
            producer.send("one")
            producer.send("two")
            with pytest.raises(BacklogQuotaExceeded, match="backlog quota"):
                producer.send("three")


def test_a_second_client_cannot_change_a_running_brokers_limits() -> None:
    with streamfw.connect("loopback://shared-limits", limits=Limits(max_streams=3)):
        with streamfw.connect("loopback://shared-limits", limits=Limits(max_streams=3)):
            pass  # the same limits: fine
        with pytest.raises(streamfw.ConfigError, match="already open with"):
            streamfw.connect("loopback://shared-limits", limits=Limits(max_streams=4))
        with streamfw.connect("loopback://shared-limits"):
            pass  # no limits given: joins the running broker as it is


def test_limits_must_be_a_limits_value() -> None:
    with pytest.raises(streamfw.ConfigError, match="limits must be"):
        streamfw.connect("loopback://bad-limits", limits={"max_streams": 3})
