"""The app's pure pattern edits and undo/redo history (designer/app/edit.py), without Streamlit."""
import pytest

from designer.app import edit
from designer.present import figures as charts
from designer.layout import LayoutError, load_layout


def test_set_kind_changes_an_inclusive_range():
    assert edit.set_kind("MMMMM", 1, 3, "*") == "M***M"
    assert edit.set_kind("MMMMM", 3, 1, "-") == "M---M"      # reversed range is the same range
    assert edit.set_kind("M-", 1, 1, "*") == "M*"


def test_set_kind_rejects_out_of_range_and_unknown_symbols():
    with pytest.raises(LayoutError, match="out of range; expected 0..4"):
        edit.set_kind("MMMMM", 2, 5, "*")
    with pytest.raises(LayoutError, match="unknown layer kind 'X'"):
        edit.set_kind("MMMMM", 0, 0, "X")


def test_insert_puts_the_new_layer_at_the_index():
    assert edit.insert("M-M-", 0, "*") == "*M-M-"
    assert edit.insert("M-M-", 2, "*-") == "M-*-M-"
    assert edit.insert("M-M-", 4, "*") == "M-M-*"         # at == len appends
    with pytest.raises(LayoutError):
        edit.insert("M-", 3, "*")


def test_delete_keeps_at_least_one_layer():
    assert edit.delete("M*-M", 1, 2) == "MM"
    with pytest.raises(LayoutError, match="at least one"):
        edit.delete("M*-", 0, 2)


def test_move_places_the_block_at_the_target():
    assert edit.move("M*-E-", 0, 0, 2) == "*-ME-"
    assert edit.move("M*-E", 1, 2, 0) == "*-ME"
    assert edit.move("M*-E", 1, 2, 2) == "ME*-"


def test_shift_moves_by_one_and_clamps_at_the_ends():
    assert edit.shift("M-*-", 2, 2, -1) == ("M*--", 1, 1)
    assert edit.shift("M-*-", 2, 2, 1) == ("M--*", 3, 3)
    assert edit.shift("M-*-", 3, 3, 1) == ("M-*-", 3, 3)     # already last: no-op
    assert edit.shift("M-*-", 0, 1, -1) == ("M-*-", 0, 1)


def test_with_pattern_adds_default_sizes_for_a_new_kind():
    falcon = load_layout("falcon-mamba-7b")      # pure Mamba-1: no attention block
    assert falcon.attention is None
    new, added = edit.with_pattern(falcon, "*-" + falcon.pattern)
    assert added == ["attention", "mlp"] and new.attention is not None and new.mlp is not None
    with pytest.raises(LayoutError, match="unknown symbol 'x'"):
        edit.with_pattern(falcon, "MMxM")


def test_with_sizes_validates_like_a_file():
    lay = load_layout("nemotron-h-8b")
    new = edit.with_sizes(lay, {"hidden_size": 2048}, {"attention": {"num_heads": 16}})
    assert new.hidden_size == 2048 and new.attention.num_heads == 16 and new.mamba == lay.mamba
    with pytest.raises(LayoutError, match="hidden_size.*absurd"):
        edit.with_sizes(lay, {"hidden_size": 10**9}, {})
    with pytest.raises(LayoutError, match="name"):
        edit.with_sizes(lay, {"name": "Bad Name!"}, {})


def test_history_undo_redo_round_trip():
    a = load_layout("nemotron-h-8b")
    b = a.with_pattern(a.pattern[:-1] + "*")
    c = b.with_pattern(b.pattern + "-")
    h = edit.History(a)
    assert not h.can_undo and not h.can_redo
    assert h.push(b, "last → attention") and h.push(c, "fix NH002")
    assert not h.push(c, "no-op")                   # unchanged layouts are not recorded
    assert h.undo() == "fix NH002" and h.present == b
    assert h.undo() == "last → attention" and h.present == a
    assert h.undo() is None
    assert h.redo() == "last → attention" and h.present == b
    h.push(a.with_pattern("M-"), "new branch")       # a new change drops the redo branch
    assert not h.can_redo and h.undo() == "new branch" and h.present == b


