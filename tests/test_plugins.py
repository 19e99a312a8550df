"""Plugin discovery through real entry points (a throwaway distribution on sys.path)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import streamfw
from streamfw import PluginError, discover


def install_dist(
    root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """Write an installed-looking distribution: modules plus a dist-info with entry points."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    # dist-info folders use the normalised name: importlib.metadata keys on it
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[streamfw]\n{lines}")


ECHO_PLUGIN = """
    from streamfw import TransportSpec, hookimpl
    from streamfw_loopback import LoopbackTransport

    @hookimpl
    def streamfw_register_transports(register):
        register(TransportSpec("echo", lambda config: LoopbackTransport("echo"), "test transport"))
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_loopback_is_found_through_its_entry_point() -> None:
    found = discover()
    info = {i.name: i for i in found.infos}
    assert info["loopback"].distribution == "streamfw" and info["loopback"].loaded
    assert found.transport_sources()["loopback"] == "loopback"


def test_third_party_transport_is_discovered_and_usable(site: Path) -> None:
    install_dist(site, "streamfw-echo", {"echo": "echo_plugin"}, {"echo_plugin": ECHO_PLUGIN})
    found = discover()
    info = {i.name: i for i in found.infos}["echo"]
    assert (info.distribution, info.version, info.loaded) == ("streamfw-echo", "1.2.3", True)
    with streamfw.connect("echo://", plugins=found) as client:
        stream = client.stream("s").create()
        assert stream.exists()


def test_a_broken_plugin_is_reported_and_the_others_still_load(site: Path) -> None:
    install_dist(
        site,
        "streamfw-broken",
        {"broken": "broken_plugin", "echo": "echo_plugin"},
        {"broken_plugin": "raise ImportError('needs libfoo')", "echo_plugin": ECHO_PLUGIN},
    )
    found = discover()
    broken = {i.name: i for i in found.infos}["broken"]
    assert not broken.loaded and "needs libfoo" in (broken.error or "")
    assert "echo" in found.transports() and "loopback" in found.transports()
    with pytest.raises(PluginError, match=r"broken.*needs libfoo"):
        found.transport("nope")


def test_misspelt_hook_is_a_load_error_not_silence(site: Path) -> None:
    source = """
        from streamfw import hookimpl

        @hookimpl
        def streamfw_register_transport(register):  # missing 's'
            pass
    """
    install_dist(site, "streamfw-typo", {"typo": "typo_plugin"}, {"typo_plugin": source})
    found = discover()
    typo = {i.name: i for i in found.infos}["typo"]
    assert not typo.loaded and "streamfw_register_transport" in (typo.error or "")
    assert "loopback" in found.transports()


def test_unknown_scheme_lists_what_is_available() -> None:
    with pytest.raises(PluginError, match=r"'kafka'.*loopback:// \(from loopback\)"):
        streamfw.connect("kafka://broker:9092")


def test_two_plugins_claiming_one_scheme_is_an_error(site: Path) -> None:
    install_dist(
        site,
        "streamfw-dupe",
        {"dupe": "dupe_plugin"},
        {"dupe_plugin": ECHO_PLUGIN.replace('"echo"', '"loopback"')},
    )
    with pytest.raises(PluginError, match="both offer a transport named 'loopback'"):
        discover().transports()


def test_codecs_come_from_plugins_too(site: Path) -> None:
    source = """
        from streamfw import CodecSpec, hookimpl

        class Upper:
            def encode(self, value):
                return value.upper()
            def decode(self, data):
                return data.lower()

        @hookimpl
        def streamfw_register_codecs(register):
            register(CodecSpec("shout", Upper, "bytes", "upper-cases bytes"))
    """
    install_dist(site, "streamfw-shout", {"shout": "shout_plugin"}, {"shout_plugin": source})
    with streamfw.connect("loopback://codec-plugin", plugins=discover()) as client:
        stream = client.stream("s").create()
        with stream.consumer("c") as c, stream.producer(codec="text+shout") as p:
            p.send("hello")
            msg = c.receive(2)
    assert msg is not None and msg.payload == b"HELLO" and msg.value == "hello"


def test_plugins_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    from streamfw.cli import main

    assert main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    loopback = next(p for p in listed["plugins"] if p["name"] == "loopback")
    assert loopback["distribution"] == "streamfw" and loopback["loaded"] is True
    assert listed["transports"]["loopback"]["plugin"] == "loopback"


HOOKS_PLUGIN = """
    import sys

    import pytest

    from streamfw.api import CommandSpec
    from streamfw.hookspecs import hookimpl
    from streamfw.testing import HarnessSpec, LoopbackHarness

    def add_arguments(parser):
        parser.add_argument("--times", type=int, default=1)

    def run(args):
        print("hello " * args.times, file=sys.stdout)
        return 7

    @hookimpl
    def streamfw_register_commands(register):
        register(CommandSpec("hello", "say hello", add_arguments, run))

    @hookimpl
    def streamfw_register_harnesses(register):
        register(HarnessSpec("hello", LoopbackHarness, "loopback under another name"))
