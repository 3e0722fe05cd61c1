"""Latency, throughput and capacity of a layout on a hardware profile: a per-operation roofline.

Every block contributes, per forward pass, max(GEMM FLOPs / GEMM rate, bytes read / memory rate) for
its GEMMs, the same max for its sequence-mixing core (attention or scan), the extra elementwise passes
over its activations that its kernel backend makes, a fixed cost per kernel launch, and under tensor
parallelism one all-reduce of its output. Rates are datasheet peaks times the profile's `efficiency`
fractions, with the scenario's kernel backend's overrides applied (`Hardware.efficiency_for`; the terms:
docs/measure.md). Decode step time is exactly `a + k * context` (attention's FLOPs and KV reads both grow
linearly with the keys attended), so a whole generation is summed in closed form.

Serving model (what "throughput" means here): a static batch of `batch` requests; all prompts are
prefilled (chunk by chunk in the default chunked mode), then `gen - 1` decode steps run for the whole
batch (the first output token comes from the prefill). TTFT = the batch's prefill time; TPOT = mean
decode step; e2e = TTFT + (gen - 1) * TPOT; output tokens/s = batch * gen / e2e.
Pipeline parallelism splits layers into contiguous stages; a request crosses them one after another
(no micro-batch overlap is modelled, a lower bound on throughput).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from designer.layout import SYMBOLS, Layout, LayoutError, check_parallel
from designer.profile import memory as mem
from designer.profile.blocks import BlockCost, block_costs, expected_experts_hit, vocab_per_rank
from designer.profile.hardware import Hardware, load_hardware
from designer.profile.scenario import Scenario

@dataclass(frozen=True)
class Stage:
    """One pipeline stage as held by one GPU (a tensor-parallel rank)."""

    counts: dict[str, int]
    embedding: bool
    head: bool
    weights_bytes: float
    kv_bytes_per_token: float
    state_bytes_per_sequence: float       # SSM state + conv window
    ssm_state_bytes_per_sequence: float
    activation_bytes_per_token: float
    step_activation_bytes_per_token: float   # one token per sequence (decode: the torch state update differs)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU bytes (the fullest pipeline stage) at a batch and context."""

    weights_bytes: float
    kv_cache_bytes: float
    ssm_state_bytes: float               # SSM state + conv window of every sequence
    activation_bytes: float
    capacity_bytes: float                # memory_utilization x GPU memory

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.ssm_state_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def to_dict(self) -> dict[str, float | bool]:
        return {**asdict(self), "total_bytes": self.total_bytes, "fits": self.fits}


@dataclass(frozen=True)
class RequestTiming:
    batch: int
    prompt: int
    gen: int
    ttft_s: float
    tpot_s: float                # mean decode step over the generation
    tpot_first_s: float          # decode step right after the prefill
    tpot_last_s: float           # decode step at the end of the generation
    e2e_s: float
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def split_stages(pattern: str, pp: int) -> list[str]:
    """Contiguous stages of as-equal-as-possible layer counts (Megatron's default split)."""
    if pp > len(pattern):
        raise LayoutError(f"pp={pp} is more pipeline stages than the {len(pattern)} layers")
    base, extra = divmod(len(pattern), pp)
    out, start = [], 0
    for i in range(pp):
        n = base + (1 if i < extra else 0)
        out.append(pattern[start:start + n])
        start += n
    return out


