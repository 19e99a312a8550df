"""Hypothesis strategies for streamfw values, for your own property tests."""

from __future__ import annotations

from typing import Any

from streamfw.extras import missing

try:
    import hypothesis.strategies as st
except ModuleNotFoundError as exc:  # say which install brings it
    raise missing(exc, __name__) from None

from streamfw.codec import CODEC_PROPERTY

json_scalars: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
#: Any value the JSON codec round-trips exactly (lists, str-keyed dicts, finite floats, ...).
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
#: Any value the default ``auto`` codec round-trips: text, bytes or a JSON value.
message_values: st.SearchStrategy[Any] = st.text() | st.binary() | json_values
#: User message properties (the codec's own property excluded).
properties: st.SearchStrategy[dict[str, str]] = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: k != CODEC_PROPERTY),
    st.text(max_size=20),
    max_size=4,
)
#: Message keys, or no key.
keys: st.SearchStrategy[str | None] = st.none() | st.text(max_size=20)
