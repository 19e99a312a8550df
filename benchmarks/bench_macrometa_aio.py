"""Benchmark: the asyncio macrometa transport beside raw aiohttp sockets and the sync transport.

``.venv/bin/python -m benchmarks.bench_macrometa_aio [--messages N] [--rounds R] [--pings N]``

Three exchanges in the same run, interleaved round by round (order rotated), medians kept:

* aio: ``streamfw.aio`` over ``macrometa+http://`` to the emulator, producer and consumer in
  one process on one event loop: a producer task calls ``send_async`` (window ``WINDOW``) and
  waits for every confirmation, a consumer task ``receive`` + ``ack`` every message.
* aiohttp floor: two raw ``aiohttp`` client WebSockets doing the same exchange through the
  minimal relay of ``bench_macrometa`` (no broker, no admin, no bookkeeping): the producer
  pipelines publish frames within the same window and reads every receipt, the consumer
  decodes base64 + JSON and acks each message. What a bare aiohttp client could reach.
* sync: the threaded macrometa transport, as ``bench_macrometa`` runs it (two threads).

Servers run in child processes. Beside each rate: the client process's CPU per message, and
the server's (emulator or relay, read from ``/proc``), so a reader can tell which side limits
a run. One-in-flight latency (send, receive, ack, receipt) p50/p99. Memory: the emulator's
resident bytes per backlogged 1 KiB message (``BACKLOG`` kept unacked), and the async
client's Python heap per in-flight message (``tracemalloc``, the emulator stopped with SIGSTOP
so nothing is confirmed). Payload: the shared 1 KiB JSON document.

Targets (issue 10): aio >= 0.6x the aiohttp floor, and >= 2x the sync transport.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.bench_macrometa import (
    _SERVE_EMULATOR,
    _SERVE_RELAY,
    CPU,
    KEY,
    RECEIVE_TIMEOUT,
    WINDOW,
    Server,
    pct,
    streamfw_pingpong,
    streamfw_run,
)
from benchmarks.payload import compact, make_value
from benchmarks.servers import memory

FLOOR_TARGET = 0.60
SYNC_TARGET = 2.0
BACKLOG = 20_000  # messages kept unacked for the emulator's memory figure
IN_FLIGHT = 5_000  # unconfirmed sends for the client's memory figure
_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> float:
    """CPU seconds a live child process used so far (user + system)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def url(port: int) -> str:
    return f"macrometa+http://127.0.0.1:{port}"


# ------------------------------------------------------------------------------ streamfw.aio


