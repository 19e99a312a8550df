"""``streamfw demo``: the seed scenario in one process.

One producer sends a message every ``interval`` to ``streamQuickstart``; consumer-1 and
consumer-2 use the same exclusive subscription. consumer-2 is refused and waits as a standby;
consumer-1 acks what it gets, then leaves holding one message unacked; consumer-2 takes over
and receives that message again (redelivery) before the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from streamfw.client import Client, Stream
from streamfw.errors import StreamError, SubscriptionBusy

STREAM = "streamQuickstart"
SUBSCRIPTION = "consumer-subscription"


class _Log:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def __call__(self, who: str, text: str) -> None:
        with self._lock:
            elapsed = time.monotonic() - self._start
            print(f"{elapsed:6.2f}s  {who:<11} {text}", file=self._out, flush=True)


def run_demo(client: Client, *, count: int, interval: float, out: TextIO) -> int:
    """Play the scenario; return 0 when every message was received and acked."""
    log = _Log(out)
    stream = client.stream(STREAM).create(exist_ok=True)
    log("setup", f"stream {STREAM!r} on {client!r}, subscription {SUBSCRIPTION!r} (exclusive)")
    acked: dict[str, list[str]] = {"consumer-1": [], "consumer-2": []}
    leave_after = max(1, count // 2)
    done = threading.Event()
    failures: list[BaseException] = []

    consumer_1 = stream.consumer(SUBSCRIPTION, consumer_name="consumer-1")
    log("consumer-1", "attached")
    standby_ready = threading.Event()

    def first() -> None:
        received = 0
        with consumer_1:
            while received < leave_after and not done.is_set():
                msg = consumer_1.receive(timeout=interval * 4)
                if msg is None:
                    continue
                received += 1
                if received < leave_after:
                    msg.ack()
                    acked["consumer-1"].append(msg.value)
                    log("consumer-1", f"received {msg.value!r} -> ack")
                else:
                    log("consumer-1", f"received {msg.value!r} -> leaving WITHOUT ack")
            standby_ready.wait(timeout=10 * interval + 5)
        log("consumer-1", "detached; its unacked message goes back to the subscription")

    def second() -> None:
        announced = False
        while not done.is_set():
            try:
                consumer = stream.consumer(SUBSCRIPTION, consumer_name="consumer-2")
            except SubscriptionBusy as exc:
                if not announced:
                    log("consumer-2", f"refused: {exc}")
                    log("consumer-2", "waiting as a standby, retrying")
                    announced = True
                    standby_ready.set()
                time.sleep(interval / 4)
                continue
            log("consumer-2", "attached: taking over the subscription")
            with consumer:
                while len(acked["consumer-1"]) + len(acked["consumer-2"]) < count:
                    msg = consumer.receive(timeout=interval * 4 + 2)
                    if msg is None:
                        log("consumer-2", "nothing more arrived")
                        break
                    again = f" (redelivery {msg.redelivery_count})" if msg.redelivery_count else ""
                    msg.ack()
                    acked["consumer-2"].append(msg.value)
                    log("consumer-2", f"received {msg.value!r}{again} -> ack")
            return

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # reported below; never a silent thread death
                failures.append(exc)
                done.set()

        return body

    threads = [threading.Thread(target=guarded(f), name=f.__name__) for f in (first, second)]
    for t in threads:
        t.start()
    try:
        _produce(stream, count, interval, log)
        threads[1].join(timeout=count * interval + 15)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=10)
    return _summary(log, acked, count, failures)


def _produce(stream: Stream, count: int, interval: float, log: _Log) -> None:
    with stream.producer() as producer:
        for n in range(1, count + 1):
            text = f"Hello streamfw #{n}"
            mid = producer.send(text)
            log("producer", f"sent {text!r} (id {mid})")
            if n < count:
                time.sleep(interval)


def _summary(
    log: _Log, acked: dict[str, list[str]], count: int, failures: list[BaseException]
) -> int:
    for exc in failures:
        log("error", f"{type(exc).__name__}: {exc}")
    for who, values in acked.items():
        log("summary", f"{who} acked {len(values)}: {', '.join(map(repr, values)) or '-'}")
    total = len(acked["consumer-1"]) + len(acked["consumer-2"])
    ok = total == count and not failures
    log("summary", f"{total}/{count} messages delivered and acked" + ("" if ok else " -- FAILED"))
    return 0 if ok else 1


def demo_main(client: Client, count: int, interval: float, out: TextIO) -> int:
    try:
        return run_demo(client, count=count, interval=interval, out=out)
    except StreamError as exc:
        print(f"streamfw demo: {type(exc).__name__}: {exc}", file=out)
        return 1
