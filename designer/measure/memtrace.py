"""Live-tensor memory of a piece of PyTorch code, traced on the CPU: the bytes of every storage an operator
allocates, freed when the last tensor viewing it dies, and the peak of their sum (what a caching allocator
would have to hold, before fragmentation). It measures the transient workspace of code paths the analytic
profiler models, e.g. the torch SSD scan's chunk-square tensors (designer.profile.blocks
.torch_scan_fp32_elems_per_token), on any machine; tensors made before the trace (weights, inputs, caches)
are not counted.

    with LiveBytes() as trace:
        block(x, cache)
    trace.peak_bytes, trace.peak_op, trace.live_at_peak
"""
from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages allocated by operators run inside the `with` block."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, list[Any]] = {}      # storage address -> [bytes, ids of tensors viewing it]
        self.current_bytes = 0
        self.peak_bytes = 0
        self.peak_op: str | None = None
        self.live_at_peak: list[int] = []           # bytes of each storage alive at the peak, largest first

    def _release(self, address: int, tensor_id: int) -> None:
        entry = self._live.get(address)
        if entry is None:
            return
        entry[1].discard(tensor_id)
        if not entry[1]:
            self.current_bytes -= entry[0]
            del self._live[address]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # storages the operator was given: an output on one of them (a view, an in-place result) allocated
        # nothing, and one made before the trace (weights, inputs, caches) is not counted at all
        given = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                 if isinstance(t, torch.Tensor)}
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            if not storage.nbytes():
                continue
            address = storage.data_ptr()
            if address in given and address not in self._live:
                continue
            if address not in self._live:
                self._live[address] = [storage.nbytes(), set()]
                self.current_bytes += storage.nbytes()
                if self.current_bytes > self.peak_bytes:
                    self.peak_bytes, self.peak_op = self.current_bytes, str(func)
                    self.live_at_peak = sorted((e[0] for e in self._live.values()), reverse=True)
            self._live[address][1].add(id(t))
            weakref.finalize(t, self._release, address, id(t))
        return out
