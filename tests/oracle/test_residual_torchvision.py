"""Oracle: torchvision ResNet/ResNeXt/DenseNet/MobileNetV3 (and a timm-style SE-ResNet) give our logits.

Healthy random torch weights (`tests.references.heal_torch`: He-scaled, BN
statistics calibrated on a batch then perturbed) -> state dict as numpy ->
`weights_io.WeightFile(convention="torch")` -> `assign_weights(strict=True)`
(every source key used, every model weight set) -> same logits on two random
inputs, against a reference whose logits visibly depend on the input
(`assert_parity`). The SE-ResNet reference is torchvision's ResNet with timm's SEModule
(fc1/fc2 1x1 convs, C/16, ReLU, sigmoid) applied after each block's bn3, under
timm's key names, since timm is not a dependency.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, build_uninitialised, heal_torch, infer  # noqa: E402
from weights_io.core import WeightFile, group_flat  # noqa: E402

SIZE = 64


def _calibration(channels=3, size=SIZE, n=4, seed=1):
    """A NCHW batch for `heal_torch`, other than the compared one."""
    return np.random.default_rng(seed).normal(size=(n, channels, size, size)).astype("float32")


def _compare(torch_model, keras_model, layout, channels=3, size=SIZE):
    heal_torch(torch_model, _calibration(channels, size))
    flat = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    wf = WeightFile(tensors=group_flat(flat), convention="torch", format="torch-state-dict")
    report = weights_io.assign_weights(keras_model, wf, weights_io.get_layout(layout), strict=True)
    assert report.ok and report.applied and not report.unexpected
    x = np.random.default_rng(0).normal(size=(2, size, size, channels)).astype("float32")
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    what = keras_model.name
    assert_parity(infer(keras_model, x), expected, what=what)


TORCHVISION_CASES = [
    ("resnet18", "torchvision-resnet"),
    ("resnet34", "torchvision-resnet"),
    ("resnet50", "torchvision-resnet"),
    ("resnet101", "torchvision-resnet"),
    ("resnet152", "torchvision-resnet"),
    ("resnext50_32x4d", "torchvision-resnet"),
    ("resnext101_32x8d", "torchvision-resnet"),
    ("densenet121", "torchvision-densenet"),
    ("densenet169", "torchvision-densenet"),
    ("mobilenet_v3_large", "torchvision-mobilenet-v3"),
    ("mobilenet_v3_small", "torchvision-mobilenet-v3"),
]
# Options that make our builders torchvision's (the ResNet defaults already are).
TORCHVISION_OPTIONS = {
    "densenet": dict(bn_epsilon=1e-5),
    "mobilenet_v3": dict(padding="torch", include_preprocessing=False),
}


@pytest.mark.parametrize("name, layout", TORCHVISION_CASES)
def test_torchvision_logits(name, layout):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None, num_classes=10)
    options = TORCHVISION_OPTIONS.get(kerasnets.model_spec(name).family, {})
    ours = build_uninitialised(kerasnets.build, name, input_shape=(SIZE, SIZE, 3), classes=10,
                               classifier_activation=None, **options)  # the file gives every value
    _compare(reference, ours, layout)


class _TimmSE(nn.Module):
    """timm's SEModule for (se)resnet: fc1/fc2 1x1 convs with bias, ReLU, sigmoid, C/16."""

    def __init__(self, channels):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // 16, 1)
        self.fc2 = nn.Conv2d(channels // 16, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


def _with_se(model):
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            block.se = _TimmSE(block.bn3.num_features)
            block.bn3.register_forward_hook(lambda _mod, _inp, out, se=block.se: se(out))
    return model


@pytest.mark.parametrize("name, torch_name", [("se_resnet50", "resnet50"), ("se_resnext50_32x4d", "resnext50_32x4d")])
def test_se_resnet_logits(name, torch_name):
    torch.manual_seed(0)
    # healed (He-scaled) SE convs: the gates are spread, not all ~0.5
    reference = _with_se(getattr(torchvision.models, torch_name)(weights=None, num_classes=10))
    ours = build_uninitialised(kerasnets.build, name, input_shape=(SIZE, SIZE, 3), classes=10,
                               classifier_activation=None)
    _compare(reference, ours, "torchvision-resnet")


def _notes_densenet():
    """The notes' (d2l) DenseNet, transcribed from their PyTorch code."""

    def conv_block(cin, cout):
        return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, padding=1))

    class DenseBlock(nn.Module):
        def __init__(self, num_convs, cin, cout):
            super().__init__()
            self.net = nn.ModuleList([conv_block(cin + i * cout, cout) for i in range(num_convs)])
            self.out_channels = cin + num_convs * cout

        def forward(self, x):
            for blk in self.net:
                x = torch.cat((x, blk(x)), dim=1)
            return x

    net = nn.Sequential(nn.Conv2d(1, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                        nn.MaxPool2d(3, stride=2, padding=1))
    channels, growth = 64, 32
    for i, convs in enumerate([4, 4, 4, 4]):
        block = DenseBlock(convs, channels, growth)
        net.add_module(f"DenseBlock_{i}", block)
        channels = block.out_channels
        if i != 3:
            net.add_module(f"transition_block_{i}", nn.Sequential(
                nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels // 2, 1), nn.AvgPool2d(2, 2)))
            channels //= 2
    net.add_module("BN", nn.BatchNorm2d(channels))
    net.add_module("relu", nn.ReLU())
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(channels, 10)))
    return net


NOTES_LAYOUT = weights_io.rule_layout(
    "notes-densenet",
    [
        (r"conv1_conv", "0"),
        (r"conv1_bn", "1"),
        (r"conv(\d)_block(\d+)_0_bn", lambda m: f"DenseBlock_{int(m[1]) - 2}.net.{int(m[2]) - 1}.0"),
        (r"conv(\d)_block(\d+)_2_conv", lambda m: f"DenseBlock_{int(m[1]) - 2}.net.{int(m[2]) - 1}.2"),
        (r"pool(\d)_bn", lambda m: f"transition_block_{int(m[1]) - 2}.0"),
        (r"pool(\d)_conv", lambda m: f"transition_block_{int(m[1]) - 2}.2"),
        (r"bn", "BN"),
        (r"predictions", "fc.1"),
    ],
)


def test_notes_small_densenet_logits():
    torch.manual_seed(0)
    ours = kerasnets.build_densenet((4, 4, 4, 4), growth_rate=32, init_filters=64, bn_size=None, conv_bias=True,
                                    classes=10, input_shape=(96, 96, 1), classifier_activation=None, bn_epsilon=1e-5)
    reference = _notes_densenet()
    assert kerasnets.parameter_count(ours) == sum(p.numel() for p in reference.parameters())
    _compare(reference, ours, NOTES_LAYOUT, channels=1, size=96)


def test_pth_file_through_builder_weights(tmp_path):
    """End to end: a torch.save'd state dict as `weights=` (torch reader, layout detected)."""
    torch.manual_seed(0)
    reference = heal_torch(torchvision.models.mobilenet_v3_small(weights=None, num_classes=10), _calibration())
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(reference.state_dict(), path)
    ours = kerasnets.build_mobilenet_v3_small(weights=str(path), input_shape=(SIZE, SIZE, 3), classes=10,
                                              classifier_activation=None, padding="torch",
                                              include_preprocessing=False)
    x = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    what = "mobilenet_v3_small from .pth"
    assert_parity(infer(ours, x), expected, what=what)
