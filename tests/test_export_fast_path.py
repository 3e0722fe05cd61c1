"""The exported model's fast GPU path (KERNELS = "triton") against its torch reference.

On a GPU with fla-core every test runs (bench/gpu_calls/ run them on the GPU machine). Without CUDA (CI) the
tests of the model's own Triton kernels (`triton_kernel`: decode attention, RoPE and cache writes, the fused
decode step, skip + gate + norm, relu²) run in Triton's interpreter on the CPU, in float32 (the interpreter has
no bfloat16), when triton is installed; the rest (fla-core's kernels, whole models, CUDA graphs) are skipped.
Tolerances are relative errors ||fast - ref|| / ||ref||: float32 models for the whole-model checks (fla's kernels
use tf32 dots there), bfloat16 inputs on the GPU for the kernel-level ones.
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

# fla's autotuners key on head sizes, not sequence lengths, and may keep their choice in Triton's on-disk cache:
# these tests' small shapes would then choose the kernels' configurations for every later process on the machine
# (seen on the H200: fla's state kernel 2.4x slower in a 16k prefill measured after the tests). Not from here.
os.environ["FLA_CACHE_RESULTS"] = "0"
os.environ["TRITON_CACHE_AUTOTUNING"] = "0"

GPU = torch.cuda.is_available()
INTERPRET = not GPU and os.environ.get("TRITON_INTERPRET") == "1"   # set by conftest.py before triton loads
_spec = importlib.util.spec_from_file_location(
    "fast_path_model", Path(__file__).resolve().parents[1] / "designer/export/templates/model.py")
M = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)   # dataclasses look the module up
_spec.loader.exec_module(M)

DEVICE = "cuda" if GPU else "cpu"
LOW = torch.bfloat16 if GPU else torch.float32   # the kernel-level tests' low-precision dtype
gpu_only = pytest.mark.skipif(not GPU or M.triton is None or M.fla_kernels() is None,
                              reason="needs CUDA, triton and fla-core")
triton_kernel = pytest.mark.skipif(M.triton is None or not (GPU or INTERPRET),
                                   reason="needs triton (on the CPU: triton >= 3.9's interpreter)")


def tol(on_gpu: float) -> float:
    """A kernel test's tolerance: bfloat16 inputs on the GPU; float32 in the interpreter, where only the order of
    float32 operations differs from the reference."""
    return on_gpu if GPU else 1e-5


HYBRID = dict(name="hybrid", hidden_size=256, vocab_size=512, pattern="M-M*-M-M*-",
              mamba=dict(num_heads=8, head_dim=64, n_groups=2, state_size=128, chunk_size=32),
              attention=dict(num_heads=8, num_kv_heads=2, head_dim=32), mlp=dict(intermediate_size=512))
LLAMA = dict(name="llama", family="llama", hidden_size=256, vocab_size=512, pattern="*-*-",
             attention=dict(num_heads=8, num_kv_heads=2, head_dim=32, rope_theta=10000.0),
             mlp=dict(intermediate_size=512, activation="swiglu"))
WINDOW = dict(HYBRID, name="window", attention=dict(num_heads=8, num_kv_heads=2, head_dim=32, qkv_bias=True,
                                                    rope_theta=10000.0, sliding_window=40))   # biases: packed too


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def model_for(d: dict, dtype=torch.float32, seed: int = 0) -> M.CausalLM:
    torch.manual_seed(seed)
    model = M.build_model(args=M.ModelArgs.from_dict(d), device="cuda")
    with torch.no_grad():   # norms and biases off their init values so every parameter matters
        for name, p in model.named_parameters():
            if not name.endswith(("A_log", "dt_bias")):
                p.add_(0.05 * torch.randn_like(p))
    return model.to(dtype).eval()


class kernels:
    """with kernels("torch"): ... runs the block on the reference path."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = M.set_kernels(self.name)

    def __exit__(self, *exc):
        M.set_kernels(self.previous)


@gpu_only
def test_triton_is_what_auto_picks_on_cuda():
    with kernels("auto"):
        assert M.kernels_in_use("cuda") == "triton"
        assert M.kernels_in_use("cpu") == "torch"
    with kernels("torch"):
        assert M.kernels_in_use("cuda") == "torch"


@gpu_only
@pytest.mark.parametrize("grad,g,with_state", [(False, 2, True), (False, 1, False), (True, 2, True)],
                         ids=["grouped-inference", "one-group-no-state", "autograd"])
