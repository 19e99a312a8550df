"""Timers of a fabric: the TTL sweep and the memory hand-back run on time, traffic or not."""

from __future__ import annotations

import time

from streamfw_macrometa.emulator import Emulator
from streamfw_macrometa.emulator.state import RELEASE_AFTER, RELEASE_DELAY, TTL_SWEEP

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


def test_steady_traffic_does_not_postpone_the_memory_hand_back() -> None:
    """Before: every broker call cancelled the pending hand-back and ``call`` re-armed it
    ``RELEASE_DELAY`` later, so a busy fabric never handed freed memory back."""
    with Emulator.start(host="127.0.0.1", port=0) as emu:
        api = Api(emu)
        fabric = emu._state.fabrics["_system"]  # type: ignore[union-attr]
        try:
            big, busy = api.create("release-big"), api.create("release-busy")
            api.consumer(big, "s").close()  # a durable subscription keeps what is published
            body = b"x" * 1_000_000
            for _ in range(RELEASE_AFTER // len(body) + 1):
                api.streams("POST", f"/{big}/publish", data=body).raise_for_status()
            api.streams("DELETE", f"/{big}").raise_for_status()  # frees them all
            assert fabric.broker.freed >= RELEASE_AFTER
            end = time.monotonic() + 1 + 4 * RELEASE_DELAY
            while fabric._freed_seen < RELEASE_AFTER and time.monotonic() < end:
                api.streams("POST", f"/{busy}/publish", data=b"x").raise_for_status()
                time.sleep(RELEASE_DELAY / 5)  # always a call within the delay
            assert fabric._freed_seen >= RELEASE_AFTER, "the freed memory was never handed back"
        finally:
            api.session.close()
