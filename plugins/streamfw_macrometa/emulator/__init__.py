"""A local Macrometa GDN streams server for development and tests (``streamfw emulator``)."""

from streamfw_macrometa.emulator.app import Emulator

__all__ = ["Emulator"]
