"""Shape checks: the core is transport-neutral and its broker is sans-I/O (issue 9's layout).

* every module of ``streamfw`` imports in a fresh interpreter without pulling in a transport
  plugin or a network/server library;
* ``streamfw/broker.py`` imports nothing that does I/O, threads or time, and reads no clock;
* no file of the core names Macrometa, GDN or ``c8`` (a link to a page under ``docs/`` aside).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "streamfw"

# Top-level packages the core must never import, directly or through another module.
FORBIDDEN_IMPORTS = ("streamfw_macrometa", "streamfw_loopback", "websocket", "requests", "aiohttp")

# What a sans-I/O module has no business importing: sockets, files, processes, threads,
# event loops, clocks and sleeps, loggers (they write), network clients and servers.
IO_MODULES = frozenset(
    {
        "_thread",
        "asyncio",
        "concurrent",
        "http",
        "io",
        "logging",
        "multiprocessing",
        "os",
        "pathlib",
        "queue",
        "sched",
        "select",
        "selectors",
        "shutil",
        "signal",
        "socket",
        "socketserver",
        "ssl",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib",
        *FORBIDDEN_IMPORTS,
    }
)
# Attribute calls that read a clock or wait, whatever module they come from (``dt.datetime.now``).
CLOCK_CALLS = frozenset(
    {"now", "today", "utcnow", "time", "time_ns", "monotonic", "perf_counter", "sleep"}
)

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import streamfw

names = sorted(
    m.name for m in pkgutil.walk_packages(streamfw.__path__, "streamfw.")
    if not m.name.endswith("__main__")  # it runs the CLI
)
for name in names:
    importlib.import_module(name)
loaded = sorted({m.split(".")[0] for m in sys.modules})
import streamfw_macrometa  # the control: the same check does see a plugin once imported
control = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"modules": names, "loaded": loaded, "control": control}))
"""


def test_the_core_imports_no_plugin_and_no_transport_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    found = json.loads(done.stdout)
    assert "streamfw.broker" in found["modules"] and "streamfw.testing.contract" in found["modules"]
    assert [m for m in FORBIDDEN_IMPORTS if m in found["loaded"]] == []
    assert "streamfw_macrometa" in found["control"]  # the check can fail


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_broker_imports_nothing_that_does_io_threads_or_time() -> None:
    tree = ast.parse((CORE / "broker.py").read_text(encoding="utf-8"))
    imported = _imports(tree)
    assert "streamfw.api" in imported  # parsed the real thing
    assert sorted(n for n in imported if n.split(".")[0] in IO_MODULES) == []
    core = {n for n in imported if n.split(".")[0] == "streamfw"}
    allowed = {"streamfw.api", "streamfw.errors", "streamfw.message", "streamfw.options"}
    assert core <= allowed | {"streamfw.sticky"}  # sticky: pure hashing, no I/O
    clocks = [
        f"line {node.lineno}: .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]
    assert clocks == []  # the broker's time is its injected ``clock`` only


def test_the_io_check_sees_an_io_import() -> None:
    """The checks above are not vacuous: the same rules flag a module that reads the clock."""
    tree = ast.parse("import time\nfrom threading import Lock\nx = dt.datetime.now()\n")
    assert {n for n in _imports(tree) if n.split(".")[0] in IO_MODULES} == {"time", "threading"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [c.func.attr for c in calls if isinstance(c.func, ast.Attribute)] == ["now"]


_NAMED = re.compile(r"c8|macrometa|gdn", re.IGNORECASE)
_DOCS_LINK = re.compile(r"docs/[\w./-]+\.md")


def core_mentions(root: Path) -> list[str]:
    """Lines under ``root`` naming Macrometa, GDN or ``c8`` outside a ``docs/*.md`` link."""
    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _NAMED.search(_DOCS_LINK.sub("", line)):
                hits.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    return hits


def test_the_core_does_not_name_macrometa(tmp_path: Path) -> None:
    assert core_mentions(CORE) == []
    # the rule itself: a docs link passes, a name does not
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text('"""See docs/macrometa.md."""\nTOPIC = "c8globals."\n')
    assert core_mentions(tmp_path / "pkg") == ['pkg/m.py:2: TOPIC = "c8globals."']


PROTOCOL = ROOT / "plugins" / "streamfw_macrometa" / "protocol"
WIRE = ROOT / "plugins" / "streamfw_macrometa" / "wire.py"
# What the protocol objects may take from their own plugin: frames, and each other.
_PROTOCOL_OWN = ("streamfw_macrometa.wire", "streamfw_macrometa.protocol")


def sans_io_findings(path: Path, *, clocks: bool = True) -> list[str]:
    """I/O, thread, clock or logging imports in ``path``, other plugin modules than wire.py and
    protocol/, and (``clocks``) calls that read a clock or sleep."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = _imports(tree)
    for node in ast.walk(tree):  # ``from streamfw_macrometa import wire``: name the module
        if isinstance(node, ast.ImportFrom) and node.module == "streamfw_macrometa":
            names.discard(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    found = [
        f"{path.name}: import {name}"
        for name in sorted(names)
        if name.split(".")[0] in IO_MODULES and not name.startswith(_PROTOCOL_OWN)
    ]
    if clocks:
        found += [
            f"{path.name}:{node.lineno}: .{node.func.attr}()"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_CALLS
        ]
    return found


def test_the_macrometa_protocol_objects_do_no_io_threads_or_time(tmp_path: Path) -> None:
    """The client side of the Macrometa protocol is sans-I/O (issue 9), so an asyncio link can
    drive the same objects as the threaded one: time comes in as an argument."""
    modules = sorted(PROTOCOL.glob("*.py"))
    assert {"producer", "consumer", "reader", "deliveries"} <= {m.stem for m in modules}
    assert [f for m in modules for f in sans_io_findings(m)] == []
    # wire.py, which they read and build frames with, imports no I/O either (it stamps a
    # message without publishTime with the time of reading, hence no clock check there)
    assert sans_io_findings(WIRE, clocks=False) == []
    # the rule itself: an I/O import, a link module or a clock is flagged
    bad = tmp_path / "m.py"
    bad.write_text(
        "import logging\nfrom streamfw_macrometa.ws import Link\n"
        "from streamfw_macrometa.wire import Ack\nx = time.monotonic()\n"
    )
    assert sans_io_findings(bad) == [
        "m.py: import logging",
        "m.py: import streamfw_macrometa.ws",
        "m.py:4: .monotonic()",
    ]
