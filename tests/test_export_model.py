"""The exported model (designer/export/templates/model.py): scans, caches, generation, parameter counts."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from designer.export.templates import model as M
from designer.layout import layout_from_dict, layout_to_dict, load_layout, preset_names, preset_path

torch.set_num_threads(2)

MAMBA2 = dict(num_heads=8, head_dim=16, n_groups=2, state_size=16, chunk_size=8)
TINY = {
    "hybrid-moe": dict(hidden_size=64, vocab_size=128, pattern="M-*EM-M*E",
                       mamba=MAMBA2, attention=dict(num_heads=4, num_kv_heads=2, head_dim=16),
                       mlp=dict(intermediate_size=96),
                       moe=dict(num_experts=4, top_k=2, intermediate_size=32, shared_intermediate_size=48)),
    "hybrid-rope-window": dict(hidden_size=64, vocab_size=128, pattern="M*-M*-",
                               mamba=MAMBA2, attention=dict(num_heads=4, num_kv_heads=1, head_dim=16,
                                                            rope_theta=10000.0, sliding_window=7),
                               mlp=dict(intermediate_size=96, activation="swiglu")),
    "mamba2": dict(family="mamba2", hidden_size=64, vocab_size=128, pattern="MMM", tie_word_embeddings=True,
                   mamba=dict(MAMBA2, n_groups=1)),
    "falcon-mamba": dict(family="falcon_mamba", hidden_size=64, vocab_size=128, pattern="MMM",
                         mamba=dict(version=1, expand=2, state_size=8, dt_rank=8, bcdt_norm=True, chunk_size=8)),
    "llama": dict(family="llama", hidden_size=64, vocab_size=128, pattern="*-*-",
                  attention=dict(num_heads=4, num_kv_heads=2, head_dim=16, rope_theta=10000.0),
                  mlp=dict(intermediate_size=96, activation="swiglu")),
}


def tiny_model(kind: str, seed: int = 0) -> M.CausalLM:
    d = dict(TINY[kind], name=kind)
    torch.manual_seed(seed)
    model = M.build_model(args=M.ModelArgs.from_dict(layout_to_dict(layout_from_dict(d), full=True)))
    with torch.no_grad():   # move norms/biases off their init values so every parameter matters
        for name, p in model.named_parameters():
            if not name.endswith(("A_log", "dt_bias", "dt_proj.bias")):
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Scans: chunked == step-by-step recurrence (fp32, 1e-5)


def _ssd_inputs(b=2, seqlen=37, h=4, p=8, g=2, n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, seqlen, h, p, generator=gen)
    dt = F.softplus(torch.randn(b, seqlen, h, generator=gen) - 1)
    A = -torch.exp(torch.randn(h, generator=gen))
    B = torch.randn(b, seqlen, g, n, generator=gen)
    C = torch.randn(b, seqlen, g, n, generator=gen)
    h0 = torch.randn(b, h, p, n, generator=gen)
    return x, dt, A, B, C, h0


@pytest.mark.parametrize("chunk", [1, 8, 16, 64])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_ssd_chunked_scan_matches_step_recurrence(chunk, with_initial_state):
    x, dt, A, B, C, h0 = _ssd_inputs()
    init = h0 if with_initial_state else None
    y, final = M.ssd_chunked_scan(x, dt, A, B, C, chunk, initial_state=init)
    state = h0.clone() if with_initial_state else torch.zeros_like(h0)
    ys = []
    for t in range(x.shape[1]):
        yt, state = M.ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        ys.append(yt)
    torch.testing.assert_close(y, torch.stack(ys, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final, state, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 5, 8, 64])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_selective_scan_matches_step_recurrence(chunk, with_initial_state):
    gen = torch.Generator().manual_seed(1)
    b, seqlen, d, n = 2, 37, 12, 8
    x = torch.randn(b, seqlen, d, generator=gen)
    dt = F.softplus(torch.randn(b, seqlen, d, generator=gen) - 1)
    A = -torch.exp(torch.randn(d, n, generator=gen))
    B, C = torch.randn(b, seqlen, n, generator=gen), torch.randn(b, seqlen, n, generator=gen)
    h0 = torch.randn(b, d, n, generator=gen) if with_initial_state else None
    y, final = M.selective_scan(x, dt, A, B, C, chunk, initial_state=h0)
    state = h0.clone() if with_initial_state else torch.zeros(b, d, n)
    ys = []
    for t in range(seqlen):
        yt, state = M.selective_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        ys.append(yt)
    torch.testing.assert_close(y, torch.stack(ys, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final, state, atol=1e-5, rtol=1e-5)


def test_ssd_scan_split_across_two_calls_equals_one_call():
    """Prefill in two pieces (final state of the first = initial state of the second) changes nothing."""
    x, dt, A, B, C, _ = _ssd_inputs(seqlen=40)
    y, final = M.ssd_chunked_scan(x, dt, A, B, C, 8)
    y1, s1 = M.ssd_chunked_scan(x[:, :13], dt[:, :13], A, B[:, :13], C[:, :13], 8)
    y2, s2 = M.ssd_chunked_scan(x[:, 13:], dt[:, 13:], A, B[:, 13:], C[:, 13:], 8, initial_state=s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s2, final, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# Caches: prefill-then-decode logits == full forward


@pytest.mark.parametrize("kind", list(TINY))
def test_prefill_then_decode_matches_full_forward(kind):
    model = tiny_model(kind)
    ids = torch.randint(0, 128, (2, 21), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(2, ids.shape[1])
        steps = [model(ids[:, :9], cache=cache)]                 # prefill (more than one Mamba chunk)
        steps.append(model(ids[:, 9:14], cache=cache))           # a second multi-token chunk from a warm cache
        steps += [model(ids[:, t:t + 1], cache=cache) for t in range(14, ids.shape[1])]   # decode
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-4, rtol=1e-4)
    assert cache.seq_len == ids.shape[1]


@pytest.mark.parametrize("kind", ["hybrid-moe", "falcon-mamba", "llama"])
def test_greedy_generate_continues_with_the_full_forward_argmax(kind):
    model = tiny_model(kind)
    prompt = torch.randint(0, 128, (2, 6), generator=torch.Generator().manual_seed(3))
    out = model.generate(prompt, max_new_tokens=7, temperature=0.0)
    assert out.shape == (2, 13) and torch.equal(out[:, :6], prompt)
    with torch.no_grad():
        expected = model(out[:, :-1]).argmax(-1)[:, 5:]
    assert torch.equal(out[:, 6:], expected)


def test_cache_reports_its_size():
    model = tiny_model("hybrid-moe")
    cache = model.new_cache(batch_size=3, max_seq_len=50)
    mamba_layers, attn_layers = model.args.pattern.count("M"), model.args.pattern.count("*")
    conv = 3 * (128 + 2 * 2 * 16) * 3 * 4          # batch x conv_dim x (kernel-1) x fp32
    ssm = 3 * 8 * 16 * 16 * 4                      # batch x heads x head_dim x state x fp32
    kv = 2 * 3 * 2 * 50 * 16 * 4                   # k+v x batch x kv_heads x positions x head_dim x fp32
    assert cache.nbytes() == mamba_layers * (conv + ssm) + attn_layers * kv


def test_kv_cache_overflow_is_a_clear_error():
    model = tiny_model("llama")
    cache = model.new_cache(1, 4)
    with pytest.raises(ValueError, match="KV cache holds 4 positions"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)


# --------------------------------------------------------------------------------------------------
# Training path


@pytest.mark.parametrize("kind", ["hybrid-moe", "falcon-mamba"])
def test_loss_backward_reaches_every_trained_parameter(kind):
    model = tiny_model(kind).train()
    ids = torch.randint(0, 128, (2, 17), generator=torch.Generator().manual_seed(4))
    loss = model.loss(ids[:, :-1], ids[:, 1:])
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    # experts that no token was routed to get no gradient; everything else must
    assert all(".experts." in n for n in missing), missing


def test_router_picks_by_corrected_score_but_weights_by_raw_score():
    model = tiny_model("hybrid-moe")
    router = model.model.layers[3].mixer.gate
    x = torch.randn(5, 64)
    with torch.no_grad():
        router.e_score_correction_bias.copy_(torch.tensor([100.0, 100.0, 0.0, 0.0]))
        weights, idx = router(x)
    assert all(sorted(row) == [0, 1] for row in idx.tolist())
    raw = torch.sigmoid(x @ router.weight.T).gather(-1, idx)
    torch.testing.assert_close(weights, raw / raw.sum(-1, keepdim=True), atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# Parameter counts: model.py == analytic profiler == transformers, every preset, meta device


@pytest.mark.parametrize("name", preset_names())
def test_param_count_matches_transformers_and_the_analytic_profiler(name):
    transformers = pytest.importorskip("transformers")
    from designer.hf import hf_config_from_layout

    layout = load_layout(name)
    ours = M.build_model(preset_path(name), device="meta")
    config = transformers.AutoConfig.for_model(**hf_config_from_layout(layout))
    with torch.device("meta"):
        hf = transformers.AutoModelForCausalLM.from_config(config)
    hf_params = sum(p.numel() for p in hf.parameters())
    assert ours.num_params() == hf_params
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    from designer.profile.params import count_params
    analytic = count_params(layout).total
    # the profiler counts the MoE router's correction bias (a persistent buffer, saved in checkpoints)
    assert ours.num_params(include_buffers=True) == analytic


@pytest.mark.parametrize("name", preset_names())
def test_model_family_is_the_one_the_hf_config_uses(name):
    from designer.hf import hf_family
    layout = load_layout(name)
    assert M.ModelArgs.from_file(preset_path(name)).family == hf_family(layout)


def test_tied_embeddings_are_one_parameter():
    model = tiny_model("mamba2")
    assert model.lm_head.weight is model.backbone.embeddings.weight
    untied = sum(p.numel() for p in model.parameters()) + 128 * 64
    assert model.num_params() == untied - 128 * 64
    assert "lm_head.weight" in model.state_dict()


# --------------------------------------------------------------------------------------------------
# The file itself


def test_model_py_imports_only_torch_at_top_level():
    tree = ast.parse(M.__file__ and open(M.__file__).read())
    stdlib = {"__future__", "argparse", "json", "math", "os", "dataclasses", "pathlib", "typing"}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for n in names:
                assert n.split(".")[0] in stdlib | {"torch"}, n
        if isinstance(node, ast.Try):   # optional kernels and newer torch APIs only
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    assert sub.module.split(".")[0] in ("mamba_ssm", "causal_conv1d", "torch"), sub.module


def test_build_model_reads_json_and_falls_back_to_yaml(tmp_path):
    d = layout_to_dict(layout_from_dict(dict(TINY["llama"], name="t")), full=True)
    (tmp_path / "layout.yaml").write_text(json.dumps(d, indent=2))
    (tmp_path / "other.yaml").write_text("name: t\nhidden_size: 64\nvocab_size: 128\npattern: 'M-'\n"
                                         "mamba: {num_heads: 8, head_dim: 16, n_groups: 2, state_size: 16}\n"
                                         "mlp: {intermediate_size: 96}\n")
    assert M.build_model(tmp_path / "layout.yaml").args.family == "llama"
    assert M.build_model(tmp_path / "other.yaml").args.pattern == "M-"


def test_yaml_layout_without_pyyaml_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "l.yaml").write_text("name: t\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ValueError, match="not JSON, and PyYAML is not installed"):
        M.read_layout_file(tmp_path / "l.yaml")


def test_layout_missing_a_block_is_a_clear_error():
    with pytest.raises(ValueError, match="pattern uses '\\*' but the layout has no 'attention:' block"):
        M.ModelArgs.from_dict(dict(name="x", hidden_size=8, vocab_size=8, pattern="*-", mlp={}))


def test_python_model_py_smoke_runs_and_prints_the_parameter_count(tmp_path):
    """`python model.py` in a directory with only model.py and a JSON layout.yaml; a 56B preset is smoke-tested
    at toy size, after printing the real parameter count."""
    (tmp_path / "model.py").write_text(open(M.__file__).read())
    d = layout_to_dict(load_layout("nemotron-h-56b"), full=True)
    (tmp_path / "layout.yaml").write_text(json.dumps(d, indent=2))
    proc = subprocess.run([sys.executable, "model.py", "--tokens", "8", "--new-tokens", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "56,324,350,464 parameters" in proc.stdout
    assert "toy sizes" in proc.stdout and "finite: True" in proc.stdout and "generate: (2, 11)" in proc.stdout


def test_a_decode_step_builds_rope_tables_positions_and_mask_once_for_all_attention_layers(bench_script):
    # llama-3.1-8b has 32 attention layers; before the tables were shared a step ran cos/sin 64 times each and
    # arange 160 times (2,184 kernel operators in all; bench/decode_op_count.py)
    ops, layers = bench_script("decode_op_count").decode_ops("llama-3.1-8b", context=32)
    r = {"ops": ops, "layers": layers}
    assert r["layers"] == 32 and r["ops"]["cos"] == 1 and r["ops"]["sin"] == 1
    assert r["ops"]["arange"] == 3                     # positions, inv_freq, the cache slots of the mask
    assert r["ops"]["bitwise_not"] + r["ops"]["le"] == 2 and r["ops"]["masked_fill"] == 32
    assert r["ops"]["index_copy_"] == 64 and r["ops"]["_softmax"] == 32


def test_shared_tables_give_the_logits_each_layer_computing_its_own_gave(monkeypatch):
    # the reference: every attention layer builds its own positions, tables and mask (StepShared per call)
    torch.manual_seed(0)
    from designer.export.model_export import model_args
    from designer.measure.flops import reduced
    model = M.build_model(args=model_args(reduced(load_layout("llama-3.1-8b"))), device="cpu").eval()
    prompt, nxt = torch.randint(0, 256, (2, 24)), torch.randint(0, 256, (2, 1))
    outs = []
    for own in (False, True):
        cache = model.new_cache(2, 32)
        if own:   # a fresh table per use: what each layer computed before the sharing
            monkeypatch.setattr(M.StepShared, "get", lambda self, key, make: make())
        with torch.no_grad():
            a = model(prompt, cache=cache)
            cache.position.fill_(cache.seq_len)
            b = model(nxt, cache=cache, position=cache.position)
        outs.append((a, b))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_packed_linear_is_one_gemm_over_the_same_weights_without_a_second_copy():
    """The fast path's q/k/v (and gate/up) GEMM: the same output as the linears one by one; their weights become
    row blocks of the one packed matrix (no extra memory, state dict unchanged), and a move re-packs."""
    torch.manual_seed(0)
    owner = torch.nn.Module()
    lins = (torch.nn.Linear(16, 8), torch.nn.Linear(16, 4), torch.nn.Linear(16, 4))
    for i, lin in enumerate(lins):
        owner.add_module(f"l{i}", lin)
    before = {k: v.clone() for k, v in owner.state_dict().items()}
    x = torch.randn(3, 5, 16)
    want = torch.cat([lin(x) for lin in lins], dim=-1)
    with torch.no_grad():
        got = M.packed_linear(owner, x, lins)
    assert torch.allclose(got, want, atol=1e-6)
    packed = owner.__dict__["_packed"][1]
    assert packed.shape == (16, 16)
    assert all(lin.weight.untyped_storage().data_ptr() == packed.untyped_storage().data_ptr() for lin in lins)
    assert all(torch.equal(owner.state_dict()[k], v) for k, v in before.items())
    with torch.no_grad():   # a load writes through the views: the packed matrix follows
        lins[1].weight.mul_(2)
    assert torch.equal(owner.__dict__["_packed"][1][8:12], lins[1].weight)
    owner.double()           # new storage per parameter: packed again on the next call
    with torch.no_grad():
        again = M.packed_linear(owner, x.double(), lins)
    assert owner.__dict__["_packed"][1].dtype == torch.float64 and again.dtype == torch.float64
    with torch.inference_mode():   # packed under inference mode, the weights still train afterwards
        owner.float()
        M.packed_linear(owner, x, lins)
    M.packed_linear(owner, x, lins)   # grad mode: the packed matrix is an ordinary tensor
    assert not owner.__dict__["_packed"][1].is_inference()
    assert not lins[0].weight.is_inference()


def test_packing_stays_off_where_a_gradient_or_a_wrapper_needs_the_linears():
    """packed_linear reads only the weights: any trainable parameter of the group (a frozen q beside a
    trainable k, biases alone), a hook or a wrapped linear keeps the separate GEMMs."""
    q, k = torch.nn.Linear(8, 8), torch.nn.Linear(8, 4)
    q.requires_grad_(False)
    assert not M.can_pack((q, k))                 # k still trains
    with torch.no_grad():
        assert M.can_pack((q, k))
    k.weight.requires_grad_(False)
    assert not M.can_pack((q, k))                 # k's bias trains
    k.requires_grad_(False)
    assert M.can_pack((q, k))
    handle = k.register_forward_hook(lambda *a: None)
    assert not M.can_pack((q, k))
    handle.remove()

    class Wrapped(torch.nn.Linear):
        pass
    assert not M.can_pack((q, Wrapped(8, 4)))


def test_moving_a_module_drops_its_packed_copy():
    attn = M.Attention(M.ModelArgs.from_dict({"name": "a", "hidden_size": 64, "vocab_size": 32, "pattern": "*-",
                                               "attention": {"num_heads": 4, "num_kv_heads": 2, "head_dim": 16},
                                               "mlp": {"intermediate_size": 128}}))
    with torch.no_grad():
        M.packed_linear(attn, torch.randn(1, 2, 64), (attn.q_proj, attn.k_proj, attn.v_proj))
    assert "_packed" in attn.__dict__
    attn.double()
    assert "_packed" not in attn.__dict__ and attn.q_proj.weight.dtype == torch.float64
