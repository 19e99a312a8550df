"""Shared hypothesis strategies."""

from __future__ import annotations

import hypothesis.strategies as st

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
properties = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: k != "streamfw-codec"),
    st.text(max_size=20),
    max_size=4,
)
