"""streamfw's conformance kit, run against this plugin: a few lines are all it takes."""

import streamfw
from streamfw.testing.contract import TransportContract
from streamfw.testing.machine import run_subscription_machine


class TestNamespaceTransport(TransportContract):
    pass


def test_subscription_invariants(harness):
    run_subscription_machine(harness)


def test_found_through_its_entry_point():
    found = streamfw.discover()
    info = {i.name: i for i in found.infos}["namespace"]
    assert info.distribution == "streamfw-namespace" and info.loaded
    assert found.harnesses()["namespace"].summary == "namespace://team-a over loopback"


def test_the_kit_runs_on_the_registered_harness(harness):
    assert harness.name == "namespace"


def test_teams_see_only_their_streams(harness):
    with harness.client() as client, streamfw.connect(harness.inner) as shared:
        client.stream("orders").create()
        assert [s.name for s in client.streams()] == ["orders"]
        assert [s.name for s in shared.streams()] == ["team-a.orders"]
