"""GoogLeNet: parameter counts, aux heads (training with weights 1/0.3/0.3, inference without), save/load, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.googlenet import compile_with_aux, without_aux
from kerasnets.builder_utils import ceil_mode_padding
from kerasnets.registry import build_for_shapes
from tests.conftest import randomize_bn_statistics

# Eager calls and run_eagerly: tracing these graphs costs far more than running them on a few images.


def _predict(model, x):
    out = model(x, training=False)
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in out]
    return keras.ops.convert_to_numpy(out)

# The paper's Table 1, typed here independently of kerasnets.googlenet.MODULES.
TABLE = [  # in, 1x1, 3x3red, 3x3, 5x5red, 5x5, pool_proj
    (192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), (480, 192, 96, 208, 16, 48, 64),
    (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128),
]


def _paper_count(classes=1000, aux=False):
    """Conv + bias per unit, the paper's 5x5, FC 1024 -> classes."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    total = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    for cin, c1, c3r, c3, c5r, c5, pp in TABLE:
        total += conv(cin, c1, 1) + conv(cin, c3r, 1) + conv(c3r, c3, 3) + conv(cin, c5r, 1) + conv(c5r, c5, 5)
        total += conv(cin, pp, 1)
    total += 1024 * classes + classes
    if aux:
        for cin in (512, 528):  # 4a and 4d outputs; 4x4x128 -> FC 1024 -> classes
            total += conv(cin, 128, 1) + (2048 * 1024 + 1024) + (1024 * classes + classes)
    return total


def _torchvision_aux_count(classes=1000):
    """torchvision's two InceptionAux: BasicConv2d(in, 128) (no bias, BN affine), fc1 2048->1024, fc2."""
    return sum(cin * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * classes + classes for cin in (512, 528))


@pytest.mark.parametrize("options, expected", [
    (dict(), 6_624_904),  # torchvision googlenet(aux_logits=False), REFERENCE.md
    (dict(aux_logits=True), 6_624_904 + _torchvision_aux_count()),
    (dict(variant="paper"), _paper_count()),
    (dict(variant="paper", aux_logits=True), _paper_count(aux=True)),
])
def test_parameter_count(options, expected):
    model = build_for_shapes("googlenet", **options)
    assert kerasnets.parameter_count(model) == expected


def test_ceil_mode_padding_matches_torch_sizes():
    """torch: out = ceil((n - k) / s) + 1 (pool with padding 0); sizes worked by hand."""
    for n, k, s, out in [(112, 3, 2, 56), (25, 3, 2, 12), (50, 3, 2, 25), (13, 3, 2, 6), (7, 2, 2, 4), (14, 2, 2, 7)]:
        assert (n + ceil_mode_padding(n, k, s) - k) // s + 1 == out


def test_torchvision_variant_map_sizes():
    """100x100: torch gives 50 -> 25 -> 12 -> 6 -> 3 (keras 'same' pools would give 13 after pool2)."""
    model = kerasnets.build_googlenet(input_shape=(100, 100, 3), include_top=False)
    sides = [model.get_layer(n).output.shape[1] for n in
             ("conv1_7x7_s2_conv", "pool1_3x3_s2", "pool2_3x3_s2", "pool3_3x3_s2", "pool4_3x3_s2")]
    assert sides == [50, 25, 12, 6, 3]
    assert model.output_shape == (None, 3, 3, 1024)


@pytest.fixture(scope="module")
def aux_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 64, 64, 3)).astype("float32"), rng.integers(0, 3, size=8)


