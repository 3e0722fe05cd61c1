"""Hugging Face `config.json` <-> Layout, both directions, in one place.

Families (transformers model_type): nemotron_h (Mamba-2 hybrids incl. MoE, no position embedding),
falcon_mamba and mamba (pure Mamba-1), mamba2 (pure Mamba-2), llama / mistral / qwen2 (dense, one HF
decoder layer = the pattern pair `*-`). Field names follow transformers' configuration files.
No torch import here.
"""
from __future__ import annotations

import re
from typing import Any

from designer.layout import (ATTENTION, CONFIG_READERS, MAMBA, MAX_DIM, MAX_LAYERS, MAX_VOCAB, MLP, MOE, Layout,
                             LayoutError, _as_float, _as_int, layout_from_dict)

# nemotron_h layer-type names, old (hybrid_override_pattern era) and new (layers_block_type lists)
_NH_TYPE_TO_SYMBOL = {"mamba": MAMBA, "linear_attention": MAMBA, "attention": ATTENTION, "full_attention": ATTENTION,
                      "mlp": MLP, "moe": MOE}
_NH_SYMBOL_TO_TYPE = {MAMBA: "mamba", ATTENTION: "attention", MLP: "mlp", MOE: "moe"}
_HF_ACT = {"relu2": "relu2", "swiglu": "silu", "gelu": "gelu"}
HF_DEFAULT_ROPE_THETA = 10000.0   # transformers' default when a config names none


class HFUnsupported(LayoutError):
    """The layout has no faithful Hugging Face family (the message says which feature is the obstacle)."""


# --------------------------------------------------------------------------------------------------
# Layout -> config.json


def hf_family(layout: Layout) -> str:
    """The transformers family that can express this layout exactly; raises HFUnsupported otherwise."""
    reason = _unsupported_reason(layout)
    if reason:
        raise HFUnsupported(reason, source=layout.name)
    if layout.family:
        return layout.family
    syms = set(layout.pattern)
    if syms == {MAMBA}:
        if layout.mamba.version == 2:
            return "mamba2"
        return "falcon_mamba" if layout.mamba.bcdt_norm else "mamba"
    if _is_dense(layout):
        return "qwen2" if layout.attention.qkv_bias else "llama"
    return "nemotron_h"


