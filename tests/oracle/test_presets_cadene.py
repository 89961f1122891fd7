"""Every Cadene preset: its builder options, layout and class handling reproduce pretrainedmodels.

The presets' rows (options, layout, `drop_leading_classes`) are read from
presets.json, not restated here, so a wrong row fails. Shapes come from
Cadene's own models built on the meta device; three presets also go the whole
way: a legacy-format .pth of a Cadene model with healthy random weights
(`tests.references.heal_torch`) through
`presets.convert_source_into` gives Cadene's logits. For Inception v4 that
model is the 1001-class one the published file holds, and the expected logits
are those of pretrainedmodels' 'imagenet' model, which drops row 0.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pretrainedmodels = pytest.importorskip("pretrainedmodels")  # imports torchvision: before keras

import kerasnets  # noqa: E402
from kerasnets import presets  # noqa: E402
from tests.references import assert_parity, build_uninitialised, heal_torch, infer  # noqa: E402
from weights_io import WeightFile  # noqa: E402
from weights_io.core import group_flat  # noqa: E402

CADENE = {p.name: p for p in presets.list_presets() if p.publisher.startswith("Cadene")}
FACTORY = {"se_resnet50": "se_resnet50", "se_resnet101": "se_resnet101", "se_resnet152": "se_resnet152",
           "se_resnext50_32x4d": "se_resnext50_32x4d", "inception_v2": "bninception", "inception_v4": "inceptionv4"}
# what the file's classifier holds: Cadene's Inception v4 file keeps TF-slim's background class
FILE_CLASSES = {"inception_v4": 1001}
SIZE = {"inception_v4": 299}  # Cadene's heads pool a fixed 8x8 (v4) or 7x7 map


def _cadene(preset, **kwargs):
    classes = FILE_CLASSES.get(preset.model, 1000)
    return getattr(pretrainedmodels, FACTORY[preset.model])(num_classes=classes, pretrained=None, **kwargs)


def test_every_builder_with_cadene_weights_has_a_preset():
    assert sorted(p.model for p in CADENE.values()) == sorted(FACTORY)


@pytest.mark.parametrize("name", sorted(CADENE))
def test_cadene_preset_takes_the_published_keys_and_shapes(name):
    preset = CADENE[name]
    with torch.device("meta"):
        reference = _cadene(preset)
    state = reference.state_dict()
    rng = np.random.default_rng(0)
    flat = {k: (np.zeros(v.shape, "int64") if "int" in str(v.dtype)
                else rng.random(tuple(v.shape), dtype=np.float32) + np.float32(0.5)) for k, v in state.items()}
    ours = build_uninitialised(kerasnets.build, preset.model, input_shape=(224, 224, 3), **preset.options)
    drop = preset.drop_leading_classes * (reference.last_linear.in_features + 1)  # rows the preset slices off
    trainable = sum(int(np.prod(v.shape)) for v in ours.trainable_weights)
    assert trainable == sum(p.numel() for p in reference.parameters()) - drop
    report = presets.convert_weight_file_into(ours, preset, WeightFile(tensors=group_flat(flat), convention="torch",
                                                                       format="torch-legacy"))
    assert report.ok and report.applied and not report.unexpected and not report.missing
    kernel = ours.get_layer("predictions").weights[0].numpy()
    classifier = next(k for k in flat if k.startswith("last_linear") and k.endswith("weight"))
    np.testing.assert_array_equal(kernel, flat[classifier][preset.drop_leading_classes:].T)


@pytest.mark.parametrize("name", ["se_resnet50.cadene", "inception_v2.cadene", "inception_v4.cadene"])
def test_cadene_preset_gives_cadene_logits(name, tmp_path):
    preset = CADENE[name]
    torch.manual_seed(0)
    size = SIZE.get(preset.model, 224)
    calibration = np.random.default_rng(1).normal(size=(4, 3, size, size)).astype("float32")
    reference = heal_torch(_cadene(preset), calibration)
    path = tmp_path / preset.file_name
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=False)  # as Cadene's files are
    ours = kerasnets.build(preset.model, input_shape=(size, size, 3), classifier_activation=None, **preset.options)
    report = presets.convert_source_into(ours, preset, path)
    assert report.ok and report.applied and report.format == "torch-legacy"
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    expected = expected[:, preset.drop_leading_classes:]
    assert expected.shape == (2, 1000)
    assert_parity(infer(ours, x), expected, what=name)
