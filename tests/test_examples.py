"""The seed examples, as separate processes against the emulator (bounded)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import streamfw

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def start(script: str, count: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / script), str(count)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for_consumers(url: str, key: str, n: int) -> None:
    with streamfw.connect(url, api_key=key) as client:
        stream = client.stream("streamQuickstart")
        for _ in range(200):
            if stream.exists() and sum(s.consumers for s in stream.subscriptions()) >= n:
                return
            time.sleep(0.05)
    raise AssertionError(f"{n} consumer(s) never attached")


def test_seed_scenario_with_the_examples(emulator: Any) -> None:
    url = f"macrometa+http://127.0.0.1:{emulator.port}"
    env = {**os.environ, "STREAMFW_URL": url, "MACROMETA_API_KEY": emulator.api_key}
    first = start("consumer_1.py", 2, env)
    procs = [first]
    try:
        wait_for_consumers(url, emulator.api_key, 1)
        second = start("consumer_2.py", 1, env)
        procs.append(second)
        producer = start("producer.py", 3, env)
        procs.append(producer)
        out_1, _ = first.communicate(timeout=60)
        out_2, _ = second.communicate(timeout=60)
        out_p, _ = producer.communicate(timeout=60)
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], (out_1, out_2, out_p)
    assert "consumer-1 received 'Hello streamfw #1'" in out_1
    assert "consumer-1 received 'Hello streamfw #2'" in out_1
    assert "consumer-2 refused" in out_2 and "Exclusive consumer is already connected" in out_2
    assert "consumer-2 received 'Hello streamfw #3'" in out_2
    assert out_p.count("sent #") == 3


def _shipped(directory: Path) -> list[Path]:
    # What a clone holds: build output and installed metadata of the plugin example aside.
    skip = {"build", "__pycache__"}
    return [
        p
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and not skip & set(p.relative_to(directory).parts)
        and not any(part.endswith(".egg-info") for part in p.parts)
    ]


def test_every_example_is_in_the_docs_and_run_by_a_test() -> None:
    page = (EXAMPLES.parent / "docs" / "examples.md").read_text(encoding="utf-8")
    here = Path(__file__).resolve().parent
    runners = {
        "plugin-namespace": (here / "test_plugin_example.py").read_text(encoding="utf-8"),
        **{p.name: Path(__file__).read_text(encoding="utf-8") for p in EXAMPLES.glob("*.py")},
    }
    for entry in sorted(EXAMPLES.iterdir()):
        assert entry.name in runners, f"examples/{entry.name} is run by no test"
        assert f'"{entry.name}"' in runners[entry.name], f"examples/{entry.name} is run by no test"
    for path in _shipped(EXAMPLES):
        name = path.relative_to(EXAMPLES).as_posix()
        if path.suffix in {".py", ".toml"}:
            assert f'--8<-- "examples/{name}"' in page, f"docs/examples.md does not show {name}"