@dataclass
class Roofline:
    """A layout prepared for one hardware profile and serving scenario; every method is plain arithmetic.
    `scenario` is held resolved (tp / pp filled in from the layout where the scenario leaves them None)."""

    layout: Layout
    hardware: Hardware
    scenario: Scenario = field(default_factory=Scenario)

    def __post_init__(self) -> None:
        self.hardware = load_hardware(self.hardware)
        self.scenario = self.scenario.resolve(self.layout)
        lay, s, hw = self.layout, self.scenario, self.hardware
        check_parallel(lay, s.tp, s.pp)
        self.costs: dict[str, BlockCost] = block_costs(lay, s.tp)
        self.efficiency = eff = hw.efficiency_for(s.kernel_backend)
        self.act_bytes = mem.dtype_bytes(s.act_dtype)
        self.kv_bytes = mem.dtype_bytes(s.kv)
        self.state_bytes = mem.dtype_bytes(s.state_dtype)
        self.weight_bytes_per_param = mem.precision(s.precision).bytes_per_param
        self.gemm_rate = hw.peak(s.precision) * eff.gemm_for(hw.compute_precision(s.precision))
        self.head_rate = hw.peak(s.act_dtype) * eff.gemm_for(hw.compute_precision(s.act_dtype))
        self.core_rate = {"attention": hw.peak(s.act_dtype) * eff.attention,
                          "scan": hw.peak(s.act_dtype) * eff.scan, "none": math.inf}
        self.mem_rate = hw.memory_bandwidth_bytes_per_s * eff.memory                # states, activations
        self.weights_rate = hw.memory_bandwidth_bytes_per_s * eff.weights_memory    # weights streamed by GEMMs
        self.kv_rate = hw.memory_bandwidth_bytes_per_s * eff.kv_memory              # KV cache read in decode
        self.kernel_s = eff.kernel_overhead_s                 # one launch in a prefill pass
        self.decode_kernel_s = eff.decode_kernel_s            # one launch in a decode step
        self.capacity_bytes = hw.memory_bytes * s.memory_utilization
        self.vocab_rank = vocab_per_rank(lay, s.tp)
        self.head_weight_bytes = self.vocab_rank * lay.hidden_size * self.act_bytes
        self.logits_bytes = mem.logits_bytes_per_sequence(lay, tp=s.tp)
        self.stages = [self._stage(p, i == 0, i == s.pp - 1) for i, p in enumerate(split_stages(lay.pattern, s.pp))]
        # weights one block reads per pass: everything but the routed experts, and one routed expert
        self._dense_read: dict[str, float] = {}
        # the kernel backend's terms per block kind: launches per pass, and bytes of its extra elementwise
        # passes per token (passes x activations written per token x activation bytes)
        self._kernels = {sym: eff.kernels(c.kind, c.kernels) for sym, c in self.costs.items()}
        self._decode_kernels = {sym: eff.decode_kernels(c.kind, c.kernels) for sym, c in self.costs.items()}
        self._elementwise_bytes_per_token = {sym: eff.elementwise_passes(c.kind) * c.act_elems_per_token
                                             * self.act_bytes for sym, c in self.costs.items()}
        for sym, c in self.costs.items():
            experts = c.num_experts * c.expert_matmul_params
            self._dense_read[sym] = (c.matmul_params - experts) * self.weight_bytes_per_param \
                + (c.params - c.matmul_params) * self.act_bytes

    def _stage(self, pattern: str, first: bool, last: bool) -> Stage:
        lay, s, costs = self.layout, self.scenario, self.costs
        counts = {sym: pattern.count(sym) for sym in SYMBOLS}
        ssm = mem.ssm_state_bytes_per_sequence(lay, s.state_dtype, tp=s.tp, costs=costs, counts=counts)
        conv = mem.conv_state_bytes_per_sequence(lay, s.act_dtype, tp=s.tp, costs=costs, counts=counts)
        return Stage(
            counts=counts, embedding=first, head=last,
            weights_bytes=mem.weights_bytes(lay, s.precision, tp=s.tp, costs=costs, counts=counts,
                                            embedding=first, head=last),
            kv_bytes_per_token=mem.kv_cache_bytes_per_token(lay, s.kv, tp=s.tp, costs=costs, counts=counts),
            state_bytes_per_sequence=ssm + conv, ssm_state_bytes_per_sequence=ssm,
            # workspace: an explicitly chosen backend's own (the exported model's torch scan, or its triton scan's
            # chunk states and per-group B and C copies); unchosen, what fused kernels need (B and C per group)
            activation_bytes_per_token=mem.activation_bytes_per_token(lay, act_dtype=s.act_dtype, tp=s.tp,
                                                                      costs=costs, counts=counts, kernels=s.kernels),
            step_activation_bytes_per_token=mem.activation_bytes_per_token(
                lay, act_dtype=s.act_dtype, tp=s.tp, costs=costs, counts=counts, kernels=s.kernels, step=True))

    # ---- building blocks ---------------------------------------------------------------------------
    def _weights_read(self, sym: str, tokens: float) -> float:
        c = self.costs[sym]
        if not c.num_experts:
            return self._dense_read[sym]
        hit = expected_experts_hit(c.num_experts, c.top_k, tokens)
        return self._dense_read[sym] + hit * c.expert_matmul_params * self.weight_bytes_per_param

    def _elementwise_s(self, sym: str, tokens: float) -> float:
        """The backend's extra elementwise passes over `tokens` tokens' activations of one block, at the memory
        rate (added to the block's time, not overlapped with its GEMMs)."""
        return tokens * self._elementwise_bytes_per_token[sym] / self.mem_rate

    def _state_io_s(self, c: BlockCost) -> float:
        """Decode: one sequence's SSM and conv state passed over `state_update_passes` times (read + write)."""
        state = c.ssm_state_elems * self.state_bytes + c.conv_state_elems * self.act_bytes
        return self.efficiency.state_update_passes * state / self.mem_rate

    def _allreduce_s(self, tokens: float) -> float:
        """Ring all-reduce of one block's output over the tensor-parallel group."""
        tp = self.scenario.tp
        if tp == 1:
            return 0.0
        size = tokens * self.layout.hidden_size * self.act_bytes
        return self.hardware.interconnect_latency_s \
            + 2 * (tp - 1) / tp * size / self.hardware.interconnect_bandwidth_bytes_per_s

    def _p2p_s(self, tokens: float) -> float:
        """Activations handed to the next pipeline stage."""
        size = tokens * self.layout.hidden_size * self.act_bytes
        return self.hardware.interconnect_latency_s + size / self.hardware.interconnect_bandwidth_bytes_per_s

    def _head_s(self, tokens: float) -> float:
        flops = 2.0 * self.vocab_rank * self.layout.hidden_size * tokens
        return max(flops / self.head_rate, self.head_weight_bytes / self.weights_rate)

    # ---- prefill -----------------------------------------------------------------------------------
    def prefill_passes(self, batch: int, prompt: int) -> tuple[int, float]:
        """(forward passes, tokens per pass) for prefilling `batch` prompts in the scenario's mode."""
        split = mem.prefill_split(self.scenario.prefill_mode, batch, prompt, self.scenario.prefill_chunk)
        return split.passes, split.mean_tokens

    def prefill_stage_parts(self, batch: int, prompt: int) -> list[tuple[float, float, float]]:
        """Per pipeline stage: (GPU work s, host launch s, hand-off s). The host issues the stage's kernels
        while the GPU runs the earlier ones, so the stage takes max(work, launch) + hand-off (the head's
        logits on the last stage, the activations to the next one otherwise). Each part is a sum over blocks."""
        passes, per_pass = self.prefill_passes(batch, prompt)
        parts = []
        for stage in self.stages:
            work = launch = 0.0
            for sym, n in stage.counts.items():
                if not n:
                    continue
                c = self.costs[sym]
                gemm_flops = 2.0 * c.active_matmul_params * per_pass
                gemm_io_s = self._weights_read(sym, per_pass) / self.weights_rate \
                    + per_pass * c.act_elems_per_token * self.act_bytes / self.mem_rate
                launch += n * passes * self._kernels[sym] * self.kernel_s
                # the GPU's gap between two queued kernels is the graph-node cost, not the host's launch
                t_block = passes * (max(gemm_flops / self.gemm_rate, gemm_io_s) + self._elementwise_s(sym, per_pass)
                                    + self._kernels[sym] * self.decode_kernel_s + self._allreduce_s(per_pass))
                core_flops = batch * c.prefill_core(prompt, 0)
                if core_flops:
                    core_bytes = batch * (prompt * c.kv_elems_per_token * self.kv_bytes
                                          + c.ssm_state_elems * self.state_bytes
                                          + c.conv_state_elems * self.act_bytes)
                    if c.core_kind == "scan":
                        core_bytes *= self.efficiency.scan_memory_passes
                    t_block += max(core_flops / self.core_rate[c.core_kind], core_bytes / self.mem_rate)
                work += n * t_block
            parts.append((work, launch, self._head_s(batch) if stage.head else passes * self._p2p_s(per_pass)))
        return parts

    @staticmethod
    def stage_s(work, launch, handoff, maximum=max):
        """One prefill stage's time from its prefill_stage_parts (`maximum`: np.maximum for arrays of them)."""
        return maximum(work, launch) + handoff

    def prefill_s(self, batch: int, prompt: int) -> float:
        """Time to prefill `batch` prompts of `prompt` tokens and produce each one's first token (TTFT)."""
        if prompt <= 0 or batch <= 0:
            return 0.0
        return sum(self.stage_s(*parts) for parts in self.prefill_stage_parts(batch, prompt))

    # ---- decode ------------------------------------------------------------------------------------
    def decode_coefficients(self, batch: int) -> tuple[float, float]:
        """(a, k): one decode step of `batch` sequences attending to `context` keys takes a + k * context s."""
        a = k = 0.0
        for stage in self.stages:
            for sym, n in stage.counts.items():
                if not n:
                    continue
                c = self.costs[sym]
                gemm_flops = 2.0 * c.active_matmul_params * batch
                a += n * (max(gemm_flops / self.gemm_rate, self._weights_read(sym, batch) / self.weights_rate)
                          + self._elementwise_s(sym, batch) + self._decode_kernels[sym] * self.decode_kernel_s
                          + self._allreduce_s(batch))
                rate = self.core_rate[c.core_kind]
                if c.decode_core_flops or c.ssm_state_elems:
                    a += n * batch * max(c.decode_core_flops / rate, self._state_io_s(c))
                if c.decode_core_flops_per_key:
                    k += n * batch * max(c.decode_core_flops_per_key / rate,
                                         c.kv_elems_per_token * self.kv_bytes / self.kv_rate)
            a += self._head_s(batch) if stage.head else self._p2p_s(batch)
        return a, k

    def tpot_s(self, batch: int, context: int) -> float:
        a, k = self.decode_coefficients(batch)
        return a + k * context

    def request(self, batch: int, prompt: int, gen: int) -> RequestTiming:
        """TTFT, TPOT, end-to-end time and output tokens/s of a static batch (module docstring)."""
        ttft = self.prefill_s(batch, prompt)
        a, k = self.decode_coefficients(batch)
        steps = max(gen - 1, 0)
        # decode step i (1..gen-1) attends to prompt + i keys
        decode = steps * a + k * (steps * prompt + steps * (steps + 1) / 2)
        first, last = a + k * (prompt + 1), a + k * (prompt + max(steps, 1))
        e2e = ttft + decode
        tps = batch * gen / e2e if e2e > 0 else 0.0
        return RequestTiming(batch=batch, prompt=prompt, gen=gen, ttft_s=ttft,
                             tpot_s=decode / steps if steps else first, tpot_first_s=first, tpot_last_s=last,
                             e2e_s=e2e, output_tokens_per_s=tps, output_tokens_per_s_per_gpu=tps / self.scenario.gpus)

    # ---- memory and capacity -----------------------------------------------------------------------
    def _workspace(self, stage: Stage, batch: int, prompt: int) -> float:
        """Activation bytes of the prefill (the largest transient) on one stage."""
        s = self.scenario
        tokens = mem.prefill_split(s.prefill_mode, batch, prompt, s.prefill_chunk).peak_tokens
        return tokens * self._per_token(stage, prompt) + (batch * self.logits_bytes if stage.head else 0.0)

    def _per_token(self, stage: Stage, prompt: int) -> float:
        """Activation bytes per token of a pass over `prompt`-token prompts: a step's when each sequence
        passes one token at a time (decode, or sequential prefill; the torch SSD step differs from its scan)."""
        one_token = prompt == 1 or self.scenario.prefill_mode == "sequential"
        return stage.step_activation_bytes_per_token if one_token else stage.activation_bytes_per_token

    def _workspace_slope(self, stage: Stage, prompt: int) -> tuple[float, float]:
        """_workspace's activation term as (bytes per sequence, cap): min(batch x the first, cap) for any batch
        (memory.prefill_split's largest pass), for the closed-form capacity solutions below."""
        s = self.scenario
        per_token = self._per_token(stage, prompt)
        cap = s.prefill_chunk * per_token if s.prefill_mode == "chunked" else math.inf
        return mem.prefill_split(s.prefill_mode, 1, prompt, s.prefill_chunk).peak_tokens * per_token, cap

    def memory(self, batch: int, context: int, *, prompt: int | None = None) -> MemoryBreakdown:
        """Per-GPU memory with `batch` sequences of `context` cached tokens, after prefilling `prompt`
        tokens each (default: the whole context); the fullest stage."""
        prompt = context if prompt is None else prompt
        best: MemoryBreakdown | None = None
        for st in self.stages:
            mb = MemoryBreakdown(weights_bytes=st.weights_bytes, kv_cache_bytes=batch * context * st.kv_bytes_per_token,
                                 ssm_state_bytes=batch * st.state_bytes_per_sequence,
                                 activation_bytes=self._workspace(st, batch, prompt),
                                 capacity_bytes=self.capacity_bytes)
            if best is None or mb.total_bytes > best.total_bytes:
                best = mb
        assert best is not None
        return best

    def max_batch(self, prompt: int, gen: int) -> int:
        """Largest batch whose weights, caches at prompt + gen tokens and prefill workspace fit
        (`memory.prefill_split`'s largest pass written as a slope per sequence and a cap, solved in closed form)."""
        mode, best = self.scenario.prefill_mode, None
        for st in self.stages:
            per_seq = st.kv_bytes_per_token * (prompt + gen) + st.state_bytes_per_sequence \
                + (self.logits_bytes if st.head else 0.0)
            # the prefill's workspace, and a decode step's (the same but for the torch SSD step, whose state
            # copies can outgrow a short prompt's scan)
            for passed in (prompt, 1):
                n = _largest(self.capacity_bytes - st.weights_bytes, per_seq, *self._workspace_slope(st, passed))
                if n is not None:          # None: nothing on this stage grows with the batch
                    best = n if best is None else min(best, n)
        return int(best or 0)

    def max_context(self, batch: int = 1) -> int | None:
        """Longest context (prompt + generated tokens) that fits for `batch` sequences; None = unbounded
        (no KV cache and a prefill workspace that stops growing with the prompt)."""
        mode, best = self.scenario.prefill_mode, None
        for st in self.stages:
            room = self.capacity_bytes - st.weights_bytes - batch * st.state_bytes_per_sequence \
                - (batch * self.logits_bytes if st.head else 0.0)
            step_per_seq, step_cap = self._workspace_slope(st, 1)
            bounds = [_largest(room - min(batch * step_per_seq, step_cap), batch * st.kv_bytes_per_token, 0.0, 0.0)]
            if mode != "sequential":       # the prefill, whose workspace grows with the context (to its cap)
                act = st.activation_bytes_per_token
                ws_cap = self.scenario.prefill_chunk * act if mode == "chunked" else math.inf
                bounds.append(_largest(room, batch * st.kv_bytes_per_token, batch * act, ws_cap))
            for n in bounds:
                if n is not None:
                    best = n if best is None else min(best, n)
        return best


def _largest(room: float, per_unit: float, ws_per_unit: float, ws_cap: float) -> int | None:
    """Largest n >= 0 with n * per_unit + min(n * ws_per_unit, ws_cap) <= room; None when unbounded."""
    if room < 0:
        return 0
    if ws_cap < math.inf and room >= ws_cap:        # region where the workspace has stopped growing
        if per_unit == 0:
            return None
        n = math.floor((room - ws_cap) / per_unit)
        if ws_per_unit == 0 or n * ws_per_unit >= ws_cap:
            return n
    per = per_unit + ws_per_unit
    if per == 0:
        return None
    return math.floor(room / per)
