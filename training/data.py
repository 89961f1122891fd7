"""A folder-per-class image tree -> tf.data pipelines (the notes' flower_data layout).

    root/daisy/001.jpg, root/roses/002.png, ...

Under the JAX and torch backends the same folder gives `FolderBatches`, a
`keras.utils.PyDataset` whose worker threads decode and resize with Pillow
(it releases the GIL while doing both) through each `training.augment`
transform's `.pil` side: the same crop rule, resampler and normalisation, no
TensorFlow. Epoch `e` is ordered and cropped from (seed, e) alone there too,
so a resumed run sees the batches of an uninterrupted one; random boxes are
drawn by numpy instead of TensorFlow's stateless generator, so the two
engines crop alike in distribution, not box for box.

Every file is checked once, up front, in a thread pool (PIL decodes it fully),
so an unreadable file is reported by path before training starts instead of
crashing epoch 7. Grayscale, palette, RGBA and CMYK images are converted to
RGB (alpha is dropped). Files TensorFlow decodes natively (RGB/gray JPEG,
PNG, BMP, GIF) are decoded by tf.io in parallel; the rest (CMYK JPEG, TIFF,
WebP, 16-bit PNG) by PIL inside the pipeline.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import warnings

import keras
import numpy as np

from training.arrays import EpochShuffledArrays

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# (PIL format, PIL mode) pairs tf.io.decode_image turns into the same RGB pixels as PIL's convert("RGB")
_TF_NATIVE = {("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("BMP", "RGB")}


class BadImageError(ValueError):
    """Image files that cannot be decoded; `.paths` lists them with the reason."""

    def __init__(self, bad):
        self.paths = bad
        lines = "\n".join(f"  {path}: {why}" for path, why in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        super().__init__(
            f"{len(bad)} unreadable image file(s):\n{lines}{more}\n"
            "Remove them, or pass on_bad_file='skip' to leave them out with a warning."
        )


@dataclasses.dataclass
class FolderData:
    """What `image_folder_dataset` returns.

    Attributes:
        train, val: batched `tf.data.Dataset`s of (float32 images 0..255, int32 labels) on the
            TensorFlow backend, `FolderBatches` (a PyDataset) on JAX and torch;
            val may be None.
        class_names: sorted class folder names; label i is class_names[i].
        class_indices_path: the written {index: class} JSON, or None.
        train_files, val_files: (path, label) lists actually used.
        skipped: (path, reason) of unreadable files left out.
        empty_classes: class folders with no usable image.
    """

    train: object
    val: object
    class_names: list
    class_indices_path: str | None
    train_files: list
    val_files: list
    skipped: list
    empty_classes: list

    @property
    def num_classes(self):
        return len(self.class_names)


def inspect_image(path):
    """(decoder, None, (height, width)) for a readable image, (None, reason, None) otherwise.

    decoder is "jpeg" for a JPEG tf.io decodes to the same RGB pixels as PIL (`decode_crop` can then
    decode just a crop of it), "tf" for other such files, else "pil".
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:  # verify() leaves the image unusable; decode fully to catch truncation
            img.load()
            key, size = (img.format, img.mode), (img.height, img.width)
            if getattr(img, "n_frames", 1) > 1:
                return "pil", None, size
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, DecompressionBombError, ...)
        return None, f"{type(err).__name__}: {err}", None
    if key in _TF_NATIVE:
        return ("jpeg" if key[0] == "JPEG" else "tf"), None, size
    return "pil", None, size


