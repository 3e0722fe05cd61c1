"""MiniPuzzle stage 1 and the student's initialisation: layer ablation importance, MLP-neuron importance, the
importance JSON, the pruned student copied from the teacher, saved proxy weights and `designer importance`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from designer import cli
from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import LayoutError, layout_from_dict, load_layout
from designer.measure.proxy import write_proxy_files
from designer.search.importance import load_importance
from designer.search.puzzle.importance import (block_parts, importance_doc, layer_importance, neuron_importance,
                                               samples_from_task)
from designer.search.puzzle.modeldir import load_model_dir, read_layout
from designer.search.puzzle.student import init_student, student_layout

MODEL = load_template("model.py")
TINY = {"name": "tiny", "hidden_size": 32, "vocab_size": 256, "pattern": "M-*-M-",
        "mamba": {"num_heads": 4, "head_dim": 16, "n_groups": 1, "state_size": 16, "chunk_size": 16},
        "attention": {"num_heads": 4, "num_kv_heads": 2, "head_dim": 8}, "mlp": {"intermediate_size": 64}}


@pytest.fixture(scope="module")
def tiny():
    layout = layout_from_dict(TINY)
    torch.manual_seed(0)
    return layout, MODEL.build_model(args=model_args(layout), device="cpu").eval()


@pytest.fixture(scope="module")
def samples():
    return torch.randint(0, 256, (6, 17), generator=torch.Generator().manual_seed(1))


def test_a_layer_whose_output_projection_is_zero_has_zero_importance(tiny, samples):
    layout, model = tiny
    model = MODEL.build_model(args=model_args(layout), device="cpu").eval()
    model.load_state_dict(tiny[1].state_dict())
    with torch.no_grad():
        model.body.layers[4].mixer.out_proj.weight.zero_()     # Mamba layer 4 adds nothing
        model.body.layers[1].mixer.down_proj.weight.zero_()    # MLP layer 1 adds nothing
    r = layer_importance(model, samples, batch_size=4)
    assert r["pattern"] == "M-*-M-" and [row["kind"] for row in r["layers"]] == list("M-*-M-")
    assert r["mse"][4] == 0.0 and r["loss_change"][4] == 0.0
    assert r["mse"][1] == 0.0 and r["loss_change"][1] == 0.0
    assert all(r["mse"][i] > 1e-8 for i in (0, 2, 3, 5))
    # the base loss of an untrained model is about ln(vocab)
    assert r["base_loss"] == pytest.approx(np.log(256), abs=0.1)
    assert r["samples"] == 6 and r["seq_len"] == 16 and r["tokens"] == 6 * 16


def test_ablation_equals_removing_the_layer(tiny, samples):
    """Zeroing layer 2's output is the model without layer 2 (the student keeping every other layer)."""
    layout, model = tiny
    r = layer_importance(model, samples, batch_size=4)
    _, without = init_student(model, layout, [0, 1, 3, 4, 5])
    x, y = samples[:, :-1], samples[:, 1:]
    with torch.no_grad():
        h0, h = model.body(x), without.body(x)
        loss = F.cross_entropy(without(x).flatten(0, 1), y.flatten()).item()
    assert r["mse"][2] == pytest.approx(((h - h0) ** 2).mean().item(), rel=1e-5)
    assert r["layers"][2]["loss"] == pytest.approx(loss, rel=1e-5)
    assert r["loss_change"][2] == pytest.approx(loss - r["base_loss"], abs=1e-6)


def test_an_amplified_mlp_ranks_first(tiny, samples):
    layout, teacher = tiny
    _, model = init_student(teacher, layout, list(range(6)))
    with torch.no_grad():
        model.body.layers[3].mixer.down_proj.weight.mul_(100.0)
    r = layer_importance(model, samples)
    # the final norm bounds the MSE, but among the MLPs layer 3 stands far out
    assert r["mse"][3] > 100 * max(r["mse"][1], r["mse"][5]) and r["loss_change"][3] > 0.01
    doc = importance_doc(layout, r, None, "test")
    assert doc["by_kind"]["-"]["ranked"][0] == 3 and doc["by_kind"]["-"]["indices"] == [1, 3, 5]
    assert doc["by_kind"]["*"]["ranked"] == [2] and sorted(doc["by_kind"]["M"]["ranked"]) == [0, 4]


def test_neuron_scores_match_a_hand_computation(tiny, samples):
    layout, model = tiny
    scores = neuron_importance(model, samples, batch_size=4)
    assert sorted(scores) == [1, 3, 5] and all(len(v) == 64 for v in scores.values())
    x = samples[:, :-1]
    with torch.no_grad():
        h = model.body.embedding(x)
        h = model.body.layers[0](h)                         # Mamba block 0, then MLP block 1 by hand
        mlp = model.body.layers[1]
        u = mlp.norm(h) @ mlp.mixer.up_proj.weight.T        # (N, T, 64)
        act = torch.relu(u) ** 2                            # relu2
        want = act.abs().mean(dim=(0, 1))
    assert np.allclose(scores[1], want.double().numpy(), rtol=1e-5, atol=1e-9)
    assert min(scores[1]) >= 0 and max(scores[1]) > 0


