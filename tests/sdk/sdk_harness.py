"""Run the official SDKs' runner programs as subprocesses and collect their JSON lines."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 30.0
SDK_HOST = "localhost"  # what users give the SDKs; they connect to "api-localhost"

Event = dict[str, Any]


@dataclass(frozen=True)
class SdkEnv:
    pyc8_python: Path
    node: str
    node_modules: Path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path  # server certificate chain (PEM)
    key: Path


@dataclass
class Run:
    """A finished (or still running) runner process and what it printed."""

    argv: list[str]
    events: list[Event] = field(default_factory=list)
    returncode: int | None = None
    stderr: str = ""

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["event"] == kind]

    def payloads(self) -> list[str]:
        return [e["payload"] for e in self.of("message")]

    def last(self) -> Event:
        return self.events[-1] if self.events else {"event": "<nothing printed>"}

    def explain(self) -> str:
        lines = "\n".join(json.dumps(e) for e in self.events)
        head = f"$ {' '.join(self.argv)}\nrc={self.returncode}"
        return f"{head}\n{lines}\n--- stderr ---\n{self.stderr}"


class Proc:
    """A runner started in the background; stdout is parsed as JSON lines by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.run = Run(argv)
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self._popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            start_new_session=True,
        )
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "stdout", "text": line}
            self.run.events.append(event)
            self._queue.put(event)
        self._queue.put(None)

    def wait_for(self, kind: str, timeout: float = RUN_TIMEOUT) -> Event:
        """Block until the process prints an event of ``kind`` (or fail the test)."""
        seen = [e for e in self.run.events if e["event"] == kind]
        if seen:
            return seen[0]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self._queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                event = None
                if left > 0:
                    continue
                self.kill()
                pytest.fail(f"no {kind!r} event within {timeout} s\n{self.run.explain()}")
            if event is None:
                self.finish(timeout=5)
                pytest.fail(f"exited before a {kind!r} event\n{self.run.explain()}")
            if event["event"] == kind:
                return event

    def finish(self, timeout: float = RUN_TIMEOUT) -> Run:
        """Wait for the process to exit (kill it after ``timeout``) and return its Run."""
        try:
            self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"did not exit within {timeout} s\n{self.run.explain()}")
        self._reader.join(timeout=5)
        self.run.returncode = self._popen.returncode
        self._stderr.close()
        self.run.stderr = self._stderr_path.read_text()
        return self.run

    def kill(self) -> None:
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signal.SIGKILL)
        self._popen.wait(timeout=10)
        self._reader.join(timeout=5)
        self.run.returncode = self._popen.returncode
        if not self._stderr.closed:
            self._stderr.close()
            self.run.stderr = self._stderr_path.read_text()


class Sdk:
    """Starts SDK runner processes aimed at one emulator; tracks them for teardown."""

    def __init__(self, env: SdkEnv, tls: TlsFiles, emulator: Any, workdir: Path) -> None:
        self._env = env
        self._workdir = workdir
        self.emulator = emulator
        self.procs: list[Proc] = []
        base = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        }
        self.environ = {
            **base,
            "NO_PROXY": "localhost,127.0.0.1,api-localhost",
            "REQUESTS_CA_BUNDLE": str(tls.ca),
            "WEBSOCKET_CLIENT_CA_BUNDLE": str(tls.ca),
            "NODE_EXTRA_CA_CERTS": str(tls.ca),
            "NODE_PATH": str(env.node_modules),
            "STREAMFW_SDK_HOST": SDK_HOST,
            "STREAMFW_SDK_PORT": str(emulator.port),
            "STREAMFW_SDK_API_KEY": emulator.api_key,
            "STREAMFW_SDK_RESOLVE_TO": "127.0.0.1",
            "PYTHONWARNINGS": "ignore",  # urllib3's InsecureRequestWarning (pyC8 verify=False)
        }

    def argv(self, sdk: str, flow: str, *args: str) -> list[str]:
        if sdk == "pyc8":
            return [str(self._env.pyc8_python), str(HERE / "pyc8_flow.py"), flow, *args]
        if sdk == "jsc8":
            shim = str(HERE / "resolve_shim.js")
            return [self._env.node, "--require", shim, str(HERE / "jsc8_flow.js"), flow, *args]
        raise ValueError(sdk)

    def start(self, sdk: str, flow: str, *args: str) -> Proc:
        name = f"{len(self.procs):02d}-{sdk}-{flow}.stderr"
        proc = Proc(self.argv(sdk, flow, *args), self.environ, self._workdir / name)
        self.procs.append(proc)
        return proc

    def run(self, sdk: str, flow: str, *args: str, timeout: float = RUN_TIMEOUT) -> Run:
        return self.start(sdk, flow, *args).finish(timeout=timeout)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()


def ok(run: Run) -> Run:
    """``run`` finished cleanly (exit 0, last event ``done``); else fail with its transcript."""
    assert run.returncode == 0 and run.last()["event"] == "done", run.explain()
    return run
