"""Property tests: random patterns and mangled YAML never crash the loader or the rule engine."""
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from designer.layout import LayoutError, layout_from_dict, layout_from_text, load_layout
from designer.rules import check, fix_all, has_errors

BASE = load_layout("nemotron-h-8b").to_dict()
MOE_BASE = load_layout("nemotron-3-nano-30b-a3b").to_dict()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(alphabet="M*-E", min_size=1, max_size=140))
def test_any_pattern_of_known_symbols_checks_and_fixes_to_no_errors(pattern):
    lay = layout_from_dict({**MOE_BASE, "pattern": pattern, "mlp": {"intermediate_size": 1024}})
    vs = check(lay, ["nemotron-h"])
    for v in vs:
        assert v.layer is None or 0 <= v.layer < len(pattern)
        assert v.message
    fixed, _, remaining = fix_all(lay, ["nemotron-h"])
    assert not has_errors(remaining)
    assert fixed.pattern[0] == "M" and fixed.pattern[-1] in "-E"


@FAST
@given(st.text(min_size=0, max_size=60))
def test_arbitrary_pattern_text_is_accepted_or_rejected_with_a_layout_error(pattern):
    try:
        lay = layout_from_dict({**BASE, "pattern": pattern})
    except LayoutError as e:
        assert "pattern" in str(e)
    else:
        assert set(lay.pattern) <= set("M*-E")


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12))


@FAST
@given(st.sampled_from(sorted(k for k in BASE if k != "name")), st.one_of(scalars, st.lists(scalars, max_size=3)))
def test_replacing_any_top_level_value_gives_a_layout_or_a_layout_error(key, value):
    data = {**BASE, key: value}
    try:
        layout_from_dict(data, source="fuzz.yaml")
    except LayoutError as e:
        assert str(e).startswith("fuzz.yaml")


@FAST
@given(st.sampled_from(["mamba", "attention", "mlp"]), st.text(min_size=1, max_size=15), scalars)
def test_mangled_block_keys_and_values_never_crash(block, key, value):
    data = {**BASE, block: {**BASE[block], key: value}}
    try:
        layout_from_dict(data)
    except LayoutError:
        pass


@FAST
@given(st.integers(0, 400), st.text(max_size=5))
def test_truncated_or_corrupted_yaml_text_never_crashes(cut, junk):
    text = yaml.safe_dump(BASE)
    try:
        layout_from_text(text[:cut] + junk + text[cut + len(junk):], source="cut.yaml")
    except LayoutError:
        pass
