"""A fuzzer over every reader of an untrusted file: token shards, llm.c model files, state files and DONE records,
HuggingFace directories (config.json, safetensors, index.json), modern model files, HellaSwag jsonl, config.json.

Each example takes a valid file, mutates it (truncation, byte flips, header fields, JSON fields of another type or
value, path-traversal names) and reads it back: the reader must load it correctly or raise one UserError (one
line). Any other exception fails the test; so does an allocation far beyond the file's size (the address space is
capped at a few GiB over what the process holds, so a reader that trusts a size claim fails with MemoryError);
examples are small, so nothing can hang. The outcomes are counted per reader; ``FUZZ_COUNTS_OUT=FILE`` writes the
table (docs/reliability.md quotes it): ``FUZZ_COUNTS_OUT=counts.md python -m pytest -q tests/test_fuzz_readers.py``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from gpt2train.config import ModelConfig, model_config_from_dict
from gpt2train.errors import UserError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
TINY = ModelConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=50257, max_seq_len=4, padded_vocab_size=50304)
SMALL_VOCAB = ModelConfig(n_layer=1, n_head=1, n_embd=8, vocab_size=16, max_seq_len=4)
COUNTS: dict[str, Counter] = defaultdict(Counter)  # reader -> {mutation kind / outcome: n}
HEADROOM = 4 << 30  # bytes of address space a reader may take on top of what the process holds


@pytest.fixture(scope="module", autouse=True)
def capped_memory_and_counts():
    """Cap the address space for this module's readers; afterwards print (and optionally write) the counts."""
    with open("/proc/self/status") as f:
        vm_kb = int(next(line for line in f if line.startswith("VmSize:")).split()[1])
    old = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm_kb * 1024 + HEADROOM
    if old[1] == resource.RLIM_INFINITY or cap < old[1]:
        resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)
    table = counts_table()
    print("\n" + table)
    if os.environ.get("FUZZ_COUNTS_OUT"):
        Path(os.environ["FUZZ_COUNTS_OUT"]).write_text(table + "\n")


def counts_table() -> str:
    lines = ["| reader | mutations tried | loaded correctly | clean one-line error | mutations by kind |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    for reader, c in sorted(COUNTS.items()):
        kinds = ", ".join(f"{k[5:]} {n}" for k, n in sorted(c.items()) if k.startswith("kind:"))
        lines.append(f"| {reader} | {c['tried']} | {c['loaded']} | {c['error']} | {kinds} |")
    return "\n".join(lines)


def outcome(reader: str, kind: str, read, check_loaded=None) -> None:
    """Run ``read()`` on a file mutated by ``kind``: a result (checked by ``check_loaded``) or one UserError of one
    line; count which."""
    COUNTS[reader]["tried"] += 1
    COUNTS[reader]["kind:" + kind] += 1
    try:
        result = read()
    except UserError as e:
        assert "\n" not in str(e).strip(), str(e)
        COUNTS[reader]["error"] += 1
        return
    if check_loaded is not None:
        check_loaded(result)
    COUNTS[reader]["loaded"] += 1


# -- mutations --------------------------------------------------------------------------------------------------
JSON_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6) | st.sampled_from([-1, 0, 1, 2**31, 10**12, -(2**63), "../../../etc/passwd", "/abs", ".."])
)  # fmt: skip
JSON_VALUES = st.recursive(JSON_LEAVES, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                            max_size=3), max_leaves=6)  # fmt: skip


def _json_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, (*prefix, i))


def mutate_json(data, draw):
    """A copy of ``data`` with one field replaced by another value (of any type), deleted, or a key added."""
    data = json.loads(json.dumps(data))
    paths = list(_json_paths(data))
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path:
        return draw(JSON_VALUES) if action == "replace" else data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=4))] = draw(JSON_VALUES)
    else:
        parent[last] = draw(JSON_VALUES)
    return data


def mutate_bytes(raw: bytes, draw, int_fields: int = 0) -> tuple[bytes, str]:
    """(mutated bytes, kind): truncated, bytes flipped, appended to, or one of the first ``int_fields`` int32
    header fields set to another value."""
    kinds = ["truncate", "flip", "append"] + (["header"] if int_fields else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate":
        return raw[: draw(st.integers(0, len(raw) - 1))], kind
    if kind == "append":
        return raw + draw(st.binary(min_size=1, max_size=64)), kind
    if kind == "header":
        i = draw(st.integers(0, int_fields - 1))
        value = draw(st.integers(-(2**31), 2**31 - 1) | st.sampled_from([-1, 0, 1, 2, 2000, 50257, 65535, 2**31 - 1]))
        return raw[: 4 * i] + int(value).to_bytes(4, "little", signed=True) + raw[4 * i + 4 :], kind
    out = bytearray(raw)
    # flips anywhere, and near the start (headers) more often
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, min(len(raw) - 1, draw(st.sampled_from([64, 1024, len(raw) - 1])))))
        out[pos] = draw(st.integers(0, 255))
    return bytes(out), kind


