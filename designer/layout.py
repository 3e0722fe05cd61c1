"""Layout model: the dataclasses a hybrid layout is made of, YAML load/save, pattern parsing, presets.

A layout is one pattern string (Megatron-LM hybrid symbols, one symbol = one pre-norm residual block)
plus the sizes of each block kind. Everything else in the product (rules, profiler, exporter, app)
reads a `Layout`; nothing else parses YAML or pattern strings.

This module imports no torch and no networkx: `designer validate` must start fast.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

# --------------------------------------------------------------------------------------------------
# Symbols

MAMBA, ATTENTION, MLP, MOE = "M", "*", "-", "E"
SYMBOLS: dict[str, str] = {MAMBA: "mamba", ATTENTION: "attention", MLP: "mlp", MOE: "moe"}
KIND_TO_SYMBOL = {v: k for k, v in SYMBOLS.items()}
# the config block each symbol needs
BLOCK_OF_SYMBOL = {MAMBA: "mamba", ATTENTION: "attention", MLP: "mlp", MOE: "moe"}

ACTIVATIONS = ("relu2", "swiglu", "gelu")
# Hugging Face families a layout can name (`family:`); designer.hf writes and reads their config.json
FAMILIES = ("nemotron_h", "falcon_mamba", "mamba", "mamba2", "llama", "qwen2")
GATED_ACTIVATIONS = ("swiglu",)
NAME_RE = re.compile(r"^[a-z0-9._-]+$")

# Sizes beyond these are typos, not models (a 1M-wide hidden layer, a 100k-layer stack).
MAX_DIM = 1 << 20
MAX_LAYERS = 4096
MAX_VOCAB = 1 << 24

REPO_ROOT = Path(__file__).resolve().parent.parent
PRESET_DIR = REPO_ROOT / "profiles" / "models"


class LayoutError(ValueError):
    """Bad input: a file, key or value that cannot be a layout. The message says where and what is allowed."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 layer: int | None = None):
        self.source, self.key, self.layer, self.message = source, key, layer, message
        where = []
        if source:
            where.append(str(source))
        if key:
            where.append(f"key '{key}'")
        if layer is not None:
            where.append(f"layer {layer}")
        super().__init__(f"{': '.join([', '.join(where)]) + ': ' if where else ''}{message}")

    def at(self, source: str | None) -> "LayoutError":
        """The same error, naming the file it came from."""
        return LayoutError(self.message, source=source, key=self.key, layer=self.layer) if source else self


# --------------------------------------------------------------------------------------------------
# The schema: what every field accepts, written once. The loader (`layout_from_dict`) converts a file's
# values with it, every config class checks itself with it on construction (so `Layout.replace` and
# `with_pattern` cannot make an invalid layout), ST003 reads its size fields and the app's editor its bounds.


def _did_you_mean(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_keys(data: dict, cls: type, where: str, source: str | None) -> None:
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if not isinstance(key, str) or key not in allowed:
            raise LayoutError(f"unknown key{_did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}",
                              source=source, key=f"{where}{key}")


def _as_int(value: Any, key: str, source: str | None, *, minimum: int = 1, maximum: int = MAX_DIM) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float)
                                                                          and not value.is_integer()):
        raise LayoutError(f"must be an integer, got {value!r}", source=source, key=key)
    value = int(value)
    if value < minimum:
        raise LayoutError(f"must be >= {minimum}, got {value}", source=source, key=key)
    if value > maximum:
        raise LayoutError(f"must be <= {maximum}, got {value} (an absurd size; typo?)", source=source, key=key)
    return value


