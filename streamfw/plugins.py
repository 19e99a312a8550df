"""Plugin discovery: built-in codecs plus everything under the ``streamfw`` entry-point group.

``installed()`` discovers once per process and hands out that ``PluginSet`` (``connect()`` and
the CLI use it); ``installed(refresh=True)`` or ``discover()`` look again, e.g. after a test put
a new distribution on ``sys.path``. A plugin that fails to import is recorded as broken and
the others still load. Hooks are called through pluggy's hook relay (``pm.hook``), so hook
wrappers and tracing see every call.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

import attrs
import pluggy
from pluggy import HookCaller

from streamfw import hookspecs
from streamfw.api import CommandSpec, TransportSpec
from streamfw.codec import CodecRegistry
from streamfw.errors import PluginError
from streamfw.hookspecs import hookimpl

if TYPE_CHECKING:
    import concurrent.futures as cf

    from streamfw.message import MessageId, OutgoingMessage
    from streamfw.producer import Producer
    from streamfw.testing.harness import HarnessSpec

ENTRY_POINT_GROUP = "streamfw"
BUILTIN_PLUGINS = ("streamfw.codec",)  # core ships its codecs as a plugin
SENDER = "streamfw.send"  # the plugin name of streamfw's own streamfw_send: the send itself


@attrs.frozen
class PluginInfo:
    """One discovered plugin: where it came from and whether it loaded."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.error is None