def test_aux_heads_train_and_inference_model_drops_them(aux_data):
    x, y = aux_data
    model = kerasnets.build_googlenet(input_shape=(64, 64, 3), classes=3, aux_logits=True)
    assert [o.shape[-1] for o in model.outputs] == [3, 3, 3]
    compile_with_aux(model, optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
    history = model.fit(x, [y, y, y], batch_size=4, epochs=2, verbose=0)
    logs = history.history
    aux_keys = {"aux1_predictions_loss", "aux2_predictions_loss"}
    assert aux_keys <= set(logs) and "predictions_loss" in logs, sorted(logs)
    # The total is main + 0.3 * aux1 + 0.3 * aux2.
    main, a1, a2 = (logs[k][-1] for k in ("predictions_loss", "aux1_predictions_loss", "aux2_predictions_loss"))
    assert logs["loss"][-1] == pytest.approx(main + 0.3 * a1 + 0.3 * a2, rel=1e-3)
    assert all(np.isfinite(v).all() for v in logs.values())

    inference = without_aux(model)
    assert len(inference.outputs) == 1
    assert not [layer.name for layer in inference.layers if layer.name.startswith("aux")]
    np.testing.assert_allclose(_predict(inference, x), _predict(model, x)[0], rtol=1e-5, atol=1e-6)
    inference.compile(loss="sparse_categorical_crossentropy", run_eagerly=True)
    results = inference.evaluate(x, y, verbose=0, return_dict=True)
    assert not [k for k in results if "aux" in k]
    # Shared layers: training the full model moves the inference model's weights too.
    assert inference.get_layer("predictions") is model.get_layer("predictions")


def test_summary_shows_three_heads():
    model = kerasnets.build_googlenet(input_shape=(64, 64, 3), classes=5, aux_logits=True)
    lines = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=200)
    text = "\n".join(lines)
    for head in ("predictions", "aux1_predictions", "aux2_predictions"):
        assert f"{head} (Dense)" in text


@pytest.mark.parametrize("variant", ["torchvision", "paper"])
def test_save_load_and_fit(variant, tmp_path):
    shape = (80, 80, 3)  # the paper's 5x5/3 aux pool needs 4a >= 5x5
    model = kerasnets.build_googlenet(variant=variant, input_shape=shape, classes=3, aux_logits=True,
                                      transform_input=variant == "torchvision")
    randomize_bn_statistics(model)
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype("float32")
    before = _predict(model, x)
    for fmt in ("keras", "h5"):
        model.save(tmp_path / f"model.{fmt}")
        restored = keras.models.load_model(tmp_path / f"model.{fmt}")
        for got, want in zip(_predict(restored, x), before):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=fmt)
    compile_with_aux(restored, run_eagerly=True)
    y = np.array([0, 2])
    history = restored.fit(x, [y, y, y], batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_paper_variant_has_lrn_and_5x5():
    model = kerasnets.build_googlenet(variant="paper", input_shape=(64, 64, 3))
    assert isinstance(model.get_layer("pool1_norm1"), kerasnets.layers.LocalResponseNormalization)
    assert model.get_layer("inception3a_5x5_conv").kernel_size == (5, 5)
    tv = kerasnets.build_googlenet(input_shape=(64, 64, 3))
    assert tv.get_layer("inception3a_5x5_conv").kernel_size == (3, 3)
    assert tv.get_layer("pool4_3x3_s2").pool_size == (2, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="v1"), "variant"),
    (dict(aux_logits="yes"), "aux_logits"),
    (dict(aux_logits=True, include_top=False), "include_top"),
    (dict(variant="paper", transform_input=True), "transform_input"),
    (dict(dropout=1.5), "dropout"),
    (dict(input_shape=(16, 16, 3)), "at least 32"),
    (dict(variant="paper", aux_logits=True, input_shape=(48, 48, 3)), "at least 65"),
    (dict(pooling="sum", include_top=False), "pooling"),
    (dict(classes=0), "classes"),
    (dict(depth=3), "Unknown option"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_googlenet(**kwargs)


def test_without_aux_rejects_single_output_model():
    with pytest.raises(ValueError, match="no auxiliary"):
        without_aux(kerasnets.build_googlenet(input_shape=(32, 32, 3)))
