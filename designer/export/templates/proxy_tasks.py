"""Synthetic tasks for proxy training, generated in-process from a seed (no downloads).

The suites used to compare sequence mixers (SSM vs attention):
  mqar            multi-query associative recall (Zoology, Arora et al. 2023, arXiv 2312.04927 §3), with an
                  optional curriculum over the number of pairs (min_kv_pairs) for training
  selective_copy  copy the data tokens scattered among blanks (Mamba, Gu & Dao 2023, arXiv 2312.00752 §3.1)
  noisy_recall    in-context recall with noise tokens between the pairs (MAD, Poli et al. 2024, arXiv 2403.17844)
  fuzzy_recall    in-context recall whose keys and values are spans of 1..k tokens (MAD)
  compression     read a sequence, then answer "which token was at position i?" (MAD compression, recast
                  as an indexed query so that any causal LM can be scored on it)
  memorization    a fixed key -> value table, the same for every sequence: learnt in the weights (MAD)
  text            byte-level language modelling on the Python standard library's own source files, read
                  from the running interpreter (offline everywhere); held-out files chosen by a hash of
                  their path; every byte is an answer, so the loss is in nats per byte

Every generator returns (inputs, targets), two int64 tensors [batch, seq_len] on the CPU; targets hold the
next token at the answer positions and IGNORE (-100) everywhere else, so loss and accuracy are measured on
the answers only. Token 0 is a blank (selective_copy's filler, the unused tail of a sequence). Every random number comes from the torch.Generator passed in, so a
batch is a function of the seed and of how many batches were drawn before it.

Only torch is needed: this file is copied beside train_proxy.py into an export directory.
"""
from __future__ import annotations

import sys
import sysconfig
import zlib
from pathlib import Path

import torch

IGNORE = -100

# name -> default parameters (besides vocab_size and seq_len, which all tasks share)
TASKS: dict[str, dict] = {
    "mqar": {"num_kv_pairs": 8, "min_kv_pairs": 0, "power_a": 0.01, "tokens_per_pair": 0},
    "selective_copy": {"num_tokens": 16},
    "noisy_recall": {"num_keys": 8, "noise_prob": 0.3},
    "fuzzy_recall": {"num_keys": 8, "max_key_len": 3, "max_value_len": 3},
    "compression": {"num_tokens": 16, "num_queries": 8},
    "memorization": {"num_facts": 64},
    "text": {"heldout_percent": 10},
}


