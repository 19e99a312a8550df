"""Benchmark: streamfw's producer beside pyC8's, into the same emulator over TLS.

``.venv/bin/python -m benchmarks.bench_pyc8 [--messages N] [--rounds R]``

pyC8 1.1.2 (the official SDK, in its own virtualenv under ``.cache/sdk/pyc8``: run
``bash tests/sdk/setup.sh`` first) always uses ``wss://api-<host>``, so the emulator runs with a
throwaway trustme certificate, and pyC8 runs with the same process-local shims as the SDK tests
(``api-*`` names resolve to 127.0.0.1; ``C8Client.set_port`` keeps the given port).

* pyC8: ``producer.send(text)`` N times (it never reads a receipt), then the clock runs until
  the emulator's stream statistics count all N as stored.
* streamfw: ``send_async`` N times within its window, then ``flush()``: every send confirmed.

Both send the same 1 KiB JSON document (ASCII, since pyC8 encodes text as Latin-1). Rounds are
interleaved, the order alternating; medians reported. Target: streamfw >= 2x pyC8's rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.bench_macrometa import KEY, Server
from benchmarks.payload import make_value

ROOT = Path(__file__).resolve().parent.parent
PYC8 = ROOT / ".cache" / "sdk" / "pyc8" / "bin" / "python"
TARGET = 2.0
WINDOW = 1000

_PYC8_PRODUCER = """
import json, sys, time
sys.path.insert(0, SHIMS_DIR)
import pyc8_shims  # the SDK tests' shims: api-* names to 127.0.0.1, keep the given port
pyc8_shims.install()
from c8 import C8Client
port, key, stream, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
text = sys.stdin.read()
client = C8Client(protocol="https", host="localhost", port=port, apikey=key,
                  geofabric="_system")
client.create_stream(stream)
producer = client.create_stream_producer(stream)
start = time.perf_counter()
for _ in range(n):
    producer.send(text)
while client.get_stream_stats(stream)["msgInCounter"] < n:
    time.sleep(0.002)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def pyc8_rate(env: dict[str, str], port: int, text: str, messages: int) -> float:
    stream = f"pyc8-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [
            str(PYC8),
            "-c",
            _PYC8_PRODUCER.replace("SHIMS_DIR", repr(str(ROOT / "tests" / "sdk"))),
            str(port),
            KEY,
            stream,
            str(messages),
        ],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return messages / json.loads(done.stdout.splitlines()[-1])["seconds"]


def streamfw_rate(port: int, ca: str, text: str, messages: int) -> float:
    import streamfw

    url = f"macrometa+https://localhost:{port}"
    with streamfw.connect(url, api_key=KEY, ca_bundle=ca) as client:
        stream = client.stream(f"sfw-{uuid.uuid4().hex[:8]}").create()
        with stream.producer(max_pending=WINDOW) as producer:
            start = time.perf_counter()
            futures = [producer.send_async(text) for _ in range(messages)]
            producer.flush(120)
            for f in futures:
                f.result(0)  # every send confirmed, or the run fails
            return messages / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if not PYC8.exists():
        print(f"pyC8 is not installed at {PYC8}: run `bash tests/sdk/setup.sh` first")
        return 2
    import trustme

    text = json.dumps(make_value(), separators=(",", ":"), ensure_ascii=True)
    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        cert = ca.issue_cert("api-localhost", "localhost", "127.0.0.1")
        ca_path, cert_path, key_path = (str(Path(tmp, n)) for n in ("ca.pem", "c.pem", "k.pem"))
        ca.cert_pem.write_to_path(ca_path)
        cert.private_key_pem.write_to_path(key_path)
        Path(cert_path).write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        server = Server(
            "import sys\nfrom streamfw_macrometa.emulator import Emulator\n"
            f"emu = Emulator.start(host='127.0.0.1', port=0, api_keys=[{KEY!r}],"
            f" tls_cert={cert_path!r}, tls_key={key_path!r})\n"
            "print(emu.port, flush=True)\nsys.stdin.read()\nemu.stop()\n"
        )
        env = {
            "REQUESTS_CA_BUNDLE": ca_path,
            "WEBSOCKET_CLIENT_CA_BUNDLE": ca_path,
            "PYTHONWARNINGS": "ignore",
            "PATH": "/usr/bin:/bin",
        }
        try:
            runs = {
                "streamfw": lambda: streamfw_rate(server.port, ca_path, text, args.messages),
                "pyC8": lambda: pyc8_rate(env, server.port, text, args.messages),
            }
            for run in runs.values():  # warm-up, not kept
                run()
            rates: dict[str, list[float]] = {name: [] for name in runs}
            names = list(runs)
            for r in range(args.rounds):
                for name in names[r % 2 :] + names[: r % 2]:
                    rates[name].append(runs[name]())
        finally:
            server.close()
    med = {name: statistics.median(v) for name, v in rates.items()}
    ratio = med["streamfw"] / med["pyC8"]
    print(
        f"producer into the emulator over TLS: 1 KiB messages, {args.messages} per run,"
        f" medians of {args.rounds} interleaved rounds"
    )
    for name in names:
        spread = (max(rates[name]) - min(rates[name])) / 2 / med[name] * 100
        note = "every send confirmed" if name == "streamfw" else "until the emulator stored all"
        print(f"  {name:9} {med[name]:>8.0f} msgs/s ± {spread:.0f}%   ({note})")
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"streamfw / pyC8 = {ratio:.2f} (target >= {TARGET:.1f}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