def test_importance_json_loads_for_search(tiny, samples, tmp_path):
    layout, model = tiny
    r = layer_importance(model, samples)
    doc = importance_doc(layout, r, neuron_importance(model, samples), "MSE, 6 samples")
    path = tmp_path / "importance.json"
    path.write_text(json.dumps(doc))
    scores = load_importance(path, layout)
    assert np.array_equal(scores, np.array(r["mse"]))
    assert doc["base"] == "tiny" and set(doc["neurons"]) == {"1", "3", "5"}
    # the `layers` rows alone are a valid importance file too
    path.write_text(json.dumps({"base": "tiny", "layers": doc["layers"]}))
    assert np.array_equal(load_importance(path, layout), scores)


def test_student_keeping_everything_has_the_teachers_logits(tiny, samples):
    layout, model = tiny
    slay, student = init_student(model, layout, list(range(6)))
    assert slay.pattern == layout.pattern and slay.mlp.intermediate_size == 64
    with torch.no_grad():
        assert torch.allclose(student(samples), model(samples), atol=1e-6, rtol=0)


def test_student_keeping_a_subset_copies_those_blocks(tiny):
    layout, model = tiny
    keep = [0, 2, 3, 5]
    neurons = {3: list(range(0, 64, 2)), 5: list(range(32))}
    slay, student = init_student(model, layout, keep, neurons)
    assert slay.pattern == "M*--" and slay.mlp.intermediate_size == 32 and slay.name == "tiny-pruned4"
    t_blocks, s_blocks = model.body.layers, student.body.layers
    for j, i in enumerate(keep[:2]):     # Mamba and attention: every tensor equal
        t, s = t_blocks[i].state_dict(), s_blocks[j].state_dict()
        assert t.keys() == s.keys() and all(torch.equal(t[k], s[k]) for k in t)
    for j, i in ((2, 3), (3, 5)):        # MLPs: the kept rows of up, columns of down
        idx = torch.tensor(neurons[i])
        assert torch.equal(s_blocks[j].norm.weight, t_blocks[i].norm.weight)
        assert torch.equal(s_blocks[j].mixer.up_proj.weight, t_blocks[i].mixer.up_proj.weight[idx])
        assert torch.equal(s_blocks[j].mixer.down_proj.weight, t_blocks[i].mixer.down_proj.weight[:, idx])
    assert torch.equal(student.lm_head.weight, model.lm_head.weight)
    assert torch.equal(student.body.embedding.weight, model.body.embedding.weight)
    assert torch.equal(student.body.final_norm.weight, model.body.final_norm.weight)


def test_pruning_dead_neurons_keeps_the_logits(tiny, samples):
    layout, teacher = tiny
    _, model = init_student(teacher, layout, list(range(6)))
    with torch.no_grad():
        for i in (1, 3, 5):
            model.body.layers[i].mixer.up_proj.weight[20:].zero_()   # neurons 20.. are relu2(0) = 0
    _, student = init_student(model, layout, list(range(6)), {i: list(range(20)) for i in (1, 3, 5)})
    assert student.body.layers[1].mixer.up_proj.weight.shape == (20, 32)
    with torch.no_grad():
        assert torch.allclose(student(samples), model(samples), atol=1e-6, rtol=0)


def test_student_needs_one_mlp_width_and_valid_indices(tiny):
    layout, model = tiny
    with pytest.raises(ValueError, match="same number of neurons"):
        init_student(model, layout, [0, 1, 2, 3], {1: list(range(10))})   # layer 3 keeps all 64
    with pytest.raises(ValueError, match="sorted and distinct"):
        student_layout(layout, [2, 0])
    with pytest.raises(ValueError, match="not an MLP"):
        student_layout(layout, [0, 1], {2: [0]})
    with pytest.raises(ValueError, match=r"in \[0, 6\)"):
        student_layout(layout, [0, 6])


def test_dense_family_layers_are_split_into_attention_and_mlp():
    layout = load_layout("llama-3.1-8b")
    args = MODEL.ModelArgs.from_dict({**TINY, "pattern": "*-*-", "family": "llama",
                                      "mlp": {"intermediate_size": 64, "activation": "swiglu"}})
    model = MODEL.build_model(args=args, device="cpu")
    assert [k for k, _, _ in block_parts(model)] == list("*-*-") and layout.family in (None, "llama")
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    r = layer_importance(model, ids)
    assert len(r["mse"]) == 4 and all(m > 0 for m in r["mse"])
    assert len(neuron_importance(model, ids)[1]) == 64