def task_params(name: str, params: dict | None = None) -> dict:
    """The task's defaults updated with `params`; unknown tasks or keys raise ValueError naming what is allowed."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    out = dict(TASKS[name])
    for key, value in (params or {}).items():
        if key not in out:
            raise ValueError(f"task {name}: unknown parameter {key!r}; allowed: {', '.join(out)}")
        out[key] = value
    return out


def check_task(name: str, vocab_size: int, seq_len: int, params: dict | None = None) -> dict:
    """Full parameters of a task, or ValueError saying which size is too small and what it needs."""
    p = task_params(name, params)
    V, L = vocab_size, seq_len
    for key, value in p.items():
        low = 0 if key == "min_kv_pairs" else 1
        if key not in ("noise_prob", "power_a", "tokens_per_pair") and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"task {name}: {key} must be an integer >= {low}, got {value!r}")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"task {name}: {what} (vocab_size {V}, seq_len {L}, {p})")

    if name == "mqar":
        n = p["num_kv_pairs"]
        need(L >= 4 * n, f"seq_len must be >= 4 * num_kv_pairs = {4 * n} (pairs, then a query slot per pair)")
        need(V // 2 - 1 >= n, f"vocab_size must be >= 2 * (num_kv_pairs + 1) = {2 * (n + 1)} (distinct keys)")
        need(p["min_kv_pairs"] <= n, "min_kv_pairs must be <= num_kv_pairs (0 = no curriculum)")
        t = p["tokens_per_pair"]
        need(not isinstance(t, bool) and isinstance(t, int) and (t == 0 or t >= 4),
             f"tokens_per_pair must be 0 (every sequence seq_len long) or an integer >= 4, got {t!r}")
        a = p["power_a"]
        need(not isinstance(a, bool) and isinstance(a, (int, float)) and 0.0 < a <= 1.0,
             f"power_a must be a number in (0, 1] (1 = uniform query slots), got {a!r}")
    elif name == "selective_copy":
        n = p["num_tokens"]
        need(L >= 2 * n + 1, f"seq_len must be >= 2 * num_tokens + 1 = {2 * n + 1}")
        need(V >= 4, "vocab_size must be >= 4")
    elif name == "noisy_recall":
        q = p["noise_prob"]   # a number: float() would raise TypeError on null or a list, or accept "0.5"
        need(not isinstance(q, bool) and isinstance(q, (int, float)) and 0.0 <= q < 1.0,
             f"noise_prob must be a number in [0, 1), got {q!r}")
        need(V // 3 - 1 >= p["num_keys"], f"vocab_size must be >= 3 * (num_keys + 1) = {3 * (p['num_keys'] + 1)}")
        need(L >= 4, "seq_len must be >= 4")
    elif name == "fuzzy_recall":
        need(V >= 8, "vocab_size must be >= 8")
        need(L >= 2 * (p["max_key_len"] + p["max_value_len"]), "seq_len must hold two key-value items")
        need(V // 2 - 1 >= 2 * p["num_keys"], f"vocab_size must be >= 4 * num_keys + 2 = {4 * p['num_keys'] + 2} "
             "(keys must not be prefixes of each other)")
    elif name == "compression":
        n, q = p["num_tokens"], p["num_queries"]
        need(q <= n, "num_queries must be <= num_tokens")
        need(L >= n + 1 + 2 * q, f"seq_len must be >= num_tokens + 1 + 2 * num_queries = {n + 1 + 2 * q}")
        need(V >= 2 + n + 2, f"vocab_size must be >= num_tokens + 4 = {n + 4} (a token per position)")
    elif name == "text":
        need(V >= 256, "vocab_size must be >= 256 (one token per byte)")
        need(L >= 2, "seq_len must be >= 2")
        need(1 <= p["heldout_percent"] <= 50, "heldout_percent must be in [1, 50]")
    elif name == "memorization":
        need(V // 2 - 1 >= p["num_facts"], f"vocab_size must be >= 2 * (num_facts + 1) = {2 * (p['num_facts'] + 1)}")
        need(L >= 2, "seq_len must be >= 2")
    return p


def make_batch(name: str, batch_size: int, *, vocab_size: int, seq_len: int, gen: torch.Generator,
               seed: int = 0, train: bool = True, **params) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of task `name`: (inputs, targets), int64 [batch_size, seq_len]. `train=False` gives the
    evaluation form (MQAR: num_kv_pairs only, no curriculum)."""
    p = check_task(name, vocab_size, seq_len, params)
    fn = globals()[name]
    if name == "memorization":  # the table is fixed by the seed, not drawn per batch
        return fn(batch_size, vocab_size, seq_len, gen, seed=seed, **p)
    if name == "text":
        return text(batch_size, vocab_size, seq_len, gen, split="train" if train else "heldout", **p)
    if name == "mqar":
        return mqar_mixture(batch_size, vocab_size, seq_len, gen, num_kv_pairs=p["num_kv_pairs"],
                            min_kv_pairs=p["min_kv_pairs"] if train else 0, power_a=p["power_a"],
                            tokens_per_pair=p["tokens_per_pair"])
    return fn(batch_size, vocab_size, seq_len, gen, **p)


def _distinct(batch: int, n: int, low: int, high: int, gen: torch.Generator) -> torch.Tensor:
    """[batch, n] integers from [low, high), distinct within a row, in random order: the places of the n largest
    of high - low uniform draws (a uniformly random n-subset, in a uniformly random order; topk rather than a
    full sort: the CPU drew a Zoology-sized MQAR batch in 36 ms with argsort, most of it sorting)."""
    return torch.rand(batch, high - low, generator=gen, device=gen.device).topk(n, dim=1).indices + low


