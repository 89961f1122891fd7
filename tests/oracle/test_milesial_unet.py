"""Oracle: milesial/Pytorch-UNet's UNet (written out here in torch) gives our outputs.

The reference follows unet/unet_parts.py and unet_model.py as hubconf.py's
`unet_carvana` builds them: UNet(n_channels=3, n_classes=2, bilinear=False);
DoubleConv = (conv3x3 pad 1 without bias, BatchNorm2d, ReLU) x 2, Down =
MaxPool2d(2) + DoubleConv, Up = ConvTranspose2d(in, in // 2, 2, stride 2),
pad to the skip's size, cat([skip, up]), DoubleConv; OutConv = conv1x1 with
bias. Healthy random weights (`tests.references.heal_torch`: He-scaled, BN
statistics calibrated on a batch then perturbed) are saved with `torch.save`
plus the 'mask_values' list train.py adds, and loaded through the real preset
rows; the outputs of two inputs must match (`assert_parity`).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import kerasnets
from kerasnets import presets
from tests.references import assert_parity, heal_torch


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.double_conv = double_conv(cin, cout)

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.shape[2] - x1.shape[2], x2.shape[3] - x1.shape[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=2):
        super().__init__()
        self.inc = DoubleConv(n_channels, 64)
        self.down1, self.down2, self.down3, self.down4 = Down(64, 128), Down(128, 256), Down(256, 512), Down(512, 1024)
        self.up1, self.up2, self.up3, self.up4 = Up(1024, 512), Up(512, 256), Up(256, 128), Up(128, 64)
        self.outc = OutConv(64, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    calibration = np.random.default_rng(2).uniform(0, 1, (4, 3, 64, 64)).astype("float32")
    return heal_torch(UNet(), calibration)


@pytest.mark.parametrize("preset_name", ["unet.milesial_carvana_scale0.5", "unet.milesial_carvana_scale1.0"])
def test_milesial_unet_matches_through_the_preset(reference, preset_name, tmp_path):
    preset = presets.get_preset(preset_name)
    state = reference.state_dict()
    state["mask_values"] = [0, 1]  # train.py stores the dataset's mask values beside the tensors
    path = tmp_path / preset.file_name
    torch.save(state, path)

    model = kerasnets.build(preset.model, **preset.builder_kwargs(input_shape=(64, 64, 3)))
    presets.check_architecture(model, preset)
    presets.convert_source_into(model, preset, str(path))

    x = np.random.default_rng(1).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    actual = np.asarray(model(x))
    assert_parity(actual, expected, rtol=1e-4, what=preset_name)


def test_parameter_count_matches_torch(reference):
    model = kerasnets.build("unet", **presets.get_preset("unet.milesial_carvana_scale0.5").builder_kwargs(
        input_shape=(64, 64, 3)))
    bn_channels = sum(m.num_features for m in reference.modules() if isinstance(m, nn.BatchNorm2d))
    # Keras counts BN's moving mean/variance as (non-trainable) weights; torch keeps them as buffers
    assert model.count_params() == sum(p.numel() for p in reference.parameters()) + 2 * bn_channels
