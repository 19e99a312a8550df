"""Peak memory of the emulator and of a client under each hostile input of issue 8.

``.venv/bin/python -m benchmarks.resources [--only NAME ...] [--retention N] [--json]``

Every victim runs in a child process: the emulator as ``streamfw emulator``, a client as
``python -m benchmarks.resources --client NAME``. The figure is the child's peak resident set
(``VmHWM``) above its resident set just before the hostile part began, read from /proc while
it is alive, so what the benchmark process itself allocates never counts. Each row also says
what the victim did (the error it raised, the status a legitimate request got), and every
wait is bounded: a victim that does not finish in time is reported as a hang and killed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import requests
import websocket

from benchmarks import hostile
from benchmarks.servers import KEY, EmulatorProcess, memory, mib

TENANT = "bench"
HEADERS = {"Authorization": f"apikey {KEY}"}
CLIENT_DEADLINE = 120.0


# ------------------------------------------------------------------ client-side victims


def _client(port: int, **options: Any) -> Any:
    from streamfw.client import connect

    opts = {"api_key": KEY, "timeout": 10.0, "reconnect_deadline": 10.0, **options}
    return connect(f"macrometa+http://127.0.0.1:{port}", **opts)


def _ws_path(kind: str, topic: str, sub: str = "") -> str:
    path = f"/_ws/ws/v2/{kind}/persistent/{TENANT}/c8global._system/{topic}"
    return path + ("/" + sub if sub else "")


def client_bomb(emu_port: int, _: int) -> str:
    """A consumer receives 2 KB tagged bytes+zlib+zlib that inflate to 1 GiB."""
    payload = hostile.bomb()
    client = _client(emu_port)
    stream = client.stream(f"bomb{uuid.uuid4().hex[:8]}").create()
    consumer = stream.consumer("sub")
    raw = websocket.create_connection(
        f"ws://127.0.0.1:{emu_port}" + _ws_path("producer", f"c8globals.{stream.name}"),
        header=[f"Authorization: apikey {KEY}"],
        timeout=10,
    )
    frame = {
        "payload": base64.b64encode(payload).decode(),
        "properties": {"streamfw-codec": "bytes+zlib+zlib"},
    }
    raw.send(json.dumps(frame))
    raw.recv()
    raw.close()
    _mark()
    with stream.producer() as p:
        p.send("after the bomb")
    outcome = []
    for _ in range(2):
        try:
            m = consumer.receive(60)
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {str(exc)[:80]}")
            continue
        if m is None:
            outcome.append("nothing in 60 s")
        else:
            outcome.append(f"value of {len(m.value)} B" if len(m.value) > 100 else repr(m.value))
            m.ack()
    client.close()
    return "; ".join(outcome)


def client_ws_frame(emu_port: int, fake_port: int) -> str:
    """The WebSocket side is a fake server that sends one 200 MB delivery frame."""
    client = _client(emu_port, ws_url=f"ws://127.0.0.1:{fake_port}", reconnect_deadline=5.0)
    stream = client.stream(f"big{uuid.uuid4().hex[:8]}").create()
    _mark()
    try:
        consumer = stream.consumer("sub")
        m = consumer.receive(60)
        outcome = "nothing in 60 s" if m is None else f"a message of {len(m.value)} B"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:80]}"
    client.close()
    return outcome


def client_rest_body(_: int, fake_port: int) -> str:
    """The REST side is a fake server answering every request with a 300 MB body."""
    _mark()
    try:
        client = _client(fake_port, timeout=60.0)
        client.streams()
        return "accepted the body"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:80]}"


def client_slow_rest(_: int, fake_port: int) -> str:
    """The REST side answers one byte a second; ``connect(timeout=2)`` must end in ~2 s."""
    _mark()
    start = time.monotonic()
    try:
        client = _client(fake_port, timeout=2.0)
        client.streams()
        what = "succeeded"
    except Exception as exc:
        what = f"{type(exc).__name__}"
    return f"{what} after {time.monotonic() - start:.1f} s (timeout=2)"


CLIENTS: dict[str, Callable[[int, int], str]] = {
    "bomb": client_bomb,
    "ws_frame": client_ws_frame,
    "rest_body": client_rest_body,
    "slow_rest": client_slow_rest,
}
_BASE: list[int] = []


def _mark() -> None:
    """The hostile part starts now: remember the resident set to measure growth from."""
    _BASE.append(memory(os.getpid())[1])


def _client_main(name: str, emu_port: int, fake_port: int) -> None:
    try:
        outcome = CLIENTS[name](emu_port, fake_port)
    except Exception as exc:
        traceback.print_exc()
        outcome = f"{type(exc).__name__}: {str(exc)[:80]}"
    peak, now = memory(os.getpid())
    base = _BASE[0] if _BASE else now
    print(json.dumps({"outcome": outcome, "base": base, "peak": peak, "now": now}), flush=True)


def run_client(name: str, emu_port: int = 0, fake_port: int = 0) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.resources", "--client", name]
    argv += [str(emu_port), str(fake_port)]
    start = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_DEADLINE)
    except subprocess.TimeoutExpired:
        return {"outcome": f"HANG: no answer in {CLIENT_DEADLINE:.0f} s", "growth": 0}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"outcome": f"client died ({done.returncode}): {done.stderr[-300:]}", "growth": 0}
    result: dict[str, Any] = json.loads(lines[-1])
    result["growth"] = result["peak"] - result["base"]
    result["seconds"] = time.monotonic() - start
    return result


def bomb_row() -> dict[str, Any]:
    with EmulatorProcess() as emu:
        return run_client("bomb", emu.port)


def ws_frame_row() -> dict[str, Any]:
    fake = hostile.FakeServer(hostile.big_ws_frame, 200 * 10**6)
    try:
        with EmulatorProcess() as emu:
            return run_client("ws_frame", emu.port, fake.port)
    finally:
        fake.close()


def rest_body_row() -> dict[str, Any]:
    fake = hostile.FakeServer(hostile.big_http_body, 300 * 10**6)
    try:
        return run_client("rest_body", 0, fake.port)
    finally:
        fake.close()


def slow_rest_row() -> dict[str, Any]:
    fake = hostile.FakeServer(hostile.trickle, 60)
    try:
        return run_client("slow_rest", 0, fake.port)
    finally:
        fake.close()


# ---------------------------------------------------------------- emulator-side victims


class Admin:
    """Authenticated REST calls and raw WebSockets against one emulator process."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.emu = emu
        self.session = requests.Session()
        self.session.headers.update(HEADERS)

    def rest(self, method: str, tail: str, timeout: float = 10.0) -> requests.Response:
        return self.session.request(method, self.emu.url + tail, timeout=timeout)

    def stream(self) -> str:
        name = f"r{uuid.uuid4().hex[:8]}"
        r = self.rest("POST", f"/_fabric/_system/_api/streams/{name}?global=true")
        r.raise_for_status()
        return f"c8globals.{name}"

    def ws(self, kind: str, topic: str, sub: str = "", **query: str) -> websocket.WebSocket:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        url = (
            f"ws://127.0.0.1:{self.emu.port}" + _ws_path(kind, topic, sub) + ("?" + q if q else "")
        )
        return websocket.create_connection(
            url,
            header=[f"Authorization: apikey {KEY}"],
            timeout=10,
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)],
        )

    def publish(self, topic: str, n: int, size: int, window: int = 500) -> tuple[int, int, str]:
        """Pipeline ``n`` messages of ``size`` bytes; return (ok, refused, first refusal)."""
        producer = self.ws("producer", topic)
        room = threading.Semaphore(window)
        counts = {"ok": 0, "refused": 0}
        first: list[str] = []

        def receipts() -> None:
            for _ in range(n):
                try:
                    frame = json.loads(producer.recv())
                except Exception as exc:
                    first.append(f"receipts stopped: {type(exc).__name__}")
                    return
                ok = frame.get("result") == "ok"
                counts["ok" if ok else "refused"] += 1
                if not ok and not first:
                    first.append(f"{frame.get('result')} {frame.get('errorMsg', '')}"[:80])
                room.release()

        reader = threading.Thread(target=receipts, daemon=True)
        reader.start()
        text = json.dumps({"payload": base64.b64encode(os.urandom(size)).decode()})
        for _ in range(n):
            if not room.acquire(timeout=30):
                break
            producer.send(text)
        reader.join(60)
        producer.close()
        return counts["ok"], counts["refused"], first[0] if first else ""

    def works(self) -> str:
        """The status a legitimate authenticated request gets now (or its error)."""
        try:
            return str(self.rest("GET", "/_api/user", timeout=5).status_code)
        except requests.RequestException as exc:
            return type(exc).__name__


