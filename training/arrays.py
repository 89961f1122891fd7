"""In-memory arrays as batches whose order is a function of (seed, epoch), on every backend.

Keras shuffles array inputs with a random state that lives only in the running
process, so a run resumed after a crash sees different batches than the run
it continues. Here epoch `e` is always ordered by `np.random.default_rng((seed,
e))`, as PyTorch's `DistributedSampler.set_epoch` does: store the seed with the
checkpoint and the resumed epochs are the same batches, bit for bit.

    data = EpochShuffledArrays(x, y, batch_size=32, seed=7)
    model.fit(data, epochs=10, callbacks=[data.epoch_callback()])
"""

from __future__ import annotations

import math

import keras
import numpy as np


class EpochShuffledArrays(keras.utils.PyDataset):
    """(x, y[, sample_weight]) arrays -> batches shuffled per epoch from (seed, epoch).

    Args:
        x: an array, or a list/tuple/dict of arrays with the same first dimension.
        y: labels (array, or structure of arrays), or None for unlabelled input.
        sample_weight: per-sample weights, or None.
        batch_size: samples per batch; the last batch may be smaller.
        seed: any non-negative integer; the order of epoch `e` depends on (seed, e) only.
        shuffle: False keeps the arrays' order every epoch.
        **kwargs: `keras.utils.PyDataset`'s (`workers`, `use_multiprocessing`, ...).
    """

    def __init__(self, x, y=None, sample_weight=None, *, batch_size=32, seed=0, shuffle=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer. Received: seed={seed!r}")
        if y is None and sample_weight is not None:
            raise ValueError("`sample_weight` needs `y`.")
        self.x, self.y, self.sample_weight = x, y, sample_weight
        sizes = {len(a) for part in (x, y, sample_weight) if part is not None for a in keras.tree.flatten(part)}
        if len(sizes) != 1:
            raise ValueError(f"x, y and sample_weight must have the same number of samples. Received sizes {sorted(sizes)}")
        self.num_samples = sizes.pop()
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Orders the samples for `epoch` (call before the epoch's first batch)."""
        self.epoch = int(epoch)
        if self.shuffle:
            self.order = np.random.default_rng((self.seed, self.epoch)).permutation(self.num_samples)
        else:
            self.order = np.arange(self.num_samples)

    def epoch_callback(self):
        """A Keras callback that calls `set_epoch` at the start of every epoch."""
        return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: self.set_epoch(epoch))

    def __len__(self):
        return math.ceil(self.num_samples / self.batch_size)

    def rows(self, index):
        """The sample indices of batch `index` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def __getitem__(self, index):
        rows = self.rows(index)
        batch = tuple(keras.tree.map_structure(lambda a: np.asarray(a)[rows], part)
                      for part in (self.x, self.y, self.sample_weight) if part is not None)
        return batch if len(batch) > 1 else batch[0]
