"""``streamfw demo``: the seed scenario in one process, checking what it claims.

One producer sends a message every ``interval`` to ``streamQuickstart``; consumer-1 and
consumer-2 use the same exclusive subscription. consumer-2 is refused and waits as a standby;
consumer-1 acks what it gets, then leaves holding one message unacked; consumer-2 takes over
and receives that message again (redelivery) before the rest.

A server that was used before may hold messages of earlier runs, so every message this run
sends carries a run id (the ``streamfw-demo-run`` property) and only those are counted or
acked; anything else is left unacked for whoever owns it. By default the run uses a fresh
subscription, deleted at the end, whose backlog must be 0 once everything is acked: a run that
did not see every one of its messages delivered and acked fails.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import TextIO

import attrs

from streamfw.client import Client, Stream
from streamfw.consumer import Consumer
from streamfw.errors import StreamError, SubscriptionBusy
from streamfw.message import Message

STREAM = "streamQuickstart"
SUBSCRIPTION = "consumer-subscription"
RUN_PROPERTY = "streamfw-demo-run"
#: How long the run waits for the server to count its acks in the subscription's backlog.
ACK_SETTLE_SECONDS = 5.0


class _Log:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def __call__(self, who: str, text: str) -> None:
        with self._lock:
            elapsed = time.monotonic() - self._start
            print(f"{elapsed:6.2f}s  {who:<11} {text}", file=self._out, flush=True)


@attrs.define
class _Run:
    """What one run sent and saw; the consumers' threads write to it."""

    run_id: str
    count: int
    log: _Log
    acked: dict[str, list[str]] = attrs.Factory(lambda: {"consumer-1": [], "consumer-2": []})
    foreign: int = 0
    left_unacked: str | None = None  # what consumer-1 held when it left
    failures: list[BaseException] = attrs.Factory(list)

    def own(self, who: str, msg: Message) -> bool:
        """True for this run's messages; others are reported (a few) and left unacked."""
        if msg.properties.get(RUN_PROPERTY) == self.run_id:
            return True
        self.foreign += 1
        if self.foreign <= 3:
            self.log(who, f"received {msg.value!r} from another run -> left unacked, not counted")
        return False

    def total(self) -> int:
        return sum(len(v) for v in self.acked.values())


@attrs.frozen
class DemoResult:
    """What a run found; ``ok`` only when every message it sent was delivered and acked."""

    run_id: str
    stream: str
    subscription: str
    sent: int
    acked: dict[str, list[str]]
    ignored: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        """The ``streamfw demo --json`` document (docs/cli.md)."""
        return {"ok": self.ok, **attrs.asdict(self)}


def run_demo(
    client: Client,
    *,
    count: int,
    interval: float,
    out: TextIO,
    stream_name: str = STREAM,
    subscription: str | None = None,
) -> DemoResult:
    """Play the scenario on ``client``, narrating on ``out``, and check what happened.

    Args:
        client: where to play it.
        count: messages to send.
        interval: seconds between them.
        out: where the narrative and the summary go.
        stream_name: the stream (created if missing).
        subscription: the exclusive subscription to use; ``None``: a fresh one named after
            the run, deleted at the end, whose backlog must then be 0.

    Raises:
        StreamError: the scenario could not be set up (e.g. the subscription is taken).
    """
    log = _Log(out)
    run = _Run(secrets.token_hex(4), count, log)
    fresh = subscription is None
    sub = f"{SUBSCRIPTION}-{run.run_id}" if subscription is None else subscription
    stream = client.stream(stream_name).create(exist_ok=True)
    log(
        "setup",
        f"stream {stream_name!r} on {client!r}, subscription {sub!r} (exclusive"
        f"{', fresh for this run' if fresh else ''}), run id {run.run_id}",
    )
    consumer_1 = stream.consumer(sub, name="consumer-1")
    log("consumer-1", "attached")
    try:
        _play(stream, sub, consumer_1, run, interval)
        backlog = _settled_backlog(stream, sub) if fresh and not run.failures else None
    finally:
        if fresh:
            _drop(stream, sub, run)
    problems = _summary(run, backlog)
    return DemoResult(run.run_id, stream_name, sub, count, run.acked, run.foreign, problems)


