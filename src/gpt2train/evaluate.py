"""Evaluation: validation loss over llm.c token shards, and HellaSwag as llm.c scores it.

Validation batches follow llm.c's val loader with one process: the shards are read in sorted
order, each shard gives ``(ntok - 1) // (B*T)`` batches, and batch k of a shard is tokens
``[k*B*T, k*B*T + B*T + 1)`` of that shard (inputs are the first B*T, targets the last B*T), so a
batch never straddles two shards. Under torch.distributed the same batches are dealt round-robin
to the ranks and the sums are all-reduced, so the figure does not depend on the world size.

HellaSwag is scored "completion style" as llm.c's dev/data/hellaswag.py: the context is the BPE of
``ctx``, each ending is the BPE of ``" " + ending``, and each of the 4 rows is scored by the
cross-entropy of its ending tokens given everything before them. ``acc`` picks the ending with the
lowest summed loss, ``acc_norm`` the lowest mean loss per token (llm.c's acc_norm, the figure it
logs as ``eval``). ``acc_charnorm`` is a third figure, the summed loss divided by the number of
characters of ``" " + ending`` (the length normalisation of EleutherAI's harness, though the
harness scores differently in other respects); it is not comparable to llm.c's acc_norm.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gpt2train.config import ModelConfig
from gpt2train.data.loader import ValLoader
from gpt2train.errors import UserError
from gpt2train.precision import autocast
from gpt2train.train.distributed import all_reduce_sum, rank_and_world

# -- helpers shared with sample / the CLI ---------------------------------------------------------


def unwrap(model):
    """The plain GPT module inside DDP / FSDP / torch.compile wrappers (for hidden_states / logits)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module") and not hasattr(model, "hidden_states"):
            model = model.module
        else:
            return model


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> cuda if available, else cpu; anything else is checked and returned."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    return dev


def load_model(source: str, device: str | torch.device = "cpu", expect: ModelConfig | None = None):
    """A GPT in eval mode from an llm.c .bin, a run dir or a HuggingFace dir (see ``load_pretrained``).

    With ``expect``, a file of another shape is a UserError naming the file and both shapes.
    """
    from gpt2train.formats.load import load_pretrained
    from gpt2train.model import GPT

    cfg, sd = load_pretrained(source)
    if expect is not None:
        keys = ("n_layer", "n_head", "n_embd", "vocab_size", "max_seq_len")
        diff = [
            f"{k} {getattr(cfg, k)} (expected {getattr(expect, k)})"
            for k in keys
            if getattr(cfg, k) != getattr(expect, k)
        ]
        if diff:
            raise UserError(f"model {source} has another shape than the config: " + ", ".join(diff))
    model = GPT(cfg)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise UserError(f"model {source} does not fit its own config: {first[-1].strip() if first else e}") from None
    return model.to(device).eval()


# -- validation loss ----------------------------------------------------------------------------


@torch.no_grad()
def _token_byte_lengths() -> np.ndarray:
    """UTF-8 byte length of every GPT-2 token (for bits per byte)."""
    from gpt2train.data.tokenizer import gpt2_encoding

    enc = gpt2_encoding()
    return np.array([len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)], dtype=np.int64)


@torch.no_grad()
def _batch_losses(model, loader, device: torch.device, autocast_dtype, cuda_graphs: bool = False):
    """This process's share of the loader's batches: (targets on the CPU, ``model(x, y)``'s mean loss as a
    float64 scalar on ``device``) for each. ``cuda_graphs``: the model runs as CUDA graphs (compiled with
    --compile-mode reduce-overhead or max-autotune), where each forward is a new graph step whose output is used
    before the next."""
    rank, world = rank_and_world()
    for x, y in loader.batches(rank, world):
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(device, autocast_dtype):
            loss = model(x.to(device), y.to(device))
        yield y, loss.double()


