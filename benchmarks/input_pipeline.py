"""Input pipeline: `image_folder_dataset` against a plain PIL + numpy loop.

Both sides do the same work per image: read a JPEG, decode it, take a random
resized crop of 224x224 (scale 0.08-1, aspect 3/4-4/3), flip half of them and
normalise with the torch mean/std, then batch. The PIL loop is what the notes'
hand-written loaders do: one image after another on one core. tf.data decodes
in parallel on every core, so the table reports the ratio both as measured
and per core. A last row compares the pipeline with what a ResNet-50 training
step consumes on this machine, the rate it has to keep up with. Under
KERAS_BACKEND=jax or torch "ours" is the worker-thread PyDataset those backends get.

    python benchmarks/input_pipeline.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Comparison, add_check_flag, finish, interleave, report, throughput  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def write_jpegs(root, count, size=(375, 500), classes=2, seed=0):
    """`count` photo-like JPEGs (skimage's bundled photos, cropped and jittered) in class folders."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(seed)
    height, width = size
    for i in range(count):
        photo = photos[i % len(photos)]
        image = Image.fromarray(photo).resize((width + 64, height + 64), Image.BILINEAR)
        top, left = rng.integers(0, 64, 2)
        crop = np.asarray(image)[top:top + height, left:left + width].astype(np.int16)
        crop = np.clip(crop + rng.integers(-8, 9, crop.shape), 0, 255).astype(np.uint8)
        folder = os.path.join(root, f"class_{i % classes}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(crop).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def pil_loader(files, batch_size, image_size=224, seed=0):
    """The hand-written loop: PIL decode, random resized crop, flip, normalise, stack."""
    import math

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    mean, std = np.array(MEAN, np.float32) * 255, np.array(STD, np.float32) * 255

    def crop_box(width, height):
        area = width * height
        for _ in range(10):
            target = area * rng.uniform(0.08, 1.0)
            aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left, top = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
                return left, top, left + w, top + h
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2

    def run():
        batch = []
        for path in files:
            with Image.open(path) as img:
                img = img.convert("RGB")
                img = img.resize((image_size, image_size), Image.BILINEAR, box=crop_box(*img.size))
            x = np.asarray(img, np.float32)
            if rng.random() < 0.5:
                x = x[:, ::-1]
            batch.append((x - mean) / std)
            if len(batch) == batch_size:
                np.stack(batch)
                batch = []
        if batch:
            np.stack(batch)

    return run


def tf_loader(root, batch_size, image_size=224, batch_normalise=False):
    """`image_folder_dataset` with its default training transform, normalised like the PIL side.

    By default the transform normalises each image (`preprocessing="torch"`, MEAN and STD above);
    `batch_normalise` maps the formula over whole batches instead, as this benchmark did before
    2026-12-04 and as a user adding a `map` after the dataset would.
    """
    from training.data import image_folder_dataset

    data = image_folder_dataset(root, image_size, batch_size, class_indices_path=None,
                                preprocessing=None if batch_normalise else "torch")
    dataset = data.train
    if not hasattr(dataset, "element_spec"):  # JAX or torch: worker-thread batches, read as fit reads them
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        def run():
            adapter = PyDatasetAdapter(dataset, shuffle=False)
            for _ in adapter.get_numpy_iterator():
                pass
            adapter.on_epoch_end()

        return run, [f for f, _ in data.train_files]
    import tensorflow as tf

    if batch_normalise:
        mean, std = tf.constant(MEAN) * 255, tf.constant(STD) * 255
        dataset = dataset.map(lambda x, y: ((x - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE)

    def run():
        for _ in dataset:
            pass

    return run, [f for f, _ in data.train_files]


def model_consumption(batch_size, steps, image_size=224):
    """Images/s that `fit` of our ResNet-50 consumes from memory: the rate the pipeline must reach."""
    import keras
    import numpy as np

    import kerasnets

    model = kerasnets.build_resnet50(input_shape=(image_size, image_size, 3), classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(batch_size * steps, image_size, image_size, 3)).astype("float32")
    y = np.zeros(len(x), "int32")
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)  # trace
    return throughput(lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False), len(x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512,
                        help="JPEGs per epoch; each epoch also pays ~30 ms to start its iterator")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--photo-size", default="375x500",
                        help="HxW of the generated JPEGs (1200x1600: phone photos, decoded at reduced scale)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model-steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-map", action="store_true",
                        help="also time normalising with a map over batches against the per-image default")
    add_check_flag(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.model_steps = 128, 3, 2

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="kerasnets-bench-jpegs-") as root:
        photo = tuple(int(v) for v in args.photo_size.lower().split("x"))
        write_jpegs(root, args.images, size=photo)
        ours, files = tf_loader(root, args.batch)
        reference = pil_loader(files, args.batch)
        import keras

        # issue 19's 2x target is the tf.data pipeline's; JAX and torch get the worker-thread PyDataset
        on_tf = keras.backend.backend() == "tensorflow"
        measured = interleave("image_folder_dataset vs PIL loop" if on_tf else "FolderBatches (PyDataset) vs PIL loop",
                              ours, reference, work=len(files), rounds=args.rounds, target=2.0 if on_tf else None)
        batch_map = None
        if args.batch_map:
            batched, _ = tf_loader(root, args.batch, batch_normalise=True)
            batch_map = interleave("  normalised per batch (a map after the dataset) vs per image", batched, ours,
                                   work=len(files), rounds=args.rounds)
    per_core = Comparison(name=f"  per core (tf.data / {cores}, PIL / 1)", unit="images/s/core",
                          ours=[o / cores for o in measured.ours], reference=measured.reference)
    consumption = model_consumption(8, args.model_steps)
    versus_model = Comparison(name="pipeline vs resnet50 fit consumption", unit="images/s",
                              ours=measured.ours, reference=[consumption] * len(measured.ours))
    rows = [measured, per_core, versus_model] + ([batch_map] if batch_map else [])
    payload = report(f"input pipeline (224x224 random resized crop + flip + normalise, {args.photo_size} JPEGs)",
                     rows, extra={"cores": cores, "images": len(files)})
    finish([payload], args.check)


if __name__ == "__main__":
    main()