def _as_float(value: Any, key: str, source: str | None, *, minimum: float = 0.0, maximum: float = math.inf,
              strict_min: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LayoutError(f"must be a number, got {value!r}", source=source, key=key)
    value = float(value)
    if not math.isfinite(value) or (value <= minimum if strict_min else value < minimum) or value > maximum:
        rel = ">" if strict_min else ">="
        raise LayoutError(f"must be a finite number {rel} {minimum}" + (f" and <= {maximum}" if math.isfinite(maximum)
                          else "") + f", got {value!r}", source=source, key=key)
    return value


def _as_bool(value: Any, key: str, source: str | None) -> bool:
    if not isinstance(value, bool):
        raise LayoutError(f"must be true or false, got {value!r}", source=source, key=key)
    return value


def _as_choice(value: Any, key: str, source: str | None, choices: Iterable[Any]) -> Any:
    choices = list(choices)
    if value not in choices:
        hint = _did_you_mean(str(value), [str(c) for c in choices])
        raise LayoutError(f"got {value!r}{hint}; allowed: {', '.join(map(str, choices))}", source=source, key=key)
    return value



@dataclass(frozen=True)
class Check:
    """What one field accepts: an integer / number in [minimum, maximum], a boolean, one of `choices`, a string;
    `optional`: None too; `auto`: the string "auto" too."""

    kind: str                           # int | float | bool | choice | str | name | pattern | runs | rules
    minimum: float = 1
    maximum: float = MAX_DIM
    choices: tuple = ()
    optional: bool = False
    auto: bool = False
    inclusive: bool = False             # float: the minimum itself is allowed

    @property
    def is_size(self) -> bool:
        """A width, count or kernel size: a positive integer (what ST003 checks)."""
        return self.kind == "int" and self.minimum >= 1

    def convert(self, value: Any, key: str, source: str | None = None) -> Any:
        """The value as the layout holds it; LayoutError naming `key` and what is allowed when it is not one."""
        if value is None and self.optional:
            return None
        if self.auto and value == "auto":
            return "auto"
        kind = self.kind
        if kind == "int":
            return _as_int(value, key, source, minimum=int(self.minimum), maximum=int(self.maximum))
        if kind == "float":
            return _as_float(value, key, source, minimum=self.minimum, maximum=self.maximum,
                             strict_min=not self.inclusive)
        if kind == "bool":
            return _as_bool(value, key, source)
        if kind == "choice":
            return _as_choice(value, key, source, self.choices)
        if kind == "str":
            if not isinstance(value, str):
                raise LayoutError(f"must be a string, got {value!r}", source=source, key=key)
            return value
        if kind == "name":
            if not isinstance(value, str) or not NAME_RE.match(value):
                raise LayoutError(f"must match [a-z0-9._-]+, got {value!r}", source=source, key=key)
            return value
        if kind == "pattern":
            return parse_pattern(value, source=source)
        if kind == "rules":
            rules = [value] if isinstance(value, str) else value
            if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) for r in rules):
                raise LayoutError(f"must be a list of rule-set names, got {value!r}", source=source, key=key)
            return tuple(rules)
        if kind == "runs":
            if not isinstance(value, dict):
                raise LayoutError("must map a symbol (M * - E) to a run length, e.g. {M: 4}", source=source, key=key)
            out = {}
            for sym, n in value.items():
                sym = KIND_TO_SYMBOL.get(sym, sym)
                _as_choice(sym, f"{key}.{sym}", source, SYMBOLS)
                out[sym] = _as_int(n, f"{key}.{sym}", source)
            return out
        raise AssertionError(f"unknown check kind {kind!r}")


SIZE = Check("int")
FLAG = Check("bool")


def _f(default: Any, check: Check = SIZE) -> Any:
    """A dataclass field with its check in the metadata (`default` a callable: a default factory)."""
    if callable(default):
        return field(default_factory=default, metadata={"check": check})
    return field(default=default, metadata={"check": check})


def schema(cls: type) -> dict[str, Check]:
    """field name -> Check for a config class (the fields without a check are the nested blocks)."""
    return {f.name: f.metadata["check"] for f in dataclasses.fields(cls) if "check" in f.metadata}


def size_fields(cls: type) -> tuple[str, ...]:
    """The fields of a config class that are positive integer sizes."""
    return tuple(name for name, check in schema(cls).items() if check.is_size)


def field_range(cls: type, name: str) -> tuple[int, int]:
    """(minimum, maximum) an integer field accepts (the editor's widget bounds)."""
    check = schema(cls)[name]
    return int(check.minimum), int(check.maximum)


def _validate(obj: Any, where: str) -> None:
    """Check (and normalise: 4.0 -> 4, a rules list -> tuple) every field of a frozen config object."""
    for name, check in schema(type(obj)).items():
        object.__setattr__(obj, name, check.convert(getattr(obj, name), f"{where}{name}"))