def test_triton_ssd_scan_matches_the_chunked_reference(grad, g, with_state):
    """Inference takes C and B per group (ssd_grouped_scan_triton: our state kernel, fla's output kernel); with a
    gradient wanted, chunk_simple_gla over B and C repeated on every head."""
    torch.manual_seed(0)
    b, seqlen, h, p, n = 2, 300, 8, 64, 128
    x = torch.randn(b, seqlen, h, p, device="cuda", dtype=torch.bfloat16)
    dt = F.softplus(torch.randn(b, seqlen, h, device="cuda") - 2)
    A = -torch.exp(torch.randn(h, device="cuda"))
    B = torch.randn(b, seqlen, g, n, device="cuda", dtype=torch.bfloat16) * n ** -0.5
    C = torch.randn(b, seqlen, g, n, device="cuda", dtype=torch.bfloat16) * n ** -0.5
    h0 = torch.randn(b, h, p, n, device="cuda") if with_state else None
    y_ref, s_ref = M.ssd_chunked_scan(x, dt, A, B, C, 64, initial_state=h0)
    y, s = M.ssd_chunked_scan_triton(x.requires_grad_(grad), dt, A, B, C, initial_state=h0)
    assert y.requires_grad == grad
    assert y.dtype == torch.bfloat16 and s.dtype == torch.float32 and s.shape == s_ref.shape
    assert rel(y, y_ref) < 2e-2 and rel(s, s_ref) < 1e-2


@triton_kernel
def test_fused_decode_step_updates_the_state_in_place_like_ssd_step():
    torch.manual_seed(1)
    b, h, p, g, n = 3, 8, 64, 2, 128
    state = torch.randn(b, h, p, n, device=DEVICE)
    x = torch.randn(b, h, p, device=DEVICE)
    dt_raw, dt_bias = torch.randn(b, h, device=DEVICE), torch.randn(h, device=DEVICE)
    A_log, D = torch.randn(h, device=DEVICE), torch.randn(h, device=DEVICE)
    B, C = torch.randn(b, g, n, device=DEVICE), torch.randn(b, g, n, device=DEVICE)
    dt = F.softplus(dt_raw + dt_bias)
    y_ref, s_ref = M.ssd_step(state.clone(), x, dt, -torch.exp(A_log), B, C)
    y = M.ssd_step_triton(state, x, dt_raw, dt_bias, A_log, B, C, D)
    assert rel(state, s_ref) < 1e-5
    assert rel(y, y_ref + x * D[:, None]) < 1e-5


