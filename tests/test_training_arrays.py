"""EpochShuffledArrays: the batch order is a function of (seed, epoch) and nothing else."""

import numpy as np
import pytest

from training.arrays import EpochShuffledArrays


def _epoch_rows(data, epoch):
    data.set_epoch(epoch)
    return np.concatenate([data[i][0][:, 0] for i in range(len(data))])


def test_every_sample_once_per_epoch_in_an_order_set_by_seed_and_epoch():
    x = np.arange(103, dtype="float32")[:, None]
    data = EpochShuffledArrays(x, np.arange(103), batch_size=10, seed=5)
    assert len(data) == 11 and len(data[10][0]) == 3
    orders = [_epoch_rows(data, e) for e in range(3)]
    for order in orders:
        assert sorted(order) == list(range(103))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    # a fresh object (another process, after a resume) reproduces any epoch directly
    fresh = EpochShuffledArrays(x, np.arange(103), batch_size=10, seed=5)
    np.testing.assert_array_equal(_epoch_rows(fresh, 2), orders[2])
    other_seed = EpochShuffledArrays(x, np.arange(103), batch_size=10, seed=6)
    assert not np.array_equal(_epoch_rows(other_seed, 2), orders[2])


def test_labels_and_weights_follow_their_samples():
    x = {"a": np.arange(20)[:, None] * 1.0, "b": np.arange(20)[:, None] * 2.0}
    y, w = np.arange(20) + 100, np.arange(20) / 10
    data = EpochShuffledArrays(x, y, w, batch_size=8, seed=1)
    bx, by, bw = data[1]
    np.testing.assert_array_equal(by - 100, bx["a"][:, 0])
    np.testing.assert_array_equal(bx["b"][:, 0], 2 * bx["a"][:, 0])
    np.testing.assert_allclose(bw, bx["a"][:, 0] / 10)


def test_no_shuffle_keeps_order_and_bad_arguments_raise():
    x = np.arange(7)[:, None]
    data = EpochShuffledArrays(x, np.arange(7), batch_size=3, shuffle=False)
    np.testing.assert_array_equal(_epoch_rows(data, 4), np.arange(7))
    with pytest.raises(IndexError):
        data[3]
    with pytest.raises(ValueError, match="same number of samples"):
        EpochShuffledArrays(x, np.arange(6))
    with pytest.raises(ValueError, match="batch_size"):
        EpochShuffledArrays(x, np.arange(7), batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        EpochShuffledArrays(x, np.arange(7), seed=-1)
    with pytest.raises(ValueError, match="needs `y`"):
        EpochShuffledArrays(x, None, np.ones(7))
