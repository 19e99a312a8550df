"""The install story: the README's first install has everything the docs show after it, type
checkers see the editable install, and what an optional install adds is said where it is missing.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import streamfw
from streamfw.client_core import URL_ENV

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=cwd,
    )


def test_the_emulator_comes_with_the_default_install() -> None:
    requires = importlib.metadata.requires("streamfw") or []
    unconditional = [r for r in requires if "extra ==" not in r]
    assert any(re.match(r"aiohttp\b", r) for r in unconditional), requires
    done = subprocess.run(
        [sys.executable, "-m", "streamfw", "emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--port" in done.stdout and "--api-key-file" in done.stdout


def test_one_streamfw_metadata_on_the_path() -> None:
    # A checkout installed with setuptools before keeps a streamfw.egg-info at its root, now on
    # sys.path: Python would read its stale requirements and entry points (docs/install.md).
    found = [
        str(d.locate_file(""))
        for d in importlib.metadata.distributions()
        if d.metadata["Name"] == "streamfw"
    ]
    assert len(found) == 1, f"delete the stale copies; streamfw metadata found in {found}"


def test_the_testing_extra_brings_what_the_kit_imports() -> None:
    requires = importlib.metadata.requires("streamfw") or []
    testing = {
        re.split(r"[<>=; \[]", r)[0] for r in requires if re.search(r"extra == .testing.", r)
    }
    assert {"hypothesis", "pytest", "anyio"} <= testing, requires


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme_cmd = next(line for line in readme.splitlines() if "'.[test]'" in line)
    ci_cmd = next(line for line in ci.splitlines() if "'.[test]'" in line)
    assert readme_cmd == ci_cmd


USER_APP = """
    import streamfw
    from streamfw.testing import ManualClock


    def count_streams() -> int:
        with streamfw.connect(clock=ManualClock()) as client:
            return len(client.streams())
"""


def test_mypy_strict_sees_the_installed_package(tmp_path: Path) -> None:
    # A user's app outside the project: mypy finds streamfw only the way an install exposes it
    # (setuptools' import-hook editable install gave "Cannot find implementation or library
    # stub for module named streamfw").
    (tmp_path / "app.py").write_text(textwrap.dedent(USER_APP), encoding="utf-8")
    (tmp_path / "wrong.py").write_text(
        'import streamfw\n\nwrong: int = streamfw.connect("loopback://")\n', encoding="utf-8"
    )
    mypy = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy")]
    good = subprocess.run(
        [*mypy, "app.py"], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert good.returncode == 0, good.stdout
    # ... and the types are streamfw's own, not Any: a wrong use is caught.
    bad = subprocess.run(
        [*mypy, "wrong.py"], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert bad.returncode == 1 and '"Client", variable has type "int"' in bad.stdout, bad.stdout


# A meta path finder ahead of all others: importing the module fails as if it were not installed.
BLOCK = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == {name!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Block())
"""

# The project's own test tools (heavy to import, and needing hypothesis), not a user's.
# Also '-rN': no short summary, whose lines repeat each error's text -- cut to the terminal's
# width locally but whole under CI=true, so counts of a message would differ between the two.
NOT_OURS = "'-p', 'no:hypothesispytest', '-p', 'no:schemathesis', '-rN'"

EMULATOR_TEST = """
    def test_uses_the_emulator(streamfw_emulator):
        pass

    def test_each_transport(streamfw_harness):
        pass
"""


def test_the_emulator_fixtures_without_aiohttp_say_how_to_get_it(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(textwrap.dedent(EMULATOR_TEST), encoding="utf-8")
    code = BLOCK.format(name="aiohttp") + (
        "import pytest\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {NOT_OURS},"
        " '--streamfw-transports', 'macrometa', 'test_app.py']))\n"
    )
    done = run_python(code, tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    errors = out.count("ERROR at setup of")
    assert errors >= 2 and "ERROR at setup of test_uses_the_emulator" in out, out
    assert out.count("the streamfw emulator needs aiohttp: pip install aiohttp") == errors, out
    assert "Traceback" not in out and "ModuleNotFoundError" not in out, out


def test_the_cli_emulator_help_without_aiohttp_says_how_to_get_it(tmp_path: Path) -> None:
    code = BLOCK.format(name="aiohttp") + (
        "from streamfw.cli import main\nsys.exit(main(['emulator', '--help']))\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "streamfw emulator needs aiohttp: pip install aiohttp" in done.stdout


@pytest.mark.parametrize("module", ["streamfw.testing.machine", "streamfw.testing.strategies"])
def test_the_kit_without_hypothesis_says_how_to_get_it(tmp_path: Path, module: str) -> None:
    code = BLOCK.format(name="hypothesis") + (
        "import importlib\n"
        "try:\n"
        f"    importlib.import_module({module!r})\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(type(exc).__name__, exc.name, exc)\n"
    )
    done = run_python(code, tmp_path)
    assert done.stdout.strip() == (
        f"Missing hypothesis {module} needs hypothesis: pip install 'streamfw[testing]'"
    ), done.stderr


KIT_TEST = """
    def test_client(streamfw_client):
        assert streamfw_client.stream("s").create().exists()

    def test_each_transport(streamfw_harness):
        with streamfw_harness.client() as client:
            assert client.stream("s").create().exists()
"""


def test_the_kit_fixtures_need_no_hypothesis(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(textwrap.dedent(KIT_TEST), encoding="utf-8")
    code = BLOCK.format(name="hypothesis") + (
        "import pytest\n"
        f"sys.exit(pytest.main(['-v', '-p', 'no:cacheprovider', {NOT_OURS},"
        " '--streamfw-transports', 'loopback,macrometa', 'test_app.py']))\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for test in ("test_client", "test_each_transport[loopback]", "test_each_transport[macrometa]"):
        assert f"test_app.py::{test} PASSED" in done.stdout, done.stdout


def test_connect_without_a_url_reads_streamfw_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, "loopback://from-the-environment")
    with streamfw.connect() as client:
        assert client.url == "loopback://from-the-environment"
    with streamfw.connect("loopback://given") as client:  # an explicit URL wins
        assert client.url == "loopback://given"
    monkeypatch.setenv(URL_ENV, "")  # empty counts as unset
    with streamfw.connect() as client:
        assert client.url == "loopback://"
    monkeypatch.setenv(URL_ENV, "nonsense")
    with pytest.raises(streamfw.ConfigError, match="'nonsense'"):
        streamfw.connect()


def test_the_asyncio_connect_reads_streamfw_url_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    import streamfw.aio

    async def url_of(url: str | None) -> str:
        async with streamfw.aio.connect(url) as client:
            return client.url

    monkeypatch.setenv(URL_ENV, "loopback://from-the-environment")
    assert asyncio.run(url_of(None)) == "loopback://from-the-environment"
    assert asyncio.run(url_of("loopback://given")) == "loopback://given"
    monkeypatch.setenv(URL_ENV, "")
    assert asyncio.run(url_of(None)) == "loopback://"
    monkeypatch.setenv(URL_ENV, "nonsense")
    with pytest.raises(streamfw.ConfigError, match="'nonsense'"):
        streamfw.aio.connect()
