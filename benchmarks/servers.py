"""Emulators in child processes for the fault and resource benchmarks, and their memory.

A benchmark that kills the server (SIGKILL) or measures its peak memory needs it in its own
process: ``streamfw emulator`` exactly as a developer runs it. ``/proc/<pid>/status`` gives
the peak resident set (``VmHWM``) and the current one (``VmRSS``) of any live process.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

KEY = "bench.streamfw.emulator"  # tenant "bench"
_URL = re.compile(r"on (https?://\S+)")


KEY_ENV = "STREAMFW_EMULATOR_API_KEY"


def _key_env_known() -> bool:
    import streamfw_macrometa.emulator.command as command

    return getattr(command, "KEY_ENV", None) == KEY_ENV


def free_port() -> int:
    """A port nothing listens on right now (the emulator is restarted on it later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory(pid: int) -> tuple[int, int]:
    """(peak, current) resident set of a live process, in bytes (0, 0 once it is gone)."""
    found = {"VmHWM": 0, "VmRSS": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in found:
                    found[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found["VmHWM"], found["VmRSS"]


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


class EmulatorProcess:
    """``streamfw emulator`` on 127.0.0.1:``port`` in a child process; kill and restart it.

    Its output is drained by a thread (a full pipe would block the server) and kept in
    ``output`` so a caller can look for ERROR lines and tracebacks.
    """

    def __init__(self, port: int = 0, *extra: str) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.output: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 20.0) -> None:
        """Start (again) on the same port; wait until it answers."""
        argv = [sys.executable, "-m", "streamfw", "emulator", "--port", str(self.port)]
        # The key goes in the environment, where ps does not show it (trees from before
        # STREAMFW_EMULATOR_API_KEY existed take it on the command line).
        env = {**os.environ, "PYTHONUNBUFFERED": "1", KEY_ENV: KEY}
        if not _key_env_known():
            argv += ["--api-key", KEY]
        self.proc = subprocess.Popen(
            [*argv, *self.extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        started = threading.Event()
        threading.Thread(target=self._drain, args=(self.proc, started), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if started.wait(0.05) and self._listening():
                return
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"emulator did not start on {self.port}: {''.join(self.output)}")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def _drain(self, proc: subprocess.Popen[str], started: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            if _URL.search(line):
                started.set()

    def errors(self) -> list[str]:
        """Lines of the server's log that report an ERROR or a traceback."""
        return [ln for ln in self.output if " ERROR " in ln or ln.startswith("Traceback")]

    def memory(self) -> tuple[int, int]:
        return memory(self.pid)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, every socket dropped by the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