def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="fuzz_"))


# -- token shards ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shard_bytes(tmp_path_factory) -> bytes:
    from gpt2train.formats.shards import write_shard

    path = tmp_path_factory.mktemp("shard") / "s.bin"
    write_shard(path, np.random.default_rng(0).integers(0, 50257, 300))
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_fuzz_token_shards(shard_bytes, data):
    from gpt2train.data.info import shard_report
    from gpt2train.data.loader import ShardSet

    raw, kind = mutate_bytes(shard_bytes, data.draw, int_fields=3)
    loaded_before = COUNTS["token shard"]["loaded"]
    d = _workdir()
    try:
        path = d / "x_train_000001.bin"
        path.write_bytes(raw)

        def loaded(shards):
            (info,) = shards.infos
            assert 1024 + 2 * info.num_tokens == len(raw)
            assert int(shards.read(0, 0, info.num_tokens).max(initial=0)) < 50257

        outcome("token shard", kind, lambda: ShardSet(str(path), "-i", 50257), loaded)
        report = shard_report(str(d))  # `data info` agrees with the loader
        assert report["shards"][0]["ok"] == (COUNTS["token shard"]["loaded"] > loaded_before)
    finally:
        shutil.rmtree(d)


# -- llm.c model files -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llmc_bytes(tmp_path_factory) -> bytes:
    from gpt2train.formats.llmc_model import write_llmc_model
    from gpt2train.model import build_model

    path = tmp_path_factory.mktemp("llmc") / "m.bin"
    write_llmc_model(path, build_model(SMALL_VOCAB, 0).state_dict(), SMALL_VOCAB, "bf16")
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_fuzz_llmc_model_files(llmc_bytes, data):
    from gpt2train.formats.llmc_model import read_llmc_model

    raw, kind = mutate_bytes(llmc_bytes, data.draw, int_fields=8)
    d = _workdir()
    try:
        path = d / "model.bin"
        path.write_bytes(raw)

        def loaded(result):
            cfg, sd = result
            assert sum(t.numel() for t in sd.values()) <= len(raw)  # bf16: 2 bytes a parameter, at least

        outcome("llm.c model .bin", kind, lambda: read_llmc_model(path), loaded)
    finally:
        shutil.rmtree(d)


