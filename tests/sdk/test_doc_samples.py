"""Docs samples written for the official SDKs run with them, against the TLS emulator.

```` ```python pyc8 ```` blocks run in pyC8's virtualenv after a prelude that applies the same
shims as tests/sdk/pyc8_flow.py and defines ``HOST``, ``PORT``, ``API_KEY`` and ``emu``;
```` ```js jsc8 ```` blocks run with node, the resolver shim, ``PORT`` and ``API_KEY`` in the
environment. (Plain ```` ```python ```` blocks run in the project venv: tests/test_docs.py.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sdk_harness import HERE, Sdk

ROOT = HERE.parent.parent
BLOCK = re.compile(r"^```(?P<kind>python pyc8|js jsc8)\n(?P<code>.*?)^```", re.S | re.M)

PYC8_PRELUDE = f"""
import os, sys, types
sys.path.insert(0, {str(HERE)!r})
import pyc8_shims  # api-* names to 127.0.0.1; C8Client keeps port= (docs/emulator-sdks.md)
pyc8_shims.install()
from c8 import C8Client
HOST, PORT, API_KEY = "localhost", int(os.environ["PORT"]), os.environ["API_KEY"]
emu = types.SimpleNamespace(port=PORT, api_key=API_KEY)
"""


def samples() -> list[Any]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:  # concepts/ too
        text = doc.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start("code")) + 1
            kind = m["kind"].split()[1]
            found.append(pytest.param(kind, m["code"], id=f"{doc.name}:{line}:{kind}"))
    return found


@pytest.mark.parametrize(("kind", "code"), samples())
def test_sdk_sample_runs(kind: str, code: str, sdk: Sdk, tmp_path: Path) -> None:
    env = {**sdk.environ, "PORT": str(sdk.emulator.port), "API_KEY": sdk.emulator.api_key}
    if kind == "pyc8":
        script = tmp_path / "sample.py"
        script.write_text(PYC8_PRELUDE + code, encoding="utf-8")
        argv = [str(sdk.argv("pyc8", "x")[0]), str(script)]
    else:
        script = tmp_path / "sample.js"
        script.write_text(code, encoding="utf-8")
        argv = [sdk.argv("jsc8", "x")[0], "--require", str(HERE / "resolve_shim.js"), str(script)]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"


def test_samples_were_found() -> None:
    kinds = {p.values[0] for p in samples()}
    assert kinds == {"pyc8", "jsc8"}