def mqar(B: int, V: int, L: int, gen: torch.Generator, *, num_kv_pairs: int, power_a: float = 0.01):
    """Zoology MQAR: k1 v1 ... kN vN, then every key once more in random order, each in a 2-token slot among
    random filler tokens; the target after a queried key is its value. As in Zoology
    (zoology/data/associative_recall.py, _mqar): keys from [1, V/2), values from [V/2, V), both distinct
    within a sequence; the query slots are drawn without replacement with P(gap i) ~ i^(power_a - 1)
    (power_a 0.01: mostly soon after the pairs, like repeated bigrams in text; 1 = uniform). Unlike Zoology,
    the value also follows its query in the input (the answer is the next token, as in every task here)."""
    N, dev = num_kv_pairs, gen.device   # drawn where the generator lives (bench/mqar_batch_speed.py times both)
    keys = _distinct(B, N, 1, V // 2, gen)
    values = _distinct(B, N, V // 2, V, gen)
    # filler between the queries: random tokens, but never one of this sequence's keys. Zoology draws the
    # filler from the whole vocabulary, which at its 8192 tokens almost never repeats a key; at a few hundred
    # tokens each key would reappear about L/V times in the filler followed by a random token, and "find the
    # earlier copy of this key, read the token after it" (the recall circuit) would be wrong that often.
    x = torch.randint(1, V, (B, L), generator=gen, device=dev)
    is_key = (x[:, :, None] == keys[:, None, :]).any(-1)
    x = torch.where(is_key, torch.randint(V // 2, V, (B, L), generator=gen, device=dev), x)
    y = torch.full((B, L), IGNORE, dtype=torch.long, device=dev)
    x[:, 0:2 * N:2], x[:, 1:2 * N:2] = keys, values
    space = (L - 2 * N) // 2
    weight = torch.arange(1, space + 1, dtype=torch.float64, device=dev) ** (power_a - 1.0)
    slots = torch.multinomial(weight.expand(B, space), N, replacement=False, generator=gen)
    order = torch.rand(B, N, generator=gen, device=dev).argsort(dim=1)
    pos = 2 * N + 2 * slots
    qk, qv = keys.gather(1, order), values.gather(1, order)
    x.scatter_(1, pos, qk)
    x.scatter_(1, pos + 1, qv)
    y.scatter_(1, pos, qv)
    return x, y


def mqar_mixture(B: int, V: int, L: int, gen: torch.Generator, *, num_kv_pairs: int, min_kv_pairs: int = 0,
                 power_a: float = 0.01, tokens_per_pair: int = 0):
    """MQAR with a curriculum: with min_kv_pairs > 0 the batch is split evenly over num_kv_pairs,
    num_kv_pairs / 2, ... down to min_kv_pairs pairs (Zoology also trains on a mixture of pair counts, which
    lets a model find the recall mechanism on the easy sequences first). 0 = all sequences at num_kv_pairs.
    tokens_per_pair > 0: a curriculum sequence of n < num_kv_pairs pairs is only min(L, tokens_per_pair * n)
    tokens long (Zoology pairs a sequence length with each pair count: 4 pairs in 64 tokens, 8 in 128, 16 in
    256), padded to L with token 0 (never a key or value) and no targets, so the easy sequences are short as
    well; sequences of num_kv_pairs pairs (and so the evaluation) keep all L tokens."""
    counts = [num_kv_pairs]
    while min_kv_pairs and counts[-1] // 2 >= min_kv_pairs:
        counts.append(counts[-1] // 2)
    xs, ys = [], []
    for i, n in enumerate(counts):
        rows = B // len(counts) + (i < B % len(counts))
        if not rows:
            continue
        length = min(L, tokens_per_pair * n) if tokens_per_pair and n < num_kv_pairs else L   # >= 4 n: check_task
        x, y = mqar(rows, V, length, gen, num_kv_pairs=n, power_a=power_a)
        xs.append(torch.nn.functional.pad(x, (0, L - length)))
        ys.append(torch.nn.functional.pad(y, (0, L - length), value=IGNORE))
    return torch.cat(xs), torch.cat(ys)


def selective_copy(B: int, V: int, L: int, gen: torch.Generator, *, num_tokens: int):
    """n data tokens at random places in a region of blanks (0), a delimiter (1), then the data tokens in order."""
    n = num_tokens
    R = L - n
    pos = torch.rand(B, R, generator=gen).argsort(dim=1)[:, :n].sort(dim=1).values
    data = torch.randint(2, V, (B, n), generator=gen)
    x = torch.zeros(B, L, dtype=torch.long)
    y = torch.full((B, L), IGNORE, dtype=torch.long)
    x.scatter_(1, pos, data)
    x[:, R] = 1
    x[:, R + 1:] = data[:, :-1]
    y[:, R:] = data
    return x, y


def noisy_recall(B: int, V: int, L: int, gen: torch.Generator, *, num_keys: int, noise_prob: float):
    """A stream of 2-token items: a key-value pair (N keys, one random value each per sequence) or, with
    probability noise_prob, two noise tokens. The target after a key is its value once the key has been seen
    before in the sequence. Noise from [1, V/3), keys from [V/3, 2V/3), values from [2V/3, V)."""
    N, third, M = num_keys, V // 3, L // 2
    keys = _distinct(B, N, third, 2 * third, gen)
    values = torch.randint(2 * third, V, (B, N), generator=gen)
    pick = torch.randint(0, N, (B, M), generator=gen)
    noise = torch.rand(B, M, generator=gen) < noise_prob
    noise_tok = torch.randint(1, third, (B, M, 2), generator=gen)
    first = torch.where(noise, noise_tok[..., 0], keys.gather(1, pick))
    second = torch.where(noise, noise_tok[..., 1], values.gather(1, pick))
    onehot = torch.nn.functional.one_hot(pick, N) * (~noise)[..., None]
    before = (onehot.cumsum(dim=1) - onehot).gather(2, pick[..., None]).squeeze(-1)
    answer = (before > 0) & ~noise
    x = torch.zeros(B, L, dtype=torch.long)
    y = torch.full((B, L), IGNORE, dtype=torch.long)
    x[:, 0:2 * M:2], x[:, 1:2 * M:2] = first, second
    y[:, 0:2 * M:2] = torch.where(answer, second, torch.full_like(second, IGNORE))
    return x, y


def fuzzy_recall(B: int, V: int, L: int, gen: torch.Generator, *, num_keys: int, max_key_len: int,
                 max_value_len: int):
    """In-context recall where each key is a span of 1..max_key_len tokens from [1, V/2) and each value a span
    of 1..max_value_len tokens from [V/2, V). Items follow each other with no separator; once a key has been
    seen, every token of its value is an answer (predicted from the previous token)."""
    half = V // 2
    x = torch.zeros(B, L, dtype=torch.long)
    y = torch.full((B, L), IGNORE, dtype=torch.long)
    for b in range(B):
        keys: list[tuple[int, ...]] = []
        while len(keys) < num_keys:
            k = int(torch.randint(1, max_key_len + 1, (1,), generator=gen))
            key = tuple(torch.randint(1, half, (k,), generator=gen).tolist())
            # no key may be a prefix of another, or the boundary between key and value would be ambiguous
            if not any(key[:len(o)] == o or o[:len(key)] == key for o in keys):
                keys.append(key)
        vals = []
        for _ in range(num_keys):
            v = int(torch.randint(1, max_value_len + 1, (1,), generator=gen))
            vals.append(torch.randint(half, V, (v,), generator=gen).tolist())
        picks = torch.randint(0, num_keys, (L,), generator=gen).tolist()
        seen, pos, row, tgt = set(), 0, [], []
        for k in picks:
            item = list(keys[k]) + vals[k]
            if pos + len(item) > L:
                break
            row += item
            if k in seen:   # predict value token j from the token before it
                tgt += [(pos + len(keys[k]) - 1 + j, tok) for j, tok in enumerate(vals[k])]
            seen.add(k)
            pos += len(item)
        x[b, :len(row)] = torch.tensor(row, dtype=torch.long)
        for t, tok in tgt:
            y[b, t] = tok
    return x, y


def compression(B: int, V: int, L: int, gen: torch.Generator, *, num_tokens: int, num_queries: int):
    """n data tokens, a compress token (1), then q queries: a position token (2 + i) followed by the data token
    that stood at position i. Data tokens from [2 + n, V)."""
    n, q = num_tokens, num_queries
    data = torch.randint(2 + n, V, (B, n), generator=gen)
    asked = torch.rand(B, n, generator=gen).argsort(dim=1)[:, :q]
    answers = data.gather(1, asked)
    x = torch.zeros(B, L, dtype=torch.long)
    y = torch.full((B, L), IGNORE, dtype=torch.long)
    x[:, :n] = data
    x[:, n] = 1
    x[:, n + 1:n + 1 + 2 * q:2] = 2 + asked
    x[:, n + 2:n + 2 + 2 * q:2] = answers
    y[:, n + 1:n + 1 + 2 * q:2] = answers
    return x, y


def memorization(B: int, V: int, L: int, gen: torch.Generator, *, num_facts: int, seed: int = 0):
    """Key-value pairs from one fixed table (keys 1..F, a value from [V/2, V) each, drawn from `seed`): the
    values cannot be read from the context, only remembered. Every value is an answer."""
    table = torch.randint(V // 2, V, (num_facts,), generator=torch.Generator().manual_seed(seed + 0x5EED))
    M = L // 2
    pick = torch.randint(0, num_facts, (B, M), generator=gen)
    x = torch.zeros(B, L, dtype=torch.long)
    y = torch.full((B, L), IGNORE, dtype=torch.long)
    x[:, 0:2 * M:2], x[:, 1:2 * M:2] = 1 + pick, table[pick]
    y[:, 0:2 * M:2] = table[pick]
    return x, y


# --------------------------------------------------------------------------------------------------
# Real text: the standard library's source, byte-level

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
_CORPUS: dict[tuple, dict] = {}


def stdlib_corpus(heldout_percent: int = 10, root: str | None = None) -> dict:
    """The *.py files of the interpreter's standard library (sysconfig's "stdlib" path; test packages and
    site-packages left out), sorted by relative path and split by file: a file is held out when
    crc32(relative path) % 100 < heldout_percent, so the split is the same on every machine with the same
    Python. Returns {"train", "heldout": uint8 tensors (files joined), "info": what was read}; cached."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    key = (str(base), heldout_percent)
    if key not in _CORPUS:
        files = sorted(p for p in base.rglob("*.py")
                       if not _SKIP_DIRS & set(p.relative_to(base).parts[:-1]) and p.is_file())
        parts: dict[str, list[bytes]] = {"train": [], "heldout": []}
        for f in files:
            rel = f.relative_to(base).as_posix()
            split = "heldout" if zlib.crc32(rel.encode()) % 100 < heldout_percent else "train"
            parts[split].append(f.read_bytes() + b"\n")
        if not parts["train"] or not parts["heldout"]:
            raise ValueError(f"text: too few standard-library files under {base} ({len(files)} *.py)")
        data = {k: torch.frombuffer(bytearray(b"".join(v)), dtype=torch.uint8) for k, v in parts.items()}
        data["info"] = {"source": "python standard library *.py (no test packages, no site-packages)",
                        "python": sys.version.split()[0], "stdlib": str(base), "files": len(files),
                        "heldout_files": len(parts["heldout"]), "heldout_percent": heldout_percent,
                        "train_bytes": int(data["train"].numel()), "heldout_bytes": int(data["heldout"].numel())}
        _CORPUS[key] = data
    return _CORPUS[key]


def text(B: int, V: int, L: int, gen: torch.Generator, *, heldout_percent: int = 10, split: str = "train"):
    """B windows of L + 1 bytes at random offsets of the split; inputs the first L, targets the last L (every
    position is an answer: next-byte prediction)."""
    stream = stdlib_corpus(heldout_percent)[split]
    start = torch.randint(0, stream.numel() - L - 1, (B,), generator=gen)
    window = stream[start[:, None] + torch.arange(L + 1)].long()
    return window[:, :-1].contiguous(), window[:, 1:].contiguous()
