"""Each untrusted input of issue 19 (part 2) through the command line: one line ``error: ...`` on stderr that names
the file, a non-zero exit, nothing trained; or, for a damaged checkpoint with an older one, a warning and a
fallback. The data is made here, by the tests."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gpt2train import rundir
from gpt2train.config import ModelConfig
from gpt2train.formats.shards import HEADER_BYTES, write_shard
from gpt2train.train import checkpoint as ckpt

TINY = ["--n-layer", "2", "--n-head", "4", "--n-embd", "64", "--max-seq-len", "64"]


def _run(cli_main, capsys, argv) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str, *names) -> str:
    """The error line, after checking that stderr is exactly one line starting with ``error:`` naming ``names``."""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for name in names:
        assert str(name) in err, (name, err)
    return err


def _make_shards(d) -> dict:
    """Random GPT-2 token ids in ``d``: a train shard of 6000 tokens and a val shard of 1000."""
    rng = np.random.default_rng(0)
    d.mkdir(exist_ok=True)
    paths = {"train": d / "x_train_000001.bin", "val": d / "x_val_000000.bin"}
    write_shard(paths["train"], rng.integers(0, 50257, 6000))
    write_shard(paths["val"], rng.integers(0, 50257, 1000))
    return paths


@pytest.fixture
def shards(tmp_path) -> dict:
    return _make_shards(tmp_path / "data")


def _train_args(train, val, out=None, steps=2, extra=()):
    args = ["train", "-i", train, "-j", val, *TINY, "-b", "2", "-t", "32", "-d", "64", "-x", steps, "-v", "0",
            "-s", "0", "--device", "cpu", *extra]  # fmt: skip
    return args + (["-o", out] if out is not None else [])


def _set_header_count(path, count: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[8:12] = int(count).to_bytes(4, "little", signed=True)
    path.write_bytes(bytes(raw))


# -- token shards ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_id", [50300, 65535])
@pytest.mark.parametrize("fused", ["0", "1"])
def test_token_id_past_the_vocabulary_is_an_error_before_training(cli_main, capsys, shards, bad_id, fused):
    tokens = np.fromfile(shards["train"], dtype="<u2", offset=HEADER_BYTES).copy()
    tokens[4321] = bad_id
    write_shard(shards["train"], tokens)
    code, out, err = _run(cli_main, capsys, _train_args(shards["train"], shards["val"],
                                                        extra=["--fused-classifier", fused]))  # fmt: skip
    assert code != 0
    line = _one_error_line(err, shards["train"])
    assert f"token id {bad_id} at position 4321" in line and "50257" in line
    assert "step " not in out  # nothing trained


def test_token_id_past_the_vocabulary_in_the_val_shard(cli_main, capsys, shards):
    tokens = np.fromfile(shards["val"], dtype="<u2", offset=HEADER_BYTES).copy()
    tokens[7] = 50257
    write_shard(shards["val"], tokens)
    code, _, err = _run(cli_main, capsys, _train_args(shards["train"], shards["val"]))
    assert code != 0
    _one_error_line(err, shards["val"], "token id 50257")


def test_header_count_smaller_than_the_file_is_an_error(cli_main, capsys, shards):
    _set_header_count(shards["train"], 3000)
    code, _, err = _run(cli_main, capsys, _train_args(shards["train"], shards["val"]))
    assert code != 0
    _one_error_line(err, shards["train"], "header says 3000 tokens")


def test_negative_count_inside_a_glob_with_a_good_shard(cli_main, capsys, shards):
    bad = shards["train"].with_name("x_train_000002.bin")
    shutil.copyfile(shards["train"], bad)
    _set_header_count(bad, -5)
    glob = str(shards["train"].parent / "x_train_*.bin")
    code, _, err = _run(cli_main, capsys, _train_args(glob, shards["val"]))
    assert code != 0
    line = _one_error_line(err, bad, "header says -5 tokens")
    assert str(shards["train"]) + " " not in line  # the good shard is not blamed


def test_data_info_reports_each_bad_shard(cli_main, capsys, shards):
    d = shards["train"].parent
    tokens = np.fromfile(shards["train"], dtype="<u2", offset=HEADER_BYTES).copy()
    tokens[10] = 50300
    write_shard(d / "ids_train_000003.bin", tokens)
    write_shard(d / "small_train_000004.bin", tokens[:100] % 50257)
    _set_header_count(d / "small_train_000004.bin", 50)
    write_shard(d / "neg_train_000005.bin", tokens[:100] % 50257)
    _set_header_count(d / "neg_train_000005.bin", -1)
    code, out, _ = _run(cli_main, capsys, ["data", "info", str(d)])
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(str(d))}
    assert "BAD" in rows[str(d / "ids_train_000003.bin")] and "token id 50300" in rows[str(d / "ids_train_000003.bin")]
    assert "BAD" in rows[str(d / "small_train_000004.bin")] and "header says 50 tokens" in out
    assert "BAD" in rows[str(d / "neg_train_000005.bin")]
    assert rows[str(shards["train"])].rstrip().endswith("ok")
    assert "3 bad" in out


# -- state files and DONE records ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template_run(tmp_path_factory):
    """A run of 4 steps with checkpoints at 2 and 4 (made once; each test works on a copy)."""
    from gpt2train.cli import main

    base = tmp_path_factory.mktemp("template")
    data = _make_shards(base / "data")
    assert main([str(a) for a in _train_args(data["train"], data["val"], base / "run", 4, ["-n", "2"])]) == 0
    return base / "run", data


@pytest.fixture
def run_dir(template_run, tmp_path):
    """A copy of the template run, and the args that resume it to step 6."""
    template, data = template_run
    out = tmp_path / "run"
    shutil.copytree(template, out)
    return out, _train_args(data["train"], data["val"], out, 6, ["-n", "2", "-y", "1"])


def _rewrite_state(out, step: int, change_meta=None, change_tensors=None) -> str:
    """Rewrite the state file of ``step`` with changed meta or tensors, and its DONE record to match the new size
    (so that only the content is wrong)."""
    path = rundir.state_path(str(out), step, 0)
    with safe_open(path, framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    tensors = load_file(path)
    if change_meta:
        change_meta(meta)
    if change_tensors:
        change_tensors(tensors)
    save_file(tensors, path, metadata={"meta": json.dumps(meta)})
    ckpt.write_done(str(out), step, 1, 0, 1)
    return path


def _position(meta):
    return meta["loader"]["position"]


TAMPERED = {
    "missing loader": ({"meta": lambda m: m.pop("loader")}, "no 'loader'"),
    "step -5": ({"meta": lambda m: m.update(step=-5)}, "step -5"),
    "step 10**12": ({"meta": lambda m: m.update(step=10**12)}, "step 1000000000000"),
    "float step": ({"meta": lambda m: m.update(step=4.0)}, "4.0"),
    "shard_pos out of range": ({"meta": lambda m: _position(m).update(shard_pos=7)}, "shard_pos 7"),
    "seq_pos out of range": ({"meta": lambda m: _position(m).update(seq_pos=10**6)}, "seq_pos 1000000"),
    "float seed": ({"meta": lambda m: m["loader"].update(seed=42.5)}, "'seed'"),
    "detector window of strings": ({"meta": lambda m: m["detectors"]["loss"].update(values=["x"])}, "detector"),
    "betas a string": ({"meta": lambda m: m["optimizer"]["param_groups"][0].update(betas="x")}, "betas"),
    "float RNG": ({"tensors": lambda t: t.update({"rng/cpu": t["rng/cpu"].float()})}, "RNG state"),
    "RNG missing": ({"tensors": lambda t: t.pop("rng/cpu")}, "RNG state is missing"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_state_without_an_older_checkpoint_is_an_error(case, run_dir, cli_main, capsys):
    out, resume_args = run_dir
    rundir.delete_checkpoint(str(out), 2)
    change, needle = TAMPERED[case]
    path = _rewrite_state(out, 4, change.get("meta"), change.get("tensors"))
    code, stdout, err = _run(cli_main, capsys, resume_args)
    assert code != 0
    _one_error_line(err, path, needle)
    assert "step    5" not in stdout and "step 5/" not in stdout  # nothing trained past the checkpoint


@pytest.mark.parametrize("case", ["step 10**12", "shard_pos out of range", "missing loader", "float RNG"])
def test_tampered_state_falls_back_to_the_older_checkpoint(case, run_dir, cli_main, capsys):
    out, resume_args = run_dir
    change, needle = TAMPERED[case]
    _rewrite_state(out, 4, change.get("meta"), change.get("tensors"))
    code, stdout, err = _run(cli_main, capsys, resume_args)
    assert code == 0, err
    assert "checkpoint at step 4 is unusable" in stdout and needle in stdout
    assert "resumed from checkpoint at step 2" in stdout
    assert ckpt.read_state_meta(rundir.state_path(str(out), 6, 0))["step"] == 6  # it trained on to step 6


def test_done_record_naming_a_path_outside_the_run_is_an_error(run_dir, cli_main, capsys, tmp_path):
    out, resume_args = run_dir
    rundir.delete_checkpoint(str(out), 2)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x" * 10)
    done = rundir.done_path(str(out), 4)
    record = json.loads(open(done).read())
    record["files"]["../../../outside.bin"] = 10
    open(done, "w").write(json.dumps(record))
    assert rundir.checkpoint_problem(str(out), 4) is not None
    code, _, err = _run(cli_main, capsys, resume_args)
    assert code != 0
    _one_error_line(err, done, "../../../outside.bin")


def test_done_record_with_another_step_is_unusable(run_dir):
    out, _ = run_dir
    done = rundir.done_path(str(out), 4)
    record = json.loads(open(done).read())
    record["step"] = 10**12
    open(done, "w").write(json.dumps(record))
    assert "1000000000000" in rundir.checkpoint_problem(str(out), 4)
    assert rundir.latest_usable_step(str(out), warn=lambda _m: None) == 2


# -- model files -------------------------------------------------------------------------------------------------
@pytest.fixture
def hf_dir(tmp_path, tiny_config):
    """A HuggingFace GPT-2 dir of the tiny model, its weights split over two shards by an index.json."""
    from gpt2train.formats.hf import hf_config_dict, state_dict_to_hf
    from gpt2train.model import build_model

    d = tmp_path / "hf"
    d.mkdir()
    tensors = state_dict_to_hf(build_model(tiny_config, 0).state_dict(), tiny_config)
    names = sorted(tensors)
    half = len(names) // 2
    parts = {"model-00001.safetensors": names[:half], "model-00002.safetensors": names[half:]}
    for file, keys in parts.items():
        save_file({k: tensors[k] for k in keys}, str(d / file))
    index = {"weight_map": {k: file for file, keys in parts.items() for k in keys}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    (d / "config.json").write_text(json.dumps(hf_config_dict(tiny_config)))
    return d


def test_hf_index_naming_a_path_outside_the_dir_is_an_error(hf_dir, shards, cli_main, capsys, tmp_path):
    from gpt2train.formats.load import load_pretrained

    assert load_pretrained(str(hf_dir))[0].n_layer == 2  # the untampered dir loads
    shutil.copyfile(hf_dir / "model-00002.safetensors", tmp_path / "stolen.safetensors")
    index = json.loads((hf_dir / "model.safetensors.index.json").read_text())
    key = next(iter(index["weight_map"]))
    index["weight_map"][key] = "../../../" + str(tmp_path / "stolen.safetensors").lstrip("/")
    (hf_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    code, _, err = _run(cli_main, capsys, ["train", "-e", hf_dir, "-i", shards["train"], "-j", shards["val"],
                                           "-b", "2", "-t", "32", "-x", "1", "--device", "cpu"])  # fmt: skip
    assert code != 0
    _one_error_line(err, hf_dir / "model.safetensors.index.json", "../../..")


def test_hf_config_claiming_2000_layers_is_an_error(hf_dir, cli_main, capsys, shards):
    conf = json.loads((hf_dir / "config.json").read_text())
    for n_layer, needle in ((2000, "n_layer 2000"), (1000, "do not belong"), ("12", "n_layer is '12'")):
        conf["n_layer"] = n_layer
        (hf_dir / "config.json").write_text(json.dumps(conf))
        code, _, err = _run(cli_main, capsys, ["eval", "-e", hf_dir, "-j", shards["val"], "-t", "32"])
        assert code != 0
        _one_error_line(err, hf_dir, needle)


def _modern_file(path, n_layer_claimed):
    from gpt2train.formats.safetensors_model import save_safetensors_model
    from gpt2train.model import build_model

    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, max_seq_len=64, pos="rotary", norm="rmsnorm")
    save_safetensors_model(path, build_model(cfg, 0).state_dict(), cfg)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    meta["config"] = json.dumps({**json.loads(meta["config"]), "n_layer": n_layer_claimed})
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("n_layer", [2000, 1000, 3])
def test_modern_model_whose_config_claims_more_layers_is_an_error_before_allocating(
    n_layer, tmp_path, shards, cli_main, capsys
):
    model = tmp_path / "modern.safetensors"
    _modern_file(model, n_layer)
    code, _, err = _run(cli_main, capsys, ["train", "-e", model, "-i", shards["train"], "-j", shards["val"],
                                           "-b", "2", "-t", "32", "-x", "1", "--device", "cpu"])  # fmt: skip
    assert code != 0
    _one_error_line(err, model)


def test_llmc_model_header_claiming_2000_layers_is_an_error(tmp_path, tiny_config, cli_main, capsys, shards):
    from gpt2train.formats.llmc_model import write_llmc_model
    from gpt2train.model import build_model

    path = tmp_path / "model.bin"
    write_llmc_model(path, build_model(tiny_config, 0).state_dict(), tiny_config)
    raw = bytearray(path.read_bytes())
    raw[16:20] = (2000).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    code, _, err = _run(cli_main, capsys, ["eval", "-e", path, "-j", shards["val"], "-t", "32"])
    assert code != 0
    _one_error_line(err, path, "n_layer 2000")


# -- HellaSwag -----------------------------------------------------------------------------------------------------
GOOD_LINE = {"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 1}
BAD_LINES = {
    "label abc": ({"label": "abc"}, "label 'abc'"),
    "label null": ({"label": None}, "label None"),
    "label 1.7": ({"label": 1.7}, "label 1.7"),
    "label true": ({"label": True}, "label True"),
    "label 4": ({"label": 4}, "label 4"),
    "endings null": ({"endings": None}, "no list of endings"),
    "endings a bare string": ({"endings": "abcd"}, "no list of endings"),
    "an ending null": ({"endings": ["a", None, "c", "d"]}, "4 strings"),
    "ctx null": ({"ctx": None}, "'ctx' is None"),
}


@pytest.fixture
def model_file(tmp_path, tiny_config):
    from gpt2train.formats.llmc_model import write_llmc_model
    from gpt2train.model import build_model

    path = tmp_path / "tiny.bin"
    write_llmc_model(path, build_model(ModelConfig(**tiny_config.to_dict()), 0).state_dict(), tiny_config)
    return path


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_hellaswag_bad_line_is_an_error_naming_the_line(case, tmp_path, model_file, cli_main, capsys):
    change, needle = BAD_LINES[case]
    path = tmp_path / "hs.jsonl"
    path.write_text(json.dumps(GOOD_LINE) + "\n" + json.dumps({**GOOD_LINE, **change}) + "\n")
    code, out, err = _run(cli_main, capsys, ["eval", "-e", model_file, "--hellaswag", path])
    assert code != 0
    _one_error_line(err, f"{path}:2", needle)


def test_hellaswag_good_lines_load(tmp_path):
    from gpt2train.data.hellaswag import load_examples

    path = tmp_path / "hs.jsonl"
    path.write_text(json.dumps(GOOD_LINE) + "\n\n" + json.dumps({**GOOD_LINE, "label": 3}) + "\n")
    assert [ex.label for ex in load_examples(path)] == [1, 3]