async def aio_exchange(port: int, value: Any, messages: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for ``messages`` confirmed and acked."""
    import streamfw.aio

    async with streamfw.aio.connect(url(port), api_key=KEY) as client:
        stream = client.stream(f"bench-{uuid.uuid4().hex[:8]}")
        await stream.create()
        async with (
            stream.consumer("bench") as consumer,
            stream.producer(max_pending=WINDOW) as producer,
        ):

            async def produce() -> None:
                futures = [await producer.send_async(value) for _ in range(messages)]
                await producer.flush(60)
                for f in futures:
                    f.result()  # every send confirmed, or the run fails

            async def consume() -> None:
                msg = None
                for _ in range(messages):
                    msg = await consumer.receive(timeout=RECEIVE_TIMEOUT)
                    if msg is None:
                        raise TimeoutError("aio: a message did not arrive")
                    await msg.ack()
                if msg is None or msg.value != value:
                    raise AssertionError("aio: the value was not decoded intact")

            start, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(consume(), produce())
            elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        await stream.delete(force=True)
    return elapsed, used


async def aio_pingpong(port: int, value: Any, messages: int) -> list[float]:
    import streamfw.aio

    out: list[float] = []
    async with streamfw.aio.connect(url(port), api_key=KEY) as client:
        stream = client.stream(f"lat-{uuid.uuid4().hex[:8]}")
        await stream.create()
        async with stream.consumer("lat") as consumer, stream.producer() as producer:
            for _ in range(messages):
                start = time.perf_counter()
                future = await producer.send_async(value)
                msg = await consumer.receive(timeout=RECEIVE_TIMEOUT)
                if msg is None:
                    raise TimeoutError("aio: a message did not arrive")
                out.append(time.perf_counter() - start)
                await msg.ack()
                await future
        await stream.delete(force=True)
    return out


# --------------------------------------------------------------------------- aiohttp floor


async def floor_exchange(port: int, value: Any, messages: int) -> tuple[float, float]:
    import aiohttp

    topic = uuid.uuid4().hex
    async with aiohttp.ClientSession() as session:
        cons = await session.ws_connect(f"ws://127.0.0.1:{port}/consumer/{topic}")
        prod = await session.ws_connect(f"ws://127.0.0.1:{port}/producer/{topic}")
        window = asyncio.Semaphore(WINDOW)

        async def receipts() -> None:
            for _ in range(messages):
                frame = json.loads((await prod.receive()).data)
                if frame["result"] != "ok":
                    raise AssertionError("floor: send refused")
                window.release()

        async def produce() -> None:
            reader = asyncio.create_task(receipts())
            for i in range(messages):
                await window.acquire()
                payload = base64.b64encode(compact(value)).decode("ascii")
                await prod.send_str(json.dumps({"payload": payload, "context": str(i)}))
            await reader

        async def consume() -> None:
            got = None
            for _ in range(messages):
                frame = json.loads((await cons.receive()).data)
                got = json.loads(base64.b64decode(frame["payload"]))
                await cons.send_str(json.dumps({"messageId": frame["messageId"]}))
            if got != value:
                raise AssertionError("floor: the value was not decoded intact")

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(consume(), produce())
        elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        await prod.close()
        await cons.close()
    return elapsed, used


async def floor_pingpong(port: int, value: Any, messages: int) -> list[float]:
    import aiohttp

    topic = uuid.uuid4().hex
    out: list[float] = []
    async with aiohttp.ClientSession() as session:
        cons = await session.ws_connect(f"ws://127.0.0.1:{port}/consumer/{topic}")
        prod = await session.ws_connect(f"ws://127.0.0.1:{port}/producer/{topic}")
        for i in range(messages):
            start = time.perf_counter()
            payload = base64.b64encode(compact(value)).decode("ascii")
            await prod.send_str(json.dumps({"payload": payload, "context": str(i)}))
            frame = json.loads((await cons.receive()).data)
            json.loads(base64.b64decode(frame["payload"]))
            out.append(time.perf_counter() - start)
            await cons.send_str(json.dumps({"messageId": frame["messageId"]}))
            if json.loads((await prod.receive()).data)["result"] != "ok":
                raise AssertionError("floor: send refused")
        await prod.close()
        await cons.close()
    return out


# ---------------------------------------------------------------------------------- memory


def emulator_bytes_per_backlogged(emulator: Server, value: Any) -> float:
    """Resident bytes the emulator holds per unacked 1 KiB message (``BACKLOG`` of them)."""
    import streamfw

    with streamfw.connect(url(emulator.port), api_key=KEY) as client:
        stream = client.stream(f"mem-{uuid.uuid4().hex[:8]}").create()
        stream.consumer("keep").close()  # a durable subscription keeps every message
        _, before = memory(emulator.proc.pid)
        with stream.producer(max_pending=WINDOW) as producer:
            for _ in range(BACKLOG):
                producer.send_async(value)
            producer.flush(60)
        time.sleep(0.5)
        _, after = memory(emulator.proc.pid)
        if stream.backlog() != BACKLOG:
            raise AssertionError("memory: the backlog is not what was sent")
        stream.delete(force=True)
    return (after - before) / BACKLOG


async def client_bytes_per_in_flight(emulator: Server, value: Any) -> float:
    """Python heap the async producer holds per unconfirmed send (``IN_FLIGHT`` of them)."""
    import streamfw.aio

    async with streamfw.aio.connect(url(emulator.port), api_key=KEY) as client:
        stream = client.stream(f"mem-{uuid.uuid4().hex[:8]}")
        await stream.create()
        async with stream.producer(max_pending=IN_FLIGHT) as producer:
            await producer.send(value)  # warm: first-use allocations are not per message
            os.kill(emulator.proc.pid, signal.SIGSTOP)  # nothing is confirmed meanwhile
            try:
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
                futures = [await producer.send_async(value) for _ in range(IN_FLIGHT)]
                await asyncio.sleep(0.2)  # let the writer task hand every frame to the socket
                held = tracemalloc.get_traced_memory()[0] - before
                tracemalloc.stop()
            finally:
                os.kill(emulator.proc.pid, signal.SIGCONT)
            await asyncio.gather(*futures)
        await stream.delete(force=True)
    return held / IN_FLIGHT


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pings", type=int, default=2000, help="one-in-flight messages per round")
    parser.add_argument("--json", action="store_true", help="print raw figures as JSON")
    args = parser.parse_args(argv)
    value = make_value()
    n = args.messages
    emulator, relay = Server(_SERVE_EMULATOR), Server(_SERVE_RELAY)

    def sync_exchange() -> tuple[float, float]:
        rate, _ = streamfw_run(emulator.port, value, n)
        return n / rate, CPU[-1]

    runs: dict[str, tuple[Server, Callable[[], tuple[float, float]]]] = {
        "aio": (emulator, lambda: asyncio.run(aio_exchange(emulator.port, value, n))),
        "aiohttp floor": (relay, lambda: asyncio.run(floor_exchange(relay.port, value, n))),
        "sync": (emulator, sync_exchange),
    }
    pings: dict[str, Callable[[], list[float]]] = {
        "aio": lambda: asyncio.run(aio_pingpong(emulator.port, value, args.pings)),
        "aiohttp floor": lambda: asyncio.run(floor_pingpong(relay.port, value, args.pings)),
        "sync": lambda: streamfw_pingpong(emulator.port, value, args.pings),
    }
    names = list(runs)
    rates: dict[str, list[float]] = {k: [] for k in names}
    client_us: dict[str, list[float]] = {k: [] for k in names}
    server_us: dict[str, list[float]] = {k: [] for k in names}
    p50: dict[str, list[float]] = {k: [] for k in names}
    p99: dict[str, list[float]] = {k: [] for k in names}
    try:
        for _, run in runs.values():  # warm-up, not kept
            run()
        for r in range(args.rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                server, run = runs[name]
                before = server_cpu(server.proc.pid)
                elapsed, used = run()
                server_us[name].append((server_cpu(server.proc.pid) - before) / n * 1e6)
                rates[name].append(n / elapsed)
                client_us[name].append(used / n * 1e6)
                lat = pings[name]()
                p50[name].append(pct(lat, 0.50))
                p99[name].append(pct(lat, 0.99))
        backlog_bytes = emulator_bytes_per_backlogged(emulator, value)
        flight_bytes = asyncio.run(client_bytes_per_in_flight(emulator, value))
    finally:
        emulator.close()
        relay.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    vs_floor = med["aio"] / med["aiohttp floor"]
    vs_sync = med["aio"] / med["sync"]
    if args.json:
        print(
            json.dumps(
                {
                    "rates": rates,
                    "client_cpu_us_per_msg": client_us,
                    "server_cpu_us_per_msg": server_us,
                    "idle_p50": p50,
                    "idle_p99": p99,
                    "emulator_bytes_per_backlogged_message": backlog_bytes,
                    "client_bytes_per_in_flight_message": flight_bytes,
                }
            )
        )
    print(
        f"macrometa asyncio benchmark: 1 KiB JSON, {n} msgs per run, window {WINDOW},"
        f" medians of {args.rounds} interleaved rounds; latency: one in flight"
        f" ({args.pings} msgs)"
    )
    print(
        f"{'':14} {'msgs/s':>8} {'client CPU us/msg':>18} {'server CPU us/msg':>18}"
        f" {'1-in-flight p50/p99 ms':>23}"
    )
    for name in names:
        shown = (
            f"{statistics.median(p50[name]) * 1e3:.2f} / {statistics.median(p99[name]) * 1e3:.2f}"
        )
        print(
            f"{name:14} {med[name]:>8.0f} {statistics.median(client_us[name]):>18.1f}"
            f" {statistics.median(server_us[name]):>18.1f} {shown:>23}"
        )
    print(
        f"aio / aiohttp floor = {vs_floor:.2f} (target >= {FLOOR_TARGET:.2f}):"
        f" {'PASS' if vs_floor >= FLOOR_TARGET else 'MISS'}"
    )
    print(
        f"aio / sync          = {vs_sync:.2f} (target >= {SYNC_TARGET:.2f}):"
        f" {'PASS' if vs_sync >= SYNC_TARGET else 'MISS'}"
    )
    print(
        f"memory: emulator {backlog_bytes:,.0f} bytes per backlogged 1 KiB message"
        f" ({BACKLOG} kept); async client {flight_bytes:,.0f} bytes per in-flight message"
        f" ({IN_FLIGHT} unconfirmed)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