class PluginSet:
    """A plugin manager and what discovery found, including plugins that failed to load."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
        self.pm = pm
        self.infos = infos
        self._found: dict[str, dict[str, tuple[Any, str]]] = {}

    def transports(self) -> dict[str, TransportSpec]:
        return {name: spec for name, (spec, _) in self._collect_transports().items()}

    def transport_sources(self) -> dict[str, str]:
        """URL scheme -> the plugin that provides it."""
        return {name: plugin for name, (_, plugin) in self._collect_transports().items()}

    def codecs(self) -> CodecRegistry:
        found = self._collect("streamfw_register_codecs", "codec")
        return CodecRegistry({name: spec for name, (spec, _) in found.items()})

    def commands(self) -> dict[str, CommandSpec]:
        """CLI command name -> what a plugin registered for it."""
        found = self._collect("streamfw_register_commands", "command")
        return {name: spec for name, (spec, _) in found.items()}

    def harnesses(self) -> dict[str, HarnessSpec]:
        """Harness name -> what a plugin registered for it (the pytest plugin's transports)."""
        found = self._collect("streamfw_register_harnesses", "harness")
        return {name: spec for name, (spec, _) in found.items()}

    def message_hooks(self, transport: str) -> MessageHooks:
        """The message hooks some plugin implements now, for a producer or consumer to keep."""
        return MessageHooks.of(self.pm, transport)

    def transport(self, scheme: str) -> TransportSpec:
        found = self._collect_transports()
        if scheme in found:
            return found[scheme][0]  # type: ignore[no-any-return]
        known = ", ".join(f"{n}:// (from {src})" for n, (_, src) in sorted(found.items()))
        broken = [i for i in self.infos if not i.loaded]
        hint = "".join(f"; plugin {i.name!r} failed to load: {i.error}" for i in broken)
        raise PluginError(
            f"no transport for URL scheme {scheme!r}; available: {known or 'none'}{hint}"
        )

    def _collect_transports(self) -> dict[str, tuple[Any, str]]:
        return self._collect("streamfw_register_transports", "transport")

    def _collect(self, hook_name: str, kind: str) -> dict[str, tuple[Any, str]]:
        """Call one registration hook once; name -> (spec, plugin), in registration order."""
        if hook_name in self._found:
            return self._found[hook_name]
        by_plugin: dict[str, list[object]] = {}

        def register(spec: object) -> None:
            source = self._plugin_calling(sys._getframe(1))
            by_plugin.setdefault(source, []).append(spec)

        getattr(self.pm.hook, hook_name)(register=register)
        found: dict[str, tuple[Any, str]] = {}
        for source, specs in reversed(by_plugin.items()):  # pluggy calls the last one first
            for spec in specs:
                name = getattr(spec, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginError(f"plugin {source!r} registered a {kind} without a name")
                if name in found:
                    raise PluginError(
                        f"plugins {found[name][1]!r} and {source!r} both offer a {kind}"
                        f" named {name!r}"
                    )
                found[name] = (spec, source)
        self._found[hook_name] = found
        return found

    def _plugin_calling(self, frame: types.FrameType) -> str:
        """The registered plugin whose code ``frame`` runs (its module, or its object's)."""
        module = frame.f_globals.get("__name__", "")
        best, best_len = "a plugin", -1
        for name, plugin in self.pm.list_name_plugin():
            home = getattr(plugin, "__name__", None)
            if not isinstance(plugin, types.ModuleType):
                home = type(plugin).__module__
            mine = isinstance(home, str) and (module == home or module.startswith(home + "."))
            if mine and isinstance(home, str) and len(home) > best_len:
                best, best_len = name, len(home)
        return best


@attrs.frozen
class MessageHooks:
    """The message hooks of ``hookspecs`` that some plugin implements, for one transport.

    Each is pluggy's hook caller (``pm.hook.NAME``: wrappers compose, tracing sees the call),
    or None when no plugin implements it, so a producer or consumer that looked them up when
    it opened skips the call entirely: no hook plugin, no cost per message. A plugin object
    may have a ``streamfw_hooks_idle()`` method: when it returns True at that moment (an
    OpenTelemetry plugin with no SDK configured), the plugin is left out as if absent.

    Attributes:
        transport: the URL scheme of the transport the messages go over (``loopback``, ...),
            for plugins to report (OpenTelemetry's ``messaging.system``).
    """

    transport: str = ""
    send: HookCaller | None = None
    after_receive: HookCaller | None = None
    on_ack: HookCaller | None = None
    on_nack: HookCaller | None = None

    @classmethod
    def of(cls, pm: pluggy.PluginManager, transport: str) -> MessageHooks:
        idle = [p for p in pm.get_plugins() if _idle(p)]

        def implemented(name: str) -> HookCaller | None:
            caller: HookCaller = getattr(pm.hook, name)
            impls = caller.get_hookimpls()
            if not [i for i in impls if i.plugin_name != SENDER and i.plugin not in idle]:
                return None
            return pm.subset_hook_caller(name, idle) if idle else caller

        return cls(
            transport,
            implemented("streamfw_send"),
            implemented("streamfw_after_receive"),
            implemented("streamfw_on_ack"),
            implemented("streamfw_on_nack"),
        )

    @property
    def consuming(self) -> bool:
        """Whether any hook about received messages is implemented."""
        return bool(self.after_receive or self.on_ack or self.on_nack)


NO_HOOKS = MessageHooks()


def _idle(plugin: object) -> bool:
    check = getattr(plugin, "streamfw_hooks_idle", None)
    return callable(check) and check() is True


class _Sender:
    """streamfw's own ``streamfw_send``: the send itself, innermost in the plugins' wrappers.

    Registered by ``discover()`` in every plugin manager, last in line (``trylast``), so a
    wrapper's ``yield`` reaches it and a plain implementation that returns None runs first.
    """

    @hookimpl(trylast=True)
    def streamfw_send(self, producer: Producer, message: OutgoingMessage) -> cf.Future[MessageId]:
        return producer._transmit(message)


def _dist_of(ep: md.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def discover(*, entry_points: bool = True, extra: dict[str, object] | None = None) -> PluginSet:
    """Build a plugin manager: built-ins, then entry points, then ``extra`` (name -> plugin)."""
    pm = pluggy.PluginManager("streamfw")
    pm.add_hookspecs(hookspecs)
    pm.register(_Sender(), name=SENDER)
    infos: list[PluginInfo] = []
    for dotted in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(dotted), name=dotted)
        infos.append(PluginInfo(dotted, dotted, "streamfw", _own_version()))
    if entry_points:
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist, version = _dist_of(ep)
            if pm.has_plugin(ep.name):
                continue  # the same plugin seen twice on sys.path
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
                try:
                    pm.check_pending()  # a misspelt hookimpl fails here, not silently
                except pluggy.PluginValidationError:
                    pm.unregister(name=ep.name)
                    raise
            except Exception as exc:  # a broken plugin must not take the others down
                error = f"{type(exc).__name__}: {exc}"
                infos.append(PluginInfo(ep.name, ep.value, dist, version, error))
                continue
            infos.append(PluginInfo(ep.name, ep.value, dist, version))
    for name, plugin in (extra or {}).items():
        pm.register(plugin, name=name)
        infos.append(PluginInfo(name, getattr(plugin, "__name__", repr(plugin)), None, None))
    pm.check_pending()
    return PluginSet(pm, infos)


def _own_version() -> str | None:
    try:
        return md.version("streamfw")
    except md.PackageNotFoundError:  # running from a source tree
        return None


_installed: PluginSet | None = None
_installed_lock = threading.Lock()


def installed(*, refresh: bool = False) -> PluginSet:
    """The installed plugins, discovered once per process; ``refresh=True`` looks again."""
    global _installed
    with _installed_lock:
        if _installed is None or refresh:
            _installed = discover()
        return _installed