def list_class_folder(root, class_names=None):
    """(class_names, [(path, label)], empty_classes) for a folder-per-class tree."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"Image folder does not exist. Received: root={root!r}")
    found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if class_names is None:
        class_names = found
    elif sorted(found) != sorted(class_names):
        raise ValueError(
            f"Class folders of {root} {found} differ from the training classes {list(class_names)}."
        )
    if not class_names:
        raise ValueError(f"No class folders under {root}: expected root/<class>/<image files>.")
    files, empty = [], []
    for label, name in enumerate(class_names):
        folder = os.path.join(root, name)
        names = sorted(
            f for f in os.listdir(folder)
            if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
        )
        if not names:
            empty.append(name)
        files.extend((os.path.join(folder, f), label) for f in names)
    return list(class_names), files, empty


def check_images(files, *, on_bad_file="raise", workers=8):
    """Decodes every file once in a thread pool; returns (good [(path, label, decoder, (height, width))],
    bad [(path, why)]).

    Args:
        files: (path, label) pairs.
        on_bad_file: "raise" (BadImageError listing every bad path) or "skip" (warn and leave them out).
        workers: decoding threads (PIL releases the GIL while decoding).
    """
    if on_bad_file not in ("raise", "skip"):
        raise ValueError(f"`on_bad_file` must be 'raise' or 'skip'. Received: on_bad_file={on_bad_file!r}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(inspect_image, [path for path, _ in files]))
    good, bad = [], []
    for (path, label), (decoder, why, size) in zip(files, results):
        if decoder is None:
            bad.append((path, why))
        else:
            good.append((path, label, decoder, size))
    if bad and on_bad_file == "raise":
        raise BadImageError(bad)
    if bad:
        warnings.warn(f"Skipping {len(bad)} unreadable image(s): " + ", ".join(p for p, _ in bad), stacklevel=3)
    return good, bad


def load_rgb(path):
    """uint8 (H, W, 3) RGB pixels of an image file, by PIL (grey, palette, RGBA and CMYK converted)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _pil_decode(path):
    """`load_rgb` for `tf.numpy_function`, which passes the path as bytes."""
    if isinstance(path, np.ndarray):
        path = path.item()
    return load_rgb(path.decode() if isinstance(path, bytes) else path)


def decode_image(path, decoder):
    """tf graph op: file -> uint8 (H, W, 3) RGB, by tf.io or (for decoder 'pil') by PIL."""
    import tensorflow as tf

    def tf_decode():
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

    def pil_decode():
        return tf.numpy_function(_pil_decode, [path], tf.uint8, stateful=False)

    image = tf.cond(tf.equal(decoder, "pil"), pil_decode, tf_decode)
    image.set_shape([None, None, 3])
    return image


# libjpeg decodes at 1/2, 1/4 or 1/8 scale in its inverse DCT; used when the crop box is at least that
# many times the output on both axes, so the resize that follows still only shrinks
DCT_RATIOS = (1, 2, 4, 8)