def _sample_peak(emu: EmulatorProcess, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.25)
        if emu.proc is not None and emu.proc.poll() is not None:
            return


def _emu_result(emu: EmulatorProcess, base: int, outcome: str) -> dict[str, Any]:
    peak, now = emu.memory()
    errors = len(emu.errors())
    if errors:
        outcome += f"; {errors} ERROR/traceback lines in its log"
    return {"outcome": outcome, "base": base, "peak": peak, "now": now, "growth": peak - base}


def non_reading_row() -> dict[str, Any]:
    """A consumer with ackTimeoutMillis=100 that never reads 1,000 messages of 8 KiB, for 10 s,
    then disconnects; the memory left after that should fall back."""
    with EmulatorProcess() as emu:
        admin = Admin(emu)
        topic = admin.stream()
        holder = admin.ws("consumer", topic, "keep", subscriptionType="Shared")
        admin.publish(topic, 1000, 8192)
        base = emu.memory()[1]
        lazy = admin.ws(
            "consumer",
            topic,
            "keep",
            subscriptionType="Shared",
            ackTimeoutMillis="100",
            subscriptionInitialPosition="Earliest",
        )
        holder.close()
        _sample_peak(emu, 10)
        during = admin.works()
        lazy.close()
        time.sleep(3)
        result = _emu_result(emu, base, f"REST meanwhile: {during}")
        result["after"] = emu.memory()[1]
        return result


