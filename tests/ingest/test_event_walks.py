"""The depth and NUL checks of validate_event agree with the plain walks they replace."""

from hypothesis import given, settings
from hypothesis import strategies as st

from app.ingest.validation import MAX_DEPTH, has_nul, nesting_depth

texts = st.sampled_from(["", "a", "\x00", "a\x00b", "\\u0000", "\\\\u0000", "é", "\\"]) | st.text(max_size=4)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=40
)


def reference_depth(value, depth=1):
    if isinstance(value, dict):
        return max([depth, *(reference_depth(v, depth + 1) for v in value.values())])
    if isinstance(value, list):
        return max([depth, *(reference_depth(v, depth + 1) for v in value)])
    return depth


def reference_nul(value):
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or reference_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(reference_nul(v) for v in value)
    return False


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_the_walks_agree_with_the_plain_ones(value):
    assert nesting_depth(value) == reference_depth(value)
    assert has_nul(value) == reference_nul(value)


def test_depth_stops_counting_past_the_limit():
    deep: list = []
    for _ in range(MAX_DEPTH * 3):
        deep = [deep]
    assert MAX_DEPTH < nesting_depth(deep) <= MAX_DEPTH + 2


def test_a_nul_in_a_key_or_behind_an_escaped_backslash():
    assert has_nul({"a\x00": 1})
    assert not has_nul({"text": "\\u0000"})  # a backslash and 'u0000': no NUL
    assert has_nul([{"text": "\\u0000"}, "\x00"])
