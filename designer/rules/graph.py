"""The layer graph: one node per residual block (attributes: symbol, kind, index), edges along the residual
stream, plus `embedding` and `head` nodes at the ends. Rules and the app read positions from here."""
from __future__ import annotations

import networkx as nx

from designer.layout import SYMBOLS, Layout

FFN_SYMBOLS = frozenset("-E")   # an MoE block is an FFN for the family's placement rules


def layer_graph(layout: Layout) -> nx.DiGraph:
    g = nx.DiGraph(name=layout.name)
    g.add_node("embedding", kind="embedding")
    prev = "embedding"
    for i, sym in enumerate(layout.pattern):
        g.add_node(i, index=i, symbol=sym, kind=SYMBOLS.get(sym, "unknown"), ffn=sym in FFN_SYMBOLS)
        g.add_edge(prev, i, kind="residual")
        prev = i
    g.add_node("head", kind="head")
    g.add_edge(prev, "head", kind="residual")
    return g


def layers(g: nx.DiGraph) -> list[int]:
    return [n for n in g.nodes if isinstance(n, int)]


def layers_of(g: nx.DiGraph, symbol: str) -> list[int]:
    return [n for n in layers(g) if g.nodes[n]["symbol"] == symbol]


def next_block(g: nx.DiGraph, node) -> object:
    """The node after `node` on the residual stream (a layer index or 'head')."""
    return next(iter(g.successors(node)))


def is_ffn(g: nx.DiGraph, node) -> bool:
    return isinstance(node, int) and g.nodes[node]["ffn"]
