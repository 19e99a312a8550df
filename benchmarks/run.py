"""Run every benchmark, each suite in a fresh interpreter, and print one table.

``python -m benchmarks`` (or ``python benchmarks/run.py``) from the repository root;
``--quick`` for a short, noisier run. Always exits 0: this is a report, and a missed target
is printed as ``MISS`` and summed up at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # ``python benchmarks/run.py``
    sys.path.insert(0, str(ROOT))

from benchmarks.timing import median, spread  # noqa: E402


@dataclass(frozen=True)
class Settings:
    codec_rounds: int
    codec_number: int  # round trips per sample
    tp_rounds: int
    tp_messages: int  # messages per sample


FULL = Settings(codec_rounds=9, codec_number=4000, tp_rounds=5, tp_messages=20000)
QUICK = Settings(codec_rounds=5, codec_number=1500, tp_rounds=3, tp_messages=5000)


@dataclass(frozen=True)
class Row:
    metric: str
    streamfw: str
    baseline: str
    ratio: float | None
    target: str
    passed: bool | None  # None: no target, or could not run

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "-"
        return "PASS" if self.passed else "MISS  <<<"


def worker(suite: str, backend: str, rounds: int, number: int) -> dict[str, Any]:
    """Run one suite in a fresh interpreter (so orjson can be blocked before import)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "benchmarks.worker", suite, "--json-backend", backend,
           "--rounds", str(rounds), "--number", str(number)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def fmt_us(seconds: list[float]) -> str:
    return f"{median(seconds) * 1e6:7.2f} us ±{spread(seconds):4.0%}"


def fmt_rate(rates: list[float]) -> str:
    return f"{median(rates):8,.0f}/s ±{spread(rates):4.0%}"


def codec_rows(result: dict[str, Any], backend: str) -> list[Row]:
    sfw, base = result["streamfw"], result["baseline"]
    ratio = median(sfw) / median(base)
    metric = f"codec round trip, 1 KiB JSON [{result['json_backend']}]"
    if backend == "stdlib":
        target, passed = "<= 1.30x time", ratio <= 1.30
    else:
        target, passed = "< 1.00x time", ratio < 1.00
    return [Row(metric, fmt_us(sfw), f"{fmt_us(base)} stdlib", ratio, target, passed)]


def throughput_rows(result: dict[str, Any], *, targets: bool) -> list[Row]:
    """Rows for one backend; ``targets`` False shows the figures for information only."""
    sfw, floor, one = result["streamfw"], result["floor"], result["one_thread"]
    tag = f"[{result['json_backend']}]"

    def row(metric: str, base: list[float] | None, label: str, target: float) -> Row:
        if base is None:
            return Row(metric, fmt_rate(sfw), label, None, f">= {target:.2f}x rate", None)
        ratio = median(sfw) / median(base)
        if not targets:
            return Row(metric, fmt_rate(sfw), f"{fmt_rate(base)} {label}", ratio, "(info)", None)
        passed = ratio >= target
        return Row(metric, fmt_rate(sfw), f"{fmt_rate(base)} {label}", ratio,
                   f">= {target:.2f}x rate", passed)  # fmt: skip

    one_ratio = median(one) / median(floor)
    hooked = result["hooked"]
    return [
        row(f"loopback pub->recv->ack vs floor {tag}", floor, "inline", 0.50),
        row(f"loopback pub->recv->ack vs kombu {tag}", result.get("kombu"),
            "kombu" if "kombu" in result else "kombu not installed", 3.00),
        Row(f"  same, 1 thread, no contention {tag}", fmt_rate(one), f"{fmt_rate(floor)} inline",
            one_ratio, "(info)", None),
        Row(f"  same, no-op tracing plugin {tag}", fmt_rate(hooked), f"{fmt_rate(sfw)} no hooks",
            median(hooked) / median(sfw), "(info)", None),
    ]  # fmt: skip


def orjson_installed() -> bool:
    probe = [sys.executable, "-c", "import orjson"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def render(rows: list[Row]) -> str:
    head = ("metric", "streamfw", "baseline", "ratio", "target", "result")
    cells = [
        (r.metric, r.streamfw, r.baseline, "n/a" if r.ratio is None else f"{r.ratio:.2f}x",
         r.target, r.verdict)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def git_commit() -> str:
    proc = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    return proc.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (noisier)")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    have_orjson = orjson_installed()
    backends = ["default", "stdlib"] if have_orjson else ["stdlib"]

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"streamfw benchmarks  {now}  commit {git_commit()}  {'quick' if args.quick else 'full'}")
    orjson_state = "installed" if have_orjson else "NOT installed (pip install -e '.[fast]')"
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs;"
          f" orjson {orjson_state}")  # fmt: skip
    print(f"codec: medians of {s.codec_rounds} interleaved samples x {s.codec_number} round trips;"
          f" throughput: {s.tp_rounds} x {s.tp_messages} messages", flush=True)  # fmt: skip

    def codec_job(backend: str) -> list[Row]:
        return codec_rows(worker("codec", backend, s.codec_rounds, s.codec_number), backend)

    def throughput_job(backend: str) -> list[Row]:
        result = worker("throughput", backend, s.tp_rounds, s.tp_messages)
        # The targets apply to the default backend (orjson when installed); stdlib: info.
        return throughput_rows(result, targets=backend == backends[0])

    jobs: list[tuple[str, Callable[[str], list[Row]], str]] = [
        *((f"codec/{b}", codec_job, b) for b in backends),
        *((f"throughput/{b}", throughput_job, b) for b in backends),
    ]
    rows: list[Row] = []
    for name, job, backend in jobs:
        print(f"  running {name} ...", flush=True)
        try:
            rows += job(backend)
        except RuntimeError as exc:
            rows.append(Row(name, "error", str(exc).splitlines()[0], None, "", None))
            print(exc, file=sys.stderr)
    if not have_orjson:
        rows.append(Row("codec round trip [orjson]", "orjson not installed", "", None,
                        "< 1.00x time", None))  # fmt: skip

    print()
    print(render(rows))
    missed = [r for r in rows if r.passed is False]
    print()
    if missed:
        print(f"*** {len(missed)} of {sum(r.passed is not None for r in rows)} targets MISSED:"
              f" {'; '.join(r.metric for r in missed)} ***")  # fmt: skip
    else:
        print(f"all {sum(r.passed is not None for r in rows)} targets met")
    print("ratio: streamfw / baseline (time: lower is better; rate: higher is better);"
          " ±: half the sample range")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
