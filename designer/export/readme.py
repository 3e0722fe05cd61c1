"""README.md of an export directory: what each file is and the command that runs it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from designer.layout import Layout

if TYPE_CHECKING:
    from designer.export.model_export import ExportResult

_FILE_DESCRIPTIONS = {
    "layout.yaml": "the validated, normalised layout (JSON, which is also YAML); `designer validate layout.yaml` "
                   "reads it back",
    "model.py": "the PyTorch model in one file (imports only torch): Mamba/attention/MLP/MoE blocks, caches, "
                "`generate()`, `build_model()`",
    "config.json": "a Hugging Face transformers config of the matching family; `model.py`'s state_dict loads into it",
    "megatron.sh": "Megatron-LM pretraining command for the same architecture (pattern, sizes, FP8 flags, TP/PP)",
    "train_proxy.py": "a short proxy-training job on synthetic tasks",
    "proxy.yaml": "the proxy job's settings",
    "proxy_tasks.py": "the synthetic tasks of the proxy job (generated from a seed)",
    "proxy_layout.json": "the proxy layout: this layout's motifs, narrower and shallower",
    "README.md": "this file",
}


def _human(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return str(n)


def render_readme(layout: Layout, result: "ExportResult") -> str:
    files = list(result.files) + (["README.md"] if "README.md" not in result.files else [])
    rows = "\n".join(f"| `{f}` | {_FILE_DESCRIPTIONS.get(f, '')} |" for f in files)
    counts = ", ".join(f"{layout.count(s)} `{s}`" for s in "M*-E" if layout.count(s))
    out = [f"# {layout.name}", "",
           f"Exported by `designer export`. {layout.source + '. ' if layout.source else ''}"
           f"{layout.num_layers} layers ({counts}), hidden size {layout.hidden_size}, vocabulary "
           f"{layout.vocab_size}, {result.params:,} parameters ({_human(result.params)}).", "",
           "```", layout.pattern, "```", "",
           "`M` Mamba mixer, `*` attention, `-` MLP, `E` mixture of experts; one symbol is one pre-norm residual "
           "block (Megatron-LM hybrid symbols).", "",
           "## Files", "", "| file | what it is |", "|---|---|", rows, ""]
    if result.notes:
        out += ["Not written / caveats:", ""] + [f"- {n}" for n in result.notes] + [""]

    out += ["## The PyTorch model (`model.py`)", "",
            "```bash",
            "python model.py              # parameter count, a forward pass and a short generation on random weights",
            "python model.py --device cuda --full",
            "```", "",
            "```python",
            "import torch",
            "from model import build_model",
            "",
            "model = build_model()                     # from ./layout.yaml, random init (device=, dtype= optional)",
            "ids = torch.randint(0, model.args.vocab_size, (2, 128))",
            "logits = model(ids)                       # (2, 128, vocab), float32",
            "loss = model.loss(ids[:, :-1], ids[:, 1:])",
            "out = model.generate(ids[:, :16], max_new_tokens=32, temperature=0.0)",
            "",
            "cache = model.new_cache(batch_size=2, max_seq_len=256)   # KV cache + Mamba conv/SSM states",
            "logits = model(ids, cache=cache)          # prefill",
            "logits = model(out[:, -1:], cache=cache)  # one decode step (cache.seq_len counts tokens)",
            "```", "",
            f"Parameter names follow transformers' `{result.family}` modules. The Mamba scans are pure PyTorch "
            "(chunked SSD scan for Mamba-2, chunked log-depth scan for Mamba-1, one-token recurrences for decoding); "
            "on CUDA, `mamba_ssm` / `causal_conv1d` kernels are used when installed (`MODEL_PURE_TORCH=1` turns "
            "them off).", ""]
    if "config.json" in result.files:
        out += ["## Hugging Face transformers (`config.json`)", "",
                "```python",
                "import json, torch, transformers",
                "from model import build_model",
                "",
                "model = build_model()",
                "config = transformers.AutoConfig.for_model(**json.load(open('config.json')))",
                "hf = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # default: bf16",
                "hf.load_state_dict(model.state_dict(), strict=True)   # same names and shapes, same logits",
                "hf.save_pretrained('hf-checkpoint')",
                "```", ""]
        if result.hf_family == "nemotron_h":
            out += ["transformers keeps the Nemotron-H trunk under `model.`; checkpoints on the Hub use "
                    "`backbone.`, which `from_pretrained` renames on load.", ""]
    if "megatron.sh" in result.files:
        plan = result.parallel or {}
        out += ["## Megatron-LM (`megatron.sh`)", "",
                "```bash",
                "DRY_RUN=1 bash megatron.sh                                  # print the command",
                "MEGATRON_LM=/path/to/Megatron-LM bash megatron.sh            # mock data",
                "MEGATRON_LM=... DATA_PATH=/data/prefix TOKENIZER_MODEL=... bash megatron.sh",
                "```", "",
                f"Suggested parallelism: {plan.get('summary', 'n/a')}. Override with `TP=`, `PP=`"
                + (", `EP=`" if "E" in layout.pattern else "") + ".", ""]
    if "train_proxy.py" in result.files:
        out += ["## Proxy training (`train_proxy.py`, `proxy.yaml`)", "",
                "A small copy of this layout (`proxy_layout.json`: the same pattern order and layer mix, narrower "
                "and shallower) trained in minutes on synthetic tasks generated from a seed (`proxy_tasks.py`: "
                "MQAR, selective copying, noisy/fuzzy recall, compression, memorisation). Needs only torch.", "",
                "```bash",
                "python train_proxy.py                                # settings in proxy.yaml; writes metrics.json",
                "python train_proxy.py --steps 1000 --device cuda --task mqar,selective_copy",
                "torchrun --nproc_per_node 2 train_proxy.py           # DDP (NCCL on GPU, gloo on CPU), same global batch",
                "```", "",
                "metrics.json: the loss curve (answer positions), accuracy per task, tokens/s, peak memory. "
                "`designer proxy A B C` trains several layouts' proxies and ranks them.", ""]
    out += ["## Rule check", ""]
    if result.violations:
        out += ["| rule | severity | layer | message |", "|---|---|---|---|"]
        out += [f"| {v['rule']} | {v['severity']} | {'-' if v.get('layer') is None else v['layer']} | {v['message']} |"
                for v in result.violations]
    else:
        out.append("No violations." if not any("rules not checked" in n for n in result.notes)
                   else "Not checked.")
    out.append("")
    return "\n".join(out)
