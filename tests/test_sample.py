"""Generation: the KV-cached forward equals the full forward; sampling options; streaming decode."""

from __future__ import annotations

import pytest
import torch

from gpt2train.config import ModelConfig
from gpt2train.data.tokenizer import encode
from gpt2train.model import build_model
from gpt2train.sample import KVCache, StreamDecoder, cached_forward, generate, sample_next


@pytest.fixture(scope="module")
def model():
    """Tiny model, weights scaled up so that greedy decoding does not repeat one token forever."""
    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=24)
    m = build_model(cfg, seed=5)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(8)
    return m.eval()


def test_cached_forward_equals_full_forward(model):
    idx = torch.randint(0, 50257, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(idx)
    cache = KVCache(model.config, 2, "cpu", torch.float32)
    # a prefill of 7 tokens, then chunks of 1 and 5, then single tokens
    start = 0
    for n in (7, 1, 5, 1, 1, 1, 1, 1, 1, 1):
        last = cached_forward(model, idx[:, start : start + n], cache)
        start += n
        assert torch.allclose(last, full[:, start - 1], rtol=1e-4, atol=2e-3), start  # logits ~30
    assert cache.length == 20


def test_kv_cache_greedy_equals_no_cache(model):
    prompt = encode("The meaning of life is")
    # 26 new tokens: runs past max_seq_len (24), where the window slides
    a = generate(model, prompt, 26, temperature=0, use_cache=True)
    b = generate(model, prompt, 26, temperature=0, use_cache=False)
    assert a == b
    assert len(a) == 26 and len(set(a)) > 3


def test_seeded_sampling_reproducible_and_cache_independent(model):
    prompt = encode("Hello")
    runs = []
    for use_cache in (True, True, False):
        g = torch.Generator().manual_seed(123)
        runs.append(
            generate(model, prompt, 20, temperature=0.9, top_k=50, top_p=0.95, generator=g, use_cache=use_cache)
        )
    assert runs[0] == runs[1] == runs[2]
    g = torch.Generator().manual_seed(124)
    assert generate(model, prompt, 10, temperature=0.9, generator=g) != runs[0]


def test_sampling_filters():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5]])
    g = torch.Generator().manual_seed(0)
    assert sample_next(logits, temperature=0).tolist() == [1]
    assert all(sample_next(logits, top_k=1, generator=g).tolist() == [1] for _ in range(20))
    assert all(sample_next(logits, top_p=0.01, generator=g).tolist() == [1] for _ in range(20))
    # top-k 2 never picks outside the two likeliest
    picks = {int(sample_next(logits, top_k=2, generator=g)) for _ in range(200)}
    assert picks == {1, 2}
    # top-p: p(1)=0.61, p(2)=0.22 -> 0.7 keeps tokens 1 and 2 only
    picks = {int(sample_next(logits, top_p=0.7, generator=g)) for _ in range(200)}
    assert picks == {1, 2}


def test_generate_streams_and_stops(model):
    seen = []
    out = generate(model, [50256], 10, temperature=0, on_token=seen.append)
    assert seen == out
    stop = out[2]
    out2 = generate(model, [50256], 10, temperature=0, stop_token=stop)
    assert out2 == out[: out.index(stop) + 1]


def test_stream_decoder_holds_partial_utf8():
    text = "snow \u2603 and \U0001f600 emoji, é"
    tokens = encode(text)
    dec = StreamDecoder()
    pieces = [dec.feed(t) for t in tokens] + [dec.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_generate_under_bf16_autocast(model):
    out = generate(model, encode("Hi"), 6, temperature=0, autocast_dtype=torch.bfloat16)
    assert len(out) == 6 and all(0 <= t < 50257 for t in out)
    assert model.transformer.wte.weight.dtype == torch.float32


def test_cached_forward_equals_full_forward_with_the_modern_levers():
    """Rotary positions and QK-norm through the same attention: the cache's keys are stored rotated."""
    from gpt2train.sample import cached_forward

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=24, pos="rotary", qk_norm=True, mlp="relu2",
                      norm="rmsnorm", untied_head=True, logit_softcap=15.0)  # fmt: skip
    m = build_model(cfg, seed=5).eval()
    idx = torch.randint(0, 50257, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = m(idx)
    cache = KVCache(cfg, 2, "cpu", torch.float32)
    start = 0
    for n in (7, 1, 5, 1, 6):
        last = cached_forward(m, idx[:, start : start + n], cache)
        start += n
        torch.testing.assert_close(last, full[:, start - 1], rtol=1e-4, atol=1e-4)
    assert cache.length == 20


def test_generation_runs_the_compiled_blocks_eagerly(monkeypatch):
    """Under the trainer's compiled blocks, generation runs eagerly: each block reads its own place in the KV cache,
    so their shared graph would recompile once per layer (past 8 layers dynamo gives up with a warning). Nothing is
    compiled while generating, and the tokens are the plain model's."""
    import functools

    from gpt2train.train.accelerate import FastPaths, accelerate

    compiles = []

    def count(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=count))
    cfg = ModelConfig(n_layer=10, n_head=2, n_embd=32, vocab_size=64, max_seq_len=16)
    plain, fast = build_model(cfg, seed=5), build_model(cfg, seed=5)
    accelerate(fast, FastPaths(compile=True))
    torch._dynamo.reset()
    fast(torch.zeros(1, 4, dtype=torch.long))  # the blocks' compiled forward, as a training step calls them
    assert len(compiles) == 1  # one graph for the ten blocks
    want = generate(plain, [1, 2], 6, temperature=0)
    assert generate(fast, [1, 2], 6, temperature=0) == want and len(compiles) == 1
    fast(torch.zeros(1, 4, dtype=torch.long))
    assert len(compiles) == 1  # the compiled blocks serve training again afterwards
