"""Oracle: torchvision's own files into the models a new user builds with the defaults.

The issue's silent cases: torchvision's MobileNetV3, DenseNet and Inception v3
state dicts (written by torch.save) fit the default builds shape for shape, or
nearly, but compute other logits. Each default build must refuse the file,
naming the options; `build_for_weights` and `kerasnets convert` must give
torchvision's logits, those of a reference with healthy random weights
(`tests.references.heal_torch`) whose logits visibly depend on the input.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, heal_torch, infer  # noqa: E402


CASES = {
    # torchvision constructor kwargs, input side, what a default build gets wrong
    "mobilenet_v3_large": ({}, 64, ("padding", "include_preprocessing")),
    "densenet121": ({}, 64, ("bn_epsilon",)),
    "inception_v3": ({"aux_logits": False, "init_weights": True}, 75, ("variant",)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_torchvision_file_into_the_default_build_is_loud_and_build_for_weights_is_exact(tmp_path, name):
    kwargs, side, options = CASES[name]
    torch.manual_seed(0)
    calibration = np.random.default_rng(1).normal(size=(4, 3, side, side)).astype("float32")
    reference = heal_torch(getattr(torchvision.models, name)(weights=None, num_classes=10, **kwargs), calibration)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(0).normal(size=(2, side, side, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    default = kerasnets.build(name, input_shape=(side, side, 3), classes=10, classifier_activation=None)
    with pytest.raises(weights_io.WeightMismatchError) as err:
        weights_io.load_weights(default, path)
    assert all(f"{option}: model" in str(err.value) for option in options)
    model, report = kerasnets.build_for_weights(name, path, input_shape=(side, side, 3), classifier_activation=None)
    assert report.ok and not report.unexpected
    what = f"{name} from build_for_weights"
    assert_parity(infer(model, x), expected, what=what)