def test_history_is_bounded():
    a = load_layout("nemotron-h-8b")
    h = edit.History(a, limit=3)
    for k in range(10):
        h.push(a.with_pattern("M-" * (k + 1)), f"step {k}")
    assert len(h.past) == 3 and h.notes == ["step 7", "step 8", "step 9"]


def test_strip_rows_line_up_the_nemotron_period():
    assert charts.strip_row_length(load_layout("nemotron-h-56b").pattern) == 11
    assert charts.strip_row_length(load_layout("llama-3.1-8b").pattern) == 16
    assert charts.strip_row_length("M-*") == 3


def test_strip_has_one_cell_per_layer_with_its_index():
    lay = load_layout("nemotron-h-56b")
    fig = charts.pattern_strip(lay, selected=(117, 117), flagged={117: "error"})
    bars = [t for t in fig.data if t.type == "bar"]
    layers = sorted(i for t in bars for i in t.customdata)
    assert layers == list(range(118))
    att = next(t for t in bars if t.name.startswith("Attention"))
    assert list(att.customdata) == lay.indices("*") and "64 Q / 8 KV heads × 128" in att.hovertext[0]
    assert any(t.name == "rule error" and list(t.customdata) == [117] for t in fig.data)
    assert len(fig.layout.shapes) == 1                 # the selection outline


def test_selected_layers_reads_customdata():
    event = {"points": [{"customdata": 18}, {"customdata": [7]}, {"x": 1}]}
    assert charts.selected_layers(event) == [7, 18]
    assert charts.selected_layers(None) == []


def test_conventional_layers_pair_a_mixer_with_the_ffn_after_it():
    from designer.app.edit import conventional_layers
    assert conventional_layers("*-" * 32) == 32                  # Llama-3.1-8B: 64 blocks, 32 layers
    assert conventional_layers("M" * 64) == 64                   # pure Mamba: every block is a layer
    assert conventional_layers("M-M-M-M*-") == 5                 # Nemotron-H: the lone M is one layer too
    assert conventional_layers("-*M") == 3                       # an FFN before a mixer is not its FFN
    assert conventional_layers("*E*-") == 2
    assert conventional_layers(load_layout("nemotron-h-56b").pattern) == 64


def test_mark_edited_renames_once_and_keeps_a_chosen_name():
    from designer.app.edit import mark_edited
    base = load_layout("nemotron-h-8b")
    edited = mark_edited(base.replace(pattern=base.pattern + "M-"), base)
    assert edited.name == "nemotron-h-8b-edited"
    assert edited.source == f"edited from nemotron-h-8b (source: {base.source})"
    again = mark_edited(edited.replace(pattern="M-"), edited)
    assert (again.name, again.source) == (edited.name, edited.source)
    chosen = mark_edited(base.replace(name="mine", hidden_size=2048), base)
    assert chosen.name == "mine" and chosen.source.startswith("edited from nemotron-h-8b")
    assert mark_edited(base, base) is base                        # nothing changed: nothing renamed


def test_footprint_is_the_profilers_numbers():
    from designer.app.edit import footprint
    from designer.profile.analytic import profile
    lay = load_layout("nemotron-3-nano-30b-a3b")
    f = footprint(lay, 32768, "fp8")
    d = profile(lay, precision="fp8", prompt=32767, gen=1).to_dict()
    m = d["memory"]["model"]
    assert (f.total_params, f.active_params) == (d["params"]["total"], d["params"]["active"])
    assert f.active_params < f.total_params                        # MoE: top-k of the experts
    assert f.weights_bytes == m["weights_bytes_by_precision"]["fp8"]
    assert f.kv_cache_bytes == m["kv_cache_bytes_per_token"] * 32768
    assert f.state_bytes == m["ssm_state_bytes_per_sequence"] + m["conv_state_bytes_per_sequence"]