@triton_kernel
@pytest.mark.parametrize("with_state,length,groups", [(True, 150, 2), (False, 64, 1), (True, 30, 4)])
def test_chunk_states_kernel_reads_b_per_group_and_matches_the_chunk_recurrence(with_state, length, groups):
    """The states at each chunk's start and the final state, B a strided view with one row per group: the chunk
    recurrence written out in torch, and the final state of the model's chunked SSD reference."""
    torch.manual_seed(8)
    b, h, p, n, chunk = 2, 8, 48, 128, 64   # p: masked lanes of a 64 block; n: two blocks
    x = torch.randn(b, length, h, p, device=DEVICE, dtype=LOW)
    dt = F.softplus(torch.randn(b, length, h, device=DEVICE) - 2)
    A = -torch.exp(torch.randn(h, device=DEVICE))
    conv_out = torch.randn(b, length, groups * n + 24, device=DEVICE, dtype=LOW) * n ** -0.5
    B = conv_out[..., 24:].unflatten(-1, (groups, n))   # strided rows, as split from the conv's output
    h0 = torch.randn(b, h, p, n, device=DEVICE) if with_state else None
    v = x * dt[..., None].to(LOW)
    pad = -length % chunk
    cum = F.pad(dt * A, (0, 0, 0, pad)).unflatten(1, (-1, chunk)).cumsum(2).flatten(1, 2)[:, :length]
    g = (cum / math.log(2)).contiguous()   # chunk-local, log2 units
    states, final = M.ssd_chunk_states_triton(B, v, g, h0, chunk)
    state = h0.clone() if with_state else torch.zeros(b, h, p, n, device=DEVICE)
    k = B.float().repeat_interleave(h // groups, dim=2)
    for c, start in enumerate(range(0, length, chunk)):
        assert rel(states[:, c], state) < tol(2e-2) if with_state or c else states[:, c].abs().max() == 0
        rows = slice(start, min(start + chunk, length))
        g_last = g[:, rows.stop - 1]
        decay = torch.exp2(g_last[:, None] - g[:, rows])   # b t h
        state = state * torch.exp2(g_last)[..., None, None] + torch.einsum(
            "bthp,bthn->bhpn", v[:, rows].float() * decay[..., None], k[:, rows])
    assert states.shape == (b, -(-length // chunk), h, p, n) and states.dtype == LOW
    assert final.dtype == torch.float32 and rel(final, state) < tol(2e-2)
    _, ref_final = M.ssd_chunked_scan(x, dt, A, B.contiguous(), B.contiguous(), chunk, initial_state=h0)
    assert rel(final, ref_final) < tol(2e-2)


@gpu_only
@pytest.mark.parametrize("with_state,length", [(False, 50), (True, 50), (True, 3), (True, 1)])
def test_triton_conv_matches_reference(with_state, length):
    """Lengths below the kernel width take part of fla's final state from the initial state."""
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(96, 96, 4, groups=96, padding=3).cuda()
    x = torch.randn(2, length, 96, device="cuda")
    state = torch.randn(2, 96, 3, device="cuda") if with_state else None
    ref_state = state.clone() if with_state else None
    y_ref = M.causal_conv1d(x, conv, ref_state)
    y = M.causal_conv1d_triton(x, conv, state)
    assert rel(y, y_ref) < 1e-4
    if with_state:
        assert torch.equal(state, ref_state)


@gpu_only
@pytest.mark.parametrize("layout", [HYBRID, LLAMA, WINDOW], ids=lambda d: d["name"])
def test_prefill_then_decode_matches_reference(layout):
    """Prefill (empty and warm cache), then 40 decode steps through one CUDA graph, eager fast steps and
    the torch reference: logits agree at every step."""
    model = model_for(layout)
    ids = torch.randint(0, 512, (2, 70), device="cuda")
    with torch.no_grad():
        with kernels("torch"):
            full = model(ids)
            ref_cache = model.new_cache(2, 128)
            ref = [model(ids[:, :50], cache=ref_cache), model(ids[:, 50:60], cache=ref_cache)]
            ref += [model(ids[:, t:t + 1], cache=ref_cache) for t in range(60, 70)]
        with kernels("triton"):
            assert rel(model(ids), full) < 1e-2
            eager_cache, graph_cache = model.new_cache(2, 128), model.new_cache(2, 128)
            step = M.DecodeGraph(model, graph_cache)
            for cache in (eager_cache, graph_cache):
                assert rel(model(ids[:, :50], cache=cache), ref[0]) < 1e-2
                assert rel(model(ids[:, 50:60], cache=cache), ref[1]) < 1e-2
            for i, t in enumerate(range(60, 70)):
                eager = model(ids[:, t:t + 1], cache=eager_cache)
                graph = step(ids[:, t:t + 1]).clone()
                assert rel(eager, ref[2 + i]) < 1e-2, t
                assert rel(graph, eager) < 1e-4, t
            for t in range(30):   # 30 more steps: graph and eager stay together
                nxt = eager.argmax(-1)
                eager, graph = model(nxt, cache=eager_cache), step(nxt).clone()
                assert rel(graph, eager) < 1e-4, t
            assert graph_cache.seq_len == eager_cache.seq_len == 100


@gpu_only
def test_generate_uses_the_graph_and_matches_eager():
    model = model_for(HYBRID)
    prompt = torch.randint(0, 512, (3, 20), device="cuda")
    with kernels("triton"):
        graphed = model.generate(prompt, 24, temperature=0.0)
        eager = model.generate(prompt, 24, temperature=0.0, cuda_graph=False)
    assert torch.equal(graphed, eager)


@gpu_only
def test_prefill_into_slots_of_a_batched_cache():
    model = model_for(HYBRID)
    ids = torch.randint(0, 512, (3, 33), device="cuda")
    with torch.no_grad(), kernels("triton"):
        together = model.new_cache(3, 64)
        want = model(ids, cache=together)
        slots = model.new_cache(3, 64)
        got = torch.cat([model(ids[i:i + 1], cache=slots.slot(i)) for i in range(3)])
        slots.seq_len = 33
        assert rel(got, want) < 1e-4
        for a, b in zip(slots.tensors(), together.tensors()):
            assert rel(a, b) < 1e-4
        nxt = want[:, -1:].argmax(-1)
        assert rel(model(nxt, cache=slots), model(nxt, cache=together)) < 1e-4


@gpu_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_matches_reference(dtype):
    """Training runs the same kernels backward: gradients agree with the torch reference (bf16 via autocast,
    as train_proxy.py runs it)."""
    model = model_for(HYBRID).train()
    ids = torch.randint(0, 512, (2, 96), device="cuda")
    grads = {}
    for name in ("torch", "triton"):
        model.zero_grad()
        with kernels(name), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            model.loss(ids[:, :-1], ids[:, 1:]).backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters()}
    tol = 2e-2 if dtype == torch.float32 else 6e-2
    for n, g in grads["torch"].items():
        assert rel(grads["triton"][n], g) < tol, n


@gpu_only
def test_decode_attention_addresses_caches_beyond_2_31_elements():
    """A batch-90 cache of 66,560 positions overflowed int32 offsets (the paper workload's first run): the
    third sequence here starts at element 2^31."""
    b, kv, max_len, d, groups = 3, 1, 1 << 23, 128, 4
    k = torch.empty(b, kv, max_len, d, device="cuda", dtype=torch.bfloat16)
    v = torch.empty_like(k)
    live = 100
    k[:, :, :live].normal_()
    v[:, :, :live].normal_()
    q = torch.randn(b, kv * groups, d, device="cuda", dtype=torch.bfloat16)
    pos = torch.tensor(live - 1, device="cuda")
    y = M.decode_attention_triton(q, k, v, pos)
    ref = F.scaled_dot_product_attention(q[:, :, None].float(), k[:, :, :live].float(), v[:, :, :live].float(),
                                         enable_gqa=True)[:, :, 0]
    assert rel(y, ref) < 2e-2


@triton_kernel
@pytest.mark.parametrize("setting", [{}, dict(programs=1), dict(block_t=32, programs=4096, num_stages=3),
                                     dict(block_t=64, num_warps=8, num_stages=4)])
@pytest.mark.parametrize("window", [None, 50])
def test_decode_attention_launch_settings_change_speed_not_result(setting, window):
    """Every launch setting gives SDPA's result over the live keys (the window's last keys): one split (the kernel
    writes q's dtype itself), many splits (some past the position, empty, combined), other blocks and stages."""
    if not GPU:   # the defaults read the GPU's properties: on the CPU, the H200's, given
        setting = dict(block_t=128, programs=132, num_warps=4, num_stages=2) | setting
    torch.manual_seed(6)
    b, h, kv, d, max_len, live = 5, 8, 2, 128, 300, 211
    k = torch.randn(b, kv, max_len, d, device=DEVICE, dtype=LOW)
    v = torch.randn_like(k)
    q = torch.randn(b, h, d, device=DEVICE, dtype=LOW)
    y = M.decode_attention_triton(q, k, v, torch.tensor(live - 1, device=DEVICE), window, **setting)
    first = live - window if window else 0
    ref = F.scaled_dot_product_attention(q[:, :, None].float(), k[:, :, first:live].float(),
                                         v[:, :, first:live].float(), enable_gqa=True)[:, :, 0]
    assert y.shape == (b, h, d) and y.dtype == LOW and rel(y, ref) < tol(2e-2)


@gpu_only
@pytest.mark.parametrize("head_dim,dtype", [(128, torch.bfloat16), (256, torch.bfloat16), (128, torch.float32)])
def test_decode_attention_default_settings_fit_the_device_and_launch(head_dim, dtype):
    """Blocks of 128 keys in two stages for bf16 head size 128 on a large GPU; the blocks halve for head size 256
    or float32 caches so that two stages of keys and values fit in shared memory; one program per SM at least.
    Each default launches and gives SDPA's result."""
    props = torch.cuda.get_device_properties(0)
    size = torch.finfo(dtype).bits // 8
    setting = M.decode_attention_settings(0, head_dim, size)
    assert setting["programs"] == props.multi_processor_count and setting["num_stages"] == 2
    if props.shared_memory_per_block_optin >= 200 * 1024:   # H100 / H200: 227 KiB
        assert setting["block_t"] == (128 if head_dim * size <= 256 else 64)
    torch.manual_seed(7)
    b, h, kv, max_len, live = 2, 8, 2, 520, 333
    k = torch.randn(b, kv, max_len, head_dim, device="cuda", dtype=dtype)
    v = torch.randn_like(k)
    q = torch.randn(b, h, head_dim, device="cuda", dtype=dtype)
    y = M.decode_attention_triton(q, k, v, torch.tensor(live - 1, device="cuda"))
    ref = F.scaled_dot_product_attention(q[:, :, None].float(), k[:, :, :live].float(), v[:, :, :live].float(),
                                         enable_gqa=True)[:, :, 0]
    assert y.dtype == dtype and rel(y, ref) < 2e-2


@triton_kernel
@pytest.mark.parametrize("rope", [True, False])
def test_rope_and_cache_write_kernel_matches_apply_rope_and_index_copy(rope):
    """The decode kernel rotates q and k and writes k, v at the position, from strided views of one packed
    GEMM output, as apply_rope + index_copy_ do."""
    torch.manual_seed(3)
    b, h, kv, d, max_len, p = 3, 8, 2, 64, 40, 17
    qkv = torch.randn(b, 1, (h + 2 * kv) * d, device=DEVICE, dtype=LOW)
    q, k, v = qkv.split([h * d, kv * d, kv * d], -1)
    cache = M.KVCache(torch.randn(b, kv, max_len, d, device=DEVICE, dtype=LOW),
                      torch.randn(b, kv, max_len, d, device=DEVICE, dtype=LOW))
    ref_k, ref_v = cache.k.clone(), cache.v.clone()
    pos = torch.tensor(p, device=DEVICE)
    cos_sin = M.rope_tables(pos[None], d, 10000.0, LOW) if rope else None
    qh, kh = q.view(b, 1, h, d).transpose(1, 2), k.view(b, 1, kv, d).transpose(1, 2)
    if rope:
        qh, kh = M.apply_rope(qh, *cos_sin), M.apply_rope(kh, *cos_sin)
    ref_k[:, :, p] = kh[:, :, 0]
    ref_v[:, :, p] = v.view(b, kv, d)
    got = M.rope_cache_write_triton(q, k, v, cos_sin, cache, pos)
    assert got.shape == (b, h, d)
    assert rel(got, qh[:, :, 0]) < tol(1e-2) and rel(cache.k, ref_k) < tol(1e-2)
    assert torch.equal(cache.v, ref_v)   # values are copied, not computed
    assert torch.equal(cache.k[:, :, :p], ref_k[:, :, :p]) and torch.equal(cache.k[:, :, p + 1:], ref_k[:, :, p + 1:])


@triton_kernel
@pytest.mark.parametrize("cached", [False, True])
def test_rope_prefill_kernel_matches_apply_rope(cached):
    """Prefill RoPE from a strided view of the packed q/k/v output into (b, heads, t, d): a new tensor, or
    the cache's slots at a position, the slots around them untouched."""
    torch.manual_seed(4)
    b, h, kv, d, t, p, max_len = 2, 8, 2, 64, 150, 30, 200
    qkv = torch.randn(b, t, (h + 2 * kv) * d, device=DEVICE, dtype=LOW)
    q, k, _ = qkv.split([h * d, kv * d, kv * d], -1)
    cos_sin = M.rope_tables(torch.arange(p, p + t, device=DEVICE), d, 10000.0, LOW)
    want_q = M.apply_rope(q.reshape(b, t, h, d).transpose(1, 2).float(), *(c.float() for c in cos_sin))
    want_k = M.apply_rope(k.reshape(b, t, kv, d).transpose(1, 2).float(), *(c.float() for c in cos_sin))
    got_q = M.rope_prefill_triton(q, cos_sin, h)
    assert got_q.shape == (b, h, t, d) and got_q.is_contiguous() and rel(got_q, want_q) < tol(1e-2)
    if cached:
        cache = torch.randn(b, kv, max_len, d, device=DEVICE, dtype=LOW)
        before = cache.clone()
        got_k = M.rope_prefill_triton(k, cos_sin, kv, cache[:, :, p:p + t])
        assert got_k.data_ptr() == cache[:, :, p:p + t].data_ptr() and rel(cache[:, :, p:p + t], want_k) < tol(1e-2)
        assert torch.equal(cache[:, :, :p], before[:, :, :p]) and torch.equal(cache[:, :, p + t:], before[:, :, p + t:])
    else:
        assert rel(M.rope_prefill_triton(k, cos_sin, kv), want_k) < tol(1e-2)


@gpu_only
def test_gated_norm_inference_kernel_reads_z_in_place_and_matches_reference():
    """Without a gradient the gated norm calls fla's forward kernel on z's strided rows (a view of in_proj's
    output): the torch reference's result, and the autograd path's."""
    torch.manual_seed(5)
    norm = M.GatedRMSNorm(256, 4).cuda()
    with torch.no_grad():
        norm.weight.add_(0.1 * torch.randn_like(norm.weight))
    proj = torch.randn(2, 33, 600, device="cuda")
    y, z = torch.randn(2, 33, 256, device="cuda"), proj[..., 100:356]
    with kernels("torch"), torch.no_grad():
        want = norm(y, z)
    with kernels("triton"):
        with torch.no_grad():
            fast = norm(y, z)
        autograd = norm(y, z)
    assert autograd.requires_grad and not fast.requires_grad
    assert rel(fast, want) < 1e-4 and rel(autograd, want) < 1e-4


@triton_kernel
@pytest.mark.parametrize("h,groups", [(8, 1), (8, 4), (5, 1), (2, 4)])
def test_skip_gate_norm_kernel_matches_addcmul_then_gated_norm(h, groups):
    """Mamba-2's y + D x, gate and group norm in one pass, x and z strided views of the conv's and in_proj's
    outputs, two sequences; groups of whole heads, of 320 channels (masked lanes of a 512 block) and of half a
    head."""
    torch.manual_seed(6)
    b, l, p = 2, 37, 64
    norm = M.GatedRMSNorm(h * p, groups).to(DEVICE, LOW)
    with torch.no_grad():
        norm.weight.add_(0.1 * torch.randn_like(norm.weight))
    conv_out = torch.randn(b, l, h * p + 300, device=DEVICE, dtype=LOW)
    proj = torch.randn(b, l, 2 * h * p + 50, device=DEVICE, dtype=LOW)
    x, z = conv_out[..., :h * p].unflatten(-1, (h, p)), proj[..., 20:20 + h * p]
    y = torch.randn(b, l, h, p, device=DEVICE, dtype=LOW)
    D = torch.randn(h, device=DEVICE, dtype=LOW)
    with kernels("torch"), torch.no_grad():
        want = norm((y.float() + x.float() * D.float()[:, None]).flatten(-2), z.float())
    got = M.skip_gate_norm_triton(y, x, D, z, norm)
    assert got.shape == (b, l, h * p) and got.dtype == LOW
    assert rel(got, want) < tol(1e-2)


@triton_kernel
def test_relu2_kernel_equals_relu_then_square():
    x = torch.randn(3, 77, 1000, device=DEVICE, dtype=LOW)
    want = F.relu(x).square()
    assert torch.equal(M.relu2_triton_(x.clone()), want)


@gpu_only
@pytest.mark.parametrize("act", ["swiglu", "relu2"])
def test_fast_mlp_matches_reference_forward_and_backward(act):
    torch.manual_seed(4)
    mlp = M.MLP(256, 512, act).cuda()
    x = torch.randn(2, 33, 256, device="cuda", requires_grad=True)
    with kernels("torch"):
        ref = mlp(x)
        ref.square().sum().backward()
    ref_grad = {n: p.grad.clone() for n, p in mlp.named_parameters()}
    mlp.zero_grad()
    with kernels("triton"):
        got = mlp(x)                      # training: separate GEMMs, fla's swiglu backward
        got.square().sum().backward()
        with torch.no_grad():
            packed = mlp(x)               # inference: packed gate/up, relu² in place
    assert rel(got, ref) < 1e-3 and rel(packed, ref) < 1e-3
    for n, g in ref_grad.items():
        assert rel(mlp.get_parameter(n).grad, g) < 1e-3, n


@gpu_only
def test_eager_fast_decode_past_the_cache_is_a_clear_error():
    model = model_for(LLAMA)
    with torch.no_grad(), kernels("triton"):
        cache = model.new_cache(1, 8)
        model(torch.randint(0, 512, (1, 8), device="cuda"), cache=cache)
        with pytest.raises(ValueError, match="KV cache holds 8 positions"):
            model(torch.randint(0, 512, (1, 1), device="cuda"), cache=cache)