def _is_dense(layout: Layout) -> bool:
    p = layout.pattern
    return len(p) % 2 == 0 and p == "*-" * (len(p) // 2) and layout.mlp is not None and layout.mlp.gated


def _unsupported_reason(layout: Layout) -> str | None:
    syms = set(layout.pattern)
    fam = layout.family
    if fam in ("llama", "qwen2") or (fam is None and _is_dense(layout)):
        if not _is_dense(layout):
            return "llama/qwen2 need the pattern '*-' repeated with a gated (swiglu) MLP"
        if fam == "llama" and layout.attention.qkv_bias:
            return "llama has no qkv bias; use family qwen2"
        if fam == "qwen2" and not layout.attention.qkv_bias:
            return "qwen2 always has a qkv bias; use family llama"
        return None
    if fam in ("falcon_mamba", "mamba", "mamba2") or syms == {MAMBA}:
        if syms != {MAMBA}:
            return f"family {fam} is pure Mamba: the pattern may hold only 'M'"
        want = {"falcon_mamba": 1, "mamba": 1, "mamba2": 2}.get(fam, layout.mamba.version)
        if layout.mamba.version != want:
            return f"family {fam} needs mamba.version {want}"
        if want == 2 and layout.mamba.d_inner(layout.hidden_size) % layout.hidden_size:
            return "HF mamba2 derives d_inner = expand * hidden with an integer expand; heads*head_dim is not a multiple"
        if want == 1 and not layout.mamba.bcdt_norm and fam == "falcon_mamba":
            return "falcon_mamba always normalises B, C and dt (mamba.bcdt_norm: true); use family mamba"
        if want == 1 and layout.mamba.bcdt_norm and fam == "mamba":
            return "HF mamba has no B, C, dt norms (mamba.bcdt_norm: false); use family falcon_mamba"
        return None
    # nemotron_h hybrids
    if layout.mamba is not None and layout.mamba.version != 2 and MAMBA in syms:
        return "nemotron_h hybrids use Mamba-2 mixers (mamba.version: 2)"
    if ATTENTION in syms and layout.attention.rope_theta is not None:
        return "nemotron_h attention has no position embedding (attention.rope_theta must be null)"
    if MLP in syms and layout.mlp.gated:
        return "nemotron_h MLPs are not gated (mlp.activation relu2 or gelu)"
    if MOE in syms and layout.moe.gated:
        return "nemotron_h experts are not gated (moe.activation relu2 or gelu)"
    if ATTENTION in syms and (layout.attention.qkv_bias or layout.attention.o_bias):
        return "nemotron_h has one attention_bias for q, k, v and o; per-projection biases are not expressible"
    if layout.tie_word_embeddings:
        return "NemotronHForCausalLM never ties the LM head to the embedding (tie_word_embeddings must be false)"
    if MOE in syms and not layout.moe.shared_intermediate_size:
        return "nemotron_h MoE always builds a shared expert (moe.shared_intermediate_size must be > 0)"
    if MOE in syms and MLP in syms and layout.moe.activation != layout.mlp.activation:
        return "nemotron_h has one activation for MLP and MoE layers (mlp.activation must equal moe.activation)"
    return None


def hf_config_from_layout(layout: Layout) -> dict[str, Any]:
    """A config.json dict that transformers builds into the same model (same names and shapes)."""
    family = hf_family(layout)
    return _WRITERS[family](layout)


def _common(layout: Layout, model_type: str, arch: str) -> dict[str, Any]:
    return {"model_type": model_type, "architectures": [arch], "vocab_size": layout.vocab_size,
            "hidden_size": layout.hidden_size, "tie_word_embeddings": layout.tie_word_embeddings,
            "torch_dtype": "bfloat16"}


def _write_nemotron_h(layout: Layout) -> dict[str, Any]:
    d = _common(layout, "nemotron_h", "NemotronHForCausalLM")
    d.update(num_hidden_layers=layout.num_layers, hybrid_override_pattern=layout.pattern,
             layers_block_type=[_NH_SYMBOL_TO_TYPE[s] for s in layout.pattern],
             layer_norm_epsilon=layout.norm_eps, max_position_embeddings=layout.max_position_embeddings,
             use_bias=False, residual_in_fp32=False)
    if layout.attention is not None:
        a = layout.attention
        d.update(num_attention_heads=a.num_heads, num_key_value_heads=a.num_kv_heads, head_dim=a.head_dim,
                 attention_bias=False)
    if layout.mlp is not None:
        d.update(intermediate_size=layout.mlp.intermediate_size, mlp_hidden_act=_HF_ACT[layout.mlp.activation],
                 mlp_bias=layout.mlp.bias)
    if layout.mamba is not None:
        m = layout.mamba
        d.update(mamba_num_heads=m.num_heads, mamba_head_dim=m.head_dim, n_groups=m.n_groups,
                 ssm_state_size=m.state_size, conv_kernel=m.conv_kernel, use_conv_bias=m.conv_bias,
                 mamba_proj_bias=m.proj_bias, chunk_size=m.chunk_size, mamba_hidden_act="silu",
                 expand=max(1, round(m.d_inner(layout.hidden_size) / layout.hidden_size)),
                 mamba_ssm_cache_dtype="float32")
    if layout.moe is not None:
        e = layout.moe
        d.update(n_routed_experts=e.num_experts, num_experts_per_tok=e.top_k, moe_intermediate_size=e.intermediate_size,
                 moe_shared_expert_intermediate_size=e.shared_intermediate_size,
                 n_shared_experts=1 if e.shared_intermediate_size else 0, n_group=1, topk_group=1,
                 norm_topk_prob=True, routed_scaling_factor=e.routed_scaling_factor)
        if layout.mlp is None:
            d["mlp_hidden_act"] = _HF_ACT[e.activation]
    return d


def _write_falcon_mamba(layout: Layout) -> dict[str, Any]:
    m = layout.mamba
    d = _common(layout, "falcon_mamba", "FalconMambaForCausalLM")
    d.update(num_hidden_layers=layout.num_layers, state_size=m.state_size, expand=m.expand,
             intermediate_size=m.d_inner(layout.hidden_size), conv_kernel=m.conv_kernel, use_bias=m.proj_bias,
             use_conv_bias=m.conv_bias, time_step_rank=m.dt_rank_value(layout.hidden_size),
             layer_norm_epsilon=layout.norm_eps, mixer_rms_eps=1e-6, hidden_act="silu", residual_in_fp32=True)
    return d


def _write_mamba(layout: Layout) -> dict[str, Any]:
    d = _write_falcon_mamba(layout)
    d.update(model_type="mamba", architectures=["MambaForCausalLM"])
    d.pop("mixer_rms_eps")
    return d


def _write_mamba2(layout: Layout) -> dict[str, Any]:
    m = layout.mamba
    d = _common(layout, "mamba2", "Mamba2ForCausalLM")
    d.update(num_hidden_layers=layout.num_layers, num_heads=m.num_heads, head_dim=m.head_dim,
             expand=m.d_inner(layout.hidden_size) // layout.hidden_size, n_groups=m.n_groups,
             state_size=m.state_size, conv_kernel=m.conv_kernel, use_bias=m.proj_bias, use_conv_bias=m.conv_bias,
             chunk_size=m.chunk_size, layer_norm_epsilon=layout.norm_eps, hidden_act="silu", residual_in_fp32=True)
    return d


def _write_dense(layout: Layout, model_type: str, arch: str) -> dict[str, Any]:
    a, f = layout.attention, layout.mlp
    d = _common(layout, model_type, arch)
    d.update(num_hidden_layers=layout.num_layers // 2, num_attention_heads=a.num_heads,
             num_key_value_heads=a.num_kv_heads, head_dim=a.head_dim, intermediate_size=f.intermediate_size,
             hidden_act="silu", rms_norm_eps=layout.norm_eps, rope_theta=a.rope_theta or HF_DEFAULT_ROPE_THETA,
             max_position_embeddings=layout.max_position_embeddings)
    if model_type == "llama":
        d.update(attention_bias=False, mlp_bias=f.bias)
    if a.sliding_window:
        d["sliding_window"] = a.sliding_window
    return d


_WRITERS = {
    "nemotron_h": _write_nemotron_h,
    "falcon_mamba": _write_falcon_mamba,
    "mamba": _write_mamba,
    "mamba2": _write_mamba2,
    "llama": lambda lay: _write_dense(lay, "llama", "LlamaForCausalLM"),
    "qwen2": lambda lay: _write_dense(lay, "qwen2", "Qwen2ForCausalLM"),
}


# --------------------------------------------------------------------------------------------------
# config.json -> Layout


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower().split("/")[-1]).strip("-.")
    return s or "imported"


