"""Rule engine: published layouts, each rule on a hand-made violation, fixes."""
import dataclasses

import pytest

from designer.layout import Layout, LayoutError, layout_from_dict, load_layout
from designer.rules import all_rules, check, fix_all, has_errors

BASE = {"name": "t", "hidden_size": 256, "vocab_size": 1024, "pattern": "M-M*-M-",
        "mamba": {"num_heads": 8, "head_dim": 64, "n_groups": 2, "state_size": 16},
        "attention": {"num_heads": 4, "num_kv_heads": 2, "head_dim": 64},
        "mlp": {"intermediate_size": 512}, "rules": ["nemotron-h"]}


def make(**over):
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k].update(v)
        else:
            d[k] = v
    return layout_from_dict(d)


def ids(violations, severity=None):
    return [v.rule for v in violations if severity is None or v.severity == severity]


def test_nemotron_h_8b_and_56b_pass_with_no_errors_or_warnings():
    for name in ("nemotron-h-8b", "nemotron-h-56b"):
        vs = check(load_layout(name), ["nemotron-h"])
        assert [v for v in vs if v.severity in ("error", "warning")] == []


def test_released_47b_has_no_errors_and_its_two_honest_warnings():
    vs = check(load_layout("nemotron-h-47b"), ["nemotron-h"])
    assert not has_errors(vs)
    assert sorted(ids(vs, "warning")) == ["NH005", "NH006"]
    nh005 = next(v for v in vs if v.rule == "NH005")
    assert "11..26" in nh005.message and nh005.layer == 86


def test_56b_fp8_recipe_reports_the_bf16_edge_layers_as_info():
    vs = check(load_layout("nemotron-h-56b"))
    info = [v for v in vs if v.rule == "NH007"]
    assert info and info[0].severity == "info" and "[0, 1, 2, 3]" in info[0].message and "117" in info[0].message


def test_the_toy_base_layout_is_clean():
    assert ids(check(make()), "error") == []


def test_first_layer_must_be_mamba():
    vs = check(make(pattern="-M-M*-M-"))
    v = next(v for v in vs if v.rule == "NH001")
    assert v.layer == 0 and "expected mamba" in v.message


def test_last_layer_must_be_an_ffn():
    vs = check(make(pattern="M-M*-M"))
    v = next(v for v in vs if v.rule == "NH002")
    assert v.layer == 5


def test_attention_must_precede_ffn():
    vs = check(make(pattern="M-M*M-"))
    v = next(v for v in vs if v.rule == "NH003")
    assert v.layer == 3 and "followed by layer 4 (mamba)" in v.message


def test_attention_as_last_layer_flags_nh002_and_nh003_at_that_layer_and_one_fix_clears_both():
    lay = load_layout("nemotron-h-56b")
    edited = lay.with_pattern(lay.pattern[:-1] + "*")
    vs = check(edited)
    assert {(v.rule, v.layer) for v in vs if v.severity == "error"} == {("NH002", 117), ("NH003", 117)}
    nh003 = next(v for v in vs if v.rule == "NH003")
    fixed = nh003.fix.apply(edited)
    assert not has_errors(check(fixed))
    assert fixed.pattern == edited.pattern + "-"


def test_moe_counts_as_ffn_for_placement():
    lay = load_layout("nemotron-3-nano-30b-a3b")
    assert ids(check(lay), "error") == []


def test_attention_share_warns_with_the_expected_count():
    vs = check(make(pattern="M*-M*-M*-"))
    v = next(v for v in vs if v.rule == "NH004")
    assert "3 of 9 layers are attention" in v.message


def test_uneven_attention_spread_says_how_uneven():
    pattern = "M-M*-" + "M-" * 2 + "M*-" + "M-" * 20 + "M*-" + "M-"
    v = next(v for v in check(make(pattern=pattern)) if v.rule == "NH005")
    assert "gaps range" in v.message and "ideal" in v.message


def test_mamba_ffn_balance():
    v = next(v for v in check(make(pattern="MMMM-M*-")) if v.rule == "NH006")
    assert "5 Mamba vs 2 FFN" in v.message


@pytest.mark.parametrize("over,rule,fragment", [
    ({"attention": {"num_heads": 6, "num_kv_heads": 4}}, "ST004", "not divisible by attention.num_kv_heads 4"),
    ({"mamba": {"num_heads": 6, "n_groups": 4}}, "ST005", "not divisible by mamba.n_groups 4"),
    ({"parallel": {"tensor": 8}}, "ST007", "not divisible by parallel.tensor 8"),
    ({"hidden_size": 260}, "ST008", "hidden_size 260 is not a multiple of 64"),
    ({"parallel": {"pipeline": 99}}, "ST009", "parallel.pipeline 99"),
])
def test_structural_rules(over, rule, fragment):
    vs = check(make(**over))
    assert any(v.rule == rule and fragment in v.message for v in vs), [v.message for v in vs]