def _play(stream: Stream, sub: str, consumer_1: Consumer, run: _Run, interval: float) -> None:
    log, count = run.log, run.count
    leave_after = max(1, count // 2)
    done = threading.Event()
    standby_ready = threading.Event()

    def first() -> None:
        received = 0
        with consumer_1:
            while received < leave_after and not done.is_set():
                msg = consumer_1.receive(timeout=interval * 4)
                if msg is None or not run.own("consumer-1", msg):
                    continue
                received += 1
                if received < leave_after:
                    msg.ack()
                    run.acked["consumer-1"].append(msg.value)
                    log("consumer-1", f"received {msg.value!r} -> ack")
                else:
                    run.left_unacked = msg.value
                    log("consumer-1", f"received {msg.value!r} -> leaving WITHOUT ack")
            standby_ready.wait(timeout=10 * interval + 5)
        log("consumer-1", "detached; its unacked message goes back to the subscription")

    def second() -> None:
        announced = False
        while not done.is_set():
            try:
                consumer = stream.consumer(sub, name="consumer-2")
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
                while run.total() < count:
                    msg = consumer.receive(timeout=interval * 4 + 2)
                    if msg is None:
                        log("consumer-2", "nothing more arrived")
                        break
                    if not run.own("consumer-2", msg):
                        continue
                    again = " (left unacked by consumer-1)" if msg.value == run.left_unacked else ""
                    if msg.redelivery_count:
                        again += f" (redelivery {msg.redelivery_count})"
                    msg.ack()
                    run.acked["consumer-2"].append(msg.value)
                    log("consumer-2", f"received {msg.value!r}{again} -> ack")
            return

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # reported below; never a silent thread death
                run.failures.append(exc)
                done.set()

        return body

    threads = [threading.Thread(target=guarded(f), name=f.__name__) for f in (first, second)]
    for t in threads:
        t.start()
    try:
        _produce(stream, run, interval)
        threads[1].join(timeout=count * interval + 15)
    except StreamError as exc:
        run.failures.append(exc)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=10)


def _produce(stream: Stream, run: _Run, interval: float) -> None:
    with stream.producer() as producer:
        for n in range(1, run.count + 1):
            text = f"Hello streamfw #{n}"
            mid = producer.send(text, properties={RUN_PROPERTY: run.run_id})
            run.log("producer", f"sent {text!r} (id {mid})")
            if n < run.count:
                time.sleep(interval)


def _settled_backlog(stream: Stream, sub: str) -> int | None:
    """The fresh subscription's backlog once the server has counted the acks (None: gone)."""
    deadline = time.monotonic() + ACK_SETTLE_SECONDS
    while True:
        found = [i.backlog for i in stream.subscriptions() if i.name == sub]
        if not found or found[0] == 0 or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(0.05)


def _drop(stream: Stream, sub: str, run: _Run) -> None:
    try:
        stream.delete_subscription(sub)
    except StreamError as exc:
        run.log("cleanup", f"could not delete subscription {sub!r}: {exc}")


def _summary(run: _Run, backlog: int | None) -> list[str]:
    log, count = run.log, run.count
    for exc in run.failures:
        log("error", f"{type(exc).__name__}: {exc}")
    for who, values in run.acked.items():
        log("summary", f"{who} acked {len(values)}: {', '.join(map(repr, values)) or '-'}")
    if run.foreign:
        log("summary", f"ignored {run.foreign} message(s) of other runs (left unacked)")
    problems = verdict(run.acked, count, backlog)
    problems[:0] = [f"{type(exc).__name__}: {exc}" for exc in run.failures]
    total = run.total()
    if not problems:
        log("summary", f"{total}/{count} messages of this run delivered and acked")
    else:
        log("summary", f"FAILED: {total}/{count} messages of this run delivered and acked")
    for problem in problems:
        log("summary", f"FAILED: {problem}")
    return problems


def verdict(acked: dict[str, list[str]], count: int, backlog: int | None) -> list[str]:
    """What went wrong, from what was acked and the subscription's backlog after the run.

    Args:
        acked: per consumer, the values of this run's messages it acked.
        count: how many messages the run sent.
        backlog: the fresh subscription's backlog after the run; None when not checked.
    """
    problems = []
    values = [v for vs in acked.values() for v in vs]
    expected = [f"Hello streamfw #{n}" for n in range(1, count + 1)]
    missing = [v for v in expected if v not in values]
    if missing:
        problems.append(f"never delivered and acked: {', '.join(map(repr, missing))}")
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        problems.append(f"acked more than once: {', '.join(map(repr, twice))}")
    if backlog:
        problems.append(f"the subscription still holds {backlog} unacked message(s)")
    return problems
