"""Plugin discovery: built-in codecs plus everything under the ``streamfw`` entry-point group.

No global manager: each caller (the CLI included) builds its own, so tests never clean up.
A plugin that fails to import is recorded as broken and the others still load.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md

import attrs
import pluggy

from streamfw import hookspecs
from streamfw.api import TransportSpec
from streamfw.codec import CodecRegistry, CodecSpec
from streamfw.errors import PluginError

ENTRY_POINT_GROUP = "streamfw"
BUILTIN_PLUGINS = ("streamfw.codec",)  # core ships its codecs as a plugin


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
        self._transports: dict[str, tuple[TransportSpec, str]] | None = None
        self._codecs: dict[str, CodecSpec] | None = None

    def transports(self) -> dict[str, TransportSpec]:
        return {name: spec for name, (spec, _) in self._collect_transports().items()}

    def transport_sources(self) -> dict[str, str]:
        """URL scheme -> the plugin that provides it."""
        return {name: plugin for name, (_, plugin) in self._collect_transports().items()}

    def codecs(self) -> CodecRegistry:
        if self._codecs is None:
            self._codecs = {}
            self._collect("streamfw_register_codecs", self._codecs, "codec")
        return CodecRegistry(self._codecs)

    def transport(self, scheme: str) -> TransportSpec:
        found = self._collect_transports()
        if scheme in found:
            return found[scheme][0]
        known = ", ".join(f"{n}:// (from {src})" for n, (_, src) in sorted(found.items()))
        broken = [i for i in self.infos if not i.loaded]
        hint = "".join(f"; plugin {i.name!r} failed to load: {i.error}" for i in broken)
        raise PluginError(
            f"no transport for URL scheme {scheme!r}; available: {known or 'none'}{hint}"
        )

    def _collect_transports(self) -> dict[str, tuple[TransportSpec, str]]:
        if self._transports is None:
            self._transports = {}
            self._collect("streamfw_register_transports", self._transports, "transport")
        return self._transports

    def _collect(self, hook_name: str, found: dict, kind: str) -> None:  # type: ignore[type-arg]
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            source = impl.plugin_name

            def register(spec: object, source: str = source) -> None:
                name = getattr(spec, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginError(f"plugin {source!r} registered a {kind} without a name")
                if name in found:
                    prev = found[name][1] if kind == "transport" else "another plugin"
                    raise PluginError(
                        f"plugins {prev!r} and {source!r} both offer a {kind} named {name!r}"
                    )
                found[name] = (spec, source) if kind == "transport" else spec

            impl.function(register=register)


def _dist_of(ep: md.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def discover(*, entry_points: bool = True, extra: dict[str, object] | None = None) -> PluginSet:
    """Build a plugin manager: built-ins, then entry points, then ``extra`` (name -> plugin)."""
    pm = pluggy.PluginManager("streamfw")
    pm.add_hookspecs(hookspecs)
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