def test_moe_top_k_cannot_exceed_experts():
    # refused on construction (issue 11); ST006 still guards objects that bypassed it
    with pytest.raises(LayoutError, match="key 'moe.top_k': must be at most moe.num_experts 4"):
        make(pattern="MEM*E", moe={"num_experts": 4, "top_k": 8, "intermediate_size": 128})
    good = make(pattern="MEM*E", moe={"num_experts": 4, "top_k": 4, "intermediate_size": 128})
    lay = unchecked(good, moe=object.__new__(type(good.moe)))
    for f in dataclasses.fields(good.moe):
        object.__setattr__(lay.moe, f.name, 8 if f.name == "top_k" else getattr(good.moe, f.name))
    assert "ST006" in ids(check(lay), "error")


def unchecked(layout, **changes):
    """A layout object that skipped construction's validation (what ST001-ST003 still guard against: since
    `Layout.replace` and `with_pattern` validate, only code that bypasses the constructor can make one)."""
    obj = object.__new__(Layout)
    for f in dataclasses.fields(Layout):
        object.__setattr__(obj, f.name, changes.get(f.name, getattr(layout, f.name)))
    return obj


def test_a_layout_cannot_be_edited_into_an_invalid_one():
    with pytest.raises(LayoutError, match="unknown symbol 'X'"):
        make().with_pattern("M-X-")
    with pytest.raises(LayoutError, match="no 'moe:' block"):
        make().with_pattern("M-E-")
    with pytest.raises(LayoutError, match="key 'hidden_size': must be >= 1"):
        make().replace(hidden_size=0)
    with pytest.raises(LayoutError, match="key 'mamba.num_heads': must be >= 1"):
        dataclasses.replace(make().mamba, num_heads=0)


def test_unknown_symbol_in_an_edited_pattern_is_an_error_with_a_delete_fix():
    lay = unchecked(make(), pattern="M-X-")
    v = next(v for v in check(lay) if v.rule == "ST001")
    assert v.layer == 2 and v.fix.apply(lay).pattern == "M--"


def test_user_constraints():
    lay = make(pattern="MMMMM-M*-", constraints={"max_consecutive": {"M": 3}, "max_attention_layers": 0,
                                                 "min_layers": 20})
    vs = check(lay)
    msgs = {v.rule: v for v in vs}
    assert msgs["UC003"].layer == 0 and "5 mamba layers in a row" in msgs["UC003"].message
    assert "UC001" in msgs and "UC002" in msgs


def test_rule_selection_by_set_id_and_prefix():
    lay = load_layout("llama-3.1-8b")
    assert "NH001" not in ids(check(lay))                   # its own rules: none
    assert "NH001" in ids(check(lay, ["nemotron-h"]))
    assert ids(check(lay, ["NH001"])) == ["NH001"]
    assert set(ids(check(lay, ["NH00"]))) >= {"NH001", "NH004"}


def test_every_rule_has_id_severity_title_and_rationale():
    for r in all_rules().values():
        assert r.id[:2] in ("ST", "NH", "UC") and r.severity in ("error", "warning", "info")
        assert r.title and len(r.rationale) > 20


def test_fix_all_makes_a_broken_layout_pass_and_lists_each_change():
    lay = make(pattern="*M-M*M")
    fixed, changes, remaining = fix_all(lay)
    assert not has_errors(remaining)
    assert fixed.pattern[0] == "M" and fixed.pattern[-1] in "-E"
    assert len(changes) >= 3 and all(c.split(":")[0] in ("NH001", "NH002", "NH003") for c in changes)


def test_parameter_budget_uses_the_profilers_count():
    lay = load_layout("nemotron-h-8b")
    tight = lay.replace(constraints=lay.constraints.__class__(max_params=8.0e9, max_active_params=9e9))
    v = next(v for v in check(tight) if v.rule == "UC004")
    assert "8.101B parameters" in v.message and "8.000B" in v.message
    roomy = lay.replace(constraints=lay.constraints.__class__(max_params=8.2e9))
    assert "UC004" not in ids(check(roomy))


def test_a_fix_that_needs_a_block_the_layout_lacks_is_not_applied():
    """NH002/NH003 would append an MLP to a layout with no `mlp:` block: the result would not be a layout, so
    fix_all leaves those violations standing instead of writing a layout that cannot be built."""
    lay = make(pattern="MMM*M", mlp=None)
    fixed, changes, remaining = fix_all(lay)
    assert fixed == lay and changes == []
    assert {"NH002", "NH003"} <= {v.rule for v in remaining if v.severity == "error"}
