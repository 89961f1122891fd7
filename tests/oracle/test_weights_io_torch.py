"""Oracle: files torch writes load through our reader; files we write load into torchvision.

torch.save (zip and legacy) of torchvision models with healthy random weights
(`tests.references.heal_torch`) -> load_torch_weights -> same logits;
save_torch_state_dict of our models with healthy weights (`heal_keras`) ->
torch.load(weights_only=True) -> load_state_dict(strict=True) -> same logits;
and the real legacy fixtures read by our reader equal torch.load's tensors.
Logits are compared on two inputs with `assert_parity` (the reference's must
visibly depend on the input).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import kerasnets  # noqa: E402
from tests.references import assert_parity, build_uninitialised, heal_keras, heal_torch, infer  # noqa: E402
from weights_io import load_torch_weights, read_weights, save_torch_state_dict  # noqa: E402


def _nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _logits(torch_model, x):
    with torch.no_grad():
        return torch_model(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_saved_alexnet_loads(tmp_path, legacy):
    torch.manual_seed(0)
    calibration = np.random.default_rng(10).uniform(0, 1, (4, 224, 224, 3)).astype("float32")
    reference = heal_torch(torchvision.models.alexnet(), _nchw(calibration))
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    model = build_uninitialised(kerasnets.build_alexnet, classifier_activation=None)  # the file fills it
    report = load_torch_weights(model, path)
    assert report.format == ("torch-legacy" if legacy else "torch-zip") and report.ok
    x = np.random.default_rng(0).uniform(0, 1, (2, 224, 224, 3)).astype("float32")
    assert_parity(infer(model, x), _logits(reference, x), what=f"alexnet from torch.save ({report.format})")


def test_torch_saved_vgg11_bn_wrapped_parameters(tmp_path):
    """A {'model': state_dict} checkpoint of nn.Parameters (_rebuild_parameter) with BN buffers."""
    torch.manual_seed(1)
    calibration = np.random.default_rng(11).normal(size=(4, 3, 32, 32)).astype("float32")
    reference = heal_torch(torchvision.models.vgg11_bn(), calibration)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": reference.state_dict(keep_vars=True), "epoch": 5}, path)
    model = kerasnets.build_vgg11(include_top=False, input_shape=(32, 32, 3), batch_norm=True, pooling=None)
    report = load_torch_weights(model, path, strict=False)
    assert not report.missing and not report.mismatched
    assert {k.split(".")[0] for k in report.unexpected} == {"classifier"}
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        expected = reference.features(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert_parity(infer(model, x), expected, what="vgg11_bn features from a wrapped checkpoint")


def test_exported_alexnet_loads_into_torchvision_strict(tmp_path):
    model = build_uninitialised(kerasnets.build_alexnet, classifier_activation=None)  # heal_keras gives the values
    heal_keras(model, np.random.default_rng(12).uniform(0, 1, (4, 224, 224, 3)).astype("float32"))
    path = tmp_path / "ours.pth"
    save_torch_state_dict(model, path, layout="torchvision-alexnet")
    state = torch.load(path, weights_only=True)
    reference = torchvision.models.alexnet().eval()
    reference.load_state_dict(state, strict=True)
    x = np.random.default_rng(2).uniform(0, 1, (2, 224, 224, 3)).astype("float32")
    assert_parity(_logits(reference, x), infer(model, x), what="our alexnet in torchvision")


def test_exported_resnet18_loads_into_torchvision_strict(tmp_path):
    model = build_uninitialised(kerasnets.build_resnet18, input_shape=(64, 64, 3), classifier_activation=None)
    heal_keras(model, np.random.default_rng(13).normal(size=(4, 64, 64, 3)).astype("float32"))
    path = tmp_path / "resnet18.pth"
    save_torch_state_dict(model, path, layout="torchvision-resnet")
    reference = torchvision.models.resnet18().eval()
    reference.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype("float32")
    assert_parity(_logits(reference, x), infer(model, x), what="our resnet18 in torchvision")


@pytest.mark.parametrize("name", ["dncnn_25.pth", "resnet20-12fca82f.th"])
def test_real_fixtures_equal_torch_load(fixtures_dir, name):
    path = fixtures_dir / "pth" / name
    expected = torch.load(path, map_location="cpu", weights_only=True)
    expected = expected.get("state_dict", expected)
    expected = {k.removeprefix("module."): v.numpy() for k, v in expected.items()}
    ours = read_weights(path).flat()
    assert ours.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
