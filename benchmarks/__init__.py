"""streamfw benchmarks: codec cost per message and loopback throughput, beside baselines.

Run ``python -m benchmarks`` from the repository root (``--quick`` for a shorter run); see
``benchmarks/README.md``. Nothing here imports streamfw at module level, so a worker can
block the optional ``orjson`` backend before streamfw is first imported.
"""