# --------------------------------------------------------------------------------------------------
# Block configs


@dataclass(frozen=True)
class MambaConfig:
    """Mamba mixer. version 2 = Mamba-2 (SSD, multi-head), version 1 = Mamba-1 (selective scan)."""

    version: int = _f(2, Check("choice", choices=(1, 2)))
    num_heads: int = _f(128)            # v2
    head_dim: int = _f(64)              # v2; d_inner = num_heads * head_dim
    n_groups: int = _f(8)               # v2; B and C are shared within a group of heads
    expand: int = _f(2)                 # v1; d_inner = expand * hidden_size
    dt_rank: int | str = _f("auto", Check("int", auto=True))   # v1; "auto" = ceil(hidden / 16)
    state_size: int = _f(128)
    conv_kernel: int = _f(4)
    conv_bias: bool = _f(True, FLAG)
    proj_bias: bool = _f(False, FLAG)
    chunk_size: int = _f(128)           # v2 SSD chunk length
    # v1 (Falcon Mamba): RMSNorms without weights on B, C and dt inside the mixer
    bcdt_norm: bool = _f(False, FLAG)

    def __post_init__(self) -> None:
        _validate(self, "mamba.")

    def d_inner(self, hidden_size: int) -> int:
        return self.num_heads * self.head_dim if self.version == 2 else self.expand * hidden_size

    def dt_rank_value(self, hidden_size: int) -> int:
        return math.ceil(hidden_size / 16) if self.dt_rank == "auto" else int(self.dt_rank)

    def conv_dim(self, hidden_size: int) -> int:
        """Channels that pass through the depthwise conv: x, B, C for v2; x only for v1."""
        d_inner = self.d_inner(hidden_size)
        return d_inner + 2 * self.n_groups * self.state_size if self.version == 2 else d_inner


@dataclass(frozen=True)
class AttentionConfig:
    num_heads: int = _f(32)
    num_kv_heads: int = _f(8)
    head_dim: int = _f(128)
    qkv_bias: bool = _f(False, FLAG)
    o_bias: bool = _f(False, FLAG)
    rope_theta: float | None = _f(None, Check("float", minimum=0.0, maximum=math.inf, optional=True))
    # None = no position embedding (Nemotron-H)
    sliding_window: int | None = _f(None, Check("int", optional=True))

    def __post_init__(self) -> None:
        _validate(self, "attention.")


@dataclass(frozen=True)
class MLPConfig:
    intermediate_size: int = _f(21504)
    activation: str = _f("relu2", Check("choice", choices=ACTIVATIONS))   # relu2 (not gated) | swiglu (gated) | gelu
    bias: bool = _f(False, FLAG)

    def __post_init__(self) -> None:
        _validate(self, "mlp.")

    @property
    def gated(self) -> bool:
        return self.activation in GATED_ACTIVATIONS


@dataclass(frozen=True)
class MoEConfig:
    num_experts: int = _f(128)
    top_k: int = _f(6)
    intermediate_size: int = _f(1856)                                   # per routed expert
    shared_intermediate_size: int = _f(0, Check("int", minimum=0))      # 0 = no shared expert
    activation: str = _f("relu2", Check("choice", choices=ACTIVATIONS))
    # score-correction bias per expert (Nemotron-3 / DeepSeek-V3 style)
    router_bias: bool = _f(True, FLAG)
    # multiplies the routed experts' weighted sum (Nemotron-3-Nano: 2.5)
    routed_scaling_factor: float = _f(1.0, Check("float", minimum=0.0, maximum=1e3))

    def __post_init__(self) -> None:
        _validate(self, "moe.")
        if self.top_k > self.num_experts:   # impossible, not merely unwise: refused on construction
            raise LayoutError(f"must be at most moe.num_experts {self.num_experts} (each token picks top_k distinct "
                              f"experts), got {self.top_k}", key="moe.top_k")

    @property
    def gated(self) -> bool:
        return self.activation in GATED_ACTIVATIONS


