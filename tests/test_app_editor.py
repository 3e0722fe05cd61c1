"""Editor page logic through Streamlit's AppTest (no browser): load, edit, rules, fixes, undo, bad uploads."""
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def start(monkeypatch, layout="nemotron-h-8b") -> AppTest:
    monkeypatch.setenv("DESIGNER_LAYOUT", layout)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def present(at):
    return at.session_state["designer_history"].present


def violation_texts(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith((":red-badge", ":orange-badge", ":gray-badge"))]


def set_layer_kind(at, layer: int, kind: str) -> None:
    at.number_input(key="sel_start").set_value(layer).run()
    at.selectbox(key="kind").set_value(kind)
    at.button(key="btn_apply").click().run()


def test_opens_on_the_default_layout_with_no_errors(monkeypatch):
    monkeypatch.delenv("DESIGNER_LAYOUT", raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert present(at).name == "nemotron-h-8b"
    assert at.metric[0].value == "52"
    assert not any(t.startswith(":red-badge") for t in violation_texts(at))


def test_last_layer_to_attention_flags_nh002_nh003_and_one_fix_clears_both(monkeypatch):
    at = start(monkeypatch, "nemotron-h-56b")
    set_layer_kind(at, 117, "*")
    assert present(at).pattern.endswith("M*")
    flagged = violation_texts(at)
    assert any("**NH002** · layer 117" in t for t in flagged)
    assert any("**NH003** · layer 117" in t for t in flagged)
    fix = next(b for b in at.button if b.label == "Fix NH002 at layer 117")
    fix.click().run()
    assert not at.exception
    assert present(at).pattern.endswith("M*-") and present(at).num_layers == 119
    assert not any("NH002" in t or "NH003" in t for t in violation_texts(at))
    assert any("Fixed NH002" in s.value for s in at.success)


def test_undo_and_redo_walk_the_history(monkeypatch):
    at = start(monkeypatch)
    original = present(at).pattern
    set_layer_kind(at, 0, "-")
    assert present(at).pattern[0] == "-"
    at.button(key="btn_undo").click().run()
    assert present(at).pattern == original
    at.button(key="btn_redo").click().run()
    assert present(at).pattern[0] == "-"
    assert at.text_area(key="pattern_text").value == present(at).pattern


def test_range_insert_delete_and_move(monkeypatch):
    at = start(monkeypatch)
    n = present(at).num_layers
    at.number_input(key="sel_start").set_value(2).run()
    at.number_input(key="sel_end").set_value(4).run()
    at.button(key="btn_delete").click().run()
    assert present(at).num_layers == n - 3
    at.selectbox(key="kind").set_value("E")
    at.button(key="btn_insert_before").click().run()
    lay = present(at)
    assert lay.pattern[2] == "E" and lay.moe is not None           # default MoE sizes were added
    assert any("Added default sizes for moe" in i.value for i in at.info)
    at.button(key="btn_move_right").click().run()
    assert present(at).pattern[3] == "E" and at.session_state["sel_start"] == 3


def test_pattern_text_edit_applies_and_bad_text_is_a_message(monkeypatch):
    at = start(monkeypatch)
    at.text_area(key="pattern_text").input("M-M*-M-").run()
    assert present(at).pattern == "M-M*-M-"
    at.text_area(key="pattern_text").input("M-Q-").run()
    assert not at.exception
    assert present(at).pattern == "M-M*-M-"
    assert any("unknown symbol 'Q'" in e.value for e in at.error)
    assert at.text_area(key="pattern_text").value == "M-M*-M-"     # the box shows the layout again


def test_sizes_form_applies_valid_values_and_rejects_bad_ones(monkeypatch):
    at = start(monkeypatch)
    at.number_input(key="sz.attention.num_kv_heads").set_value(4)
    at.button(key="FormSubmitter:sizes_form-Apply sizes").click().run()
    assert present(at).attention.num_kv_heads == 4
    at.number_input(key="sz.attention.num_kv_heads").set_value(5)
    at.button(key="FormSubmitter:sizes_form-Apply sizes").click().run()
    # 32 Q heads are not divisible by 5 KV heads: the rule engine says so at the first attention layer
    assert any("ST004" in t and "layer 7" in t for t in violation_texts(at))
    at.text_input(key="sz.name").input("Bad Name")
    at.button(key="FormSubmitter:sizes_form-Apply sizes").click().run()
    assert not at.exception and present(at).name == "nemotron-h-8b-edited"     # the edit's name stays
    assert any("Sizes not applied" in e.value and "name" in e.value for e in at.error)


def test_fix_all_clears_fixable_errors(monkeypatch):
    at = start(monkeypatch)
    at.text_area(key="pattern_text").input("*M-M-M*").run()
    assert any(t.startswith(":red-badge") for t in violation_texts(at))
    at.button(key="btn_fix_all").click().run()
    assert not any(t.startswith(":red-badge") for t in violation_texts(at))


def test_choosing_a_preset_loads_it(monkeypatch):
    at = start(monkeypatch)
    at.selectbox(key="preset").set_value("nemotron-h-47b").run()
    assert present(at).name == "nemotron-h-47b" and present(at).num_layers == 98
    # the released 47B breaks some rules: reported, not crashed on
    assert any("NH005" in t for t in violation_texts(at))


BAD_UPLOADS = [
    ("broken.yaml", b"name: x\npattern: [M-\n  hidden_size: 3", "malformed YAML at line"),
    ("unknown.yaml", b"name: x\nhidden_size: 64\nvocab_size: 100\npattern: M-\nmlp: {intermediate_size: 64}\n"
                     b"mamba: {num_heads: 2}\nhiden: 3\n", "unknown key (did you mean 'hidden_size'?)"),
    ("huge.yaml", b"name: x\nhidden_size: 999999999999\nvocab_size: 100\npattern: M-\n", "absurd size"),
    ("huge-layers.yaml", b"name: x\nhidden_size: 64\nvocab_size: 100\npattern: " + b"M" * 5000 + b"\n",
     "at most 4096"),
    ("binary.json", bytes(range(256)), "not UTF-8"),
    ("list.yaml", b"- 1\n- 2\n", "must be a YAML mapping"),
    ("config.json", b'{"model_type": "gpt_neox", "hidden_size": 64}', "gpt_neox"),
    ("big.yaml", b"#" * (2 << 20), "limit 1024 kB"),
]


@pytest.mark.parametrize("name,data,expected", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_upload_is_a_message_and_the_layout_stays(monkeypatch, name, data, expected):
    at = start(monkeypatch)
    before = present(at)
    at.file_uploader(key="upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert present(at) == before
    errors = [e.value for e in at.error]
    assert any(expected in e and "previous layout is unchanged" in e for e in errors), errors


def test_good_upload_and_paste_load(monkeypatch):
    at = start(monkeypatch)
    yaml_text = (Path(APP).parent / "profiles" / "models" / "nemotron-h-4b.yaml").read_bytes()
    at.file_uploader(key="upload").set_value(("mine.yaml", yaml_text, "application/x-yaml")).run()
    assert present(at).name == "nemotron-h-4b"
    at.text_area(key="paste_text").input("name: tiny\nhidden_size: 64\nvocab_size: 100\npattern: M*-\n"
                                         "mamba: {num_heads: 2, head_dim: 32, n_groups: 1}\n"
                                         "attention: {num_heads: 2, num_kv_heads: 1, head_dim: 32}\n"
                                         "mlp: {intermediate_size: 128}\n")
    at.button(key="btn_paste").click().run()
    assert present(at).name == "tiny" and not at.exception
    at.button(key="btn_undo").click().run()
    assert present(at).name == "nemotron-h-4b"          # loading is undoable too


def test_bad_command_line_layout_falls_back_to_the_default(monkeypatch):
    at = start(monkeypatch, "no-such-layout")
    assert present(at).name == "nemotron-h-8b"
    assert any("no-such-layout" in e.value for e in at.error)


# --------------------------------------------------------------------------------------------------
# What a new user sees: an edit's name, the upload chip, blocks vs layers, size and memory live


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_an_edit_is_named_and_sourced_as_an_edit_and_undo_restores_the_preset(monkeypatch):
    at = start(monkeypatch)
    original = present(at)
    at.text_area(key="pattern_text").input(original.pattern + "M-").run()
    lay = present(at)
    assert lay.name == "nemotron-h-8b-edited" and lay.num_layers == 54
    assert lay.source == f"edited from nemotron-h-8b (source: {original.source})"
    assert any(m.value == "**nemotron-h-8b-edited** · 54 blocks · 29 layers" for m in at.sidebar.markdown)
    at.number_input(key="sel_start").set_value(0).run()
    at.button(key="btn_delete").click().run()                     # a second edit keeps the first's name
    assert present(at).name == "nemotron-h-8b-edited" and present(at).source == lay.source
    at.button(key="btn_undo").click().run()
    at.button(key="btn_undo").click().run()
    assert present(at) == original


def test_a_name_chosen_in_the_sizes_form_is_kept(monkeypatch):
    at = start(monkeypatch)
    at.text_input(key="sz.name").input("my-hybrid")
    at.number_input(key="sz.hidden_size").set_value(2048)
    at.button(key="FormSubmitter:sizes_form-Apply sizes").click().run()
    assert present(at).name == "my-hybrid" and present(at).hidden_size == 2048
    assert present(at).source.startswith("edited from nemotron-h-8b (source: Nemotron-H paper")


def test_switching_preset_clears_the_uploaded_files_chip(monkeypatch):
    at = start(monkeypatch)
    yaml_text = (Path(APP).parent / "profiles" / "models" / "nemotron-h-4b.yaml").read_bytes()
    at.file_uploader(key="upload").set_value(("mine.yaml", yaml_text, "application/x-yaml")).run()
    assert present(at).name == "nemotron-h-4b"
    assert [u.key for u in at.file_uploader] == ["upload"]
    at.selectbox(key="preset").set_value("nemotron-h-47b").run()
    assert present(at).name == "nemotron-h-47b" and not at.exception
    uploaders = list(at.file_uploader)
    assert [u.key for u in uploaders] == ["upload.1"] and not uploaders[0].value      # a fresh, empty uploader
    at.file_uploader(key="upload.1").set_value(("mine.yaml", yaml_text, "application/x-yaml")).run()
    assert present(at).name == "nemotron-h-4b"                     # and it still loads


def test_blocks_and_transformer_layers_side_by_side(monkeypatch):
    at = start(monkeypatch, "llama-3.1-8b")
    assert metric(at, "Blocks") == "64" and metric(at, "Layers (Transformer count)") == "32"
    note = next(m for m in at.metric if m.label == "Blocks").help
    assert "32 layers" in note and "mixer" in note
    at = start(monkeypatch, "nemotron-h-8b")
    assert metric(at, "Blocks") == "52" and metric(at, "Layers (Transformer count)") == "28"


def test_parameters_and_memory_update_with_every_edit(monkeypatch):
    from designer.present.format import fmt_bytes, fmt_count
    from designer.profile.analytic import profile

    def expected(lay, context=66560, precision="bf16"):
        d = profile(lay, precision=precision, prompt=context - 1, gen=1).to_dict()
        m = d["memory"]["model"]
        cache = m["kv_cache_bytes_per_token"] * context + m["ssm_state_bytes_per_sequence"] \
            + m["conv_state_bytes_per_sequence"]
        return (fmt_count(d["params"]["total"]), fmt_count(d["params"]["active"]),
                fmt_bytes(m["weights_bytes_by_precision"][precision]), fmt_bytes(cache))

    def shown(at, precision="bf16"):
        return (metric(at, "Parameters"), metric(at, "Active / token"), metric(at, f"Weights ({precision})"),
                metric(at, "KV + state / sequence"))

    at = start(monkeypatch)
    assert shown(at) == expected(present(at)) == ("8.10 B", "8.10 B", "15.09 GiB", "1.11 GiB")
    at.number_input(key="sel_start").set_value(7).run()           # layer 7 is attention: add another after it
    at.selectbox(key="kind").set_value("*")
    at.button(key="btn_insert_after").click().run()
    assert shown(at) == expected(present(at)) and shown(at)[0] != "8.10 B"
    at.number_input(key="ed.context").set_value(8192).run()
    at.selectbox(key="ed.precision").set_value("fp8").run()
    assert shown(at, "fp8") == expected(present(at), 8192, "fp8")
