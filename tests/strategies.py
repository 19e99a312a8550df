"""The shared strategies are the public ones: streamfw.testing.strategies."""

from streamfw.testing.strategies import json_scalars, json_values, message_values, properties

__all__ = ["json_scalars", "json_values", "message_values", "properties"]