@dataclass(frozen=True)
class ParallelConfig:
    tensor: int = _f(1)
    pipeline: int = _f(1)

    def __post_init__(self) -> None:
        _validate(self, "parallel.")


@dataclass(frozen=True)
class TrainingConfig:
    # bf16 | fp8 (Nemotron-H recipe: E4M3 fwd, E5M2 grads, current scaling)
    precision: str = _f("bf16", Check("choice", choices=("bf16", "fp8", "fp4")))
    # fp8 recipe: first/last N GEMM layers kept in BF16 (paper §2.4)
    bf16_edge_layers: int = _f(4, Check("int", minimum=0))

    def __post_init__(self) -> None:
        _validate(self, "training.")


_COUNT = Check("int", minimum=0, maximum=MAX_LAYERS, optional=True)
_SHARE = Check("float", minimum=0.0, maximum=1.0, inclusive=True)
_BUDGET = Check("float", minimum=0.0, maximum=math.inf, optional=True)


@dataclass(frozen=True)
class Constraints:
    """User constraints, checked by the rule engine like any other rule (rule ids UC001...)."""

    min_attention_layers: int | None = _f(None, _COUNT)
    max_attention_layers: int | None = _f(None, _COUNT)
    min_layers: int | None = _f(None, _COUNT)
    max_layers: int | None = _f(None, _COUNT)
    max_consecutive: dict[str, int] = _f(dict, Check("runs"))   # symbol -> max run length
    max_params: float | None = _f(None, _BUDGET)          # total parameters
    max_active_params: float | None = _f(None, _BUDGET)
    attention_fraction: float = _f(0.08, _SHARE)          # NH004 target share of attention layers
    attention_fraction_tolerance: float = _f(0.04, _SHARE)

    def __post_init__(self) -> None:
        _validate(self, "constraints.")


# the config block each top-level key holds
_BLOCKS: dict[str, type] = {"mamba": MambaConfig, "attention": AttentionConfig, "mlp": MLPConfig,
                            "moe": MoEConfig, "parallel": ParallelConfig, "training": TrainingConfig,
                            "constraints": Constraints}


@dataclass(frozen=True)
class Layout:
    """A validated layout: construction (and so `replace` / `with_pattern`) checks every field against the
    schema and that each symbol of the pattern has its config block."""

    name: str = field(metadata={"check": Check("name")})
    hidden_size: int = field(metadata={"check": SIZE})
    vocab_size: int = field(metadata={"check": Check("int", maximum=MAX_VOCAB)})
    pattern: str = field(metadata={"check": Check("pattern")})
    source: str = _f("", Check("str"))
    tie_word_embeddings: bool = _f(False, FLAG)
    norm_eps: float = _f(1e-5, Check("float", minimum=0.0, maximum=1.0))
    mamba: MambaConfig | None = None
    attention: AttentionConfig | None = None
    mlp: MLPConfig | None = None
    moe: MoEConfig | None = None
    rules: tuple[str, ...] = _f((), Check("rules"))
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    constraints: Constraints = field(default_factory=Constraints)
    # hf family hint: nemotron_h, falcon_mamba, mamba, mamba2, llama, qwen2
    family: str | None = _f(None, Check("choice", choices=FAMILIES, optional=True))
    max_position_embeddings: int = _f(131072, Check("int", maximum=1 << 26))

    def __post_init__(self) -> None:
        _validate(self, "")
        for key, cls in _BLOCKS.items():
            value = getattr(self, key)
            if not (isinstance(value, cls) or (value is None and key in BLOCK_OF_SYMBOL.values())):
                raise LayoutError(f"must be a {cls.__name__}, got {type(value).__name__}", key=key)
        _check_blocks_present(self)

    # ---- derived ------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.pattern)

    def count(self, symbol: str) -> int:
        return self.pattern.count(symbol)

    @property
    def counts(self) -> dict[str, int]:
        return {s: self.pattern.count(s) for s in SYMBOLS}

    def indices(self, symbol: str) -> list[int]:
        return [i for i, s in enumerate(self.pattern) if s == symbol]

    @property
    def attention_fraction(self) -> float:
        return self.count(ATTENTION) / max(1, self.num_layers)

    def block_config(self, symbol: str) -> Any:
        return getattr(self, BLOCK_OF_SYMBOL[symbol])

    def replace(self, **changes: Any) -> "Layout":
        return dataclasses.replace(self, **changes)

    def with_pattern(self, pattern: str) -> "Layout":
        return dataclasses.replace(self, pattern=pattern)

    def to_dict(self) -> dict[str, Any]:
        return layout_to_dict(self)

    def to_yaml(self) -> str:
        return dump_yaml(self)