def test_text_samples_are_held_out_bytes():
    s = samples_from_task("text", n=4, seq_len=32, seed=0)
    assert s.shape == (4, 33) and s.dtype == torch.long and int(s.max()) < 256
    assert torch.equal(s, samples_from_task("text", n=4, seq_len=32, seed=0))
    with pytest.raises(ValueError, match="unknown task"):
        samples_from_task("nosuch")


# --------------------------------------------------------------------------------------------------
# Saved proxy weights, the model directory and the command


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A proxy job trained for 2 steps on the text task, its weights saved by `--save-weights`."""
    root = tmp_path_factory.mktemp("proxy")
    write_proxy_files(load_layout("nemotron-h-8b"), root, hidden=64, layers=4, copy_model=True,
                      tasks={"text": {}}, vocab_size=256, seq_len=16, steps=2, batch_size=4, eval_batches=1,
                      eval_batch_size=4, device="cpu")
    trainer = load_template("train_proxy.py")
    assert trainer.main(["--config", str(root / "proxy.yaml"), "--quiet", "--save-weights", "model.pt"]) == 0
    return root


def test_train_proxy_saves_weights_and_the_model_dir_loads_them(trained_dir):
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert metrics["weights"] == str(trained_dir / "model.pt")
    assert metrics["config"]["save_weights"] == "model.pt"
    saved = torch.load(trained_dir / "model.pt", weights_only=True)
    layout, model, module = load_model_dir(trained_dir)
    assert layout.name == "nemotron-h-8b-proxy" and layout.hidden_size == 64 and not model.training
    assert module.__file__ == str((trained_dir / "model.py").resolve())
    state = model.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    # trained: the weights are not the seed's initialisation
    torch.manual_seed(0)
    fresh = module.build_model(args=model.args, device="cpu").state_dict()
    assert not torch.equal(fresh["lm_head.weight"], saved["lm_head.weight"])


def test_model_dir_errors_name_the_missing_file(tmp_path, trained_dir):
    with pytest.raises(LayoutError, match="no such model directory"):
        load_model_dir(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(LayoutError, match="no model.py"):
        load_model_dir(tmp_path / "d")
    (tmp_path / "d" / "model.py").write_text((trained_dir / "model.py").read_text())
    with pytest.raises(LayoutError, match="no layout file"):
        load_model_dir(tmp_path / "d")
    (tmp_path / "d" / "proxy_layout.json").write_text((trained_dir / "proxy_layout.json").read_text())
    with pytest.raises(LayoutError, match="model.pt or weights.pt"):
        load_model_dir(tmp_path / "d")
    (tmp_path / "d" / "weights.pt").write_text("not torch")
    with pytest.raises(LayoutError, match="cannot read the weights"):
        load_model_dir(tmp_path / "d")


def _designer(monkeypatch, argv: list[str]) -> int:
    """`designer ARGV` through the CLI's own error handling (the command registered if cli.py lacks it)."""
    from designer.commands import importance
    if "importance" not in cli.COMMANDS:
        monkeypatch.setitem(cli.COMMANDS, "importance", (lambda: importance, "layer and neuron importance"))
    try:
        return cli.main(argv)
    except SystemExit as e:
        return int(e.code)


def test_cli_missing_dir_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    assert _designer(monkeypatch, ["importance", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "no such model directory" in captured.err and "nope" in captured.err
    assert _designer(monkeypatch, ["importance", str(tmp_path / "nope"), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert "no such model directory" in doc["error"]["message"] and doc["error"]["file"].endswith("nope")


def test_cli_json_is_one_document_and_writes_the_files(monkeypatch, capsys, trained_dir, tmp_path):
    out, html = tmp_path / "imp.json", tmp_path / "imp.html"
    code = _designer(monkeypatch, ["importance", str(trained_dir), "--samples", "4", "--seq-len", "16",
                                   "--out", str(out), "--html", str(html), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)       # exactly one document: json.loads refuses trailing text
    layout = read_layout(trained_dir / "proxy_layout.json")
    assert doc["base"] == layout.name and len(doc["scores"]) == layout.num_layers
    assert doc["samples"] == 4 and doc["seq_len"] == 16 and doc["out"] == str(out)
    on_disk = json.loads(out.read_text())
    assert on_disk["scores"] == doc["scores"]
    assert np.array_equal(load_importance(out, layout), np.array(doc["scores"]))
    assert len(doc["neurons"]) == layout.count("-")
    page = html.read_text()
    assert "plotly" in page and "layer importance by depth" in page


def test_cli_prints_a_table(monkeypatch, capsys, trained_dir, tmp_path):
    code = _designer(monkeypatch, ["importance", str(trained_dir), "--samples", "2", "--seq-len", "8",
                                   "--out", str(tmp_path / "i.json"), "--no-neurons"])
    out = capsys.readouterr().out
    assert code == 0 and "layer importance" in out and "most important first" in out
    assert json.loads((tmp_path / "i.json").read_text())["neurons"] == {}
