"""Benchmark: macrometa transport, producer -> emulator -> consumer, beside raw websocket-client.

``.venv/bin/python -m benchmarks.bench_macrometa [--messages N] [--rounds R] [--pings N] [--json]``

* streamfw: ``macrometa+http://`` to the emulator (plain WS on 127.0.0.1). One producer
  thread calls ``send_async`` (window ``max_pending``), one consumer thread ``receive`` +
  ``ack``; the run ends when every send is confirmed and every message acked.
* floor: two raw websocket-client sockets doing the same exchange through a minimal aiohttp
  relay (no broker, no admin): the producer pipelines ``{"payload", "properties", "context"}``
  frames within the same window and reads every receipt; the consumer decodes base64 + JSON,
  and acks each message. No reconnects, no bookkeeping: what a bare client could reach.

Both servers run in their own processes, so the client side's GIL is not shared with them.
Payload: the shared 1 KiB JSON document. Latency = publish -> received by the consumer, twice:
with one message in flight (send, receive, ack, receipt; ``--pings`` of them), and under the
throughput load (the send time travels in a message property; mostly queueing in the window).
Also the client process's CPU time per message (servers excluded): far steadier than rates on
a shared machine. Runs are interleaved, the order alternating per round; medians reported.
Target: streamfw >= 60% of the floor's rate, every send confirmed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from benchmarks.payload import compact, make_value
from benchmarks.timing import run_threads

WINDOW = 1000
CPU: list[float] = []  # client-process CPU seconds of each threaded run (servers excluded)
RECEIVE_TIMEOUT = 10.0
TARGET = 0.60
KEY = "bench.streamfw.emulator"

_SERVE_EMULATOR = f"""
import sys, time
from streamfw_macrometa.emulator import Emulator
emu = Emulator.start(host="127.0.0.1", port=0, api_keys=[{KEY!r}])
print(emu.port, flush=True)
sys.stdin.read()
emu.stop()
"""

_SERVE_RELAY = """
import asyncio, sys
from aiohttp import web, WSMsgType
consumers = {}
async def producer(request):
    ws = web.WebSocketResponse(); await ws.prepare(request)
    topic = request.match_info["topic"]; n = 0
    async for msg in ws:
        if msg.type != WSMsgType.TEXT: break
        frame = __import__("json").loads(msg.data); n += 1
        mid = f"{n:08d}"
        await ws.send_str(__import__("json").dumps(
            {"result": "ok", "messageId": mid, "context": frame.get("context")}))
        out = __import__("json").dumps({"messageId": mid, "payload": frame["payload"],
            "properties": frame.get("properties", {}), "redeliveryCount": 0})
        c = consumers.get(topic)
        if c is not None: await c.send_str(out)
    return ws
async def consumer(request):
    ws = web.WebSocketResponse(); await ws.prepare(request)
    consumers[request.match_info["topic"]] = ws
    async for msg in ws:
        if msg.type != WSMsgType.TEXT: break   # acks are read and dropped
    return ws
async def main():
    app = web.Application()
    app.router.add_get("/producer/{topic}", producer)
    app.router.add_get("/consumer/{topic}", consumer)
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