# --------------------------------------------------------------------------------------------------
# Pattern strings


def tensor_parallel_sizes(layout: Layout) -> list[tuple[str, str, int]]:
    """(symbol, name, size) of every size tensor parallelism splits evenly over the ranks (Megatron-LM):
    attention and KV heads, Mamba-2 heads and groups (Mamba-1 d_inner), MLP and expert FFN columns. ST007,
    the exporter's TP/PP suggestion and the profiler's `check_parallel` all read this list."""
    lay = layout
    checks: list[tuple[str, str, int]] = []
    if lay.attention is not None and ATTENTION in lay.pattern:
        checks += [(ATTENTION, "attention.num_heads", lay.attention.num_heads),
                   (ATTENTION, "attention.num_kv_heads", lay.attention.num_kv_heads)]
    if lay.mamba is not None and MAMBA in lay.pattern:
        if lay.mamba.version == 2:
            checks += [(MAMBA, "mamba.num_heads", lay.mamba.num_heads), (MAMBA, "mamba.n_groups", lay.mamba.n_groups)]
        else:
            checks += [(MAMBA, "mamba d_inner", lay.mamba.d_inner(lay.hidden_size))]
    if lay.mlp is not None and MLP in lay.pattern:
        checks += [(MLP, "mlp.intermediate_size", lay.mlp.intermediate_size)]
    if lay.moe is not None and MOE in lay.pattern:
        checks += [(MOE, "moe.intermediate_size", lay.moe.intermediate_size)]
        if lay.moe.shared_intermediate_size:
            checks += [(MOE, "moe.shared_intermediate_size", lay.moe.shared_intermediate_size)]
    return checks


def divisors_near(n: int, target: float) -> list[int]:
    """The divisors of n, nearest to `target` first (ties: the smaller first)."""
    return sorted((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - target), d))


def tensor_parallel_divides(layout: Layout, tp: int) -> bool:
    """Whether `tp` ranks split every size in `tensor_parallel_sizes` evenly."""
    return all(value % tp == 0 for _, _, value in tensor_parallel_sizes(layout))


def check_parallel(layout: Layout, tp: int, pp: int) -> None:
    """The rules ST007 (tensor-parallel divisibility) and ST009 (pipeline stages <= layers) for a serving
    plan given apart from the layout's own `parallel:` block (`profile --tp/--pp`, the app, search):
    LayoutError naming the option, the size that does not divide and the degrees that would."""
    bad = [(name, value) for _, name, value in tensor_parallel_sizes(layout) if value % tp]
    if bad:
        ok = [t for t in (1, 2, 4, 8, 16, 32, 64) if tensor_parallel_divides(layout, t)]
        name, value = bad[0]
        raise LayoutError(f"tensor parallel {tp}: {name} {value} is not divisible by {tp} (rule ST007); degrees that "
                          f"split every size evenly: {', '.join(map(str, ok))}", source=layout.name, key="tp")
    if pp > layout.num_layers:
        raise LayoutError(f"pipeline parallel {pp} is more pipeline stages than the {layout.num_layers} layers "
                          f"(rule ST009); expected at most {layout.num_layers}", source=layout.name, key="pp")


