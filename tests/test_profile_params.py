"""Parameter counts: exact against transformers models built on the meta device, and the published
figures of the presets' model cards / papers."""
from __future__ import annotations

import pytest

from designer.hf import hf_config_from_layout
from designer.layout import load_layout, preset_names
from designer.profile.blocks import block_cost
from designer.profile.params import count_params

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def hf_param_count(layout) -> int:
    """Parameters + persistent buffers (the MoE router's e_score_correction_bias is a checkpoint buffer)."""
    d = dict(hf_config_from_layout(layout))
    cfg = transformers.AutoConfig.for_model(d.pop("model_type"), **d)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    params = sum(p.numel() for p in model.parameters())          # tied weights are one Parameter: counted once
    buffers = sum(b.numel() for m in model.modules() for name, b in m.named_buffers(recurse=False)
                  if b is not None and name not in m._non_persistent_buffers_set)
    return params + buffers


@pytest.mark.parametrize("name", preset_names())
def test_param_count_equals_transformers_meta_model(name):
    layout = load_layout(name)
    assert count_params(layout).total == hf_param_count(layout)


def test_nemotron_3_nano_moe_counts_router_bias_and_active_params():
    lay = load_layout("nemotron-3-nano-30b-a3b")
    moe = block_cost(lay, "E")
    h = lay.hidden_size
    expert = 2 * h * 1856                                   # up + down, not gated (relu2)
    shared = 2 * h * 3712
    assert moe.params == 128 * expert + 128 * h + 128 + shared + h   # experts, router, score bias, shared, norm
    assert moe.active_params == 6 * expert + 128 * h + 128 + shared + h
    p = count_params(lay)
    assert p.total - p.active == lay.count("E") * (128 - 6) * expert


def test_mamba2_inner_size_follows_heads_not_expand():
    """Nemotron-H-4B: d_inner = 112 x 64 = 7168 = 2.33 x hidden; an expand=2 formula would be wrong."""
    lay = load_layout("nemotron-h-4b")
    m = block_cost(lay, "M")
    inner, conv_dim = 112 * 64, 112 * 64 + 2 * 8 * 128
    assert m.matmul_params == 3072 * (2 * inner + 2 * 8 * 128 + 112) + inner * 3072
    assert m.params == m.matmul_params + conv_dim * 4 + conv_dim + 3 * 112 + inner + 3072


# Published totals, in the precision the source gives them (some round, some truncate: one unit of the
# last published digit is allowed).
PUBLISHED = [
    # (preset, total params in billions, digits, source)
    ("llama-3.1-8b", 8.03, 2, "HF meta-llama/Llama-3.1-8B model card: 8.03B params"),
    ("llama-3.1-70b", 70.6, 1, "HF meta-llama/Llama-3.1-70B model card: 70.6B params"),
    ("falcon-mamba-7b", 7.27, 2, "HF tiiuae/falcon-mamba-7b model card: 7.27B params"),
    ("qwen2.5-7b", 7.61, 2, "Qwen2.5 technical report (arXiv 2412.15115) Table 1: 7.61B"),
    ("qwen2.5-72b", 72.7, 1, "Qwen2.5 technical report Table 1: 72.7B"),
    ("mamba2-2.7b", 2.7, 1, "Mamba-2 paper (arXiv 2405.21060): 2.7B"),
    ("nemotron-3-nano-30b-a3b", 31.6, 1, "NVIDIA Nemotron 3 Nano model card: 31.6B total"),
]


@pytest.mark.parametrize("name,billions,digits,source", PUBLISHED)
def test_total_params_match_published_figure(name, billions, digits, source):
    assert abs(count_params(load_layout(name)).total / 1e9 - billions) <= 10 ** -digits, source


def test_qwen_non_embedding_params_match_report():
    # Qwen2.5 technical report Table 1: non-embedding parameters 6.53B (7B) and 70.21B (72B)
    assert round(count_params(load_layout("qwen2.5-7b")).non_embedding / 1e9, 2) == 6.53
    assert round(count_params(load_layout("qwen2.5-72b")).non_embedding / 1e9, 2) == 70.21


def test_nemotron_3_nano_active_params_match_model_card():
    # NVIDIA model card: ~3.2B active parameters, 3.6B including embeddings
    p = count_params(load_layout("nemotron-3-nano-30b-a3b"))
    assert round(p.active / 1e9, 1) == 3.6
    assert round((p.active - p.embedding) / 1e9, 1) == 3.2


def test_tied_embeddings_count_once():
    p = count_params(load_layout("mamba2-2.7b"))
    assert p.lm_head == 0 and p.embedding == 50288 * 2560
    untied = count_params(load_layout("mamba2-2.7b").replace(tie_word_embeddings=False))
    assert untied.total - p.total == 50288 * 2560


def test_by_kind_sums_to_total():
    for name in ("nemotron-h-8b", "nemotron-3-nano-30b-a3b", "qwen2.5-7b", "falcon-mamba-7b"):
        p = count_params(load_layout(name))
        assert sum(p.by_kind.values()) + p.embedding + p.lm_head + p.final_norm == p.total
