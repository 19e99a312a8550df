"""Fixtures that run the official SDKs (pyC8, jsc8) as subprocesses against a TLS emulator.

* ``sdk_env``: the SDK installations under ``.cache/sdk`` (``setup.sh``, idempotent);
* ``tls_files``: a throwaway CA and a server certificate for ``api-localhost``, made with
  trustme (module scope);
* ``tls_emulator``: one emulator per test module, on 127.0.0.1, a free port, TLS;
* ``sdk``: starts runner processes (``pyc8_flow.py``, ``jsc8_flow.js``) with the CA trusted
  and the ``api-`` resolver shims in place, and kills every one of them at teardown.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The test modules import sdk_harness by name; make that work under any --import-mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdk_harness import HERE, Sdk, SdkEnv, TlsFiles

ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("STREAMFW_SDK_CACHE", ROOT / ".cache" / "sdk"))
SETUP_TIMEOUT = 900.0
# "module:attr" of the emulator class; overridable to debug against another server.
EMULATOR_FACTORY = os.environ.get("STREAMFW_SDK_EMULATOR", "streamfw_macrometa.emulator:Emulator")


def _sdk_env_ready() -> SdkEnv | None:
    python = CACHE / "pyc8" / "bin" / "python"
    modules = CACHE / "js" / "node_modules"
    node = shutil.which("node")
    if python.exists() and (modules / "jsc8").is_dir() and node:
        return SdkEnv(python, node, modules)
    return None


@pytest.fixture(scope="session")
def sdk_env() -> SdkEnv:
    """The pinned SDKs, brought up to date by setup.sh (a no-op when current).

    setup.sh compares stamps of the pinned inputs, so this costs ~0.05 s when nothing
    changed and installs (bounded by SETUP_TIMEOUT) when .cache/sdk is missing or stale.
    Fails, never skips.
    """
    try:
        proc = subprocess.run(
            ["bash", str(HERE / "setup.sh")],
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT,
            check=False,
            env={**os.environ, "STREAMFW_SDK_CACHE": str(CACHE)},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"tests/sdk/setup.sh did not finish in {SETUP_TIMEOUT:.0f} s: {exc}")
    if proc.returncode != 0:
        pytest.fail(f"tests/sdk/setup.sh failed:\n{proc.stdout}\n{proc.stderr}")
    env = _sdk_env_ready()
    if env is None:
        pytest.fail(f"tests/sdk/setup.sh ran but {CACHE} is incomplete:\n{proc.stdout}")
    return env


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    import trustme

    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("api-localhost", "localhost", "127.0.0.1")
    files = TlsFiles(d / "ca.pem", d / "server.pem", d / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.private_key_pem.write_to_path(str(files.key))
    with files.cert.open("wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    return files


def _emulator_class() -> Any:
    module, _, attr = EMULATOR_FACTORY.partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.fixture(scope="module")
def tls_emulator(tls_files: TlsFiles) -> Iterator[Any]:
    emulator = _emulator_class()
    with emulator.start(
        host="127.0.0.1", port=0, tls_cert=str(tls_files.cert), tls_key=str(tls_files.key)
    ) as emu:
        yield emu


@pytest.fixture
def sdk(sdk_env: SdkEnv, tls_files: TlsFiles, tls_emulator: Any, tmp_path: Path) -> Iterator[Sdk]:
    s = Sdk(sdk_env, tls_files, tls_emulator, tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Fresh stream / subscription names, so tests sharing an emulator never collide."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:8]}"