def parse_pattern(pattern: Any, *, source: str | None = None) -> str:
    """Check a Megatron-style pattern string. Spaces and `|` (pipeline-stage marks) are ignored."""
    if not isinstance(pattern, str):
        raise LayoutError(f"must be a string of layer symbols {' '.join(SYMBOLS)}, got {type(pattern).__name__}",
                          source=source, key="pattern")
    cleaned = "".join(ch for ch in pattern if ch not in " \t\n|")
    if not cleaned:
        raise LayoutError("is empty: a layout needs at least one layer (symbols M * - E)",
                          source=source, key="pattern")
    for i, ch in enumerate(cleaned):
        if ch not in SYMBOLS:
            allowed = ", ".join(f"'{s}' {k}" for s, k in SYMBOLS.items())
            raise LayoutError(f"unknown symbol {ch!r}; allowed: {allowed}", source=source, key="pattern", layer=i)
    if len(cleaned) > MAX_LAYERS:
        raise LayoutError(f"has {len(cleaned)} layers; at most {MAX_LAYERS} allowed", source=source, key="pattern")
    return cleaned


def pattern_runs(pattern: str) -> list[tuple[str, int, int]]:
    """Runs of equal symbols as (symbol, start, length)."""
    runs: list[tuple[str, int, int]] = []
    for i, ch in enumerate(pattern):
        if runs and runs[-1][0] == ch:
            s, start, n = runs[-1]
            runs[-1] = (s, start, n + 1)
        else:
            runs.append((ch, i, 1))
    return runs


# --------------------------------------------------------------------------------------------------
# Dict <-> Layout with precise messages


def _block_from_dict(cls: type, data: Any, where: str, source: str | None) -> Any:
    """One config block from its mapping: keys checked, each value converted by the schema."""
    if not isinstance(data, dict):
        fields = "" if cls is Constraints else f" of {', '.join(f.name for f in dataclasses.fields(cls))}"
        raise LayoutError(f"must be a mapping{fields}, got {type(data).__name__}" if fields else "must be a mapping",
                          source=source, key=where)
    _check_keys(data, cls, f"{where}.", source)
    checks = schema(cls)
    try:
        return cls(**{k: checks[k].convert(v, f"{where}.{k}", source) for k, v in data.items()})
    except LayoutError as e:        # a check across fields (moe.top_k vs num_experts): name the file too
        raise e.at(source) from None


def layout_from_dict(data: Any, *, source: str | None = None) -> Layout:
    """Build a Layout from parsed YAML/JSON. Raises LayoutError naming the key and what is allowed."""
    if not isinstance(data, dict):
        raise LayoutError(f"a layout file must be a YAML mapping (name:, hidden_size:, pattern:, ...), "
                          f"got {type(data).__name__}", source=source)
    _check_keys(data, Layout, "", source)
    for required in ("name", "hidden_size", "vocab_size", "pattern"):
        if required not in data:
            raise LayoutError("missing; every layout needs name, hidden_size, vocab_size and pattern",
                              source=source, key=required)
    checks = schema(Layout)
    kwargs: dict[str, Any] = {}
    for key in ("name", "pattern", "hidden_size", "vocab_size", "source", "tie_word_embeddings", "norm_eps",
                "max_position_embeddings", "family"):
        if key not in data or (key == "family" and data[key] is None):
            continue
        value = data[key]
        if key == "source":                  # free text: a YAML number or null is taken as text
            value = "" if value is None else str(value)
        kwargs[key] = checks[key].convert(value, key, source)
    for key, cls in _BLOCKS.items():
        if data.get(key) is not None:
            kwargs[key] = _block_from_dict(cls, data[key], key, source)
    kwargs["rules"] = checks["rules"].convert(data.get("rules", []), "rules", source)
    try:
        return Layout(**kwargs)
    except LayoutError as e:
        raise e.at(source) from None


def _check_blocks_present(layout: Layout) -> None:
    """A symbol used in the pattern needs its config block: without it there is nothing to size."""
    for sym, block in BLOCK_OF_SYMBOL.items():
        if sym in layout.pattern and getattr(layout, block) is None:
            first = layout.pattern.index(sym)
            raise LayoutError(f"the pattern uses '{sym}' ({SYMBOLS[sym]}, first at layer {first}) but the file "
                              f"has no '{block}:' block with its sizes", key=block, layer=first)


