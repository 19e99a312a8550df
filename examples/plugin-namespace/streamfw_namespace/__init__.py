"""``namespace://TEAM``: a team's streams, prefixed, inside another transport."""

from collections.abc import Callable

from streamfw import TransportSpec, hookimpl
from streamfw.testing import HarnessSpec
from streamfw_namespace.transport import NamespaceTransport

__all__ = ["NamespaceTransport"]


@hookimpl
def streamfw_register_transports(register: Callable[[TransportSpec], None]) -> None:
    register(
        TransportSpec(
            "namespace", NamespaceTransport.from_config, "TEAM.<stream> inside another transport"
        )
    )


@hookimpl
def streamfw_register_harnesses(register: Callable[[HarnessSpec], None]) -> None:
    from streamfw_namespace.testing import NamespaceHarness  # only test runs need it

    register(HarnessSpec("namespace", NamespaceHarness, "namespace://team-a over loopback"))
