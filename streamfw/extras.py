"""Optional dependencies: which install brings each one, said where an import of it fails.

``pip install streamfw`` brings everything the README and the docs use, the emulator included
(aiohttp is a dependency). The test kit's hypothesis parts need ``streamfw[testing]``. A part of
streamfw that imports one of these turns the bare ``ModuleNotFoundError`` into ``Missing``,
whose message is the one command to run (docs/install.md).
"""

from __future__ import annotations

# Top-level module -> the command that installs it.
INSTALLS = {
    "hypothesis": "pip install 'streamfw[testing]'",
    "pytest": "pip install 'streamfw[testing]'",
    # A dependency: missing only after `pip install --no-deps` or an uninstall.
    "aiohttp": "pip install aiohttp (a dependency of streamfw; reinstalling streamfw brings it)",
}


class Missing(ModuleNotFoundError):
    """An optional dependency is not installed; the message says how to install it."""


def missing(exc: ModuleNotFoundError, needed_by: str) -> ModuleNotFoundError:
    """``exc`` with the install command in its message, when it names a known dependency.

    Args:
        exc: the failed import.
        needed_by: what needs the module, e.g. ``"streamfw.testing.machine"``.

    Returns:
        A ``Missing`` naming the module and its install command, or ``exc`` itself for a module
        streamfw does not know how to install.
    """
    top = (exc.name or "").partition(".")[0]
    if top not in INSTALLS:
        return exc
    return Missing(f"{needed_by} needs {top}: {INSTALLS[top]}", name=top)
