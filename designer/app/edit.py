"""Pure pattern edits behind the Editor page, and the undo/redo history of layouts.

Every function takes a pattern string (or a Layout) and returns a new one; nothing here touches Streamlit,
so the page is a thin shell and these are unit-tested on their own. Layer ranges are inclusive
(`start..end`), as the page shows them ("layers 7 to 9").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from designer.layout import (BLOCK_OF_SYMBOL, SYMBOLS, AttentionConfig, Layout, LayoutError, MambaConfig,
                             MLPConfig, MoEConfig, layout_from_dict, layout_to_dict, parse_pattern)
from designer.present.format import blocks_and_layers, conventional_layers  # noqa: F401  (the Editor's counts)

# default sizes for a block kind the layout did not have yet (e.g. attention added to a pure-Mamba model);
# the page says they were added so the user can size them.
_DEFAULT_BLOCKS = {"mamba": MambaConfig, "attention": AttentionConfig, "mlp": MLPConfig, "moe": MoEConfig}


def _check_range(pattern: str, start: int, end: int) -> tuple[int, int]:
    n = len(pattern)
    if start > end:
        start, end = end, start
    if start < 0 or end >= n:
        raise LayoutError(f"layers {start}..{end} are out of range; expected 0..{n - 1}", key="pattern")
    return start, end


def _check_symbol(symbol: str) -> str:
    if symbol not in SYMBOLS:
        allowed = ", ".join(f"'{s}' {k}" for s, k in SYMBOLS.items())
        raise LayoutError(f"unknown layer kind {symbol!r}; allowed: {allowed}", key="pattern")
    return symbol


def set_kind(pattern: str, start: int, end: int, symbol: str) -> str:
    """Layers start..end (inclusive) become `symbol`."""
    start, end = _check_range(pattern, start, end)
    return pattern[:start] + _check_symbol(symbol) * (end - start + 1) + pattern[end + 1:]


def insert(pattern: str, at: int, symbols: str) -> str:
    """Insert `symbols` so that the first of them becomes layer `at` (at == len(pattern) appends)."""
    if not 0 <= at <= len(pattern):
        raise LayoutError(f"cannot insert at layer {at}; expected 0..{len(pattern)}", key="pattern")
    for s in symbols:
        _check_symbol(s)
    return pattern[:at] + symbols + pattern[at:]


def delete(pattern: str, start: int, end: int) -> str:
    """Remove layers start..end; a layout keeps at least one layer."""
    start, end = _check_range(pattern, start, end)
    out = pattern[:start] + pattern[end + 1:]
    if not out:
        raise LayoutError("cannot delete every layer; a layout needs at least one", key="pattern")
    return out


def move(pattern: str, start: int, end: int, to: int) -> str:
    """Move the block start..end so that it begins at layer `to` of the result."""
    start, end = _check_range(pattern, start, end)
    block = pattern[start:end + 1]
    rest = pattern[:start] + pattern[end + 1:]
    if not 0 <= to <= len(rest):
        raise LayoutError(f"cannot move layers {start}..{end} to {to}; expected 0..{len(rest)}", key="pattern")
    return rest[:to] + block + rest[to:]


def shift(pattern: str, start: int, end: int, step: int) -> tuple[str, int, int]:
    """Move start..end by `step` places (clamped at the ends); returns the pattern and the block's new range."""
    start, end = _check_range(pattern, start, end)
    to = min(max(start + step, 0), len(pattern) - (end - start + 1))
    return move(pattern, start, end, to), to, to + end - start


def with_pattern(layout: Layout, pattern: str) -> tuple[Layout, list[str]]:
    """The layout with a new (checked) pattern, adding default blocks for kinds it lacked; returns the layout
    and the names of the blocks added."""
    pattern = parse_pattern(pattern)
    added = {block: _DEFAULT_BLOCKS[block]() for sym, block in BLOCK_OF_SYMBOL.items()
             if sym in pattern and getattr(layout, block) is None}
    return layout.replace(pattern=pattern, **added), list(added)


