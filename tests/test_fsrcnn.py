"""FSRCNN: the notes' parameter count, torch's ConvTranspose2d geometry, save/load, a training step, bad arguments;
FSRCNN_Tensorflow's released models (tests/data/fsrcnn_tensorflow) through their presets, against their own graph."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets.fsrcnn import torch_conv_transpose
from tests.conftest import assert_close
from tests.loopback import RELEASED_WEIGHTS, serve_folder
from tests.references import assert_parity, infer
from tests.test_tf_graphdef import tensorflow_constants, tensorflow_graph_def


def _expected_params(num_channels=1, d=56, s=12, m=4):
    # conv + bias + per-channel PReLU, by hand from the notes' model.
    conv = lambda cin, cout, k: cin * cout * k * k + cout + cout  # noqa: E731
    return (conv(num_channels, d, 5) + conv(d, s, 1) + m * conv(s, s, 3) + conv(s, d, 1)
            + d * num_channels * 81 + num_channels)


def test_parameter_count_matches_reference():
    assert kerasnets.parameter_count(kerasnets.build_fsrcnn(2)) == 12_809 == _expected_params()
    assert kerasnets.parameter_count(kerasnets.build_fsrcnn(3, 3, 32, 5, 1)) == _expected_params(3, 32, 5, 1)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
def test_output_is_scale_times_input(scale):
    model = kerasnets.build_fsrcnn(scale, m=1)
    out = infer(model, np.zeros((1, 7, 5, 1), "float32"))
    assert out.shape == (1, 7 * scale, 5 * scale, 1)


def _numpy_conv_transpose(x, kernel, bias, stride, padding, output_padding):
    """torch.nn.functional.conv_transpose2d by its definition: scatter-add, grow, crop."""
    n, h, w, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    full = np.zeros((n, (h - 1) * stride + kh + output_padding, (w - 1) * stride + kw + output_padding, cout))
    for i in range(h):
        for j in range(w):
            full[:, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum("nc,hwoc->nhwo", x[:, i, j], kernel)
    full += bias
    return full[:, padding:full.shape[1] - padding, padding:full.shape[2] - padding]


@pytest.mark.parametrize("stride, padding, output_padding", [(2, 4, 1), (3, 4, 2), (2, 1, 1), (4, 0, 3), (1, 2, 0)])
def test_torch_conv_transpose_geometry(stride, padding, output_padding):
    inputs = keras.Input((5, 6, 3))
    out = torch_conv_transpose(inputs, 2, 9 if padding == 4 else 3, stride=stride, padding=padding,
                               output_padding=output_padding, name="deconv")
    model = keras.Model(inputs, out)
    layer = model.get_layer("deconv")
    rng = np.random.default_rng(stride)
    layer.set_weights([rng.normal(size=layer.kernel.shape), rng.normal(size=2)])
    x = rng.normal(size=(2, 5, 6, 3)).astype("float32")
    expected = _numpy_conv_transpose(x, *layer.get_weights(), stride, padding, output_padding)
    assert_close(infer(model, x), expected)


def test_layer_names_and_layout_cover_the_model():
    model = kerasnets.build_fsrcnn(2, m=2)
    mapping = weights_io.get_layout("fsrcnn-pytorch").map_names([l.name for l in model.layers if l.weights])
    assert mapping == {
        "extract_conv": "first_part.0", "extract_prelu": "first_part.1", "shrink_conv": "mid_part.0",
        "shrink_prelu": "mid_part.1", "map1_conv": "mid_part.2", "map1_prelu": "mid_part.3",
        "map2_conv": "mid_part.4", "map2_prelu": "mid_part.5", "expand_conv": "mid_part.6",
        "expand_prelu": "mid_part.7", "deconv": "last_part",
    }
    assert model.get_layer("extract_prelu").alpha.shape == (1, 1, 56)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload(tmp_path, suffix):
    model = kerasnets.build_fsrcnn(3)
    for layer in model.layers:
        for w in layer.weights:
            w.assign(np.random.default_rng(0).normal(0, 0.1, w.shape).astype("float32"))
    x = np.random.default_rng(1).uniform(0, 1, (2, 9, 11, 1)).astype("float32")
    model.save(tmp_path / f"fsrcnn{suffix}")
    loaded = keras.models.load_model(tmp_path / f"fsrcnn{suffix}")
    np.testing.assert_array_equal(infer(loaded, x), infer(model, x))


def test_one_training_step():
    model = kerasnets.build_fsrcnn(2, input_shape=(12, 12, 1))
    x = np.random.default_rng(2).uniform(0, 1, (4, 12, 12, 1)).astype("float32")
    y = np.random.default_rng(3).uniform(0, 1, (4, 24, 24, 1)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", run_eagerly=True)  # tracing costs more than the step
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"scale": 0}, "scale"), ({"d": 2.5}, "`d`"), ({"m": -1}, "`m`"), ({"input_shape": (8, 8, 3)}, "channels"),
     ({"num_channels": 0}, "num_channels"), ({"bogus": 1}, "Unknown option"), ({"upsampler": "pixel"}, "upsampler")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_fsrcnn(**kwargs)


# ---- FSRCNN_Tensorflow's released models (OpenCV dnn_superres), through their presets ----

RELEASED = RELEASED_WEIGHTS


@pytest.fixture
def released_mirror(tmp_path, monkeypatch):
    """The released .pb files served on 127.0.0.1 as the presets' download mirror; a fresh cache."""
    server = serve_folder(RELEASED)
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERASNETS_WEIGHTS_MIRROR", server.url)
    for name in ("KERASNETS_WEIGHTS_DIR", "KERASNETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.stop()


def _published_graph(file_name):
    """FSRCNN_Tensorflow's frozen graph run by TensorFlow: LR luma (N, H, W, 1) -> its NHWC_output."""
    import tensorflow as tf

    graph_def = tensorflow_graph_def(RELEASED / file_name)
    graph = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    run = graph.prune(graph.graph.get_tensor_by_name("IteratorGetNext:0"),
                      graph.graph.get_tensor_by_name("NHWC_output:0"))
    return lambda x: run(tf.constant(x)).numpy()


def _bicubic(image, shape):
    """Plain bicubic sampling without antialiasing, as their cv2.INTER_CUBIC recipe (same PSNRs to 0.01 dB)."""
    import skimage.transform

    return skimage.transform.resize(image, shape, order=3, anti_aliasing=False).astype("float32")


def _camera_luma(scale, count=2, size=48):
    """`count` different crops of scikit-image's camera and their bicubic x1/scale (their recipe), in [0, 1]."""
    import skimage.data

    image = skimage.data.camera().astype("float32") / 255.0
    crops = [image[80 + 60 * i:80 + 60 * i + size * scale, 100 + 90 * i:100 + 90 * i + size * scale]
             for i in range(count)]
    lr = [_bicubic(c, (size, size)) for c in crops]
    return np.stack(lr)[..., None], np.stack(crops)[..., None]


# preset -> (released file, scale, FSRCNN sizes d, s, m): FSRCNN(56, 12, 4) and FSRCNN-s(32, 5, 1)
RELEASED_PRESETS = {
    **{f"fsrcnn.opencv_x{scale}": (f"FSRCNN_x{scale}.pb", scale, (56, 12, 4)) for scale in (2, 3, 4)},
    **{f"fsrcnn.opencv_small_x{scale}": (f"FSRCNN-small_x{scale}.pb", scale, (32, 5, 1)) for scale in (2, 3, 4)},
}


def test_subpixel_parameter_count_is_the_released_graphs():
    # conv + bias + PReLU slopes for layers 1..m+3, then the 1x1 kernel to scale**2 channels and one bias
    conv = lambda cin, cout, k: cin * cout * k * k + 2 * cout  # noqa: E731
    for file_name, scale, (d, s, m) in RELEASED_PRESETS.values():
        expected = conv(1, d, 5) + conv(d, s, 1) + m * conv(s, s, 3) + conv(s, d, 1) + d * scale**2 + 1
        released = sum(a.size for a in tensorflow_constants(RELEASED / file_name).values()
                       if a.ndim and a.dtype.kind == "f")  # not its NCHW permutation
        model = kerasnets.build_fsrcnn(scale, d=d, s=s, m=m, upsampler="subpixel")
        assert kerasnets.parameter_count(model) == expected == released, file_name


@pytest.mark.parametrize("name", sorted(RELEASED_PRESETS))
def test_released_presets_compute_the_published_graph(released_mirror, name):
    file_name, scale, _ = RELEASED_PRESETS[name]
    model = kerasnets.build_preset(name)
    assert model.get_layer("subpixel_shuffle").channel_order == "tf"
    lr, _ = _camera_luma(scale)
    assert_parity(infer(model, lr), _published_graph(file_name)(lr), what=f"{name} super-resolved luma")


@pytest.mark.parametrize("name", sorted(RELEASED_PRESETS))
def test_from_weights_reads_sizes_and_scale_off_the_released_file(name):
    """No options: the file's shapes give d, s, m and the scale, and the network computes the published graph."""
    from weights_io.core import build_record

    file_name, scale, (d, s, m) = RELEASED_PRESETS[name]
    model = kerasnets.from_weights(RELEASED / file_name)
    options = build_record(model).options
    assert {key: options[key] for key in ("scale", "d", "s", "m", "upsampler")} == {
        "scale": scale, "d": d, "s": s, "m": m, "upsampler": "subpixel"}
    lr, _ = _camera_luma(scale)
    assert_parity(infer(model, lr), _published_graph(file_name)(lr), what=f"from_weights({file_name})")


def test_a_released_file_of_another_scale_is_refused_naming_the_scale():
    from weights_io import WeightMismatchError, load_weights

    model = kerasnets.build_fsrcnn(2, upsampler="subpixel")
    with pytest.raises(WeightMismatchError, match="scale: model 2, publisher 3"):
        load_weights(model, RELEASED / "FSRCNN_x3.pb", source="fsrcnn-tensorflow")


def test_released_x3_beats_bicubic_on_a_real_photo(released_mirror):
    """The weights are the trained ones and the preset's recipe fits them: above bicubic on held-out crops."""
    from training.superres import calc_psnr

    lr, hr = _camera_luma(3, count=3, size=64)
    sr = np.clip(infer(kerasnets.build_preset("fsrcnn.opencv_x3"), lr), 0, 1)
    bicubic = np.stack([_bicubic(x[..., 0], hr.shape[1:3]) for x in lr])[..., None]
    ours, baseline = calc_psnr(sr, hr), calc_psnr(np.clip(bicubic, 0, 1), hr)
    print(f"x3 camera crops: FSRCNN {ours:.2f} dB, bicubic {baseline:.2f} dB")
    assert ours > baseline + 0.3


def test_released_preset_download_is_checked_and_cached(released_mirror, tmp_path):
    model = kerasnets.build_fsrcnn(2, upsampler="subpixel")
    kerasnets.presets.load_preset(model, "fsrcnn.opencv_x2")
    assert (tmp_path / "home" / "weights" / "FSRCNN_x2.pb").read_bytes() == (RELEASED / "FSRCNN_x2.pb").read_bytes()
    deconv = kerasnets.build_fsrcnn(2)
    with pytest.raises(ValueError, match="upsampler"):  # the paper's deconvolution cannot take these weights
        kerasnets.presets.load_preset(deconv, "fsrcnn.opencv_x2")


def test_subpixel_model_saves_and_reloads(tmp_path):
    model = kerasnets.build_fsrcnn(3, upsampler="subpixel", m=1)
    model.get_layer("subpixel_shuffle").bias.assign([0.3])
    x = np.random.default_rng(4).uniform(0, 1, (2, 9, 11, 1)).astype("float32")
    model.save(tmp_path / "fsrcnn.keras")
    loaded = keras.models.load_model(tmp_path / "fsrcnn.keras")
    np.testing.assert_array_equal(infer(loaded, x), infer(model, x))
    assert loaded.get_layer("subpixel_shuffle").use_bias
