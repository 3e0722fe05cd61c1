"""Layout files, pattern parsing and presets."""
import pytest

from designer.layout import (Layout, LayoutError, MambaConfig, dump_yaml, layout_from_dict, layout_from_text,
                             load_layout, parse_pattern, pattern_runs, preset_names, save_layout)

REQUIRED_PRESETS = ["nemotron-h-4b", "nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b", "nemotron-nano-9b-v2",
                    "nemotron-nano-12b-v2", "nemotron-3-nano-30b-a3b", "falcon-mamba-7b", "mamba2-2.7b",
                    "llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "qwen2.5-72b"]


def test_every_required_preset_loads_and_names_its_source():
    names = preset_names()
    for name in REQUIRED_PRESETS:
        assert name in names
        lay = load_layout(name)
        assert lay.name == name and lay.source


@pytest.mark.parametrize("name,layers,counts", [
    ("nemotron-h-8b", 52, (24, 4, 24, 0)),
    ("nemotron-h-4b", 52, (24, 4, 24, 0)),
    ("nemotron-h-56b", 118, (54, 10, 54, 0)),
    ("nemotron-h-47b", 98, (45, 5, 48, 0)),   # the released pattern (paper text says 44/49)
    ("nemotron-nano-12b-v2", 62, (28, 6, 28, 0)),
    ("nemotron-3-nano-30b-a3b", 52, (23, 6, 0, 23)),
    ("falcon-mamba-7b", 64, (64, 0, 0, 0)),
    ("llama-3.1-8b", 64, (0, 32, 32, 0)),
])
def test_preset_layer_counts_match_the_published_patterns(name, layers, counts):
    lay = load_layout(name)
    assert lay.num_layers == layers
    assert tuple(lay.counts[s] for s in "M*-E") == counts


def test_nemotron_h_8b_attention_sits_at_published_indices():
    assert load_layout("nemotron-h-8b").indices("*") == [7, 18, 29, 40]
    assert load_layout("nemotron-h-56b").indices("*") == [7 + 11 * k for k in range(10)]


def test_mamba2_d_inner_is_heads_times_head_dim_not_twice_hidden():
    lay = load_layout("nemotron-h-4b")
    assert lay.mamba.d_inner(lay.hidden_size) == 112 * 64 == 7168
    assert lay.mamba.conv_dim(lay.hidden_size) == 7168 + 2 * 8 * 128


def test_mamba1_dt_rank_auto_is_ceil_hidden_over_16():
    assert MambaConfig(version=1, dt_rank="auto").dt_rank_value(4000) == 250
    assert load_layout("falcon-mamba-7b").mamba.d_inner(4096) == 8192


def test_yaml_roundtrip_keeps_the_layout(tmp_path):
    for name in REQUIRED_PRESETS:
        lay = load_layout(name)
        path = tmp_path / f"{name}.yaml"
        save_layout(lay, path)
        assert load_layout(str(path)) == lay


def test_pattern_ignores_spaces_and_pipeline_marks():
    assert parse_pattern("M- M*|-") == "M-M*-"


def test_pattern_runs():
    assert pattern_runs("MM-*") == [("M", 0, 2), ("-", 2, 1), ("*", 3, 1)]


BASE = {"name": "t", "hidden_size": 256, "vocab_size": 1000, "pattern": "M-*-",
        "mamba": {"num_heads": 8, "head_dim": 64, "n_groups": 2, "state_size": 16},
        "attention": {"num_heads": 4, "num_kv_heads": 2, "head_dim": 64}, "mlp": {"intermediate_size": 512}}


def _mangled(**changes):
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for key, value in changes.items():
        parts = key.split("__")
        target = d
        for p in parts[:-1]:
            target = target[p]
        if value is KeyError:
            target.pop(parts[-1])
        else:
            target[parts[-1]] = value
    return d


@pytest.mark.parametrize("changes,expect", [
    ({"pattern": "M-X"}, "layer 2: unknown symbol 'X'"),
    ({"pattern": ""}, "key 'pattern': is empty"),
    ({"mamba__n_grops": 2}, "did you mean 'n_groups'"),
    ({"hiden_size": 5}, "did you mean 'hidden_size'"),
    ({"hidden_size": -4}, "key 'hidden_size': must be >= 1"),
    ({"hidden_size": 10**9}, "absurd size"),
    ({"hidden_size": "big"}, "must be an integer"),
    ({"mlp__intermediate_size": 1.5}, "must be an integer"),
    ({"mlp__activation": "relu"}, "allowed: relu2, swiglu, gelu"),
    ({"attention": KeyError}, "the pattern uses '*'"),
    ({"name": "Bad Name"}, "must match [a-z0-9._-]+"),
    ({"vocab_size": KeyError}, "key 'vocab_size': missing"),
    ({"mamba__version": 3}, "allowed: 1, 2"),
    ({"tie_word_embeddings": "yes"}, "must be true or false"),
])
def test_bad_input_names_the_key_and_what_is_allowed(changes, expect):
    with pytest.raises(LayoutError) as e:
        layout_from_dict(_mangled(**changes), source="x.yaml")
    assert expect in str(e.value)
    assert str(e.value).startswith("x.yaml")


def test_malformed_yaml_reports_the_line():
    with pytest.raises(LayoutError, match="malformed YAML at line"):
        layout_from_text("name: x\npattern: [M,\n", source="f.yaml")


def test_a_yaml_list_is_not_a_layout():
    with pytest.raises(LayoutError, match="must be a YAML mapping"):
        layout_from_text("- a\n- b\n")


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(LayoutError, match="did you mean 'nemotron-h-8b'"):
        load_layout("nemotron-h-8")


def test_dump_drops_blocks_the_pattern_does_not_use():
    lay = layout_from_dict(BASE).with_pattern("MM")
    assert "attention" not in dump_yaml(lay)


def test_constraints_parse_symbols_and_kind_names():
    d = _mangled(constraints={"max_consecutive": {"mamba": 3, "-": 2}, "max_params": 1e9})
    lay = layout_from_dict(d)
    assert lay.constraints.max_consecutive == {"M": 3, "-": 2}
    assert isinstance(lay, Layout)
