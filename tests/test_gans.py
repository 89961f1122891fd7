"""DCGAN, pix2pix and CycleGAN builders: counts, shapes, torch geometry, save/load, a training step, bad arguments."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.registry import build_for_shapes
from tests.references import infer


def _conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def test_reference_parameter_counts():
    """REFERENCE.md's counts, and the PyTorch DCGAN tutorial's, recomputed by hand below."""
    cases = [
        (build_for_shapes("pix2pix_generator"), 54_414_979, 54_425_859),
        (build_for_shapes("patchgan_discriminator"), 2_768_641, 2_770_433),
        (build_for_shapes("cyclegan_generator"), 11_378_179, 11_378_179),
        (build_for_shapes("cyclegan_discriminator"), 2_764_737, 2_764_737),
    ]
    for model, params, with_stats in cases:
        assert kerasnets.parameter_count(model) == params, model.name
        assert kerasnets.parameter_count(model, bn_moving_stats=True) == with_stats, model.name
    gen_convs = _conv(100, 512, 4, False) + _conv(512, 256, 4, False) + _conv(256, 128, 4, False) \
        + _conv(128, 64, 4, False) + _conv(64, 3, 4, False)
    disc_convs = _conv(3, 64, 4, False) + _conv(64, 128, 4, False) + _conv(128, 256, 4, False) \
        + _conv(256, 512, 4, False) + _conv(512, 1, 4, False)
    assert kerasnets.parameter_count(build_for_shapes("dcgan_generator")) == gen_convs + 2 * (512 + 256 + 128 + 64) == 3_576_704
    assert kerasnets.parameter_count(build_for_shapes("dcgan_discriminator")) == disc_convs + 2 * (128 + 256 + 512) == 2_765_568


def test_pix2pix_torch_variant_is_junyanz_unet256():
    """junyanz's unet_256 (BN) counted from its blocks: no norm on the innermost down, one bias (the output)."""
    downs = [(3, 64), (64, 128), (128, 256), (256, 512)] + [(512, 512)] * 4
    ups = [(512, 512)] + [(1024, 512)] * 3 + [(1024, 256), (512, 128), (256, 64)]
    convs = sum(_conv(cin, cout, 4, False) for cin, cout in downs + ups) + _conv(128, 3, 4)
    norms = sum(cout for _, cout in downs[1:-1]) + sum(cout for _, cout in ups)
    model = build_for_shapes("pix2pix_generator", variant="torch")
    assert kerasnets.parameter_count(model) == convs + 2 * norms == 54_413_955
    assert kerasnets.parameter_count(model, bn_moving_stats=True) == convs + 4 * norms
    assert model.output_shape == (None, 256, 256, 3)
    assert [l.name for l in model.layers if "dropout" in l.name] == ["up2_dropout", "up3_dropout", "up4_dropout"]
    assert all(l.epsilon == 1e-5 for l in model.layers if isinstance(l, keras.layers.BatchNormalization))
    assert "down8_norm" not in [l.name for l in model.layers]
    # the default stays the TensorFlow tutorial's net, layer for layer
    default, tf = build_for_shapes("pix2pix_generator"), build_for_shapes("pix2pix_generator", variant="tf")
    assert [l.name for l in default.layers] == [l.name for l in tf.layers]
    assert len(default.layers) == 56 and "output_relu" not in [l.name for l in default.layers]
    assert [l.name for l in default.layers if "dropout" in l.name] == ["up1_dropout", "up2_dropout", "up3_dropout"]


def test_resnet6_and_unet_choices():
    resnet6 = build_for_shapes("cyclegan_generator", architecture="resnet_6blocks", input_shape=(32, 32, 3))
    assert kerasnets.parameter_count(resnet6) == 11_378_179 - 3 * 2 * _conv(256, 256, 3)
    unet = build_for_shapes("cyclegan_generator", architecture="unet_128", input_shape=(128, 128, 3))
    assert any(isinstance(l, kerasnets.layers.InstanceNormalization) for l in unet.layers)
    assert unet.output_shape == (None, 128, 128, 3)


SMALL = [
    ("dcgan_generator", dict(latent_dim=16, image_size=16, filters=8)),
    ("dcgan_discriminator", dict(image_size=16, filters=8)),
    ("pix2pix_generator", dict(input_shape=(32, 32, 3), num_downs=5, filters=8)),
    ("patchgan_discriminator", dict(input_shape=(32, 32, 3), filters=8)),
    ("cyclegan_generator", dict(input_shape=(32, 32, 3), filters=8)),
    ("cyclegan_discriminator", dict(input_shape=(32, 32, 3), filters=8)),
]
OUTPUTS = {
    "dcgan_generator": (None, 16, 16, 3), "dcgan_discriminator": (None, 1),
    "pix2pix_generator": (None, 32, 32, 3), "patchgan_discriminator": (None, 2, 2, 1),
    "cyclegan_generator": (None, 32, 32, 3), "cyclegan_discriminator": (None, 2, 2, 1),
}


def _inputs(model, batch, seed):
    rng = np.random.default_rng(seed)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    arrays = [rng.uniform(-1, 1, (batch,) + s).astype("float32") for s in shapes]
    return arrays if len(arrays) > 1 else arrays[0]


@pytest.mark.parametrize("name, options", SMALL, ids=[n for n, _ in SMALL])
def test_output_shape(name, options):
    model = kerasnets.build(name, **options)
    assert model.output_shape == OUTPUTS[name]
    out = infer(model, _inputs(model, 2, 0))
    assert out.shape == (2,) + OUTPUTS[name][1:]
    if name.endswith("generator"):
        assert np.abs(out).max() <= 1.0  # tanh