def _strip_defaults(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if value != default:
            out[f.name] = value
    return out


def layout_to_dict(layout: Layout, *, full: bool = False) -> dict[str, Any]:
    """Plain dict in the file's key order; blocks the pattern does not use are dropped.

    `full=True` writes every field of every used block (what the exporter writes as the normalised layout).
    """
    d: dict[str, Any] = {"name": layout.name}
    if layout.source:
        d["source"] = layout.source
    if layout.family:
        d["family"] = layout.family
    d.update(hidden_size=layout.hidden_size, vocab_size=layout.vocab_size,
             tie_word_embeddings=layout.tie_word_embeddings, norm_eps=layout.norm_eps, pattern=layout.pattern)
    if full or layout.max_position_embeddings != 131072:
        d["max_position_embeddings"] = layout.max_position_embeddings
    for sym, block in BLOCK_OF_SYMBOL.items():
        cfg = getattr(layout, block)
        if cfg is not None and (sym in layout.pattern or full):
            d[block] = dataclasses.asdict(cfg)
    if layout.rules:
        d["rules"] = list(layout.rules)
    for key in ("parallel", "training", "constraints"):
        stripped = _strip_defaults(getattr(layout, key))
        if stripped or full:
            d[key] = dataclasses.asdict(getattr(layout, key)) if full else stripped
    return d


# --------------------------------------------------------------------------------------------------
# Files and presets


def dump_yaml(layout: Layout, *, full: bool = False) -> str:
    return yaml.safe_dump(layout_to_dict(layout, full=full), sort_keys=False, default_flow_style=None, width=120)


def umask() -> int:
    """The process umask, read without changing it where the system allows (Linux /proc), since setting it
    to read it back races with other threads (the app's server) creating files meanwhile."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file. The file gets
    the mode a plain open() would give it (0666 less the umask; 0644 usually), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_layout(layout: Layout, path: str | os.PathLike, *, full: bool = False) -> None:
    atomic_write_text(path, dump_yaml(layout, full=full))


def parse_yaml_text(text: str, *, source: str | None = None) -> Any:
    from designer import yamlsafe
    try:
        return yamlsafe.load(text)
    except yamlsafe.YamlLimitError as e:
        where = f" at line {e.line}" if e.line else ""
        raise LayoutError(f"refused YAML{where}: {e}", source=source) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise LayoutError(f"malformed YAML{where}: {problem}", source=source) from None


# Readers of other config formats, tried in order on a parsed mapping before it is read as a layout: each
# returns a Layout, or None when the mapping is not its format. designer.hf registers the Hugging Face
# config.json reader (designer/__init__.py imports it), so this module imports nothing above it.
CONFIG_READERS: list[Callable[[dict, str | None], "Layout | None"]] = []


def parse_json_object(text: str, *, source: str | None = None) -> dict | None:
    """A JSON object's text (a config.json) read as JSON, not as YAML: YAML 1.1 reads JSON's 1e-05 and Infinity
    as strings. None when the text is not a JSON object (YAML then reads it, with its own messages)."""
    if not text.lstrip().startswith("{"):
        return None

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise LayoutError(f"duplicate key {key!r}", source=source)
            seen.add(key)
        return dict(pairs)
    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except (json.JSONDecodeError, RecursionError):   # not JSON, or nested too deep: YAML's reader decides
        return None


def layout_from_text(text: str, *, source: str | None = None) -> Layout:
    """YAML layout text, or a Hugging Face config.json's text (detected by its `model_type`)."""
    data = parse_json_object(text, source=source)
    if data is None:
        data = parse_yaml_text(text, source=source)
    if isinstance(data, dict):
        for read in CONFIG_READERS:
            layout = read(data, source)
            if layout is not None:
                return layout
    return layout_from_dict(data, source=source)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    return PRESET_DIR / f"{name}.yaml"


def load_layout(ref: str | os.PathLike) -> Layout:
    """Load a layout from a file path (YAML or HF config.json) or a preset name."""
    path = Path(ref)
    if not path.is_file():
        candidate = preset_path(str(ref))
        if isinstance(ref, str) and NAME_RE.match(ref) and candidate.is_file():
            path = candidate
        else:
            names = preset_names()
            hint = _did_you_mean(str(ref), names)
            raise LayoutError(f"no such file or preset{hint}; presets: {', '.join(names)}", source=str(ref))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise LayoutError(f"cannot read: {e.__class__.__name__}: {e}", source=str(ref)) from None
    return layout_from_text(text, source=str(ref))