def _get(data: dict, *keys: str, default: Any = None, required: bool = True, source: str | None = None,
         kind: str = "int", minimum: float = 1, maximum: float = MAX_DIM) -> Any:
    """The first present key's value, checked: `kind` "int" (an integer, or an integral float, within
    [minimum, maximum]), "float" (finite, > minimum) or "any" (as is). A missing key takes `default`; without
    one it is an error naming the key."""
    for k in keys:
        if k in data and data[k] is not None:
            value = data[k]
            if kind == "int":
                return _as_int(value, k, source, minimum=int(minimum), maximum=int(maximum))
            if kind == "float":
                return _as_float(value, k, source, minimum=minimum, maximum=maximum)
            return value
    if required and default is None:
        raise LayoutError(f"missing (needed to build the layout from a {data.get('model_type')} config)",
                          source=source, key=keys[0])
    return default


def _nh_pattern(data: dict, source: str | None) -> str:
    pattern = data.get("hybrid_override_pattern")
    key = "hybrid_override_pattern"
    if not isinstance(pattern, str):
        types = data.get("layers_block_type") or data.get("layer_types")
        key = "layers_block_type" if data.get("layers_block_type") else "layer_types"
        if not isinstance(types, list):
            raise LayoutError("a nemotron_h config needs hybrid_override_pattern (a string) or layers_block_type "
                              "(a list)", source=source, key="hybrid_override_pattern")
        if len(types) > MAX_LAYERS:
            raise LayoutError(f"has {len(types)} layers; at most {MAX_LAYERS} allowed", source=source, key=key)
        for i, t in enumerate(types):
            if not isinstance(t, str) or t not in _NH_TYPE_TO_SYMBOL:
                raise LayoutError(f"unknown layer type {t!r}; allowed: {', '.join(_NH_TYPE_TO_SYMBOL)}",
                                  source=source, key=key, layer=i)
        pattern = "".join(_NH_TYPE_TO_SYMBOL[t] for t in types)
    n = data.get("num_hidden_layers")
    if n is not None and _as_int(n, "num_hidden_layers", source, maximum=MAX_LAYERS) != len(pattern):
        raise LayoutError(f"num_hidden_layers is {n} but {key} has {len(pattern)} layers; they must agree",
                          source=source, key="num_hidden_layers")
    return pattern