def test_default_patch_maps_are_30x30():
    assert build_for_shapes("patchgan_discriminator").output_shape == (None, 30, 30, 1)
    assert build_for_shapes("cyclegan_discriminator").output_shape == (None, 30, 30, 1)


@pytest.mark.parametrize("name, options", SMALL, ids=[n for n, _ in SMALL])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload(tmp_path, name, options, suffix):
    model = kerasnets.build(name, **options)
    x = _inputs(model, 2, 1)
    path = tmp_path / f"{name}{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path)
    # eager: no graph tracing. The file holds keras' own BatchNormalization (what our fused layer saves as):
    # equal to float rounding, not bit for bit (on AVX-512, 2e-9 apart where the outputs are 1e-3)
    expected = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("name, options", SMALL, ids=[n for n, _ in SMALL])
def test_one_training_step(name, options):
    model = kerasnets.build(name, **options)
    x = _inputs(model, 2, 2)
    y = np.random.default_rng(3).uniform(-1, 1, (2,) + model.output_shape[1:]).astype("float32")
    # Eager: tracing and optimising the graph costs 10x the one step it would speed up.
    model.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss="mse", run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_instance_norm_generator_is_batch_independent():
    """InstanceNorm without running stats: an image's output does not depend on its batch mates."""
    model = kerasnets.build_cyclegan_generator(input_shape=(16, 16, 3), filters=4)
    x = _inputs(model, 3, 4)
    together = model(x, training=True)
    alone = model(x[:1], training=True)
    np.testing.assert_allclose(np.asarray(together)[:1], np.asarray(alone), atol=1e-5)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("dcgan_generator", {"image_size": 48}, "power of 2"),
        ("dcgan_discriminator", {"image_size": 4}, "power of 2"),
        ("pix2pix_generator", {"input_shape": (96, 96, 3)}, "at least 256|multiples of 256"),
        ("pix2pix_generator", {"norm": "group"}, "norm"),
        ("pix2pix_generator", {"variant": "pytorch"}, "variant"),
        ("patchgan_discriminator", {"input_shape": (48, 48, 3)}, "multiples of 32"),
        ("cyclegan_generator", {"architecture": "resnet_12blocks"}, "architecture"),
        ("cyclegan_generator", {"input_shape": (30, 30, 3)}, "multiples of"),
        ("cyclegan_discriminator", {"n_layers": 0}, "n_layers"),
    ],
)
def test_bad_arguments(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build(name, **kwargs)


def _junyanz_state_dict(blocks, ngf, rng):
    """junyanz's ResnetGenerator state dict as its published (torch < 0.4) files hold it, running
    statistics of every InstanceNorm included; indices from its models/networks.py."""
    up = 10 + blocks
    convs = {"model.1": (ngf, 3, 7, 7), "model.4": (2 * ngf, ngf, 3, 3), "model.7": (4 * ngf, 2 * ngf, 3, 3),
             f"model.{up}": (4 * ngf, 2 * ngf, 3, 3), f"model.{up + 3}": (2 * ngf, ngf, 3, 3),
             f"model.{up + 7}": (3, ngf, 7, 7)}
    norms = {"model.2": ngf, "model.5": 2 * ngf, "model.8": 4 * ngf, f"model.{up + 1}": 2 * ngf, f"model.{up + 4}": ngf}
    for b in range(10, up):
        convs.update({f"model.{b}.conv_block.{i}": (4 * ngf, 4 * ngf, 3, 3) for i in (1, 5)})
        norms.update({f"model.{b}.conv_block.{i}": 4 * ngf for i in (2, 6)})
    transposed = (f"model.{up}", f"model.{up + 3}")  # ConvTranspose2d weights are (in, out, kh, kw)
    tensors = {key: {"weight": rng.normal(size=shape).astype("float32"),
                     "bias": rng.normal(size=shape[1] if key in transposed else shape[0]).astype("float32")}
               for key, shape in convs.items()}
    tensors.update({key: {"running_mean": np.zeros(n, "float32"), "running_var": np.ones(n, "float32")}
                    for key, n in norms.items()})
    return tensors


@pytest.mark.parametrize("architecture, blocks", [("resnet_9blocks", 9), ("resnet_6blocks", 6)])
def test_junyanz_cyclegan_rows_load_its_state_dicts(architecture, blocks):
    """Every junyanz CycleGAN preset: each array has a home and the InstanceNorm statistics are dropped."""
    from kerasnets import presets
    from weights_io.core import WeightFile

    rows = presets.list_presets("cyclegan_generator")
    assert len(rows) == 18 and all(p.layout == "junyanz-resnet-generator" and p.options == {} for p in rows)
    model = kerasnets.build_cyclegan_generator(input_shape=(16, 16, 3), architecture=architecture, filters=4)
    for preset in rows:
        tensors = _junyanz_state_dict(blocks, 4, np.random.default_rng(blocks))
        expected = tensors[f"model.{17 + blocks}"]["bias"].copy()
        report = presets.convert_weight_file_into(model, preset, WeightFile(tensors, "torch", "pth"))
        assert report.ok and report.applied and len(report.loaded) == 2 * (6 + 2 * blocks), preset.name
        np.testing.assert_array_equal(model.get_layer("output_conv").bias.numpy(), expected)
