"""The pruned student, initialised from the teacher (MiniPuzzle; Nemotron-H paper, Sec. 4.1): the teacher's
pattern restricted to the kept layers, each kept block a copy of the teacher's, the embedding, final norm and
LM head copied, and the kept MLP neurons (rows of up/gate, columns of down) selected when neurons are pruned.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Sequence

import torch
from torch import nn

from designer.layout import MLP, Layout
from designer.search.place import kept_pattern
from designer.search.puzzle.importance import block_parts

MAX_NAME = 100


def student_layout(teacher: Layout, keep_layers: Sequence[int],
                   neuron_keep: dict[int, Sequence[int]] | None = None) -> Layout:
    """The teacher's layout restricted to `keep_layers` (sorted, distinct, in range); with `neuron_keep`
    ({teacher MLP layer index: kept neuron indices}), the MLP intermediate size is the kept count, which must be
    the same for every kept MLP layer. ValueError otherwise."""
    keep = list(keep_layers)
    n = teacher.num_layers
    if not keep:
        raise ValueError("keep_layers is empty: a student needs at least one layer")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in keep):
        raise ValueError(f"keep_layers must be layer indices in [0, {n}) of {teacher.name}, got {keep}")
    if keep != sorted(set(keep)):
        raise ValueError(f"keep_layers must be sorted and distinct, got {keep}")
    changes: dict = {"pattern": kept_pattern(teacher, keep),
                     "name": f"{teacher.name}-pruned{len(keep)}"[:MAX_NAME],
                     "source": f"pruned from {teacher.name}: {len(keep)} of {n} layers kept (MiniPuzzle)"}
    sizes = _kept_mlp_sizes(teacher, keep, neuron_keep)
    if sizes:
        size = sizes.pop()
        if size != teacher.mlp.intermediate_size:
            changes["mlp"] = dataclasses.replace(teacher.mlp, intermediate_size=size)
    return teacher.replace(**changes)


def _kept_mlp_sizes(teacher: Layout, keep: list[int], neuron_keep: dict[int, Sequence[int]] | None) -> set[int]:
    if not neuron_keep:
        return set()
    full = teacher.mlp.intermediate_size if teacher.mlp else 0
    for i, neurons in neuron_keep.items():
        if not isinstance(i, int) or not 0 <= i < teacher.num_layers or teacher.pattern[i] != MLP:
            raise ValueError(f"neuron_keep: layer {i!r} is not an MLP ('-') layer of {teacher.name}")
        idx = list(neurons)
        if not idx or any(not isinstance(j, int) or not 0 <= j < full for j in idx) or len(set(idx)) != len(idx):
            raise ValueError(f"neuron_keep[{i}]: expected distinct neuron indices in [0, {full}), got "
                             f"{len(idx)} indices")
    sizes = {i: len(neuron_keep[i]) if i in neuron_keep else full for i in keep if teacher.pattern[i] == MLP}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"every kept MLP layer must keep the same number of neurons (one intermediate_size); "
                         f"got {dict(sorted(sizes.items()))}")
    return set(sizes.values())


def _model_module(teacher_model: nn.Module, model_py: ModuleType | str | os.PathLike | None) -> ModuleType:
    """The model.py to build the student with: given, else the teacher's own module, else the template."""
    if isinstance(model_py, ModuleType):
        return model_py
    if model_py is not None:
        from designer.search.puzzle.modeldir import import_model_py
        return import_model_py(Path(model_py))
    module = sys.modules.get(type(teacher_model).__module__)
    if module is not None and hasattr(module, "build_model") and hasattr(module, "ModelArgs"):
        return module
    from designer.export.template import load_template
    return load_template("model.py")


@torch.no_grad()
def _copy_mlp(dst: nn.Module, src: nn.Module, neurons: Sequence[int] | None) -> None:
    if neurons is None:
        dst.load_state_dict(src.state_dict())
        return
    idx = torch.as_tensor(list(neurons), dtype=torch.long, device=src.up_proj.weight.device)
    for name in ("gate_proj", "up_proj"):
        if hasattr(src, name):
            s, d = getattr(src, name), getattr(dst, name)
            d.weight.copy_(s.weight[idx])
            if s.bias is not None:
                d.bias.copy_(s.bias[idx])
    dst.down_proj.weight.copy_(src.down_proj.weight[:, idx])
    if src.down_proj.bias is not None:
        dst.down_proj.bias.copy_(src.down_proj.bias)


@torch.no_grad()
def init_student(teacher_model: nn.Module, teacher_layout: Layout, keep_layers: list[int],
                 neuron_keep: dict[int, list[int]] | None = None,
                 model_py: ModuleType | str | os.PathLike | None = None) -> tuple[Layout, nn.Module]:
    """(student layout, student model) on the teacher's device and dtype, in the teacher's train/eval mode:
    student layer j is a copy of teacher layer keep_layers[j] (its norm and mixer), MLP neurons selected by
    neuron_keep (teacher layer index -> kept neuron indices; layers not in it keep every neuron). ValueError for
    bad indices or unequal kept MLP widths."""
    layout = student_layout(teacher_layout, keep_layers, neuron_keep)
    module = _model_module(teacher_model, model_py)
    ref = teacher_model.lm_head.weight
    from designer.search.puzzle.modeldir import model_args
    args = model_args(module, layout)
    student = module.build_model(args=args, device=ref.device, dtype=ref.dtype)
    t_parts, s_parts = block_parts(teacher_model), block_parts(student)
    if len(t_parts) != teacher_layout.num_layers:
        raise ValueError(f"the teacher model has {len(t_parts)} layers, its layout {teacher_layout.name} "
                         f"{teacher_layout.num_layers}")
    student.body.embedding.load_state_dict(teacher_model.body.embedding.state_dict())
    student.body.final_norm.load_state_dict(teacher_model.body.final_norm.state_dict())
    if not args.tie_word_embeddings:
        student.lm_head.load_state_dict(teacher_model.lm_head.state_dict())
    for j, i in enumerate(keep_layers):
        kind, t_norm, t_mixer = t_parts[i]
        s_kind, s_norm, s_mixer = s_parts[j]
        assert kind == s_kind, (i, j, kind, s_kind)
        s_norm.load_state_dict(t_norm.state_dict())
        if kind == MLP:
            _copy_mlp(s_mixer, t_mixer, (neuron_keep or {}).get(i))
        else:
            s_mixer.load_state_dict(t_mixer.state_dict())
    student.train(teacher_model.training)
    return layout, student
