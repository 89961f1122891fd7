"""Oracle: junyanz's pix2pix UnetGenerator (written out here in torch) gives our outputs.

The reference follows models/networks.py of junyanz/pytorch-CycleGAN-and-pix2pix
for `netG=unet_256`, ngf 64, BatchNorm2d: nested skip blocks whose forward is
`cat([x, block(x)])`, bias-free convs but for the outermost transposed conv,
in-place LeakyReLU/ReLU at the head of each block, dropout on the middle 8x
blocks. It runs in eval mode (`test.py --eval`) with healthy random weights
(`tests.references.heal_torch`: He-scaled, BN statistics calibrated on a
batch then perturbed), is saved with `torch.save` and loaded through a real
preset row with `convert_source_into`; the output images of two inputs must
match (`assert_parity`).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import kerasnets  # noqa: E402
from kerasnets import presets  # noqa: E402
from tests.references import assert_parity, heal_torch, infer  # noqa: E402


class SkipBlock(nn.Module):
    def __init__(self, outer, inner, child=None, *, in_channels=None, outermost=False, dropout=False):
        super().__init__()
        self.outermost = outermost
        down = nn.Conv2d(in_channels or outer, inner, 4, stride=2, padding=1, bias=False)
        if outermost:
            layers = [down, child, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1),
                      nn.Tanh()]
        elif child is None:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), child, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1, bias=False),
                      nn.BatchNorm2d(outer)] + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, num_downs=8, ngf=64, channels=3):
        super().__init__()
        block = SkipBlock(8 * ngf, 8 * ngf)
        for _ in range(num_downs - 5):
            block = SkipBlock(8 * ngf, 8 * ngf, block, dropout=True)
        for mult in (4, 2, 1):
            block = SkipBlock(mult * ngf, 2 * mult * ngf, block)
        self.model = SkipBlock(channels, ngf, block, in_channels=channels, outermost=True)

    def forward(self, x):
        return self.model(x)


def _reference(seed):
    """Healthy random weights; BN calibrated without dropout, so its statistics are those eval mode sees."""
    torch.manual_seed(seed)
    net = UnetGenerator()
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    for m in dropouts:
        m.p = 0.0
    calibration = np.random.default_rng(100 + seed).uniform(-1, 1, (4, 3, 256, 256)).astype("float32")
    heal_torch(net, calibration, seed=seed)
    for m in dropouts:
        m.p = 0.5
    return net.eval()


@pytest.mark.parametrize("name, seed", [("pix2pix_generator.facades_label2photo", 1), ("pix2pix_generator.edges2shoes", 2)])
def test_pix2pix_preset_matches_junyanz(tmp_path, name, seed):
    preset = presets.get_preset(name)
    net = _reference(seed)
    model = kerasnets.build(preset.model, **preset.options)
    presets.check_architecture(model, preset)
    state = net.state_dict()
    assert kerasnets.parameter_count(model) == sum(p.numel() for p in net.parameters())
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.4.running_var" in state  # innermost up BN
    torch.save(state, tmp_path / "g.pth")
    report = presets.convert_source_into(model, preset, str(tmp_path / "g.pth"))
    assert report.ok and report.applied and not report.unexpected
    np.testing.assert_array_equal(model.get_layer("output").bias.numpy(), state["model.model.3.bias"].numpy())
    np.testing.assert_array_equal(model.get_layer("up7_norm").moving_variance.numpy(),
                                  state["model.model.1.model.6.running_var"].numpy())
    x = np.random.default_rng(seed).uniform(-1, 1, (2, 256, 256, 3)).astype("float32")
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    actual = infer(model, x)
    assert_parity(actual, expected, rtol=1e-4, what=name)
