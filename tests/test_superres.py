"""FSRCNN data preparation (FSRCNN-pytorch's h5 layout), the 0.1x deconv Adam, and training on real photos."""

from __future__ import annotations

import argparse
import os

import h5py
import keras
import numpy as np
import PIL.Image
import pytest
import skimage.data

import kerasnets
from training import superres
from training.superres import (
    FSRCNNTrainSequence,
    ScaledLRAdam,
    bicubic_psnr,
    evaluate_psnr,
    prepare_fsrcnn_h5,
    read_eval_h5,
    train_fsrcnn,
)

TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
EVAL_PHOTOS = ("camera", "immunohistochemistry", "coins")  # held out: never in a train file


def _y(rgb):
    """The FSRCNN-pytorch luma, written out here independently of training.image_metrics."""
    rgb = np.asarray(rgb, np.float32)
    return 16.0 + (64.738 * rgb[..., 0] + 129.057 * rgb[..., 1] + 25.064 * rgb[..., 2]) / 256.0


def _reference_pair(image, scale):
    hr = image.resize(((image.width // scale) * scale, (image.height // scale) * scale), PIL.Image.BICUBIC)
    lr = hr.resize((hr.width // scale, hr.height // scale), PIL.Image.BICUBIC)
    return _y(lr), _y(hr)


def _write_photos(directory, names, crop=None):
    os.makedirs(directory, exist_ok=True)
    for name in names:
        array = getattr(skimage.data, name)()
        if crop:
            top, left, height, width = crop
            array = array[top:top + height, left:left + width]
        PIL.Image.fromarray(array).save(os.path.join(directory, f"{name}.png"))
    return directory


@pytest.fixture
def small_photos(tmp_path):
    # odd sizes: 50x47 and 31x40 exercise the round-down resize
    return _write_photos(tmp_path / "imgs", ("astronaut", "camera"), crop=(100, 150, 50, 47)), tmp_path


def test_train_file_layout_and_values(small_photos):
    images, tmp = small_photos
    path = tmp / "train_x3.h5"
    count = prepare_fsrcnn_h5(images, path, 3)
    want_lr, want_hr = [], []
    for name in ("astronaut.png", "camera.png"):  # sorted, as glob in the repository
        lr, hr = _reference_pair(PIL.Image.open(images / name).convert("RGB"), 3)
        assert lr.shape == (16, 15) and hr.shape == (48, 45)
        for i in range(0, lr.shape[0] - 7 + 1, 3):
            for j in range(0, lr.shape[1] - 7 + 1, 3):
                want_lr.append(lr[i:i + 7, j:j + 7])
                want_hr.append(hr[3 * i:3 * i + 21, 3 * j:3 * j + 21])
    with h5py.File(path, "r") as f:
        assert set(f) == {"lr", "hr"}
        assert f["lr"].dtype == np.float32 and f["hr"].dtype == np.float32
        assert f["lr"].shape == (len(want_lr), 7, 7) and f["hr"].shape == (len(want_lr), 21, 21)
        np.testing.assert_allclose(f["lr"][...], np.stack(want_lr), atol=1e-4)
        np.testing.assert_allclose(f["hr"][...], np.stack(want_hr), atol=1e-4)
        assert 16 <= f["hr"][...].min() and f["hr"][...].max() <= 235.01
    assert count == len(want_lr) == 2 * 4 * 3


def test_eval_file_layout_and_patch_sizes(small_photos):
    images, tmp = small_photos
    assert prepare_fsrcnn_h5(images, tmp / "eval_x2.h5", 2, eval=True) == 2
    with h5py.File(tmp / "eval_x2.h5", "r") as f:
        assert set(f) == {"lr", "hr"} and set(f["lr"]) == {"0", "1"} and set(f["hr"]) == {"0", "1"}
        lr, hr = _reference_pair(PIL.Image.open(images / "camera.png").convert("RGB"), 2)
        np.testing.assert_allclose(f["lr"]["1"][...], lr, atol=1e-4)
        np.testing.assert_allclose(f["hr"]["1"][...], hr, atol=1e-4)
    pairs = read_eval_h5(tmp / "eval_x2.h5")
    assert pairs[1][0].shape == (25, 23, 1) and pairs[1][1].shape == (50, 46, 1) and pairs[1][1].max() <= 1.0
    for scale, p in ((2, 10), (4, 6)):
        prepare_fsrcnn_h5(images, tmp / f"t{scale}.h5", scale)
        with h5py.File(tmp / f"t{scale}.h5", "r") as f:
            assert f["lr"].shape[1:] == (p, p) and f["hr"].shape[1:] == (p * scale, p * scale)
    with pytest.raises(ValueError, match="patch size"):
        prepare_fsrcnn_h5(images, tmp / "t5.h5", 5)
    assert prepare_fsrcnn_h5(images, tmp / "t5.h5", 5, patch_size=4, stride=2) > 0


def test_augmentation_scales_and_rotations(small_photos):
    images, tmp = small_photos
    count = prepare_fsrcnn_h5(images, tmp / "aug.h5", 3, augment=True)
    want = 0
    for name in ("astronaut.png", "camera.png"):
        image = PIL.Image.open(images / name).convert("RGB")
        for s in (1.0, 0.9, 0.8, 0.7, 0.6):
            scaled = image.resize((int(image.width * s), int(image.height * s)), PIL.Image.BICUBIC)
            for angle in (0, 90, 180, 270):
                lr, _ = _reference_pair(scaled.rotate(angle, expand=True), 3)
                want += len(range(0, lr.shape[0] - 6, 3)) * len(range(0, lr.shape[1] - 6, 3))
    assert count == want and count > 20 * 2


def test_scaled_lr_adam_is_two_parameter_groups():
    """One step equals plain Adam(lr) on the body and Adam(0.1 lr) on the deconvolution."""
    from training.optimizers import fuse_optimizer

    keras.utils.set_random_seed(0)
    model = kerasnets.build_fsrcnn(scale=3, d=8, s=4, m=1)
    start = [np.array(w) for w in model.get_weights()]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 7, 7, 1)).astype(np.float32)
    y = rng.uniform(0, 1, (4, 21, 21, 1)).astype(np.float32)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.square(model(x, training=True) - y))
    grads = tape.gradient(loss, model.trainable_variables)
    variables = model.trainable_variables
    body = [i for i, v in enumerate(variables) if not v.path.startswith("deconv/")]
    deconv = [i for i, v in enumerate(variables) if v.path.startswith("deconv/")]
    assert len(deconv) == 2
    want = {}
    for indices, lr in ((body, 1e-2), (deconv, 1e-3)):
        shadow = [keras.Variable(np.array(variables[i])) for i in indices]
        adam = keras.optimizers.Adam(lr)
        fuse_optimizer(adam)  # as ScaledLRAdam updates on TensorFlow (tests/test_optimizers.py: the kernel is Adam)
        adam.apply_gradients([(grads[i], s) for i, s in zip(indices, shadow)])
        want.update({i: np.array(s) for i, s in zip(indices, shadow)})
    ScaledLRAdam(1e-2, {"deconv": 0.1}).apply_gradients(zip(grads, variables))
    for i, v in enumerate(variables):
        np.testing.assert_allclose(np.array(v), want[i], rtol=1e-6, atol=1e-8, err_msg=v.path)
    moved = [np.abs(np.array(v) - s).max() for v, s in zip(model.get_weights(), start)]
    assert min(moved) > 0
    config = ScaledLRAdam(1e-3, {"deconv": 0.1}).get_config()
    assert ScaledLRAdam.from_config(config).lr_multipliers == {"deconv": 0.1}
    with pytest.raises(ValueError, match="no trainable variables"):
        ScaledLRAdam(1e-3, {"decon": 0.1}).build(model.trainable_variables)


def test_train_sequence(small_photos):
    images, tmp = small_photos
    n = prepare_fsrcnn_h5(images, tmp / "t.h5", 3)
    seq = FSRCNNTrainSequence(tmp / "t.h5", batch_size=5, seed=0)
    disk = FSRCNNTrainSequence(tmp / "t.h5", batch_size=5, seed=0, in_memory=False)
    assert len(seq) == -(-n // 5)
    lr, hr = seq[0]
    assert lr.shape == (5, 7, 7, 1) and hr.shape == (5, 21, 21, 1) and lr.dtype == np.float32
    np.testing.assert_array_equal(lr, disk[0][0])
    with h5py.File(tmp / "t.h5", "r") as f:
        all_lr = f["lr"][...] / 255.0
    seen = np.concatenate([seq[i][0][..., 0] for i in range(len(seq))])
    np.testing.assert_allclose(np.sort(seen.reshape(n, -1), axis=0), np.sort(all_lr.reshape(n, -1), axis=0), atol=1e-6)
    with pytest.raises(ValueError, match="train file"):
        FSRCNNTrainSequence(_eval_file(images, tmp))


def _eval_file(images, tmp):
    path = tmp / "e.h5"
    prepare_fsrcnn_h5(images, path, 3, eval=True)
    return path


def test_cli_helpers(small_photos):
    images, tmp = small_photos
    parser = superres.add_prepare_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--images-dir", str(images), "--output-path", str(tmp / "c.h5"), "--scale", "3"])
    assert superres.run_prepare(args) == 24
    train_args = superres.add_train_arguments(argparse.ArgumentParser()).parse_args(
        ["--train-file", "a.h5", "--eval-file", "b.h5", "--outputs-dir", "out"])
    assert (train_args.scale, train_args.lr, train_args.batch_size, train_args.num_epochs, train_args.seed) == \
        (2, 1e-3, 16, 20, 123)


def _photo_h5(tmp, crop):
    train_dir = _write_photos(tmp / "train", TRAIN_PHOTOS, crop=crop)
    eval_dir = _write_photos(tmp / "eval", EVAL_PHOTOS, crop=crop)
    prepare_fsrcnn_h5(train_dir, tmp / "train_x3.h5", 3)
    prepare_fsrcnn_h5(eval_dir, tmp / "eval_x3.h5", 3, eval=True)
    return tmp


def test_short_training_on_photos(tmp_path, capsys):
    """A few epochs on 240x240 crops of the photos: files, best-epoch bookkeeping, real learning.

    Trained on 7x7 patches with zero padding, FSRCNN first mis-estimates the
    brightness of whole images; the eval PSNR swings until it has trained for
    a few thousand steps (see test_fsrcnn_beats_bicubic_on_held_out_photos
    and benchmarks/fsrcnn_vs_bicubic.py), so this test compares with the
    untrained network, not with bicubic.
    """
    data = _photo_h5(tmp_path, crop=(40, 40, 240, 240))
    eval_data = read_eval_h5(data / "eval_x3.h5")
    keras.utils.set_random_seed(123)
    untrained = evaluate_psnr(kerasnets.build_fsrcnn(scale=3), eval_data)
    out = data / "out"
    result = train_fsrcnn(data / "train_x3.h5", data / "eval_x3.h5", 3, out, epochs=4, batch_size=16,
                          steps_per_execution=16, verbose=0)
    bicubic = bicubic_psnr(eval_data, 3)
    psnrs = result.history["eval_psnr"]
    with capsys.disabled():
        print(f"\nFSRCNN x3, {len(psnrs)} short epochs ({result.seconds:.0f}s): eval PSNR per epoch "
              f"{[round(p, 2) for p in psnrs]}, untrained {untrained:.2f}; bicubic {bicubic:.2f} dB (held out)")
    assert sorted(os.listdir(out / "x3")) == ["best.weights.h5"] + [f"epoch_{i}.weights.h5" for i in range(4)]
    assert result.best_psnr == max(psnrs) and psnrs[result.best_epoch] == result.best_psnr
    assert result.history["loss"][-1] < 0.5 * result.history["loss"][0]
    assert result.best_psnr > untrained + 5.0
    assert evaluate_psnr(result.model, eval_data) == pytest.approx(result.best_psnr, abs=1e-4)
    reloaded = kerasnets.build_fsrcnn(scale=3, weights=str(out / "x3" / "best.weights.h5"))
    assert evaluate_psnr(reloaded, eval_data) == pytest.approx(result.best_psnr, abs=1e-4)
    epoch = result.best_epoch
    assert os.path.samefile(out / "x3" / "best.weights.h5", out / "x3" / f"epoch_{epoch}.weights.h5")  # one file
    with pytest.raises(ValueError, match="x3 patches"):
        train_fsrcnn(data / "train_x3.h5", data / "eval_x3.h5", 2, None, epochs=1, verbose=0)


@pytest.mark.slow
def test_fsrcnn_beats_bicubic_on_held_out_photos(tmp_path, capsys):
    """Whole photos (~10.5k patches), the repository's settings (Adam 1e-3, deconv 1e-4, batch 16), 12 epochs."""
    data = _photo_h5(tmp_path, crop=None)
    result = train_fsrcnn(data / "train_x3.h5", data / "eval_x3.h5", 3, None, epochs=12, batch_size=16,
                          steps_per_execution=32, verbose=0)
    bicubic = bicubic_psnr(read_eval_h5(data / "eval_x3.h5"), 3)
    with capsys.disabled():
        print(f"\nFSRCNN x3 best {result.best_psnr:.2f} dB (epoch {result.best_epoch}) vs bicubic {bicubic:.2f} dB "
              f"on held-out photos, {result.seconds:.0f}s; per epoch {[round(p, 2) for p in result.history['eval_psnr']]}")
    assert result.best_psnr > bicubic