def with_sizes(layout: Layout, top: dict, blocks: dict[str, dict]) -> Layout:
    """Apply edited top-level values (hidden_size, name, ...) and block fields, validated like a file.

    Raises LayoutError naming the key when a value is not allowed."""
    d = layout_to_dict(layout)
    d.update(top)
    for block, fields in blocks.items():
        cfg = getattr(layout, block)
        d[block] = {**(dataclasses.asdict(cfg) if cfg is not None else {}), **fields}
    return layout_from_dict(d, source="edited sizes")


# --------------------------------------------------------------------------------------------------
# Identity of an edited layout, and what the Editor shows about it


EDITED_SUFFIX = "-edited"
EDITED_FROM = "edited from "


def mark_edited(new: Layout, old: Layout) -> Layout:
    """`new` (an edit of `old`) named and sourced as an edit, so an export or download never passes it off
    as the published layout: "nemotron-h-8b" becomes "nemotron-h-8b-edited", its source "edited from
    nemotron-h-8b (source: ...)". A name the user chose in the same edit is kept; an edit of an edit keeps
    the first edit's name and source."""
    if new == old:
        return new
    name = new.name
    if name == old.name and not name.endswith(EDITED_SUFFIX):
        name = f"{name}{EDITED_SUFFIX}"
    source = old.source or ""
    if not source.startswith(EDITED_FROM):
        source = f"{EDITED_FROM}{old.name}" + (f" (source: {old.source})" if old.source else "")
    return new.replace(name=name, source=source)


@dataclass(frozen=True)
class Footprint:
    """Size and memory of a layout, whole model on one device, from the profiler's formulas."""

    total_params: int
    active_params: int
    weights_bytes: float           # at `precision`
    kv_cache_bytes: float          # one sequence of `context` tokens
    state_bytes: float             # SSM + conv state of one sequence (fixed size)
    context: int
    precision: str
    kv_dtype: str


def footprint(layout: Layout, context: int, precision: str = "bf16") -> Footprint:
    """Parameters, weights and cache memory of one sequence of `context` tokens (KV cache in the activation
    dtype, SSM state in the Scenario's default dtype), via designer.profile.params and .memory."""
    from designer.profile import memory as mem
    from designer.profile.params import count_params
    from designer.profile.scenario import Scenario
    s = Scenario(precision=precision, prompt=max(1, int(context)), gen=1)
    p = count_params(layout)
    kv = mem.kv_cache_bytes_per_token(layout, s.kv) * s.prompt
    state = mem.ssm_state_bytes_per_sequence(layout, s.state_dtype) \
        + mem.conv_state_bytes_per_sequence(layout, s.act_dtype)
    return Footprint(p.total, p.active, mem.weights_bytes(layout, precision), kv, state, s.prompt, precision, s.kv)


# --------------------------------------------------------------------------------------------------
# Undo / redo


@dataclass
class History:
    """Layouts the user has been through: `present`, what undo returns to (`past`), what redo replays."""

    present: Layout
    past: list[Layout] = field(default_factory=list)
    future: list[Layout] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # one note per past entry: what changed it
    future_notes: list[str] = field(default_factory=list)
    limit: int = 200
    revision: int = 0                                   # bumps on every change; widgets re-sync on it

    def push(self, layout: Layout, note: str = "") -> bool:
        """Make `layout` the present one. An unchanged layout is not recorded; returns whether it changed."""
        if layout == self.present:
            return False
        self.past.append(self.present)
        self.notes.append(note)
        if len(self.past) > self.limit:
            del self.past[0], self.notes[0]
        self.present = layout
        self.future.clear()
        self.future_notes.clear()
        self.revision += 1
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self.past)

    @property
    def can_redo(self) -> bool:
        return bool(self.future)

    def undo(self) -> str | None:
        """Step back; returns the note of the change undone (None when there is nothing to undo)."""
        if not self.past:
            return None
        note = self.notes.pop()
        self.future.append(self.present)
        self.future_notes.append(note)
        self.present = self.past.pop()
        self.revision += 1
        return note

    def redo(self) -> str | None:
        """Replay the last undone change; returns its note (None when there is nothing to redo)."""
        if not self.future:
            return None
        note = self.future_notes.pop()
        self.past.append(self.present)
        self.notes.append(note)
        self.present = self.future.pop()
        self.revision += 1
        return note