def idle_row(n: int = 3000) -> dict[str, Any]:
    """``n`` TCP connections that never send a byte; 20 s later, how many are still open."""
    with EmulatorProcess() as emu:
        admin = Admin(emu)
        base = emu.memory()[1]
        idle = []
        for _ in range(n):
            try:
                idle.append(socket.create_connection(("127.0.0.1", emu.port), timeout=5))
            except OSError:
                break
        time.sleep(2)
        during = admin.works()
        time.sleep(18)
        closed = hostile.closed_by_peer(idle)
        after = admin.works()
        for s in idle:
            s.close()
        return _emu_result(
            emu,
            base,
            f"{len(idle)} opened, {closed} closed by the server after 20 s; "
            f"REST at 2 s: {during}, at 20 s: {after}",
        )


def slow_body_row(n: int = 25, limit: int = 20) -> dict[str, Any]:
    """``n`` unauthenticated POST /_open/auth bodies at one byte a second, limit ``limit``."""
    with EmulatorProcess(0, "--max-connections", str(limit)) as emu:
        admin = Admin(emu)
        base = emu.memory()[1]
        slow = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
            s.sendall(
                b"POST /_open/auth HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
            slow.append(s)
        stop = threading.Event()

        def drip() -> None:
            while not stop.wait(1.0):
                for s in slow:
                    with contextlib.suppress(OSError):
                        s.sendall(b" ")

        threading.Thread(target=drip, daemon=True).start()
        time.sleep(2)
        during = admin.works()
        time.sleep(18)
        after = admin.works()
        stop.set()
        closed = hostile.closed_by_peer(slow)
        for s in slow:
            s.close()
        return _emu_result(
            emu,
            base,
            f"REST at 2 s: {during}, at 20 s: {after}; {closed}/{n} slow bodies dropped",
        )


def retention_row(n: int) -> dict[str, Any]:
    """``n`` 100-byte messages on a stream with no subscription: what is kept, per message."""
    with EmulatorProcess() as emu:
        admin = Admin(emu)
        topic = admin.stream()
        base = emu.memory()[1]
        start = time.monotonic()
        ok, refused, why = admin.publish(topic, n, 100)
        took = time.monotonic() - start
        time.sleep(1)
        result = _emu_result(emu, base, f"{ok} stored, {refused} refused {why}".rstrip())
        kept = result["now"] - base
        result["outcome"] += f"; {kept / max(ok, 1):,.0f} B per stored message ({took:.0f} s)"
        return result


def cleared_backlog_row(n: int) -> dict[str, Any]:
    """``n`` 1 KiB messages held for one subscription, then ``clearbacklog``: what remains."""
    with EmulatorProcess() as emu:
        admin = Admin(emu)
        topic = admin.stream()
        admin.ws("consumer", topic, "lag", subscriptionType="Shared").close()
        base = emu.memory()[1]
        ok, refused, why = admin.publish(topic, n, 1024)
        full = emu.memory()[1]
        r = admin.rest("POST", "/_fabric/_system/_api/streams/clearbacklog/lag?global=true")
        time.sleep(2)
        result = _emu_result(
            emu,
            base,
            f"{ok} stored, {refused} refused {why}; held {mib(full - base)}, clearbacklog "
            f"{r.status_code}",
        )
        result["after"] = emu.memory()[1]
        return result


def rows(args: argparse.Namespace) -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "client: decompression bomb 2 KB -> 1 GiB": bomb_row,
        "client: 200 MB WebSocket frame": ws_frame_row,
        "client: 300 MB REST body": rest_body_row,
        "client: REST at 1 byte/s, timeout=2": slow_rest_row,
        "emulator: non-reading consumer, ackTimeout 100 ms, 10 s": non_reading_row,
        "emulator: 3,000 idle connections": idle_row,
        "emulator: 25 slow bodies, --max-connections 20": slow_body_row,
        f"emulator: {args.retention:,} x 100 B, no subscription": lambda: retention_row(
            args.retention
        ),
        f"emulator: {args.backlog:,} x 1 KiB backlog, then clearbacklog": lambda: (
            cleared_backlog_row(args.backlog)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", nargs=3, metavar=("NAME", "EMU_PORT", "FAKE_PORT"))
    parser.add_argument("--only", action="append", default=[], help="rows whose name has this")
    parser.add_argument("--retention", type=int, default=200_000, help="messages (200,000)")
    parser.add_argument("--backlog", type=int, default=50_000, help="messages (50,000)")
    parser.add_argument("--json", action="store_true", help="print JSON rows too")
    args = parser.parse_args(argv)
    if args.client:
        _client_main(args.client[0], int(args.client[1]), int(args.client[2]))
        return 0
    results = {}
    print(f"{'victim / hostile input':58} {'peak growth':>12} {'after':>9}  outcome")
    for name, row in rows(args).items():
        if args.only and not any(o in name for o in args.only):
            continue
        try:
            r = row()
        except Exception as exc:
            r = {"outcome": f"BENCHMARK ERROR {type(exc).__name__}: {exc}", "growth": 0}
        results[name] = r
        after = mib(r["after"] - r["base"]) if "after" in r else ""
        print(f"{name:58} {mib(r['growth']):>12} {after:>9}  {r['outcome']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
