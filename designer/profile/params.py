"""Parameter counts of a layout: total, active (MoE), embedding, per block kind.

Exact to the unit against Hugging Face transformers' models built on the meta device (tests/
test_profile_params.py), with one stated difference: the MoE router's `e_score_correction_bias` is a
buffer in transformers but a checkpoint tensor, and is counted here (the oracle adds persistent buffers).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from designer.layout import SYMBOLS, Layout
from designer.profile.blocks import BlockCost, block_costs, vocab_per_rank


@dataclass(frozen=True)
class ParamCounts:
    total: int
    active: int                  # what one token passes through (= total without MoE)
    embedding: int               # input embedding table (vocab x hidden)
    lm_head: int                 # output projection; 0 when tied to the embedding
    final_norm: int
    by_kind: dict[str, int] = field(default_factory=dict)   # mamba/attention/mlp/moe: all blocks of that kind

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding - self.lm_head

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "active": self.active, "embedding": self.embedding, "lm_head": self.lm_head,
                "final_norm": self.final_norm, "non_embedding": self.non_embedding, "by_kind": dict(self.by_kind)}


def embedding_params(layout: Layout, tp: int = 1) -> tuple[int, int, int]:
    """(input embedding, lm head, final norm) parameters on one rank (vocab split over tp ranks)."""
    emb = vocab_per_rank(layout, tp) * layout.hidden_size
    return emb, 0 if layout.tie_word_embeddings else emb, layout.hidden_size


def count_params(layout: Layout, costs: dict[str, BlockCost] | None = None) -> ParamCounts:
    costs = block_costs(layout) if costs is None else costs
    emb, head, norm = embedding_params(layout)
    by_kind = {SYMBOLS[s]: layout.count(s) * c.params for s, c in costs.items()}
    total = emb + head + norm + sum(by_kind.values())
    active = emb + head + norm + sum(layout.count(s) * c.active_params for s, c in costs.items())
    return ParamCounts(total=total, active=active, embedding=emb, lm_head=head, final_norm=norm, by_kind=by_kind)