def decode_crop(path, transform, seed, scaled=False):
    """tf graph op: a JPEG file -> `transform(image, seed)`, decoding only the crop box.

    For a random-crop transform (`augment.random_resized_crop_flip`, which has `crop_window`): the box
    is drawn from the header's shape (`extract_jpeg_shape`), then only that box is decoded
    (`decode_and_crop_jpeg`) and resized. The boxes, flips and seeds are those of
    `transform(decode_image(...), seed)`; the pixels differ only where libjpeg upsamples chroma at
    the box's edges (tests/test_training_folder.py).

    `scaled=True` decodes at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the box is that many
    times the output, and resizes the exact fractional box from there (over 30 dB from the full
    decode). The choice is a per-image `tf.switch_case`, which cost 7% of the pipeline's
    throughput where no box qualifies (375x500 JPEGs, 224 px crops) and gained 35% on 1200x1600
    photos; `make_dataset` turns it on only when some image is twice the output on both axes.
    """
    import tensorflow as tf

    contents = tf.io.read_file(path)
    shape = tf.cast(tf.io.extract_jpeg_shape(contents)[:2], tf.int32)
    top, left, height, width, flip_draw = transform.crop_window(shape, seed)
    if not scaled:
        crop = tf.io.decode_and_crop_jpeg(contents, tf.stack([top, left, height, width]), channels=3)
        return transform.from_crop(crop, flip_draw)
    out_h, out_w = transform.output_size
    level = tf.add_n([tf.cast((height >= r * out_h) & (width >= r * out_w), tf.int32) for r in DCT_RATIOS[1:]])

    def at(ratio):
        def decode():
            if ratio == 1:
                crop = tf.io.decode_and_crop_jpeg(contents, tf.stack([top, left, height, width]), channels=3)
                return crop, tf.cast(tf.stack([0, 0, height, width]), tf.float32)
            # the scaled pixels covering the box (libjpeg rounds the scaled size up), and the box in them
            size = (shape + ratio - 1) // ratio
            t, l = top // ratio, left // ratio
            b = tf.minimum((top + height + ratio - 1) // ratio, size[0])
            r = tf.minimum((left + width + ratio - 1) // ratio, size[1])
            crop = tf.io.decode_and_crop_jpeg(contents, tf.stack([t, l, b - t, r - l]), channels=3, ratio=ratio)
            box = tf.cast(tf.stack([top - t * ratio, left - l * ratio, height, width]), tf.float32) / ratio
            return crop, box
        return decode

    crop, box = tf.switch_case(level, [at(r) for r in DCT_RATIOS])
    crop.set_shape([None, None, 3])
    return transform.from_crop(crop, flip_draw, box)


def _split(files, validation_split, seed):
    """Stratified split: each class contributes round(n * split) images to validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    labels = sorted({f[1] for f in files})
    for label in labels:
        members = [f for f in files if f[1] == label]
        order = rng.permutation(len(members))
        n_val = int(round(len(members) * validation_split))
        if len(members) > 1:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    return train, val


def write_class_indices(class_names, path):
    """Writes {"0": "daisy", ...} (the notes' class_indices.json) atomically; returns path."""
    from kerasnets.saving import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({str(i): name for i, name in enumerate(class_names)}, f, indent=4, ensure_ascii=False)
    return os.fspath(path)


def read_class_indices(path):
    """{int index: class name} from a class_indices.json."""
    with open(path, encoding="utf-8") as f:
        return {int(k): v for k, v in json.load(f).items()}


class EpochSeed:
    """The epoch number a pipeline reads when an epoch starts, so its randomness is a function of it.

    `make_dataset` orders epoch `e` and seeds its random crops from (seed, e)
    only; `fit` (or the callback of `epoch_callback`) sets `e` before each
    epoch. A run resumed at epoch 5 then draws what an uninterrupted run draws
    at epoch 5, instead of restarting TensorFlow's random state from scratch.
    """

    def __init__(self):
        import tensorflow as tf

        self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

    def set_epoch(self, epoch):
        self.variable.assign(int(epoch))

    def epoch_callback(self):
        return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: self.set_epoch(epoch))


def make_dataset(files, *, batch_size, transform, shuffle, seed=0, cache=False, drop_remainder=False,
                 epoch_seed=None):
    """(path, label, decoder[, (height, width)]) list -> batched tf.data.Dataset of (transform(image), label).

    With the image sizes (as `check_images` returns them), JPEGs at least twice a random crop's
    output are decoded at reduced scale (`decode_crop`'s `scaled`).

    Args:
        transform: tf function uint8 (H, W, 3) -> float32 (h, w, 3) of a fixed size;
            one with `takes_seed` is called as `transform(image, seed)` with a stateless
            seed per (epoch, image).
        shuffle: a new order every epoch.
        seed: seeds the order and the transform's randomness.
        cache: False, True (in memory) or a file path prefix; caches decoded images
            before the (random) transform. Cached pipelines shuffle with TensorFlow's
            own random state (not reproducible on resume).
        epoch_seed: an `EpochSeed` whose epoch decides order and crops (shuffle
            without cache); None makes one, reachable as `dataset.epoch_seed`.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    paths = tf.constant([f[0] for f in files])
    labels = tf.constant([f[1] for f in files], tf.int32)
    decoders = tf.constant([f[2] for f in files])
    takes_seed = getattr(transform, "takes_seed", False)
    if shuffle and not cache:
        # epoch e: file order and per-image seeds from (seed, e) alone; only cheap file names move
        epoch_seed = epoch_seed or EpochSeed()
        count, base = len(files), tf.constant(int(seed), tf.int64)

        def epoch_order(_):
            key = tf.stack([base, epoch_seed.variable.read_value()])
            order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=key)
            image_seeds = tf.stack([tf.fill([count], base * 1_000_003 + key[1]), order], axis=1)
            return tf.data.Dataset.from_tensor_slices((order, image_seeds))

        ds = tf.data.Dataset.range(1).flat_map(epoch_order).apply(tf.data.experimental.assert_cardinality(count))
        if hasattr(transform, "crop_window") and all(f[2] == "jpeg" for f in files):  # decode only the box
            out_h, out_w = transform.output_size
            scaled = any(len(f) > 3 and f[3][0] >= 2 * out_h and f[3][1] >= 2 * out_w for f in files)
            ds = ds.map(lambda i, s: (decode_crop(paths[i], transform, s, scaled), labels[i]),
                        num_parallel_calls=autotune)
        else:
            ds = ds.map(lambda i, s: (decode_image(paths[i], decoders[i]), labels[i], s),
                        num_parallel_calls=autotune)

            def apply(x, y, s):  # a def, not two lambdas on one line, which AutoGraph cannot tell apart
                return (transform(x, s) if takes_seed else transform(x)), y

            ds = ds.map(apply, num_parallel_calls=autotune)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(autotune).with_options(_options())
        ds.epoch_seed = epoch_seed
        return ds
    ds = tf.data.Dataset.from_tensor_slices((paths, labels, decoders))
    ds = ds.map(lambda p, y, d: (decode_image(p, d), y), num_parallel_calls=autotune, deterministic=not shuffle)
    if cache:
        ds = ds.cache("" if cache is True else os.fspath(cache))
        if shuffle:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda x, y: (transform(x), y), num_parallel_calls=autotune, deterministic=not shuffle)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(autotune).with_options(_options())


def _options():
    """tf.data options for the folder pipelines: autotuning off, so maps run on every core.

    With autotuning on, deleting an epoch's iterator (as `fit` does after each epoch) stalled
    for about 0.3 s in a quarter of the epochs, waiting on the tuner's thread, and whole epochs
    ran at half speed: 512 375x500 JPEGs on 2 cores, 396 against 763 images/s in the median of
    5 interleaved epochs. Without it a map given `AUTOTUNE` runs one call per core and
    `prefetch(AUTOTUNE)` grows its buffer when the consumer waits.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def image_folder_dataset(
    root,
    image_size=(224, 224),
    batch_size=32,
    *,
    validation_split=None,
    val_dir=None,
    train_transform=None,
    val_transform=None,
    shuffle=True,
    seed=0,
    cache=False,
    on_bad_file="raise",
    class_indices_path="class_indices.json",
    workers=8,
    preprocessing=None,
):
    """Folder-per-class images -> shuffled, parallel-decoded, prefetched train/val datasets.

    Args:
        root: the training folder, one sub-folder of images per class.
        image_size: (height, width) or an int; images come out float32 RGB in 0..255
            (see `preprocessing`).
        batch_size: images per batch.
        validation_split: fraction of each class held out for validation, or None.
        val_dir: a separate validation folder with the same class folders (instead of a split).
        train_transform, val_transform: tf functions uint8 (H, W, 3) -> float32 (h, w, 3) (on JAX and
            torch: their `.pil` side, or a callable (uint8 array, numpy Generator) -> float32); the
            defaults are `augment.random_resized_crop_flip` for training and
            `augment.resize_center_crop` (the notes' Resize 256 + CenterCrop 224) for validation.
        shuffle: shuffle the training files every epoch.
        seed: seeds the split and the shuffling.
        cache: cache decoded images in memory (True) or in files with this prefix.
        on_bad_file: "raise" or "skip" for unreadable files (found before any training).
        class_indices_path: where to write {index: class} JSON, or None.
        workers: threads checking the files.
        preprocessing: a `kerasnets.preprocessing` mode ("torch", "caffe", ...) the default
            transforms apply per image, or None for 0..255 (models from `train_on_folder`
            normalise inside; a torchvision-style loop normalises here).

    Returns:
        A `FolderData`.
    """
    from training import augment

    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = tuple(int(s) for s in image_size)
    if validation_split is not None and val_dir is not None:
        raise ValueError("Pass `validation_split` or `val_dir`, not both.")
    if validation_split is not None and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be in (0, 1). Received: validation_split={validation_split!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    if preprocessing is not None and (train_transform or val_transform):
        raise ValueError("`preprocessing` applies to the default transforms: normalise inside your own "
                         "`train_transform`/`val_transform` instead.")
    class_names, files, empty = list_class_folder(root)
    val_files_raw = []
    if val_dir is not None:
        _, val_files_raw, val_empty = list_class_folder(val_dir, class_names)
        empty += [f"{name} (validation)" for name in val_empty]
    good, bad = check_images(files + val_files_raw, on_bad_file=on_bad_file, workers=workers)
    good_paths = {g[0]: g for g in good}
    train_files = [good_paths[p] for p, _ in files if p in good_paths]
    val_files = [good_paths[p] for p, _ in val_files_raw if p in good_paths]
    usable = {f[1] for f in train_files}
    empty += [name for i, name in enumerate(class_names) if i not in usable and name not in empty]
    if empty:
        warnings.warn(f"Class folder(s) with no usable image under {root}: {empty}", stacklevel=2)
    if not train_files:
        raise ValueError(f"No readable images under {root}.")
    if validation_split is not None:
        train_files, val_files = _split(train_files, validation_split, seed)
    train_transform = train_transform or augment.random_resized_crop_flip(image_size, preprocessing=preprocessing)
    val_transform = val_transform or augment.resize_center_crop(image_size, preprocessing=preprocessing)
    if keras.backend.backend() != "tensorflow":  # JAX, torch: worker threads instead of tf.data
        if cache:
            raise ValueError("`cache` is for tf.data pipelines (the TensorFlow backend); "
                             f"Keras runs on {keras.backend.backend()}.")
        train = FolderBatches(train_files, batch_size=batch_size, transform=train_transform, shuffle=shuffle,
                              seed=seed)
        val = FolderBatches(val_files, batch_size=batch_size, transform=val_transform, shuffle=False) \
            if val_files else None
    else:
        train, val = _tf_pipelines(train_files, val_files, batch_size, train_transform, val_transform, shuffle,
                                   seed, cache)
    indices = write_class_indices(class_names, class_indices_path) if class_indices_path else None
    return FolderData(
        train=train, val=val, class_names=class_names, class_indices_path=indices,
        train_files=[(p, y) for p, y, *_ in train_files], val_files=[(p, y) for p, y, *_ in val_files],
        skipped=bad, empty_classes=empty,
    )


def _tf_pipelines(train_files, val_files, batch_size, train_transform, val_transform, shuffle, seed, cache):
    """The tf.data train and val pipelines (TensorFlow backend)."""
    train = make_dataset(train_files, batch_size=batch_size, transform=train_transform, shuffle=shuffle,
                         seed=seed, cache=cache)
    val = None
    if val_files:
        val = make_dataset(val_files, batch_size=batch_size, transform=val_transform, shuffle=False,
                           cache=bool(cache) if cache is True else (f"{cache}_val" if cache else False))
    return train, val


class FolderBatches(EpochShuffledArrays):
    """(path, label, ...) entries -> batches of (float32 images, int32 labels), decoded by worker threads.

    What `image_folder_dataset` gives on JAX and torch (see the module docstring). The paths and
    labels are ordered per epoch as `EpochShuffledArrays` orders arrays.

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
        super().__init__(np.asarray([f[0] for f in files]), np.asarray([f[1] for f in files], "int32"),
                         batch_size=batch_size, seed=seed, shuffle=shuffle,
                         workers=workers or os.cpu_count() or 1, use_multiprocessing=False)
        self.transform = getattr(transform, "pil", transform)
        self.epoch_seed = self  # what `fit` looks for to set the epoch before each one

    def __getitem__(self, index):
        rows = self.rows(index)
        images = [self.transform(load_rgb(self.x[i]), np.random.default_rng((self.seed, self.epoch, int(i))))
                  for i in rows]
        return np.stack(images).astype("float32", copy=False), self.y[rows]
