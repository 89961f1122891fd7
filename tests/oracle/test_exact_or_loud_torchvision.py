"""Oracle: torchvision's own files into the models a new user builds with the defaults.

The issue's silent cases: torchvision's MobileNetV3, DenseNet and Inception v3
state dicts (written by torch.save) fit the default builds shape for shape, or
nearly, but compute other logits. Each default build must refuse the file,
naming the options; `build_for_weights` and `kerasnets convert` must give
torchvision's logits.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.conftest import assert_close  # noqa: E402

torch.set_num_threads(2)

CASES = {
    # torchvision constructor kwargs, input side, what a default build gets wrong
    "mobilenet_v3_large": ({}, 64, ("padding", "include_preprocessing")),
    "densenet121": ({}, 64, ("bn_epsilon",)),
    "inception_v3": ({"aux_logits": False, "init_weights": True}, 75, ("variant",)),
}


def _trained_like(module, seed=0):
    """BN statistics and biases off their identity values, 1 channel in 16 with a tiny variance."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                small = torch.rand(c, generator=gen) < 1 / 16
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_((torch.rand(c, generator=gen) + 0.5) * torch.where(small, 1e-4, 1.0))
                m.weight.copy_((torch.rand(c, generator=gen) + 0.5) * torch.where(small, 1e-2, 1.0))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
            elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return module.eval()


@pytest.mark.parametrize("name", sorted(CASES))
def test_torchvision_file_into_the_default_build_is_loud_and_build_for_weights_is_exact(tmp_path, name):
    kwargs, side, options = CASES[name]
    torch.manual_seed(0)
    reference = _trained_like(getattr(torchvision.models, name)(weights=None, num_classes=10, **kwargs))
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
    assert_close(model.predict(x, verbose=0), expected, what=f"{name} from build_for_weights")
