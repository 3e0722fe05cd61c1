"""The exported model.py's ModelArgs is the layout schema (issue 10, item 6): the same fields, unknown keys
refused, and build_model() honouring torch's ambient default device."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from designer import layout as L
from designer.export.templates import model as M
from designer.layout import layout_to_dict, load_layout, preset_names

PAIRS = [(M.ModelArgs, L.Layout), (M.MambaArgs, L.MambaConfig), (M.AttentionArgs, L.AttentionConfig),
         (M.MLPArgs, L.MLPConfig), (M.MoEArgs, L.MoEConfig)]


def names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("ours, schema", PAIRS, ids=lambda c: c.__name__)
def test_model_args_fields_equal_the_layout_schema(ours, schema):
    assert names(ours) == names(schema)


@pytest.mark.parametrize("ours, schema", PAIRS[1:], ids=lambda c: c.__name__)
def test_block_defaults_equal_the_layout_schema(ours, schema):
    assert dataclasses.asdict(ours()) == dataclasses.asdict(schema())


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_reads_with_every_key(name):
    d = layout_to_dict(load_layout(name), full=True)
    args = M.ModelArgs.from_dict(d)
    assert args.pattern == d["pattern"] and args.rules == d.get("rules", [])


def test_unknown_keys_raise_a_clear_error():
    d = layout_to_dict(load_layout("nemotron-h-8b"), full=True)
    with pytest.raises(ValueError, match=r"layout: unknown keys \['hiden_size'\]"):
        M.ModelArgs.from_dict(dict(d, hiden_size=1))
    with pytest.raises(ValueError, match=r"layout block 'mamba:': unknown keys \['heads'\]"):
        M.ModelArgs.from_dict(dict(d, mamba=dict(d["mamba"], heads=3)))


def test_build_model_honours_the_ambient_default_device():
    args = M.ModelArgs.from_dict(layout_to_dict(load_layout("nemotron-h-8b"), full=True))
    with torch.device("meta"):
        model = M.build_model(args=args)   # an 8B model: would take 32 GB on the CPU
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert model.num_params() > 8e9
    assert M.build_model(args=args, device="meta").lm_head.weight.is_meta
    tiny = args.tiny()
    with torch.device("meta"):
        assert M.build_model(args=tiny, device="cpu").lm_head.weight.device.type == "cpu"   # device= wins
    assert M.build_model(args=tiny).lm_head.weight.device.type == "cpu"
