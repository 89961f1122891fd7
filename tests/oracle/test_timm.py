"""Oracle: timm 1.0 models give our logits through `.safetensors` files, both ways.

For each network: `timm.create_model(name, pretrained=False)` with healthy
random weights (`tests.references.heal_torch`), its state dict written by
`safetensors.torch.save_file` (what timm's ``model.safetensors`` holds), our
model built with the options the layout declares its publisher implies
(`Layout.implied_options`), the file loaded by `weights_io.load_weights` with
the format and layout detected from the bytes and names, then the same logits
(channels-last input) within 1e-4 on two inputs (`assert_parity`, which
refuses a reference whose logits hardly depend on the input). Reverse: our
model written by `weights_io.save_safetensors` in the timm layout, read by
`safetensors.torch.load_file` into a fresh timm model (`load_state_dict`,
strict), gives our logits.

Small inputs keep it fast; VGG runs at 224, the size where timm's
`pre_logits` 7x7 conv is our flatten + fc1 (timm pools smaller maps up to 7x7).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
safetensors_torch = pytest.importorskip("safetensors.torch")

import keras  # noqa: E402

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, build_uninitialised, heal_torch  # noqa: E402

CLASSES = 10

# (timm name, our registry name, layout timm's file is detected as, input size, options beyond the layout's)
CASES = [
    ("resnet50", "resnet50", "torchvision-resnet", 64, {}),
    ("resnext50_32x4d", "resnext50_32x4d", "torchvision-resnet", 64, {}),
    ("seresnet50", "se_resnet50", "torchvision-resnet", 64, {}),
    ("densenet121", "densenet121", "torchvision-densenet", 64, {}),
    ("inception_v3", "inception_v3", "torchvision-inception-v3", 96, {"aux_logits": False}),
    ("inception_v4", "inception_v4", "cadene-inception-v4", 96, {}),
    ("inception_resnet_v2", "inception_resnet_v2", "timm-inception-resnet-v2", 96, {}),
    ("mobilenetv3_large_100", "mobilenet_v3_large", "timm-mobilenet-v3", 64, {}),
    ("mobilenetv3_small_100", "mobilenet_v3_small", "timm-mobilenet-v3", 64, {}),
    ("vgg16", "vgg16", "timm-vgg", 224, {}),
    ("vgg16_bn", "vgg16_bn", "timm-vgg", 224, {}),
]


def _timm_model(name):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=CLASSES)


def _timm_holding(name, state):
    """timm's `name` holding `state` (strictly), made on the meta device: no initialiser draws what the state
    replaces (1 s of the VGG cases' each)."""
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=CLASSES)
    model.load_state_dict(state, strict=True, assign=True)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()]), f"{name}: state left a tensor unset"
    return model.eval()


def _build_ours(name, layout, size, extra):
    """Our model built as the layout says timm builds it, its variables without values for the file to fill."""
    spec = kerasnets.model_spec(name)
    options = weights_io.get_layout(layout).implied_options(spec.family, name)
    return build_uninitialised(kerasnets.build, name, input_shape=(size, size, 3), classes=CLASSES,
                               classifier_activation=None, **options, **extra)


def _torch_logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()


@pytest.mark.parametrize("timm_name, ours_name, layout, size, extra", CASES, ids=[c[0] for c in CASES])
def test_timm_safetensors_both_ways(timm_name, ours_name, layout, size, extra, tmp_path):
    calibration = np.random.default_rng(1).normal(size=(2 if size > 128 else 4, 3, size, size)).astype("float32")
    reference = heal_torch(_timm_model(timm_name), calibration)
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))

    ours = _build_ours(ours_name, layout, size, extra)
    report = weights_io.load_weights(ours, path)  # format and layout detected
    assert report.format == "safetensors" and report.layout == layout
    assert report.ok and report.applied and not report.unexpected and not report.option_mismatches

    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(ours(x, training=False))
    assert_parity(got, _torch_logits(reference, x), what=f"timm {timm_name} -> ours")

    back = tmp_path / "ours.safetensors"
    weights_io.save_safetensors(ours, back, layout)
    fresh = _timm_holding(timm_name, safetensors_torch.load_file(str(back)))
    assert_parity(_torch_logits(fresh, x), got, what=f"ours -> timm {timm_name}")


def test_wrongly_built_model_is_refused(tmp_path):
    """timm's MobileNetV3 BatchNorms use eps 1e-5: a model built with keras' 1e-3 is refused, untouched."""
    reference = _timm_model("mobilenetv3_small_100")
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(reference.state_dict(), str(path))
    ours = kerasnets.build("mobilenet_v3_small", input_shape=(64, 64, 3), classes=CLASSES, padding="torch",
                           include_preprocessing=False)
    before = [np.array(w) for w in ours.get_weights()]
    with pytest.raises(weights_io.WeightMismatchError) as error:
        weights_io.load_weights(ours, path)
    assert error.value.report.option_mismatches == [("bn_epsilon", 1e-3, 1e-5)]
    assert "bn_epsilon=1e-05" in str(error.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, ours.get_weights()))
