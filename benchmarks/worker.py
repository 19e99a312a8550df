"""One benchmark suite in a fresh interpreter: ``python -m benchmarks.worker SUITE ...``.

``--json-backend stdlib`` blocks ``orjson`` (``sys.modules["orjson"] = None`` makes its import
fail with ImportError) *before* streamfw is imported, so streamfw's codec takes its stdlib path
exactly as it would on a machine without the ``fast`` extra; the library is not touched.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("suite", choices=("codec", "throughput"))
    parser.add_argument("--json-backend", choices=("default", "stdlib"), default="default")
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--number", type=int, required=True, help="operations per sample")
    args = parser.parse_args(argv)

    if args.json_backend == "stdlib":
        if "streamfw" in sys.modules:
            raise RuntimeError("streamfw was imported before orjson could be blocked")
        sys.modules["orjson"] = None  # type: ignore[assignment]

    from benchmarks import codec_bench, throughput

    result: dict[str, Any]
    if args.suite == "codec":
        result = codec_bench.run(args.rounds, args.number)
    else:
        result = throughput.run(args.rounds, args.number)
    result["json_backend"] = codec_bench.json_backend()
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