class Server:
    """A server in a child process; it prints its port and stops when stdin closes."""

    def __init__(self, code: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def streamfw_run(port: int, value: Any, messages: int) -> tuple[float, list[float]]:
    import streamfw

    latencies: list[float] = []
    url = f"macrometa+http://127.0.0.1:{port}"
    with streamfw.connect(url, api_key=KEY) as client:
        stream = client.stream(f"bench-{uuid.uuid4().hex[:8]}").create()
        with stream.consumer("bench") as consumer, stream.producer(max_pending=WINDOW) as prod:

            def produce() -> None:
                futures = [
                    prod.send_async(value, properties={"t": repr(time.perf_counter())})
                    for _ in range(messages)
                ]
                prod.flush(60)
                for f in futures:
                    f.result(0)  # every send confirmed, or the run fails

            def consume() -> None:
                for _ in range(messages):
                    msg = consumer.receive(RECEIVE_TIMEOUT)
                    if msg is None:
                        raise TimeoutError("streamfw: a message did not arrive")
                    latencies.append(time.perf_counter() - float(msg.properties["t"]))
                    msg.ack()
                if msg.value != value:
                    raise AssertionError("streamfw: the value was not decoded intact")

            elapsed, cpu = run_threads(consume, produce)
            CPU.append(cpu)
        stream.delete(force=True)
    return messages / elapsed, latencies


def raw_run(port: int, value: Any, messages: int) -> tuple[float, list[float]]:
    import websocket

    topic = uuid.uuid4().hex
    opts = {"skip_utf8_validation": True, "timeout": RECEIVE_TIMEOUT}
    cons = websocket.create_connection(f"ws://127.0.0.1:{port}/consumer/{topic}", **opts)
    prod = websocket.create_connection(f"ws://127.0.0.1:{port}/producer/{topic}", **opts)
    window = threading.Semaphore(WINDOW)
    latencies: list[float] = []

    def produce() -> None:
        def receipts() -> None:
            for _ in range(messages):
                frame = json.loads(prod.recv())
                if frame["result"] != "ok":
                    raise AssertionError("raw: send refused")
                window.release()

        reader = threading.Thread(target=receipts)
        reader.start()
        for i in range(messages):
            window.acquire()
            payload = base64.b64encode(compact(value)).decode("ascii")
            props = {"t": repr(time.perf_counter())}
            prod.send(json.dumps({"payload": payload, "properties": props, "context": str(i)}))
        reader.join(120)

    def consume() -> None:
        for _ in range(messages):
            frame = json.loads(cons.recv())
            got = json.loads(base64.b64decode(frame["payload"]))
            latencies.append(time.perf_counter() - float(frame["properties"]["t"]))
            cons.send(json.dumps({"messageId": frame["messageId"]}))
        if got != value:
            raise AssertionError("raw: the value was not decoded intact")

    try:
        elapsed, cpu = run_threads(consume, produce)
        CPU.append(cpu)
    finally:
        prod.close()
        cons.close()
    return messages / elapsed, latencies


def streamfw_pingpong(port: int, value: Any, messages: int) -> list[float]:
    """One message in flight: send, receive, ack, wait for the receipt; latencies in s."""
    import streamfw

    out: list[float] = []
    with streamfw.connect(f"macrometa+http://127.0.0.1:{port}", api_key=KEY) as client:
        stream = client.stream(f"lat-{uuid.uuid4().hex[:8]}").create()
        with stream.consumer("lat") as consumer, stream.producer() as producer:
            for _ in range(messages):
                start = time.perf_counter()
                future = producer.send_async(value)
                msg = consumer.receive(RECEIVE_TIMEOUT)
                if msg is None:
                    raise TimeoutError("streamfw: a message did not arrive")
                out.append(time.perf_counter() - start)
                msg.ack()
                future.result(RECEIVE_TIMEOUT)
        stream.delete(force=True)
    return out


def raw_pingpong(port: int, value: Any, messages: int) -> list[float]:
    import websocket

    topic = uuid.uuid4().hex
    opts = {"skip_utf8_validation": True, "timeout": RECEIVE_TIMEOUT}
    cons = websocket.create_connection(f"ws://127.0.0.1:{port}/consumer/{topic}", **opts)
    prod = websocket.create_connection(f"ws://127.0.0.1:{port}/producer/{topic}", **opts)
    out: list[float] = []
    try:
        for i in range(messages):
            start = time.perf_counter()
            payload = base64.b64encode(compact(value)).decode("ascii")
            prod.send(json.dumps({"payload": payload, "context": str(i)}))
            frame = json.loads(cons.recv())
            json.loads(base64.b64decode(frame["payload"]))
            out.append(time.perf_counter() - start)
            cons.send(json.dumps({"messageId": frame["messageId"]}))
            if json.loads(prod.recv())["result"] != "ok":
                raise AssertionError("raw: send refused")
    finally:
        prod.close()
        cons.close()
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pings", type=int, default=2000, help="one-in-flight messages per round")
    parser.add_argument("--json", action="store_true", help="print raw figures as JSON")
    args = parser.parse_args(argv)
    value = make_value()
    emulator, relay = Server(_SERVE_EMULATOR), Server(_SERVE_RELAY)
    try:
        runs = {
            "streamfw": lambda: streamfw_run(emulator.port, value, args.messages),
            "floor": lambda: raw_run(relay.port, value, args.messages),
        }
        for run in runs.values():  # warm-up, not kept
            run()
        rates: dict[str, list[float]] = {k: [] for k in runs}
        p50: dict[str, list[float]] = {k: [] for k in runs}
        p99: dict[str, list[float]] = {k: [] for k in runs}
        pings = {
            "streamfw": lambda: streamfw_pingpong(emulator.port, value, args.pings),
            "floor": lambda: raw_pingpong(relay.port, value, args.pings),
        }
        cpu_us: dict[str, list[float]] = {k: [] for k in runs}
        idle50: dict[str, list[float]] = {k: [] for k in runs}
        idle99: dict[str, list[float]] = {k: [] for k in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % 2 :] + names[: r % 2]:  # alternate who goes first
                rate, lat = runs[name]()
                rates[name].append(rate)
                cpu_us[name].append(CPU[-1] / args.messages * 1e6)
                p50[name].append(pct(lat, 0.50))
                p99[name].append(pct(lat, 0.99))
                idle = pings[name]()
                idle50[name].append(pct(idle, 0.50))
                idle99[name].append(pct(idle, 0.99))
    finally:
        emulator.close()
        relay.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["streamfw"] / med["floor"]
    if args.json:
        figures = {
            "rates": rates,
            "p50": p50,
            "p99": p99,
            "idle_p50": idle50,
            "idle_p99": idle99,
            "client_cpu_us_per_msg": cpu_us,
            "ratio": ratio,
        }
        print(json.dumps(figures))
    print(
        f"macrometa benchmark: 1 KiB messages, medians of {args.rounds} interleaved rounds;"
        f" throughput: {args.messages} msgs, window {WINDOW}; latency: publish -> received,"
        f" one in flight ({args.pings} msgs) and under the throughput load"
    )
    print(
        f"{'':10} {'msgs/s':>8} {'client CPU us/msg':>18} {'1-in-flight p50/p99 ms':>23}"
        f" {'loaded p50/p99 ms':>19}"
    )

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1e3:.2f}"

    for name in names:
        idle = f"{ms(idle50[name])} / {ms(idle99[name])}"
        loaded = f"{ms(p50[name])} / {ms(p99[name])}"
        cpu = statistics.median(cpu_us[name])
        print(f"{name:10} {med[name]:>8.0f} {cpu:>18.0f} {idle:>23} {loaded:>19}")
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"streamfw / floor = {ratio:.2f} (target >= {TARGET:.2f}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
