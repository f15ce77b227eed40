"""The train and val loaders: order, rank slices, shuffling, position restore, bad shards."""

import numpy as np
import pytest

from gpt2train.data.loader import ShardUnreadable, TrainLoader, ValLoader
from gpt2train.errors import UserError
from gpt2train.formats.shards import read_shard_header, write_shard


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, n in enumerate([1000, 700, 1300]):
        p = tmp_path / f"data_train_{i:06d}.bin"
        write_shard(p, rng.integers(0, 50000, n))
        paths.append(p)
    return tmp_path, paths


def _seqs(loader, steps):
    out = []
    for _ in range(steps):
        for x, y in loader.next_step():
            assert np.array_equal(x[:, 1:].numpy(), y[:, :-1].numpy())
            out.extend(tuple(row) for row in np.concatenate([x.numpy(), y[:, -1:].numpy()], axis=1))
    return out


def test_unshuffled_tokens_equal_shard_in_order(shards):
    d, paths = shards
    loader = TrainLoader(str(d / "*.bin"), 2, 16, 64, shuffle=False)
    tokens = np.fromfile(paths[0], dtype="<u2", offset=1024)
    got = _seqs(loader, 3)
    for k, seq in enumerate(got):
        assert np.array_equal(np.array(seq), tokens[k * 16 : k * 16 + 17])


def test_ranks_take_disjoint_slices_of_the_same_global_batch(shards):
    d, _ = shards
    single = _seqs(TrainLoader(str(d / "*.bin"), 2, 16, 128, 0, 1, seed=3), 4)
    r0 = TrainLoader(str(d / "*.bin"), 2, 16, 128, 0, 2, seed=3)
    r1 = TrainLoader(str(d / "*.bin"), 2, 16, 128, 1, 2, seed=3)
    merged = []
    for _ in range(4):
        a, b = _seqs(r0, 1), _seqs(r1, 1)
        assert not set(a) & set(b)
        merged.extend(a + b)
    assert merged == single


def test_permutation_is_deterministic_per_seed(shards):
    d, _ = shards
    a = _seqs(TrainLoader(str(d / "*.bin"), 2, 16, 64, seed=1), 5)
    b = _seqs(TrainLoader(str(d / "*.bin"), 2, 16, 64, seed=1), 5)
    c = _seqs(TrainLoader(str(d / "*.bin"), 2, 16, 64, seed=2), 5)
    assert a == b and a != c


def test_position_restore_is_exact_across_epochs(shards):
    d, _ = shards
    ends = []
    loader = TrainLoader(str(d / "*.bin"), 4, 16, 128, seed=5, on_epoch_end=ends.append)
    _seqs(loader, 7)
    state = loader.state_dict()
    expected = _seqs(loader, 30)  # crosses an epoch boundary (186 seqs per epoch)
    assert ends == [0, 1] or ends == [0]
    other = TrainLoader(str(d / "*.bin"), 4, 16, 128, seed=5)
    other.load_state_dict(state)
    assert _seqs(other, 30) == expected


def test_val_loader_reads_llmc_batches_in_order(shards):
    d, paths = shards
    warnings = []
    val = ValLoader(str(paths[0]), 2, 16, max_batches=100, warn=warnings.append)
    tokens = np.fromfile(paths[0], dtype="<u2", offset=1024)
    assert len(val) == (1000 - 1) // 32 and warnings and "-m 100" in warnings[0]
    for k, (x, y) in enumerate(val.batches()):
        assert np.array_equal(x.numpy().ravel(), tokens[k * 32 : k * 32 + 32])
        assert np.array_equal(y.numpy().ravel(), tokens[k * 32 + 1 : k * 32 + 33])
    both = list(val.batches(0, 2)) + list(val.batches(1, 2))
    assert len(both) == len(val)


def test_bad_shards_name_the_file(tmp_path):
    good = tmp_path / "good.bin"
    write_shard(good, np.arange(100))
    raw = good.read_bytes()
    bad_magic = tmp_path / "magic.bin"
    bad_magic.write_bytes(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(UserError, match="magic.bin.*magic"):
        read_shard_header(bad_magic)
    bad_version = tmp_path / "version.bin"
    bad_version.write_bytes(raw[:4] + (7).to_bytes(4, "little") + raw[8:])
    with pytest.raises(UserError, match="version.bin.*version 7"):
        read_shard_header(bad_version)
    short = tmp_path / "short.bin"
    short.write_bytes(raw[:-10])
    with pytest.raises(UserError, match="short.bin.*truncated"):
        read_shard_header(short)
    with pytest.raises(UserError, match="-i.*nothing_here.*matches no files"):
        TrainLoader(str(tmp_path / "nothing_here*.bin"), 1, 8, 8)
    with pytest.raises(UserError, match="fewer than one step"):
        TrainLoader(str(good), 4, 32, 128)
    with pytest.raises(UserError, match="-d 100 is not divisible"):
        TrainLoader(str(good), 1, 8, 100)


def test_prefetcher_state_is_the_position_after_the_last_step_handed_out(shards):
    from gpt2train.data.prefetch import Prefetcher

    d, _ = shards
    plain = TrainLoader(str(d / "*.bin"), 2, 16, 64, seed=9)
    expected = [plain.next_step() for _ in range(6)]
    pre = Prefetcher(TrainLoader(str(d / "*.bin"), 2, 16, 64, seed=9), pin_memory=False)
    got = [pre.next_step() for _ in range(3)]
    state = pre.state_dict()
    pre.close()
    again = Prefetcher(TrainLoader(str(d / "*.bin"), 2, 16, 64, seed=9), pin_memory=False)
    again.load_state_dict(state)
    got += [again.next_step() for _ in range(3)]
    again.close()
    for a, b in zip(expected, got):
        assert all(np.array_equal(x1.numpy(), x2.numpy()) for (x1, _), (x2, _) in zip(a, b))


def test_a_shard_truncated_mid_run_raises_shard_unreadable(tmp_path):
    """Reads are positioned reads, not a memory map: a shard cut short after start-up gives an error that
    names it (the trainer checkpoints and stops) instead of a bus error."""
    paths = [tmp_path / f"t_train_{i:06d}.bin" for i in range(2)]
    for p in paths:
        write_shard(p, np.arange(1000) % 500)
    loader = TrainLoader(str(tmp_path / "t_train_*.bin"), 2, 16, 64, shuffle=False)
    x, y = loader.next_step()[0]
    assert x[0, :4].tolist() == [0, 1, 2, 3] and y[0, :4].tolist() == [1, 2, 3, 4]
    with open(paths[1], "r+b") as f:
        f.truncate(1024 + 200)  # header + 100 tokens left of 1000
    with pytest.raises(ShardUnreadable, match=r"t_train_000001\.bin became unreadable: it is now shorter"):
        for _ in range(40):  # shard 0 holds 62 sequences of 16: shard 1 is reached within 31 steps
            loader.next_step()