"""


def test_a_plugin_adds_a_cli_command(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamfw.cli import main
    from streamfw.plugins import installed

    install_dist(site, "streamfw-hello", {"hello": "hello_plugin"}, {"hello_plugin": HOOKS_PLUGIN})
    installed(refresh=True)
    try:
        assert main(["hello", "--times", "2"]) == 7
        assert capsys.readouterr().out.strip() == "hello hello"
    finally:
        installed(refresh=True)  # later tests must not see the throwaway plugin


def test_a_plugin_adds_a_harness(site: Path) -> None:
    install_dist(site, "streamfw-hello", {"hello": "hello_plugin"}, {"hello_plugin": HOOKS_PLUGIN})
    found = discover()
    harnesses = found.harnesses()
    assert {"loopback", "macrometa", "gdn", "hello"} <= set(harnesses)
    harness = harnesses["hello"].factory()
    try:
        with harness.client() as client:
            assert client.stream("s").create().exists()
    finally:
        harness.close()


def test_the_emulator_command_comes_from_the_macrometa_plugin() -> None:
    commands = discover().commands()
    assert list(commands) == ["emulator"]
    assert commands["emulator"].run.__module__ == "streamfw_macrometa"


def test_a_command_cannot_be_registered_twice(site: Path) -> None:
    source = HOOKS_PLUGIN.replace('CommandSpec("hello"', 'CommandSpec("emulator"')
    install_dist(site, "streamfw-twice", {"twice": "twice_plugin"}, {"twice_plugin": source})
    with pytest.raises(PluginError, match="'macrometa' and 'twice' both offer a command"):
        discover().commands()


def test_discovery_runs_once_per_process_unless_asked_again(site: Path) -> None:
    from streamfw.plugins import installed

    first = installed()
    assert installed() is first
    install_dist(site, "streamfw-echo", {"echo": "echo_plugin"}, {"echo_plugin": ECHO_PLUGIN})
    assert "echo" not in installed().transports()
    try:
        fresh = installed(refresh=True)
        assert fresh is not first and "echo" in fresh.transports()
        assert installed() is fresh
    finally:
        installed(refresh=True)


def test_registration_hooks_go_through_the_hook_relay() -> None:
    """A hook wrapper (tracing, timing) sees every registration call."""
    seen: list[str] = []

    class Tracer:
        @streamfw.hookimpl(wrapper=True)
        def streamfw_register_transports(self, register):  # type: ignore[no-untyped-def]
            seen.append("transports")
            return (yield)

    found = discover(extra={"tracer": Tracer()})
    assert "loopback" in found.transports() and seen == ["transports"]


def test_the_emulator_command_without_aiohttp_says_how_to_get_it() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aiohttp'] = None\n"  # an import of it now fails
        "from streamfw.cli import main\n"
        "sys.exit(main(['emulator']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "streamfw emulator needs aiohttp: pip install aiohttp" in done.stderr


JUNK_PLUGIN = """
    from streamfw.hookspecs import hookimpl

    class Named:
        name = VALUE

    @hookimpl
    def streamfw_register_commands(register):
        register(Named())
"""


@pytest.mark.parametrize("value", ["''", "42", "None", "b'x'"])
def test_a_registration_without_a_usable_name_is_a_plugin_error(site: Path, value: str) -> None:
    source = JUNK_PLUGIN.replace("VALUE", value)
    install_dist(site, "streamfw-junk", {"junk": "junk_plugin"}, {"junk_plugin": source})
    with pytest.raises(PluginError, match="plugin 'junk' registered a command without a name"):
        discover().commands()