def layout_from_hf_config(data: dict[str, Any], *, source: str | None = None, name: str | None = None) -> Layout:
    """Build a Layout from a transformers config.json dict (nemotron_h, falcon_mamba, mamba, mamba2, llama,
    mistral, qwen2)."""
    mt = data.get("model_type")
    if mt not in SUPPORTED_MODEL_TYPES:
        shown = f"model_type {mt}" if isinstance(mt, str) else ("no model_type" if mt is None else f"model_type {mt!r}")
        raise LayoutError(f"{shown} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}", source=source,
                          key="model_type")
    g = lambda *k, **kw: _get(data, *k, source=source, **kw)  # noqa: E731
    layers = lambda *k: _get(data, *k, source=source, maximum=MAX_LAYERS)  # noqa: E731
    flag = lambda k, default: _as_bool_like(data.get(k, default), k, source)  # noqa: E731
    name = name or _slug(str(data.get("_name_or_path") or (source or "").rsplit("/", 1)[-1].removesuffix(".json")
                             or mt or "imported"))
    if name in ("config", "imported") and mt:
        name = f"imported-{mt.replace('_', '-')}"
    base: dict[str, Any] = {"name": name, "source": f"Hugging Face config.json ({mt})" + (f": {source}" if source else ""),
                            "hidden_size": g("hidden_size", "d_model"), "vocab_size": g("vocab_size", maximum=MAX_VOCAB),
                            "tie_word_embeddings": flag("tie_word_embeddings", mt in ("mamba", "falcon_mamba")),
                            "norm_eps": g("layer_norm_epsilon", "rms_norm_eps", "norm_eps", default=1e-5, kind="float", minimum=0)}
    if mt == "nemotron_h":
        pattern = _nh_pattern(data, source)
        base.update(family="nemotron_h", pattern=pattern,
                    max_position_embeddings=g("max_position_embeddings", default=8192, maximum=1 << 30))
        if MAMBA in pattern:
            _check_dt_limit(data, source)
            base["mamba"] = dict(version=2, num_heads=g("mamba_num_heads"), head_dim=g("mamba_head_dim"),
                                 n_groups=g("n_groups", "mamba_n_groups", default=8), state_size=g("ssm_state_size"),
                                 conv_kernel=g("conv_kernel", "mamba_d_conv", default=4),
                                 conv_bias=flag("use_conv_bias", True),
                                 proj_bias=flag("mamba_proj_bias", False),
                                 chunk_size=g("chunk_size", "mamba_chunk_size", default=128))
        if ATTENTION in pattern:
            heads = g("num_attention_heads")
            base["attention"] = dict(num_heads=heads, num_kv_heads=g("num_key_value_heads", default=heads),
                                     head_dim=g("head_dim", default=base["hidden_size"] // heads or None),
                                     qkv_bias=False, rope_theta=None)
        act = _activation(data.get("mlp_hidden_act", "relu2"), "mlp_hidden_act", source)
        if MLP in pattern:
            base["mlp"] = dict(intermediate_size=g("intermediate_size"), activation=act,
                               bias=flag("mlp_bias", False))
        if MOE in pattern:
            base["moe"] = dict(num_experts=g("n_routed_experts", "num_local_experts"), top_k=g("num_experts_per_tok"),
                               intermediate_size=g("moe_intermediate_size"),
                               shared_intermediate_size=g("moe_shared_expert_intermediate_size", default=0, minimum=0)
                               * g("n_shared_experts", default=1, minimum=0),
                               activation=act, routed_scaling_factor=g("routed_scaling_factor", default=1.0,
                                                                       kind="float", minimum=0))
        base["rules"] = ["nemotron-h"]
    elif mt in ("falcon_mamba", "mamba"):
        hidden = base["hidden_size"]
        expand = g("expand", default=2)
        inter = g("intermediate_size", default=expand * hidden)
        if inter % hidden:
            raise LayoutError(f"intermediate_size {inter} is not a multiple of hidden_size {hidden}", source=source,
                              key="intermediate_size")
        base.update(family=mt, pattern=MAMBA * layers("num_hidden_layers", "n_layer"),
                    mamba=dict(version=1, expand=inter // hidden, dt_rank=_dt_rank(data.get("time_step_rank", "auto"), source),
                               state_size=g("state_size", default=16), conv_kernel=g("conv_kernel", default=4),
                               conv_bias=flag("use_conv_bias", True), proj_bias=flag("use_bias", False),
                               bcdt_norm=mt == "falcon_mamba"))
    elif mt == "mamba2":
        _check_dt_limit(data, source)
        hidden = base["hidden_size"]
        heads = g("num_heads")
        head_dim = g("head_dim", default=int(g("expand", default=2, kind="float", minimum=0) * hidden) // heads or None)
        base.update(family="mamba2", pattern=MAMBA * layers("num_hidden_layers", "n_layer"),
                    mamba=dict(version=2, num_heads=heads, head_dim=head_dim, n_groups=g("n_groups", default=1),
                               state_size=g("state_size", default=128), conv_kernel=g("conv_kernel", default=4),
                               conv_bias=flag("use_conv_bias", True), proj_bias=flag("use_bias", False),
                               chunk_size=g("chunk_size", default=256)))
    elif mt in ("llama", "mistral", "qwen2"):
        heads = g("num_attention_heads")
        hidden = base["hidden_size"]
        qkv_bias = mt == "qwen2" or flag("attention_bias", False)
        base.update(family="qwen2" if mt == "qwen2" else "llama", pattern="*-" * layers("num_hidden_layers"),
                    max_position_embeddings=g("max_position_embeddings", default=131072, maximum=1 << 30),
                    attention=dict(num_heads=heads, num_kv_heads=g("num_key_value_heads", default=heads),
                                   head_dim=g("head_dim", default=hidden // heads or None), qkv_bias=qkv_bias,
                                   rope_theta=_rope_theta(data, source),
                                   sliding_window=g("sliding_window", required=False) if flag("use_sliding_window",
                                                                                           mt == "mistral") else None),
                    mlp=dict(intermediate_size=g("intermediate_size"), activation="swiglu",
                             bias=flag("mlp_bias", False)))
        if mt == "llama" and qkv_bias:
            base["family"] = None
            del base["family"]
    return layout_from_dict(base, source=source)


SUPPORTED_MODEL_TYPES = ("nemotron_h", "falcon_mamba", "mamba", "mamba2", "llama", "mistral", "qwen2")
_HF_TO_ACTIVATION = {hf: ours for ours, hf in _HF_ACT.items()}


def _check_dt_limit(data: dict, source: str | None) -> None:
    """Mamba-2's time_step_limit: the layouts and the exported model leave dt unclamped, the published (0, inf)
    (transformers clamps to it; before 5.25 nemotron_h clamped at time_step_min instead)."""
    for key in ("time_step_limit", "mamba_dt_limit"):
        value = data.get(key)
        if value is None:
            continue
        pair = isinstance(value, (list, tuple)) and len(value) == 2
        if not (pair and all(type(v) in (int, float) for v in value) and value[0] == 0 and value[1] == float("inf")):
            raise LayoutError(f"is {value!r}; only [0.0, Infinity] is supported (dt unclamped, as published)",
                              source=source, key=key)


def _as_bool_like(value: Any, key: str, source: str | None) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise LayoutError(f"must be true or false, got {value!r}", source=source, key=key)


def _activation(value: Any, key: str, source: str | None) -> str:
    if value not in _HF_TO_ACTIVATION:
        raise LayoutError(f"unsupported activation {value!r}; supported: {', '.join(_HF_TO_ACTIVATION)}",
                          source=source, key=key)
    return _HF_TO_ACTIVATION[value]


def _dt_rank(value: Any, source: str | None) -> int | str:
    return value if value == "auto" else _as_int(value, "time_step_rank", source)


def _rope_theta(data: dict, source: str | None) -> float:
    """rope_theta at the top level, or inside rope_parameters / rope_scaling (newer transformers)."""
    if data.get("rope_theta") is not None:
        return _as_float(data["rope_theta"], "rope_theta", source)
    for key in ("rope_parameters", "rope_scaling"):
        params = data.get(key)
        if isinstance(params, dict) and params.get("rope_theta") is not None:
            return _as_float(params["rope_theta"], f"{key}.rope_theta", source)
    return HF_DEFAULT_ROPE_THETA


def read_config(data: dict[str, Any], source: str | None = None) -> Layout | None:
    """A parsed file as a layout when it is a Hugging Face config.json (it has a `model_type` and no pattern)."""
    if "model_type" in data and "pattern" not in data:
        return layout_from_hf_config(data, source=source)
    return None


CONFIG_READERS.append(read_config)     # load_layout / layout_from_text accept a config.json anywhere
