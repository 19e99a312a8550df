"""The benchmark message: a JSON object whose compact encoding is exactly 1 KiB."""

from __future__ import annotations

import json
from typing import Any

SIZE = 1024


def compact(value: Any) -> bytes:
    """The compact UTF-8 JSON that both streamfw and the baselines put on the wire."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_value(size: int = SIZE) -> dict[str, Any]:
    """A deterministic order-like document (nested objects, lists, ints, floats, strings,
    booleans, null) padded with a ``note`` string so that ``compact(value)`` is ``size`` bytes.
    """
    value: dict[str, Any] = {
        "id": 1234567,
        "type": "order.created",
        "ts": 1764320000.125,
        "customer": {
            "id": "cust-000042",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "tags": ["vip", "eu", "beta"],
            "verified": True,
        },
        "items": [
            {
                "sku": f"SKU-{i:05d}",
                "name": f"widget {i}",
                "qty": i % 7 + 1,
                "price": round(9.99 + i * 1.25, 2),
            }
            for i in range(10)
        ],
        "shipping": {"method": "express", "address": None, "eta_days": 2},
        "note": "",
    }
    missing = size - len(compact(value))
    if missing < 0:
        raise ValueError(f"the skeleton message is already larger than {size} bytes")
    value["note"] = "x" * missing
    assert len(compact(value)) == size
    return value