@torch.no_grad()
def mean_val_loss(model, loader: ValLoader, device, autocast_dtype, cuda_graphs: bool = False) -> float:
    """The mean over the loader's batches (of every process) of ``model(x, y)``, the model's mean loss, under
    autocast to ``autocast_dtype``; summed in float64. The model's train/eval mode is left as it is (no module
    reads it, and a compiled model would recompile for the other mode)."""
    device = torch.device(device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    for _, loss in _batch_losses(model, loader, device, autocast_dtype, cuda_graphs):
        total += loss
    all_reduce_sum(total)
    return float(total) / len(loader)


@torch.no_grad()
def val_loss(
    model,
    shard_pattern: str,
    B: int,
    T: int,
    max_batches: int = -1,
    device="cpu",
    autocast_dtype=None,
    flag: str = "-j",
    warn=None,
) -> dict:
    """Mean cross-entropy over the first ``max_batches`` val batches (-1: all) of the shards.

    Returns ``dict(val_loss, bits_per_byte, batches, tokens)``. Bits per byte = summed loss in nats
    / ln 2 / the UTF-8 byte count of the target tokens (each token decoded on its own, so the
    count is exact for the target text; an EOT token counts its 13 bytes of ``<|endoftext|>``).
    A ``max_batches`` larger than the split holds is clamped, with one warning through ``warn``.
    """
    device = torch.device(device)
    rank, _ = rank_and_world()
    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    m = unwrap(model)
    vocab = getattr(getattr(m, "config", None), "vocab_size", None)  # ids past it: an error naming the shard
    loader = ValLoader(shard_pattern, B, T, -1 if max_batches is None else max_batches, flag=flag,
                       warn=warn if rank == 0 else None, vocab_size=vocab)  # fmt: skip
    byte_len = _token_byte_lengths()
    was_training = m.training
    m.eval()
    # loss, UTF-8 bytes and tokens of the targets, summed (float64) over this process's batches
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for y, loss in _batch_losses(m, loader, device, autocast_dtype):
        sums[0] += loss * y.numel()
        sums[1] += int(byte_len[np.minimum(y.numpy(), len(byte_len) - 1)].sum())
        sums[2] += y.numel()
    m.train(was_training)
    loss_sum, byte_sum, ntok = all_reduce_sum(sums).tolist()
    return {
        "val_loss": loss_sum / ntok,
        "bits_per_byte": loss_sum / math.log(2) / byte_sum if byte_sum else float("nan"),
        "batches": len(loader),
        "tokens": int(ntok),
    }


# -- HellaSwag ----------------------------------------------------------------------------------


@dataclass
class _Rendered:
    index: int
    ctx: list[int]
    endings: list[list[int]]
    ending_chars: list[int]
    label: int

    @property
    def length(self) -> int:
        return len(self.ctx) + max(len(e) for e in self.endings)


@functools.lru_cache(maxsize=2)
def _render_cached(examples: tuple, max_seq_len: int) -> tuple[_Rendered, ...]:
    # the trainer scores the same examples every few hundred steps: tokenise them once
    return tuple(render_examples(examples, max_seq_len))


def render_examples(examples, max_seq_len: int) -> list[_Rendered]:
    """Tokenise examples as llm.c does (ctx, then " " + ending).

    A row longer than the model's context keeps its ending and the end of the context (never
    reached by the real validation set with T >= 256; llm.c would not score such a row at all).
    """
    from gpt2train.data.tokenizer import encode

    out = []
    for i, ex in enumerate(examples):
        ctx = encode(ex.ctx)
        endings = [encode(" " + e) for e in ex.endings]
        if any(len(e) == 0 for e in endings):
            raise UserError(f"HellaSwag example {i} has an empty ending")
        longest = max(len(e) for e in endings)
        if longest >= max_seq_len:
            raise UserError(f"HellaSwag example {i} has an ending of {longest} tokens, too long for T={max_seq_len}")
        if len(ctx) + longest > max_seq_len:
            ctx = ctx[len(ctx) + longest - max_seq_len :]
        out.append(_Rendered(i, ctx, endings, [len(" " + e) for e in ex.endings], ex.label))
    return out


@torch.no_grad()
def score_rows(model, rows: list[tuple[list[int], list[int]]], device, autocast_dtype=None):
    """Summed cross-entropy (fp32) of each row's ending tokens given its context, in one padded batch.

    ``rows`` are (context tokens, ending tokens); returns a (len(rows),) float64 CPU tensor of sums.
    Logits are computed only at the positions that predict ending tokens, which keeps memory small.
    """
    m = unwrap(model)
    R = len(rows)
    L = max(len(c) + len(e) for c, e in rows)
    idx = torch.zeros(R, L, dtype=torch.long)
    pred_pos, tgt, row_of = [], [], []
    for r, (c, e) in enumerate(rows):
        seq = c + e
        idx[r, : len(seq)] = torch.tensor(seq)
        # position p predicts token p+1; ending tokens sit at len(c) .. len(seq)-1
        pred_pos += [r * L + p for p in range(len(c) - 1, len(seq) - 1)]
        tgt += e
        row_of += [r] * len(e)
    idx = idx.to(device)
    with autocast(torch.device(device), autocast_dtype):
        h = m.hidden_states(idx)
        h = h.reshape(R * L, -1)[torch.tensor(pred_pos, device=device)]
        logits = m.logits(h).float()
    losses = F.cross_entropy(logits, torch.tensor(tgt, device=device), reduction="none")
    sums = torch.zeros(R, dtype=torch.float64, device=device)
    sums.index_add_(0, torch.tensor(row_of, device=device), losses.double())
    return sums.cpu()


@torch.no_grad()
def hellaswag_eval(
    model,
    examples,
    device="cpu",
    batch_rows: int = 64,
    autocast_dtype=None,
    return_predictions: bool = False,
) -> dict:
    """HellaSwag accuracy, llm.c's completion-style scoring, batched.

    ``examples``: ``HellaSwagExample`` list (``data.hellaswag.load_examples``). Examples are sorted
    by length and packed ``batch_rows // 4`` at a time (4 rows each) into padded batches; padding
    sits after every scored token, so it never changes a score under causal attention.
    Under torch.distributed each rank scores a slice and the counts are all-reduced.

    Returns ``dict(acc, acc_norm, acc_charnorm, correct, correct_norm, correct_charnorm, examples)``
    and, with ``return_predictions`` (single process), ``pred``/``pred_norm`` lists in input order.
    """
    device = torch.device(device)
    m = unwrap(model)
    rendered = _render_cached(tuple(examples), m.config.max_seq_len)
    rank, world = rank_and_world()
    mine = sorted(rendered[rank::world], key=lambda r: r.length)
    per_batch = max(1, batch_rows // 4)
    was_training = m.training
    m.eval()
    correct = correct_norm = correct_char = 0
    preds: dict[int, tuple[int, int]] = {}
    for s in range(0, len(mine), per_batch):
        chunk = mine[s : s + per_batch]
        rows = [(r.ctx, e) for r in chunk for e in r.endings]
        sums = score_rows(m, rows, device, autocast_dtype).view(len(chunk), 4)
        counts = torch.tensor([[len(e) for e in r.endings] for r in chunk], dtype=torch.float64)
        chars = torch.tensor([r.ending_chars for r in chunk], dtype=torch.float64)
        pred = sums.argmin(dim=1)  # first minimum on ties, as torch.argmin in llm.c's script
        pred_norm = (sums / counts).argmin(dim=1)
        pred_char = (sums / chars).argmin(dim=1)
        labels = torch.tensor([r.label for r in chunk])
        correct += int((pred == labels).sum())
        correct_norm += int((pred_norm == labels).sum())
        correct_char += int((pred_char == labels).sum())
        for r, p, pn in zip(chunk, pred.tolist(), pred_norm.tolist()):
            preds[r.index] = (p, pn)
    m.train(was_training)
    counts = torch.tensor([correct, correct_norm, correct_char, len(mine)], dtype=torch.float64, device=device)
    correct, correct_norm, correct_char, n = (int(round(v)) for v in all_reduce_sum(counts).tolist())
    out = {
        "acc": correct / n if n else float("nan"),
        "acc_norm": correct_norm / n if n else float("nan"),
        "acc_charnorm": correct_char / n if n else float("nan"),
        "correct": correct,
        "correct_norm": correct_norm,
        "correct_charnorm": correct_char,
        "examples": n,
    }
    if return_predictions and world == 1:
        out["pred"] = [preds[i][0] for i in range(len(rendered))]
        out["pred_norm"] = [preds[i][1] for i in range(len(rendered))]
    return out
