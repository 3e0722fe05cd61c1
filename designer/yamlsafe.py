"""YAML reading that a hostile or careless file cannot turn into a hang, a crash or a silent surprise.

`yaml.safe_load` already refuses arbitrary objects; this adds three limits a layout reader needs:
- a mapping that repeats a key is refused, naming the key and both lines (YAML says keys are unique;
  PyYAML keeps the last one without a word);
- alias/anchor expansion is bounded: the document's size with every alias expanded (what any later walk
  over it, JSON output included, would visit) must stay under `MAX_NODES` ("billion laughs");
- nesting deeper than `MAX_DEPTH` is refused before Python's recursion limit is reached.
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 64            # a layout file nests three levels; 64 leaves room for any sane document
MAX_NODES = 200_000       # scalars + collections after alias expansion (a 118-layer preset is ~100)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(ValueError):
    """A document that breaks one of the limits above; `line` is 1-based where known."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(message)


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        if isinstance(node, MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise YamlLimitError(f"duplicate key '{key}' on lines {first_line[key]} and {line} "
                                         "(each key may appear once)", line)
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def expanded_size(node: Node, limit: int = MAX_NODES) -> int:
    """Nodes in the document with every alias expanded (shared sub-trees counted each time they are used),
    computed without expanding anything; stops counting past `limit`."""
    memo: dict[int, int] = {}

    def size(n: Node) -> int:
        if id(n) in memo:
            return memo[id(n)]
        if isinstance(n, SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        memo[id(n)] = total = min(total, limit + 1)
        return total

    return size(node)


def load(text: str) -> Any:
    """Parse one YAML document under the limits above. Raises yaml.YAMLError for malformed text and
    YamlLimitError for a document that is well-formed but refused."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None
        if expanded_size(node) > MAX_NODES:
            raise YamlLimitError(f"the document expands to more than {MAX_NODES:,} values once its aliases "
                                 "(*name) are expanded; a layout needs a few hundred",
                                 node.start_mark.line + 1)
        return loader.construct_document(node)
    finally:
        loader.dispose()
