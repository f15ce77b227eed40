"""Bad outputs and flags end in one `error:` line naming the path or flag, never a traceback, and `train` leaves no
empty run directory behind when it fails before its first step. Tests run as root, where chmod stops no write:
an unwritable path is one under a regular file, or a read-only file system simulated on os.access / open."""

import builtins
import errno
import os

import pytest

from gpt2train.formats.llmc_model import write_llmc_model
from gpt2train.model import GPT
from tests.helpers import run_cli, tiny_train_args


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def model_file(tmp_path, tiny_config):
    path = tmp_path / "model.bin"
    write_llmc_model(path, GPT(tiny_config).state_dict(), tiny_config)
    return path


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "somefile"
    path.write_text("not a directory")
    return path


def _read_only(monkeypatch, root, at_check: bool) -> None:
    """Make ``root`` behave as a read-only file system: at the up-front check (os.access) or only when written."""
    root = str(root)
    inside = lambda p: os.path.abspath(os.fsdecode(p)).startswith(root)  # noqa: E731
    if at_check:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if inside(p) else real_access(p, mode, **kw))
        return
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and inside(file) and any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)


@pytest.mark.parametrize("to", ["llmc", "hf"])
def test_export_under_a_file_is_one_line(model_file, a_file, to, capsys):
    out = a_file / "out"
    code, _, err = run_cli(["export", "-e", model_file, "--to", to, "-o", out], capsys)
    assert code == 1
    line = _one_error_line(err)
    assert f"-o {out}" in line and "is a file, not a directory" in line


def test_export_to_a_read_only_place_is_one_line(model_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "ro").mkdir()
    out = tmp_path / "ro" / "model.bin"
    _read_only(monkeypatch, tmp_path / "ro", at_check=True)
    code, _, err = run_cli(["export", "-e", model_file, "--to", "llmc", "-o", out], capsys)
    assert code == 1 and "not writable" in _one_error_line(err) and str(out) in err


def test_export_write_failing_midway_names_the_file(model_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "ro").mkdir()
    out = tmp_path / "ro" / "model.bin"
    _read_only(monkeypatch, tmp_path / "ro", at_check=False)
    code, _, err = run_cli(["export", "-e", model_file, "--to", "llmc", "-o", out], capsys)
    line = _one_error_line(err)
    assert code == 1 and f"-o {out}: cannot write" in line and "Read-only file system" in line


def test_export_llmc_to_a_directory_is_refused(model_file, tmp_path, capsys):
    code, _, err = run_cli(["export", "-e", model_file, "--to", "llmc", "-o", tmp_path], capsys)
    assert code == 1 and "is a directory" in _one_error_line(err)


def test_prepare_under_a_file_or_read_only_is_one_line(a_file, tmp_path, monkeypatch, capsys):
    text = tmp_path / "input.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 50)
    code, _, err = run_cli(["prepare", "tinyshakespeare", "--source", text, "-o", a_file / "out"], capsys)
    assert code == 1 and "is a file, not a directory" in _one_error_line(err)
    code, _, err = run_cli(["prepare", "text", "--input", text, "-o", a_file / "x", "--workers", "1",
                            "--no-progress"], capsys)  # fmt: skip
    assert code == 1 and f"-o {a_file / 'x'}" in _one_error_line(err)
    _read_only(monkeypatch, tmp_path / "ro", at_check=False)
    code, _, err = run_cli(["prepare", "text", "--input", text, "-o", tmp_path / "ro", "--workers", "1",
                            "--no-progress"], capsys)  # fmt: skip
    line = _one_error_line(err)
    assert code == 1 and "cannot write" in line and str(tmp_path / "ro") in line


@pytest.mark.parametrize(
    "change",
    [
        ("-i", "no_such_shards_*.bin"),  # bad glob
        ("-e", "no_such_model.bin"),  # bad -e
        ("-d", "100"),  # -d not a multiple of B*T
    ],
)
def test_train_failing_before_its_first_step_leaves_no_run_dir(tmp_path, text_shards, change, capsys):
    run = tmp_path / "new" / "run"
    args = tiny_train_args(text_shards, run, 2)
    flag, value = change
    if flag == "-e":
        args += ["-e", str(tmp_path / value)]
    else:
        args[args.index(flag) + 1] = str(tmp_path / value) if flag == "-i" else value
    code, _, err = run_cli(args, capsys)
    assert code == 1
    _one_error_line(err)
    assert not (tmp_path / "new").exists()  # both folders this run made are gone


def test_train_failure_keeps_a_run_dir_that_existed(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    run.mkdir()
    args = tiny_train_args(text_shards, run, 2)
    args[args.index("-i") + 1] = str(tmp_path / "nothing_*.bin")
    code, _, err = run_cli(args, capsys)
    assert code == 1 and run.is_dir() and os.listdir(run) == []


def test_train_output_under_a_file_is_one_line(tmp_path, text_shards, a_file, capsys):
    code, _, err = run_cli(tiny_train_args(text_shards, a_file / "run", 2), capsys)
    assert code == 1 and f"-o {a_file / 'run'}" in _one_error_line(err)


@pytest.mark.parametrize("batch", ["0", "-3"])
def test_batch_size_zero_is_refused(tmp_path, text_shards, batch, capsys):
    args = tiny_train_args(text_shards, tmp_path / "run", 2)
    args[args.index("-b") + 1] = batch
    code, _, err = run_cli(args, capsys)
    line = _one_error_line(err)
    assert code == 1 and line.startswith(f"error: -b {batch}: use -b auto") and not (tmp_path / "run").exists()


def test_plot_under_a_file_is_one_line(tmp_path, a_file, capsys):
    log = tmp_path / "main.log"
    log.write_text("s:0 trl:10.9 lr:0.0006 norm:1.0\ns:1 trl:10.5 lr:0.0006 norm:1.0\n")
    code, _, err = run_cli(["plot", log, "-o", a_file / "loss.png"], capsys)
    assert code == 1 and f"-o {a_file / 'loss.png'}" in _one_error_line(err)