# -- state files and DONE records -------------------------------------------------------------------------------
STEP = 4


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory) -> Path:
    """A complete checkpoint at step 4 as the trainer writes it (a tiny model, an AdamW state, a loader state)."""
    from gpt2train import rundir
    from gpt2train.data.loader import TrainLoader
    from gpt2train.formats.shards import write_shard
    from gpt2train.model import build_model
    from gpt2train.train import checkpoint as ckpt
    from gpt2train.train.guards import OutlierDetector

    d = tmp_path_factory.mktemp("ckpt")
    write_shard(d / "train.bin", np.arange(200) % 16)
    model = build_model(SMALL_VOCAB, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(p.square().sum() for p in model.parameters()).backward()
    opt.step()
    loader = TrainLoader(str(d / "train.bin"), 1, 4, 8, vocab_size=16)
    loader.next_step()
    det = OutlierDetector()
    det.update(1.0)
    meta = {"step": STEP, "loader": loader.state_dict(), "detectors": {"loss": det.state_dict(),
            "grad": det.state_dict()}, "world_size": 1, "zero_stage": 0, "config": {"bf16_params": 0},
            "model_config": SMALL_VOCAB.to_dict(), "determinism": {"enabled": False}}  # fmt: skip
    ckpt.save_model(rundir.model_path(str(d), STEP, ".bin"), model.state_dict(), SMALL_VOCAB, "fp32")
    ckpt.save_state(rundir.state_path(str(d), STEP, 0), opt, meta)
    ckpt.write_done(str(d), STEP, 1, 0, 1)
    return d


def _read_checkpoint(out: str):
    """What resume reads, in its order: the DONE record and files, the state file, then each part restored."""
    from gpt2train import rundir
    from gpt2train.data.loader import TrainLoader
    from gpt2train.model import build_model
    from gpt2train.train import checkpoint as ckpt
    from gpt2train.train.guards import OutlierDetector

    problem = rundir.checkpoint_problem(out, STEP)
    if problem is not None:
        raise UserError(problem)
    meta, tensors = ckpt.load_state(ckpt.state_file_for(out, STEP, 0, 1, 0))
    loader = TrainLoader(os.path.join(out, "train.bin"), 1, 4, 8, vocab_size=16)
    loader.load_state_dict(meta["loader"])
    loader.next_step()
    for name in ("loss", "grad"):
        OutlierDetector().load_state_dict(meta["detectors"][name])
    torch.Generator().set_state(tensors["rng/cpu"])
    model = build_model(SMALL_VOCAB, 0)
    ckpt.restore_params(model, tensors, "state")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    try:
        ckpt.restore_optimizer(optimizer, meta, tensors)
    except (ValueError, KeyError) as e:  # the trainer's one line: the state does not fit this optimizer
        raise UserError(f"optimizer state does not fit: {e}") from None
    sum(p.square().sum() for p in model.parameters()).backward()
    optimizer.step()  # the restored moments are usable
    return meta


@FUZZ
@given(data=st.data())
def test_fuzz_state_files_and_done_records(checkpoint_dir, data):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from gpt2train import rundir
    from gpt2train.train import checkpoint as ckpt

    d = _workdir()
    try:
        out = d / "run"
        shutil.copytree(checkpoint_dir, out)
        state, done = Path(rundir.state_path(str(out), STEP, 0)), Path(rundir.done_path(str(out), STEP))
        target = data.draw(st.sampled_from(["meta", "meta", "state bytes", "done json", "done bytes", "done name"]))
        if target == "meta":  # a field of another type or value; the DONE record rewritten to match the new size
            with safe_open(str(state), framework="pt") as f:
                meta = json.loads(f.metadata()["meta"])
            save_file(load_file(str(state)), str(state), metadata={"meta": json.dumps(mutate_json(meta, data.draw))})
            ckpt.write_done(str(out), STEP, 1, 0, 1)
        elif target == "state bytes":
            raw, _ = mutate_bytes(state.read_bytes(), data.draw)
            state.write_bytes(raw)
            if data.draw(st.booleans()):
                ckpt.write_done(str(out), STEP, 1, 0, 1)
        elif target == "done json":
            done.write_text(json.dumps(mutate_json(json.loads(done.read_text()), data.draw)))
        elif target == "done bytes":
            done.write_bytes(mutate_bytes(done.read_bytes(), data.draw)[0])
        else:  # a name that leads out of the run dir, or to another file
            record = json.loads(done.read_text())
            name = data.draw(st.sampled_from(["../../../etc/passwd", "/etc/passwd", "..", "sub/x", "train.bin",
                                              "model_00000004.bin/../train.bin", "state_00000004_00000.safetensors"]))  # fmt: skip
            record["files"][name] = 10
            done.write_text(json.dumps(record))
        outcome("state file + DONE record", target, lambda: _read_checkpoint(str(out)),
                lambda meta: meta["step"] == STEP)  # fmt: skip
    finally:
        shutil.rmtree(d)


# -- HuggingFace directories -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_template(tmp_path_factory) -> Path:
    from gpt2train.formats.hf import hf_config_dict, state_dict_to_hf
    from gpt2train.model import build_model

    d = tmp_path_factory.mktemp("hf")
    tensors = state_dict_to_hf(build_model(TINY, 0).state_dict(), TINY)
    names = sorted(tensors)
    parts = {"model-1.safetensors": names[: len(names) // 2], "model-2.safetensors": names[len(names) // 2 :]}
    for file, keys in parts.items():
        save_file({k: tensors[k] for k in keys}, str(d / file))
    index = {"metadata": {}, "weight_map": {k: f for f, keys in parts.items() for k in keys}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    (d / "config.json").write_text(json.dumps(hf_config_dict(TINY)))
    return d


@FUZZ
@given(data=st.data())
def test_fuzz_hf_dirs(hf_template, data):
    from gpt2train.formats.hf import read_hf_dir

    d = _workdir()
    try:
        hf = d / "hf"
        shutil.copytree(hf_template, hf)
        target = data.draw(st.sampled_from(["config.json", "index.json", "index name", "weights bytes"]))
        if target == "config.json":
            conf = json.loads((hf / "config.json").read_text())
            (hf / "config.json").write_text(json.dumps(mutate_json(conf, data.draw)))
        elif target == "index.json":
            index = json.loads((hf / "model.safetensors.index.json").read_text())
            (hf / "model.safetensors.index.json").write_text(json.dumps(mutate_json(index, data.draw)))
        elif target == "index name":
            index = json.loads((hf / "model.safetensors.index.json").read_text())
            key = data.draw(st.sampled_from(sorted(index["weight_map"])))
            shutil.copyfile(hf / "model-1.safetensors", d / "outside.safetensors")
            index["weight_map"][key] = data.draw(st.sampled_from(["../outside.safetensors", "/etc/passwd", "..",
                                                                  str(d / "outside.safetensors"), "sub/x"]))  # fmt: skip
            (hf / "model.safetensors.index.json").write_text(json.dumps(index))
        else:
            f = hf / data.draw(st.sampled_from(["model-1.safetensors", "model-2.safetensors"]))
            f.write_bytes(mutate_bytes(f.read_bytes(), data.draw)[0])

        def loaded(result):
            cfg, sd = result
            assert sd["transformer.wte.weight"].shape == (cfg.padded_vocab_size, cfg.n_embd)

        outcome("HuggingFace dir", target, lambda: read_hf_dir(hf), loaded)
    finally:
        shutil.rmtree(d)


# -- modern model files (safetensors with the config in the metadata) ----------------------------------------------
@pytest.fixture(scope="module")
def modern_template(tmp_path_factory) -> Path:
    from gpt2train.formats.safetensors_model import save_safetensors_model
    from gpt2train.model import build_model

    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=16, max_seq_len=4, pos="rotary", norm="rmsnorm")
    path = tmp_path_factory.mktemp("modern") / "model.safetensors"
    save_safetensors_model(path, build_model(cfg, 0).state_dict(), cfg)
    return path


@FUZZ
@given(data=st.data())
def test_fuzz_modern_model_files(modern_template, data):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from gpt2train.formats.safetensors_model import read_safetensors_model

    d = _workdir()
    try:
        path = d / "model.safetensors"
        if data.draw(st.booleans()):  # the config in the metadata
            with safe_open(str(modern_template), framework="pt") as f:
                meta = f.metadata()
            meta["config"] = json.dumps(mutate_json(json.loads(meta["config"]), data.draw))
            save_file(load_file(str(modern_template)), str(path), metadata=meta)
            kind = "config json"
        else:
            raw, kind = mutate_bytes(modern_template.read_bytes(), data.draw)
            path.write_bytes(raw)
        outcome("modern model .safetensors", kind, lambda: read_safetensors_model(path))
    finally:
        shutil.rmtree(d)


# -- HellaSwag jsonl ------------------------------------------------------------------------------------------------
HS_LINES = [{"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 1},
            {"ctx": "A dog", "ctx_a": "A", "endings": ["e", "f", "g", "h"], "label": 0}]  # fmt: skip


@FUZZ
@given(data=st.data())
def test_fuzz_hellaswag_jsonl(data):
    from gpt2train.data.hellaswag import load_examples

    d = _workdir()
    try:
        path = d / "hs.jsonl"
        text = "".join(json.dumps(x) + "\n" for x in HS_LINES).encode()
        kind = "json field"
        if data.draw(st.booleans()):
            line = data.draw(st.integers(0, len(HS_LINES) - 1))
            lines = list(HS_LINES)
            lines[line] = mutate_json(lines[line], data.draw)
            text = "".join(json.dumps(x) + "\n" for x in lines).encode()
        else:
            text, kind = mutate_bytes(text, data.draw)
        path.write_bytes(text)

        def loaded(examples):
            for ex in examples:
                assert isinstance(ex.ctx, str) and len(ex.endings) == 4 and ex.label in range(4)
                assert type(ex.label) is int and all(isinstance(e, str) for e in ex.endings)

        outcome("HellaSwag jsonl", kind, lambda: load_examples(path), loaded)
    finally:
        shutil.rmtree(d)


# -- config.json (the model config validator) ----------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_fuzz_model_config(data):
    import dataclasses

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=64)
    # the shape alone (a classic config.json) or every field with the levers (a modern one)
    fields = mutate_json(data.draw(st.sampled_from([cfg.to_dict(), dataclasses.asdict(cfg)])), data.draw)
    cls = ModelConfig

    def loaded(cfg):
        assert 1 <= cfg.n_layer <= 1024 and cfg.n_embd % cfg.n_head == 0
        assert cfg.vocab_size <= cfg.padded_vocab_size

    outcome("config.json fields", "json field", lambda: model_config_from_dict(cls, fields, "config.json"), loaded)
