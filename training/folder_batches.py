"""Image-folder batches without TensorFlow: a `keras.utils.PyDataset` for the JAX and torch backends.

`image_folder_dataset` returns these in place of tf.data pipelines when Keras
runs on JAX or torch. Worker threads decode and resize with Pillow (it releases
the GIL while doing both), so `workers=os.cpu_count()` uses every core without
the cost of processes. Epoch `e` is ordered and cropped from (seed, e) alone,
like the tf.data pipelines, so a resumed run sees the batches of an
uninterrupted one (`fit` sets the epoch through `epoch_seed`).

The transforms are those of `training.augment`, run through their Pillow side
(`transform.pil`): the same crop rule, resampler and normalisation; random boxes
are drawn by numpy instead of TensorFlow's stateless generator, so the two
pipelines crop alike in distribution, not box for box.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np


def load_rgb(path):
    """uint8 (H, W, 3) RGB pixels of an image file (grey, palette, RGBA and CMYK converted)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


class FolderBatches(keras.utils.PyDataset):
    """(path, label, ...) entries -> batches of (float32 images, int32 labels), decoded by worker threads.

    Args:
        files: (path, label[, decoder, size]) entries, as `check_images` returns them.
        batch_size: images per batch; the last batch may be smaller.
        transform: a `training.augment` transform (its `.pil` side is used), or a callable
            (uint8 (H, W, 3) array, numpy Generator) -> float32 array of a fixed size.
        shuffle: a new order every epoch.
        seed: the order and crops of epoch `e` depend on (seed, e) only.
        workers: decoding threads (default: every core).
    """

    def __init__(self, files, *, batch_size, transform, shuffle, seed=0, workers=None):
        super().__init__(workers=workers or os.cpu_count() or 1, use_multiprocessing=False)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
        self.paths = [f[0] for f in files]
        self.labels = np.asarray([f[1] for f in files], "int32")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, int(seed)
        self.transform = getattr(transform, "pil", transform)
        self.epoch_seed = self  # what `fit` looks for to set the epoch before each one
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Orders (and seeds the crops of) `epoch`; call before its first batch."""
        self.epoch = int(epoch)
        rng = np.random.default_rng((self.seed, self.epoch))
        self.order = rng.permutation(len(self.paths)) if self.shuffle else np.arange(len(self.paths))

    def epoch_callback(self):
        """A Keras callback that calls `set_epoch` at the start of every epoch."""
        return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: self.set_epoch(epoch))

    def __len__(self):
        return math.ceil(len(self.paths) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = [self.transform(load_rgb(self.paths[i]), np.random.default_rng((self.seed, self.epoch, int(i))))
                  for i in rows]
        return np.stack(images).astype("float32", copy=False), self.labels[rows]
