"""The message TTL is applied by a sweep every ``TTL_SWEEP`` seconds, traffic or not."""

from __future__ import annotations

import time

from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.state import TTL_SWEEP

from tests.emulator.helpers import Api


def test_steady_traffic_does_not_postpone_the_ttl_sweep() -> None:
    """Before: every broker call re-armed the sweep ``TTL_SWEEP`` seconds later, so a fabric
    busier than one call a second never expired anything."""
    with Emulator.start(host="127.0.0.1", port=0) as emu:
        api = Api(emu)
        try:
            old, busy = api.create("ttl-old"), api.create("ttl-busy")
            api.consumer(old, "s").close()  # a durable subscription keeps the backlog
            api.streams("POST", f"/{old}/publish", data=b"old").raise_for_status()
            api.streams("POST", "/ttl/1").raise_for_status()
            backlog = 1
            end = time.monotonic() + 1 + 4 * TTL_SWEEP
            while backlog and time.monotonic() < end:
                api.streams("POST", f"/{busy}/publish", data=b"x").raise_for_status()
                time.sleep(TTL_SWEEP / 5)  # always a call within the sweep interval
                r = api.streams("GET", f"/{old}/backlog")
                backlog = r.json()["result"]["messageBacklog"]
            assert backlog == 0, "the TTL never expired the old message"
        finally:
            api.session.close()
