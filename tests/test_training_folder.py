"""image_folder_dataset, preprocessing modes and augmentation on a small real image tree.

`make_image_folder` (imported by the other test_training_* files) cuts three
classes out of scikit-image's bundled photos: the cat (chelsea), the coffee
cup and the rocket, as random crops, so a tiny model can learn them in a few
epochs and nothing is downloaded.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.references import infer

CLASSES = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}


def make_image_folder(root, per_class=10, size=40, seed=0, extras=True):
    """root/<class>/<i>.jpg|png crops of skimage photos; returns root.

    With `extras`, the cat class also holds a grayscale JPEG, an RGBA PNG and a
    CMYK JPEG (all readable, converted to RGB).
    """
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    root = str(root)
    for cls, photo in CLASSES.items():
        image = getattr(data, photo)()[..., :3]
        folder = os.path.join(root, cls)
        os.makedirs(folder, exist_ok=True)
        h, w = image.shape[:2]
        for i in range(per_class):
            side = int(rng.integers(min(h, w) // 2, min(h, w)))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = Image.fromarray(image[top:top + side, left:left + side]).resize((size, size + 4 * (i % 3)))
            if i % 2:
                crop.save(os.path.join(folder, f"{i:02d}.png"))
            else:
                crop.save(os.path.join(folder, f"{i:02d}.jpg"), quality=90)
        if extras and cls == "cat":
            crop = Image.fromarray(image[50:250, 100:300]).resize((size, size))
            crop.convert("L").save(os.path.join(folder, "gray.jpg"))
            crop.convert("RGBA").save(os.path.join(folder, "alpha.png"))
            crop.convert("CMYK").save(os.path.join(folder, "cmyk.jpg"))
    return root


def add_bad_files(root):
    """A truncated JPEG and a text file named .png in class 'coffee'; returns their paths."""
    folder = os.path.join(root, "coffee")
    src = os.path.join(folder, "00.jpg")
    truncated = os.path.join(folder, "truncated.jpg")
    with open(src, "rb") as f:
        payload = f.read()
    with open(truncated, "wb") as f:
        f.write(payload[: len(payload) // 2])
    text = os.path.join(folder, "notes.png")
    with open(text, "w") as f:
        f.write("not an image")
    return sorted([truncated, text])


@pytest.fixture
def folder(tmp_path):
    return make_image_folder(tmp_path / "flowers")


def test_modes_match_hand_formulas():
    from training.preprocessing import MODES, Preprocess, preprocess_input

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 4, 5, 3)).astype("float32")
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    expected = {
        "caffe": np.stack([b - 103.939, g - 116.779, r - 123.68], -1),
        "bninception": np.stack([b - 104, g - 117, r - 128], -1),
        "matconvnet": np.stack([r - 123.68, g - 116.779, b - 103.939], -1),
        "torch": np.stack([(r / 255 - 0.485) / 0.229, (g / 255 - 0.456) / 0.224, (b / 255 - 0.406) / 0.225], -1),
        "tf": x / 127.5 - 1,
        "none": x / 255,
        "raw": x,
        "segnet": x[..., ::-1],
    }
    assert set(MODES) == set(expected)
    for mode, want in expected.items():
        np.testing.assert_allclose(preprocess_input(x, mode), want, rtol=1e-5, atol=1e-4, err_msg=mode)
        layer = Preprocess(mode)
        np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=1e-5, atol=1e-4, err_msg=mode)
        assert MODES[mode].weights
    with pytest.raises(ValueError, match="mode"):
        preprocess_input(x, "imagenet")


def test_preprocess_layer_round_trips(tmp_path):
    import keras

    from training.preprocessing import Preprocess

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, Preprocess("caffe")(inputs))
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).uniform(0, 255, (1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(infer(again, x), infer(model, x))


def test_folder_dataset_converts_modes_and_writes_indices(folder, tmp_path):
    from PIL import Image

    from training.data import image_folder_dataset, read_class_indices
    from training.augment import resize

    indices = tmp_path / "class_indices.json"
    data = image_folder_dataset(folder, image_size=32, batch_size=4, validation_split=0.25,
                                class_indices_path=indices, val_transform=resize(32))
    assert data.class_names == ["cat", "coffee", "rocket"]
    assert read_class_indices(indices) == {0: "cat", 1: "coffee", 2: "rocket"}
    assert json.load(open(indices)) == {"0": "cat", "1": "coffee", "2": "rocket"}
    all_files = data.train_files + data.val_files
    assert len(all_files) == 33 and len({p for p, _ in all_files}) == 33
    # stratified: every class is in validation
    assert {y for _, y in data.val_files} == {0, 1, 2}
    xb, yb = next(iter(data.train))
    assert xb.shape == (4, 32, 32, 3) and xb.dtype.name == "float32"
    assert float(np.min(xb)) >= 0 and float(np.max(xb)) <= 255
    # every validation image, whatever its mode on disk, equals PIL's RGB conversion resized
    seen = 0
    for xb, yb in data.val:
        for image, label in zip(np.asarray(xb), np.asarray(yb)):
            path, want_label = data.val_files[seen]
            assert label == want_label
            ref = np.asarray(Image.open(path).convert("RGB"), "float32")
            import tensorflow as tf

            ref = tf.image.resize(ref, (32, 32), antialias=True).numpy()
            # PNG is lossless: equal up to resampling rounding; JPEG decoders (libjpeg-turbo in TF,
            # PIL's own build) differ by a few grey levels in chroma upsampling
            assert np.abs(image - ref).max() < (1.0 if path.endswith(".png") else 8.0), path
            seen += 1
    assert seen == len(data.val_files)


def test_special_modes_decode_like_pil(folder):
    from PIL import Image

    from training.data import check_images, decode_image

    paths = [os.path.join(folder, "cat", n) for n in ("gray.jpg", "alpha.png", "cmyk.jpg", "00.jpg")]
    good, bad = check_images([(p, 0) for p in paths])
    assert not bad
    decoders = {os.path.basename(p): d for p, _, d, _ in good}
    assert decoders["cmyk.jpg"] == "pil" and decoders["00.jpg"] == "jpeg"
    for path, _, decoder, _ in good:
        got = decode_image(path, decoder).numpy()
        want = np.asarray(Image.open(path).convert("RGB"))
        assert got.shape == want.shape, path
        diff = np.abs(got.astype(int) - want.astype(int))
        if path.endswith(".png"):
            assert diff.max() == 0, path
        else:  # libjpeg builds differ by a few grey levels; a wrong conversion (CMYK inverted) differs by ~100s
            assert diff.mean() < 2 and diff.max() <= 12, path


def test_bad_files_reported_up_front(folder, tmp_path):
    from training.data import BadImageError, image_folder_dataset

    bad = add_bad_files(folder)
    with pytest.raises(BadImageError) as err:
        image_folder_dataset(folder, 32, 4, class_indices_path=None)
    assert sorted(p for p, _ in err.value.paths) == bad
    for path in bad:
        assert path in str(err.value)
    with pytest.warns(UserWarning, match="truncated.jpg"):
        data = image_folder_dataset(folder, 32, 4, on_bad_file="skip", class_indices_path=None)
    assert sorted(p for p, _ in data.skipped) == bad
    assert not set(bad) & {p for p, _ in data.train_files}
    n = sum(int(y.shape[0]) for _, y in data.train)  # a full epoch without a crash
    assert n == len(data.train_files) == 33


def test_empty_class_and_val_dir(folder, tmp_path):
    from training.data import image_folder_dataset

    os.makedirs(os.path.join(folder, "zebra"))
    val = make_image_folder(tmp_path / "val", per_class=2, extras=False, seed=3)
    os.makedirs(os.path.join(val, "zebra"))
    with pytest.warns(UserWarning, match="zebra"):
        data = image_folder_dataset(folder, 32, 8, val_dir=val, class_indices_path=None)
    assert "zebra" in data.empty_classes and data.num_classes == 4
    assert len(data.val_files) == 6
    with pytest.raises(ValueError, match="differ"):
        image_folder_dataset(folder, 32, 8, val_dir=os.path.join(val, "cat"), class_indices_path=None)
    with pytest.raises(ValueError, match="not both"):
        image_folder_dataset(folder, 32, 8, val_dir=val, validation_split=0.2)


def test_random_resized_crop_geometry():
    import tensorflow as tf

    from training.augment import random_resized_crop_flip, resize_center_crop

    # a horizontal ramp: every crop of it, resized, is still monotone in x
    ramp = np.tile(np.linspace(0, 255, 300, dtype="float32")[None, :, None], (200, 1, 3))
    crop = random_resized_crop_flip(24, flip=False)
    for _ in range(5):
        out = crop(tf.constant(ramp)).numpy()
        assert out.shape == (24, 24, 3)
        assert np.all(np.diff(out[12, :, 0]) >= -1e-3)
    # eval: 200x300 -> shorter side 256 (256x384) -> centre 224x224 = columns 80..304 of 384
    out = resize_center_crop(224)(tf.constant(ramp)).numpy()
    assert out.shape == (224, 224, 3)
    scaled = tf.image.resize(ramp, (256, 384), antialias=True).numpy()
    np.testing.assert_allclose(out, scaled[16:240, 80:304], atol=1e-3)


def test_decode_crop_is_the_crop_transform(tmp_path):
    """`decode_crop` decodes only the crop box of a JPEG: the boxes, flips and seeds are those of the
    full-decode transform, and the pixels all but identical (libjpeg's chroma upsampling at the box's
    edges); the pipeline takes that path only when every file is a JPEG tf.io decodes like PIL."""
    import tensorflow as tf
    from PIL import Image
    from skimage import data as photos

    from training.augment import random_resized_crop_flip
    from training.data import decode_crop, decode_image, inspect_image, make_dataset

    image = Image.fromarray(photos.astronaut()).resize((500, 375))
    image.save(tmp_path / "a.jpg", quality=90)
    image.save(tmp_path / "b.png")
    assert inspect_image(tmp_path / "a.jpg")[0] == "jpeg" and inspect_image(tmp_path / "b.png")[0] == "tf"
    for size in (224, 48):
        transform = random_resized_crop_flip(size)
        path, worst = tf.constant(str(tmp_path / "a.jpg")), np.inf
        for k in range(12):
            seed = tf.constant([5, k], tf.int64)
            fast = decode_crop(path, transform, seed).numpy()
            slow = transform(decode_image(path, tf.constant("jpeg")), seed).numpy()
            assert fast.shape == slow.shape == (size, size, 3)
            mse = float(np.mean((fast - slow) ** 2))
            worst = min(worst, 10 * np.log10(255**2 / mse) if mse else np.inf)
        assert worst > 50.0, (size, worst)  # a box off by one pixel gives about 25 dB
    # both pipelines (JPEG-only: decode_crop; mixed: full decode) give the same batches to that precision
    transform = random_resized_crop_flip(64)
    jpeg_only = make_dataset([(str(tmp_path / "a.jpg"), 0, "jpeg")] * 4, batch_size=4, transform=transform,
                             shuffle=True, seed=3)
    mixed = make_dataset([(str(tmp_path / "a.jpg"), 0, "tf")] * 4, batch_size=4, transform=transform,
                         shuffle=True, seed=3)
    (a, _), (b, _) = next(iter(jpeg_only)), next(iter(mixed))
    assert np.abs(a.numpy() - b.numpy()).mean() < 0.5


def test_scaled_decode_keeps_the_box_and_the_picture(tmp_path):
    """Boxes 2-8x the output are decoded at 1/2-1/8 scale (libjpeg's DCT scaling): same box, flip and
    size as the full decode, > 30 dB from it; boxes smaller than twice the output decode as before,
    bit for bit; make_dataset scales only when an image is twice the output on both axes."""
    import tensorflow as tf
    from PIL import Image
    from skimage import data as photos

    from training.augment import random_resized_crop_flip
    from training.data import DCT_RATIOS, check_images, decode_crop, decode_image, make_dataset

    Image.fromarray(photos.astronaut()).resize((500, 375)).save(tmp_path / "a.jpg", quality=90)
    path = tf.constant(str(tmp_path / "a.jpg"))
    full = decode_image(path, tf.constant("jpeg"))
    used = set()
    for size in (48, 224):
        transform = random_resized_crop_flip(size)
        for k in range(10):
            seed = tf.constant([9, k], tf.int64)
            _, _, height, width, _ = transform.crop_window(tf.shape(full), seed)
            ratio = max([r for r in DCT_RATIOS if height >= r * size and width >= r * size] or [1])
            used.add(ratio)
            fast = decode_crop(path, transform, seed, scaled=True).numpy()
            plain = decode_crop(path, transform, seed).numpy()
            slow = transform(full, seed).numpy()
            if ratio == 1:
                np.testing.assert_array_equal(fast, plain)
            mse = float(np.mean((fast - slow) ** 2))
            assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 30.0, (size, k, ratio)
    assert {1, 2, 4} <= used
    # the dataset scales for a large image only (its size is what check_images reports)
    (good, _), transform = check_images([(str(tmp_path / "a.jpg"), 0)]), random_resized_crop_flip(48)
    assert good[0][3] == (375, 500)
    batches = {flag: next(iter(make_dataset(entries, batch_size=8, transform=transform, shuffle=True, seed=1)))[0]
               for flag, entries in (("sized", good * 8), ("unsized", [good[0][:3]] * 8))}
    assert not np.array_equal(batches["sized"].numpy(), batches["unsized"].numpy())


def test_random_crop_of_decoded_pixels_is_pillows_resize_of_the_box(tmp_path):
    """uint8 pixels are resized as torchvision's RandomResizedCrop resizes a PIL image: the drawn box
    cropped, then Pillow's bilinear resize, mirrored when the draw says so; equal to the grey level."""
    import tensorflow as tf
    from PIL import Image
    from skimage import data as photos

    from training.augment import random_resized_crop_flip
    from training.data import decode_image

    Image.fromarray(photos.coffee()).save(tmp_path / "c.png")
    pixels = decode_image(tf.constant(str(tmp_path / "c.png")), tf.constant("tf"))
    photo = Image.open(tmp_path / "c.png").convert("RGB")
    transform = random_resized_crop_flip((56, 72))
    mirrored = 0
    for k in range(8):
        seed = tf.constant([1, k], tf.int64)
        top, left, height, width, draw = (int(v) if i < 4 else float(v)
                                          for i, v in enumerate(transform.crop_window(tf.shape(pixels), seed)))
        expected = photo.crop((left, top, left + width, top + height)).resize((72, 56), Image.BILINEAR)
        if draw < 0.5:
            expected, mirrored = expected.transpose(Image.FLIP_LEFT_RIGHT), mirrored + 1
        out = transform(pixels, seed).numpy()
        assert out.dtype == np.float32 and out.shape == (56, 72, 3)
        np.testing.assert_array_equal(out, np.asarray(expected, np.float32))
    assert 0 < mirrored < 8


def test_pca_jitter_is_the_fancy_pca_formula():
    import keras

    from training.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, PCAColorJitter

    layer = PCAColorJitter(0.1, value_range=255.0, seed=7)
    x = np.full((4, 3, 3, 3), 100.0, "float32")
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    out = np.asarray(layer(x, training=True))
    delta = out[:, 0, 0, :] - 100.0
    assert np.allclose(out, out[:, :1, :1, :] , atol=1e-4)  # one shift per image, same for all pixels
    # delta = 255 * eigvec @ (alpha * eigval): recover alpha and check it is consistent
    alpha = np.linalg.solve(IMAGENET_EIGVEC * IMAGENET_EIGVAL[None, :] * 255.0, delta.T).T
    np.testing.assert_allclose(255.0 * (IMAGENET_EIGVEC @ (alpha * IMAGENET_EIGVAL).T).T, delta, atol=1e-3)
    assert np.all(np.abs(alpha) < 0.6) and np.std(delta) > 0
    config = layer.get_config()
    assert keras.layers.deserialize(keras.layers.serialize(layer)).stddev == config["stddev"]


def test_epoch_seed_decides_order_and_crops(tmp_path):
    """Two pipelines over the same files agree batch for batch at any epoch, and epochs differ."""
    from PIL import Image

    from training.data import image_folder_dataset

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")

    def epoch_batches(epoch):
        data = image_folder_dataset(tmp_path, 24, 4, seed=3, class_indices_path=None)
        data.train.epoch_seed.set_epoch(epoch)
        return [(x.numpy(), y.numpy()) for x, y in data.train]

    first, again, other = epoch_batches(2), epoch_batches(2), epoch_batches(3)
    assert len(first) == 3 and first[0][0].shape == (4, 24, 24, 3)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    assert sorted(np.concatenate([y for _, y in first])) == [0] * 6 + [1] * 6


def test_preprocessing_normalises_each_image_as_its_mode_says(folder):
    """`preprocessing="torch"` / "caffe": the same crops as 0..255, then torchvision's / Caffe's formula."""
    from training.data import image_folder_dataset

    def first_batches(preprocessing):
        data = image_folder_dataset(folder, 32, 8, validation_split=0.25, class_indices_path=None,
                                    preprocessing=preprocessing)
        return next(iter(data.train))[0].numpy(), next(iter(data.val))[0].numpy()

    raw_train, raw_val = first_batches(None)
    torch_mean, torch_std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    for ours, raw in zip(first_batches("torch"), (raw_train, raw_val)):
        np.testing.assert_allclose(ours, (raw / 255 - torch_mean) / torch_std, rtol=1e-5, atol=1e-5)
    caffe_train, _ = first_batches("caffe")  # BGR, minus the ImageNet BGR mean
    np.testing.assert_allclose(caffe_train, raw_train[..., ::-1] - np.array([103.939, 116.779, 123.68]), atol=1e-3)
    assert raw_train.std() > 20  # real, varied pixels, not a constant the formula maps to anything
    with pytest.raises(ValueError, match="default transforms"):
        image_folder_dataset(folder, 32, 8, train_transform=lambda x: x, preprocessing="torch")
    with pytest.raises(ValueError, match="must be one of"):
        image_folder_dataset(folder, 32, 8, preprocessing="imagenet")


def test_folder_batches_match_the_tf_pipeline_without_tensorflow(tmp_path):
    """The PyDataset that JAX and torch get: validation batches within a grey level of tf.data's for
    PNG (Pillow's fixed-point resize against TensorFlow's float one), random crops of the right size and
    orientation, and epochs ordered and cropped by (seed, epoch) alone."""
    from PIL import Image

    from training.augment import random_resized_crop_flip, resize_center_crop
    from training.data import check_images, make_dataset
    from skimage import data as photos

    from training.data import FolderBatches

    files, photo = [], Image.fromarray(photos.coffee())
    for i in range(10):
        path = tmp_path / f"{i}.{'png' if i % 2 else 'jpg'}"
        photo.resize((90 - 3 * i, 40 + 7 * i)).save(path)
        files.append((str(path), i % 3))
    good, _ = check_images(files)
    center = resize_center_crop(32, preprocessing="torch")
    (expected, labels), = list(make_dataset(good, batch_size=10, transform=center, shuffle=False))
    got, got_labels = FolderBatches(good, batch_size=10, transform=center, shuffle=False)[0]
    np.testing.assert_array_equal(got_labels, labels.numpy())
    gaps = np.abs(got - expected.numpy()).reshape(10, -1).max(axis=1) * 0.229 * 255  # back to grey levels
    # PNG: the two resamplers' rounding; JPEG: also two libjpeg builds (tf.io's and Pillow's, see above)
    for (path, _), gap in zip(files, gaps):
        assert gap <= (1.0 if path.endswith(".png") else 8.0), (path, gap)

    # a left-to-right ramp stays monotone through every random crop; flips reverse it
    ramp = np.tile(np.arange(200, dtype=np.uint8)[None, :, None], (120, 1, 3))
    crop = random_resized_crop_flip((20, 24)).pil
    directions = set()
    for k in range(12):
        out = crop(ramp, np.random.default_rng(k))
        assert out.shape == (20, 24, 3) and out.dtype == np.float32
        steps = np.diff(out[10, :, 0])
        assert np.all(steps >= 0) or np.all(steps <= 0)
        directions.add(bool(steps.sum() > 0))
    assert directions == {True, False}
    sliver = np.zeros((4, 300, 3), np.uint8)  # no box of the ratio fits: the clamped centre crop
    assert random_resized_crop_flip(16, scale=(0.9, 1.0)).pil(sliver, np.random.default_rng(0)).shape == (16, 16, 3)

    def epoch(batches, e):
        batches.set_epoch(e)
        return [batches[i] for i in range(len(batches))]

    random_crop = random_resized_crop_flip(24)
    one, two = (FolderBatches(good, batch_size=4, transform=random_crop, shuffle=True, seed=5) for _ in range(2))
    again, other = epoch(one, 2), epoch(two, 3)
    for (x1, y1), (x2, y2) in zip(epoch(one, 2), again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(again, other))
    assert sorted(np.concatenate([y for _, y in other])) == sorted(y for _, y in files)
