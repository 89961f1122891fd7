"""PSNR / SSIM against scikit-image on its bundled photos; the metric classes in fit/evaluate."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.ndimage
import skimage.data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tests.references import infer
from training.image_metrics import PSNR, SSIM, gaussian_kernel_1d, psnr, rgb_to_y, ssim

PHOTOS = ("astronaut", "camera", "coffee", "chelsea")


def _photo(name):
    image = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return image[..., None] if image.ndim == 2 else image


def _degrade(image, kind, rng):
    if kind == "noise":
        return np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    if kind == "blur":
        return scipy.ndimage.gaussian_filter(image, sigma=(2, 2, 0)).astype(np.float32)
    # 3x bicubic-ish down/up: what super-resolution metrics see
    small = scipy.ndimage.zoom(image, (1 / 3, 1 / 3, 1), order=3)
    up = scipy.ndimage.zoom(small, (image.shape[0] / small.shape[0], image.shape[1] / small.shape[1], 1), order=3)
    return np.clip(up, 0, 1).astype(np.float32)


def _skimage_ssim(a, b, data_range=1.0):
    return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, channel_axis=-1)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("kind", ["noise", "blur", "resample"])
def test_matches_scikit_image_on_photos(name, kind):
    rng = np.random.default_rng(0)
    image = _photo(name)
    degraded = _degrade(image, kind, rng)
    got_psnr = float(psnr(image[None], degraded[None])[0])
    got_ssim = float(ssim(image[None], degraded[None])[0])
    want_psnr = peak_signal_noise_ratio(image, degraded, data_range=1.0)
    want_ssim = _skimage_ssim(image, degraded)
    print(f"{name} {kind}: PSNR {got_psnr:.4f} (skimage {want_psnr:.4f}), SSIM {got_ssim:.5f} (skimage {want_ssim:.5f})")
    assert abs(got_psnr - want_psnr) < 1e-3
    assert abs(got_ssim - want_ssim) < 1e-3
    assert 0.05 < want_ssim < 0.999  # a non-trivial comparison


def test_batch_is_per_image_and_8bit_range():
    rng = np.random.default_rng(1)
    a = (rng.uniform(0, 255, (3, 24, 20, 3))).astype(np.float32)
    b = np.clip(a + rng.normal(0, [[[[5.0]]], [[[10.0]]], [[[20.0]]]], a.shape), 0, 255).astype(np.float32)
    got_p = keras.ops.convert_to_numpy(psnr(a, b, max_val=255.0))
    got_s = keras.ops.convert_to_numpy(ssim(a, b, max_val=255.0))
    want_p = [peak_signal_noise_ratio(x, y, data_range=255.0) for x, y in zip(a, b)]
    want_s = [_skimage_ssim(x, y, data_range=255.0) for x, y in zip(a, b)]
    np.testing.assert_allclose(got_p, want_p, atol=1e-3)
    np.testing.assert_allclose(got_s, want_s, atol=1e-3)
    assert got_p[0] > got_p[1] > got_p[2]


def test_identical_images_and_window():
    x = np.random.default_rng(2).uniform(0, 1, (1, 16, 16, 1)).astype(np.float32)
    assert float(ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-6)
    assert np.isinf(float(psnr(x, x)[0]))
    taps = gaussian_kernel_1d()
    assert taps.shape == (11,) and taps.sum() == pytest.approx(1.0)
    impulse = np.zeros(21)
    impulse[10] = 1
    np.testing.assert_allclose(taps, scipy.ndimage.gaussian_filter1d(impulse, 1.5, truncate=3.5)[5:16], atol=1e-7)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((1, 8, 32, 1), "float32"), np.zeros((1, 8, 32, 1), "float32"))


def test_rgb_to_y_fsrcnn_formula():
    rgb = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.float32)
    want = [16.0, 16 + 218.859 * 255 / 256, 16 + 64.738 * 255 / 256, 16 + 129.057 * 255 / 256, 16 + 25.064 * 255 / 256]
    np.testing.assert_allclose(rgb_to_y(rgb), want, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rgb_to_y(keras.ops.convert_to_tensor(rgb))), want, rtol=1e-6)


def test_metric_classes_average_images_and_clip():
    rng = np.random.default_rng(3)
    y = rng.uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    pred = (y + rng.normal(0, 0.1, y.shape)).astype(np.float32)  # leaves [0, 1]: clipping matters
    clipped = np.clip(pred, 0, 1)
    metric = PSNR()
    metric.update_state(y[:2], pred[:2])
    metric.update_state(y[2:], pred[2:])
    want = np.mean([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(y, clipped)])
    assert float(metric.result()) == pytest.approx(want, abs=1e-3)
    unclipped = PSNR(clip=False)
    unclipped.update_state(y, pred)
    assert float(unclipped.result()) < float(metric.result())
    s = SSIM()
    s.update_state(y, pred)
    want_s = np.mean([_skimage_ssim(a, b) for a, b in zip(y, clipped)])
    assert float(s.result()) == pytest.approx(want_s, abs=1e-3)


def test_metrics_in_compile_and_serialization(tmp_path):
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    model.compile("adam", "mse", metrics=[PSNR(), SSIM()])
    x = np.random.default_rng(4).uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    model.fit(x, x, epochs=1, verbose=0)  # builds the optimizer, so the saved file holds its state
    logs = model.evaluate(x, x, verbose=0, return_dict=True)
    pred = np.clip(infer(model, x), 0, 1)
    assert logs["psnr"] == pytest.approx(np.mean([peak_signal_noise_ratio(a, b, data_range=1) for a, b in zip(x, pred)]),
                                         abs=1e-3)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    assert again.evaluate(x, x, verbose=0, return_dict=True)["ssim"] == pytest.approx(logs["ssim"], abs=1e-6)
    config = keras.saving.serialize_keras_object(PSNR(max_val=255.0, clip=False))
    restored = keras.saving.deserialize_keras_object(config)
    assert (restored.max_val, restored.clip) == (255.0, False)
