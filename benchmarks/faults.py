"""Fault benchmark: N messages through the macrometa transport while everything breaks.

``.venv/bin/python -m benchmarks.faults [--messages N] [--cuts K] [--rate R] [--seed S]``

The emulator runs as ``streamfw emulator --auto-create`` in a child process; the client
talks to it through ``streamfw.testing.proxy.Proxy``. One producer sends the integers
0..N-1 (``send_async``, a window of 200) at about ``--rate`` messages a second; a consumer on
a Shared subscription (``--type exclusive``: an Exclusive one) receives and acks each one.
Meanwhile, in a random order (``--seed``):

* ``cut``: the proxy drops every connection, both sides at once, mid-frame if need be;
* ``half-open``: the server side is closed, the client side stays open and silent;
* ``blackhole``: both sides stay open and nothing passes either way (a cut cable);
* ``kill consumer`` (Shared only): a second consumer in a child process on the same
  subscription, holding every message it got unacked, is killed with SIGKILL;
* ``restart emulator``: the emulator is killed with SIGKILL and started again on the same
  port (its memory, and every message in it, is gone).

Printed: confirmed messages lost (must be 0), duplicates and whether each was a resend of a
send that was unconfirmed when a fault struck, acked ids shown again (must be 0), the time
from each fault until a send made after it is confirmed and a message sent after it is
received, and any hang (every wait is bounded). Messages confirmed before the restart and
never received are counted apart, as lost with the server's memory: an in-memory server
cannot keep them. A message confirmed after the restart must arrive like any other.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import attrs

from benchmarks.servers import KEY, EmulatorProcess
from streamfw.testing.proxy import Proxy

WINDOW = 200
FINAL_WAIT = 60.0  # seconds for the last confirmations, then again for the last deliveries


@attrs.define
class Fault:
    kind: str
    at_index: int
    started: float = 0.0
    producer_back: float | None = None  # first confirmation of a send begun after the fault
    consumer_back: float | None = None  # first delivery of a message sent after the fault
    note: str = ""

    def recovery(self) -> str:
        def fmt(t: float | None) -> str:
            return "NEVER" if t is None else f"{t - self.started:5.1f} s"

        return f"producer {fmt(self.producer_back)}, consumer {fmt(self.consumer_back)}"


@attrs.define
class Run:
    """Everything both sides saw, with monotonic timestamps."""

    sent_at: dict[int, float] = attrs.Factory(dict)
    confirmed_at: dict[int, float] = attrs.Factory(dict)
    failed: dict[int, str] = attrs.Factory(dict)
    received: dict[int, list[Any]] = attrs.Factory(dict)  # value -> message ids, in order
    received_at: dict[int, float] = attrs.Factory(dict)
    acked: set[Any] = attrs.Factory(set)
    reshown: list[Any] = attrs.Factory(list)
    consumer_errors: list[str] = attrs.Factory(list)
    victim_held: set[int] = attrs.Factory(set)


def victim_main(port: int, stream: str) -> None:
    """The consumer that dies: take messages, print each value, never ack, wait for SIGKILL."""
    from streamfw.client import connect

    client = connect(
        f"macrometa+http://127.0.0.1:{port}",
        api_key=KEY,
        timeout=5.0,
        reconnect_deadline=60.0,
        extensions=True,  # initial_position="earliest": a subscription the restart re-creates
    )
    consumer = client.stream(stream).consumer(
        "sub", type="shared", initial_position="earliest", receiver_queue_size=20
    )
    print("ready", flush=True)
    while True:
        m = consumer.receive(1.0)
        if m is not None:
            print(m.value, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run = Run()
        heartbeat = [] if args.ws_heartbeat is None else ["--ws-heartbeat", str(args.ws_heartbeat)]
        self.emu = EmulatorProcess(0, "--auto-create", *heartbeat)
        self.proxy = Proxy(self.emu.port)
        self.stream = f"faults{uuid.uuid4().hex[:8]}"
        self.faults: list[Fault] = []
        self.restart_at: float | None = None  # when the restarted emulator listened
        self.stop = threading.Event()
        self.victim: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()

    # ----------------------------------------------------------------- the two sides

    def client(self) -> Any:
        from streamfw.client import connect

        return connect(
            f"macrometa+http://127.0.0.1:{self.proxy.port}",
            api_key=KEY,
            timeout=2.0,
            ping_interval=1.0,
            reconnect_deadline=60.0,
            extensions=True,  # initial_position="earliest" after the emulator restarts
        )

    def consume(self, consumer: Any) -> None:
        run = self.run
        while not self.stop.is_set():
            try:
                m = consumer.receive(0.2)
            except Exception as exc:
                run.consumer_errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.2)
                continue
            if m is None:
                continue
            now = time.monotonic()
            with self.lock:
                if m.id in run.acked:
                    run.reshown.append(m.id)
                run.received.setdefault(m.value, []).append(m.id)
                run.received_at.setdefault(m.value, now)
                for f in self.faults:
                    if f.consumer_back is None and f.started and run.sent_at[m.value] > f.started:
                        f.consumer_back = now
            try:
                m.ack()
            except Exception as exc:
                run.consumer_errors.append(f"ack: {type(exc).__name__}: {exc}")
                continue
            run.acked.add(m.id)

    def confirmed(self, value: int, future: cf.Future[Any]) -> None:
        now = time.monotonic()
        with self.lock:
            if future.exception() is not None:
                self.run.failed[value] = f"{type(future.exception()).__name__}"
                return
            self.run.confirmed_at[value] = now
            for f in self.faults:
                if f.producer_back is None and f.started and self.run.sent_at[value] > f.started:
                    f.producer_back = now

    # ------------------------------------------------------------------------ faults

    def schedule(self) -> dict[int, Fault]:
        kinds = ["cut"] * self.args.cuts + ["half-open", "blackhole", "restart emulator"]
        if self.args.type == "shared":  # the killed consumer's messages go to the survivor
            kinds.append("kill consumer")
        rng = random.Random(self.args.seed)
        rng.shuffle(kinds)
        n = self.args.messages
        step = n // (len(kinds) + 1)
        return {step * (i + 1): Fault(kind, step * (i + 1)) for i, kind in enumerate(kinds)}

    def strike(self, fault: Fault) -> None:
        fault.started = time.monotonic()
        if fault.kind == "cut":
            fault.note = f"{self.proxy.cut()} sockets"
        elif fault.kind == "half-open":
            self.proxy.half_open()
        elif fault.kind == "blackhole":
            fault.note = f"{self.proxy.blackhole()} connections"
        elif fault.kind == "kill consumer":
            self.kill_victim(fault)
        elif fault.kind == "restart emulator":
            self.emu.kill()
            self.proxy.cut()
            time.sleep(0.5)
            self.emu.start()
            # The line between the two servers: a receipt read before the new one listens
            # came from the old one (even one read just after the kill, from a socket buffer).
            self.restart_at = time.monotonic()
            fault.note = f"down {self.restart_at - fault.started:.1f} s"
        self.faults.append(fault)

    def start_victim(self) -> None:
        argv = [sys.executable, "-m", "benchmarks.faults", "--victim", str(self.emu.port)]
        self.victim = subprocess.Popen(
            [*argv, self.stream], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        ready = threading.Event()

        def read(out: Any) -> None:
            for line in out:
                if line.strip() == "ready":
                    ready.set()
                elif line.strip().isdigit():
                    with self.lock:
                        self.run.victim_held.add(int(line))

        threading.Thread(target=read, args=(self.victim.stdout,), daemon=True).start()
        if not ready.wait(30):
            raise RuntimeError("the victim consumer did not start in 30 s")

    def kill_victim(self, fault: Fault) -> None:
        assert self.victim is not None
        self.victim.kill()
        self.victim.wait(10)
        time.sleep(0.1)  # its last printed lines
        fault.note = f"it held {len(self.run.victim_held)} unacked"

    # --------------------------------------------------------------------------- run

    def main(self) -> int:
        args = self.args
        client = self.client()
        stream = client.stream(self.stream).create()
        consumer = stream.consumer(
            "sub", type=args.type, initial_position="earliest", receiver_queue_size=100
        )
        producer = stream.producer(max_pending=WINDOW, send_timeout=120.0)
        if args.type == "shared":
            self.start_victim()
        reader = threading.Thread(target=self.consume, args=(consumer,), daemon=True)
        reader.start()
        plan = self.schedule()
        futures: dict[int, cf.Future[Any]] = {}
        begin = time.monotonic()
        for i in range(args.messages):
            if i in plan:
                self.strike(plan[i])
            pause = begin + i / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self.run.sent_at[i] = time.monotonic()
            try:
                f = producer.send_async(i)
            except Exception as exc:
                self.run.failed[i] = f"{type(exc).__name__}: {exc}"
                continue
            futures[i] = f
            f.add_done_callback(lambda fut, i=i: self.confirmed(i, fut))
        _, pending = cf.wait(futures.values(), timeout=FINAL_WAIT)
        hangs = [f"{len(pending)} sends neither confirmed nor failed {FINAL_WAIT:.0f} s after"]
        deadline = time.monotonic() + FINAL_WAIT
        while time.monotonic() < deadline and not self.everything_arrived():
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates
        self.stop.set()
        reader.join(5)
        if reader.is_alive():
            hangs.append("the consumer thread did not stop in 5 s")
        self.report(time.monotonic() - begin, hangs if pending or reader.is_alive() else [])
        closer = threading.Thread(target=_close_all, args=(producer, consumer, client), daemon=True)
        closer.start()
        closer.join(30)
        if closer.is_alive():
            print("  HANG: closing the producer, consumer and client took over 30 s")
        return 0

    def everything_arrived(self) -> bool:
        with self.lock:
            waiting = set(self.run.confirmed_at) - set(self.run.received)
            if self.restart_at is not None:
                waiting = {v for v in waiting if self.run.confirmed_at[v] > self.restart_at}
            return not waiting

    # ------------------------------------------------------------------------ report

    def unconfirmed_when_struck(self, value: int) -> bool:
        """Was the send of ``value`` begun and not yet confirmed when some fault struck?"""
        sent = self.run.sent_at.get(value, 0.0)
        done = self.run.confirmed_at.get(value, float("inf"))
        return any(sent <= f.started <= done for f in self.faults)

    def report(self, took: float, hangs: list[str]) -> None:
        run = self.run
        with self.lock:
            confirmed = set(run.confirmed_at)
            restart = self.restart_at
            before = {v for v in confirmed if restart is not None and run.confirmed_at[v] < restart}
            missing = confirmed - set(run.received)
            lost_memory = sorted(missing & before)
            lost = sorted(missing - before)
            dups = {v: ids for v, ids in run.received.items() if len(ids) > 1}
        in_window = [v for v in dups if self.unconfirmed_when_struck(v)]
        outside = sorted(set(dups) - set(in_window))
        same_id = [v for v, ids in dups.items() if len(set(ids)) < len(ids)]
        print(
            f"streamfw fault benchmark: {self.args.messages:,} messages, {self.args.type}"
            f" subscription, seed {self.args.seed}, {took:.1f} s"
        )
        print(
            f"  sent {len(run.sent_at):,}, confirmed {len(confirmed):,}, failed {len(run.failed)}"
        )
        for f in self.faults:
            note = f" ({f.note})" if f.note else ""
            print(f"  {f.kind:17} at #{f.at_index:<6} recovered: {f.recovery()}{note}")
        print(f"  LOST CONFIRMED (must be 0): {len(lost)}  {_sample(lost)}")
        if restart is not None:
            print(
                f"  lost with the server's memory (confirmed before the restart, never "
                f"received): {len(lost_memory)}"
            )
        print(
            f"  duplicates: {len(dups)} values; {len(in_window)} inside the unconfirmed window,"
            f" {len(outside)} outside {_sample(outside)}; {len(same_id)} with a repeated id"
        )
        print(f"  ACKED IDS SEEN AGAIN (must be 0): {len(run.reshown)}  {_sample(run.reshown)}")
        if self.victim is not None:
            held = run.victim_held
            back = len(held & set(run.received))
            print(f"  killed consumer held {len(held)} unacked; {back} reached the survivor")
        if run.failed:
            kinds = sorted(set(run.failed.values()))
            print(f"  sends failed: {len(run.failed)} ({', '.join(kinds)[:200]})")
        if run.consumer_errors:
            print(f"  consumer errors: {len(run.consumer_errors)}, first: {run.consumer_errors[0]}")
        errors = self.emu.errors()
        print(f"  emulator ERROR/traceback log lines: {len(errors)} {_sample(errors)}")
        print(f"  HANGS: {'; '.join(hangs) if hangs else 'none'}")

    def close(self) -> None:
        self.stop.set()
        if self.victim is not None and self.victim.poll() is None:
            self.victim.kill()
            self.victim.wait(10)
        self.proxy.close()
        self.emu.stop()


def _close_all(*things: Any) -> None:
    for thing in things:
        try:
            thing.close()
        except Exception as exc:
            print(f"  close: {type(exc).__name__}: {exc}")


def _sample(items: list[Any], n: int = 5) -> str:
    items = list(items)
    if not items:
        return ""
    more = f" ... (+{len(items) - n})" if len(items) > n else ""
    return "[" + ", ".join(str(x).strip() for x in items[:n]) + more + "]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages (5,000)")
    parser.add_argument("--cuts", type=int, default=6, help="connection cuts (6)")
    parser.add_argument("--rate", type=float, default=250.0, help="sends per second (250)")
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(2), "big"))
    parser.add_argument(
        "--type",
        choices=["shared", "exclusive"],
        default="shared",
        help="subscription type (shared); exclusive: a blackholed consumer holds the"
        " subscription until the server drops it (no killed second consumer then)",
    )
    parser.add_argument(
        "--ws-heartbeat",
        type=float,
        help="the emulator's --ws-heartbeat: how soon it drops a silent consumer (its default)",
    )
    parser.add_argument("--victim", nargs=2, metavar=("PORT", "STREAM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.victim:
        victim_main(int(args.victim[0]), args.victim[1])
        return 0
    bench = Bench(args)
    try:
        return bench.main()
    finally:
        bench.close()


if __name__ == "__main__":
    raise SystemExit(main())
