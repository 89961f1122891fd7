"""Oracle: junyanz's CycleGAN ResnetGenerator (written out here in torch) gives our outputs.

The reference follows models/networks.py of junyanz/pytorch-CycleGAN-and-pix2pix
as its pretrained generators run (`--model test --no_dropout`): one
`nn.Sequential` ``model``, InstanceNorm2d without affine or running
statistics, conv biases, ConvTranspose2d(k3, s2, p1, output_padding=1),
tanh. Healthy random weights (`tests.references.heal_torch`: He-scaled
kernels, non-zero biases) are saved with `torch.save` (zip and legacy formats,
and a legacy file carrying the InstanceNorm running_mean/var that the
published pre-0.4 files hold) and loaded through a real preset row with
`convert_source_into`, all or nothing; the output images of two inputs must
match (`assert_parity`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import kerasnets  # noqa: E402
from kerasnets import presets  # noqa: E402
from tests.references import assert_parity, heal_torch, infer  # noqa: E402
from weights_io.errors import WeightMismatchError  # noqa: E402


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, blocks=9, ngf=64, channels=3):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for width in (ngf, 2 * ngf):
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * width), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf) for _ in range(blocks)]
        for width in (4 * ngf, 2 * ngf):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(width // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def _reference(blocks, ngf, seed, size):
    """Healthy random weights (He-scaled kernels, random biases, so a misplaced bias would show)."""
    torch.manual_seed(seed)
    calibration = np.random.default_rng(100 + seed).uniform(-1, 1, (4, 3, size, size)).astype("float32")
    return heal_torch(ResnetGenerator(blocks, ngf), calibration, seed=seed)


def _save(net, path, variant, seed=0):
    """Saves the state dict; "legacy+in-stats" adds the InstanceNorm running_mean/var torch < 0.4 wrote."""
    state = net.state_dict()
    if variant == "legacy+in-stats":
        gen = torch.Generator().manual_seed(seed)
        for name, module in net.named_modules():
            if isinstance(module, nn.InstanceNorm2d):
                state[f"{name}.running_mean"] = torch.randn(module.num_features, generator=gen)
                state[f"{name}.running_var"] = torch.rand(module.num_features, generator=gen) + 0.5
    torch.save(state, path, _use_new_zipfile_serialization=variant == "zip")
    return state


def _outputs(net, model, size, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    return infer(model, x), expected


@pytest.mark.parametrize("name, variant, seed", [
    ("cyclegan_generator.horse2zebra", "zip", 1),
    ("cyclegan_generator.style_monet", "legacy", 2),
    ("cyclegan_generator.cityscapes_label2photo", "legacy+in-stats", 3),
])
def test_cyclegan_preset_matches_junyanz(tmp_path, name, variant, seed):
    preset = presets.get_preset(name)
    net = _reference(blocks=9, ngf=64, seed=seed, size=64)
    model = kerasnets.build(preset.model, input_shape=(64, 64, 3), **preset.options)
    presets.check_architecture(model, preset)
    assert kerasnets.parameter_count(model) == sum(p.numel() for p in net.parameters()) == 11_378_179
    path = tmp_path / f"{variant}.pth"
    state = _save(net, path, variant, seed)
    if variant == "legacy+in-stats":
        assert "model.2.running_mean" in state and "model.18.conv_block.6.running_var" in state
    report = presets.convert_source_into(model, preset, str(path))
    assert report.ok and report.applied and not report.unexpected
    assert len(report.loaded) == 48  # 24 convs, kernel and bias each
    # biases feeding an InstanceNorm cancel in the output: check where a few landed, by hand
    for ours, key in (("stem_conv", "model.1"), ("block3_conv2", "model.12.conv_block.5"),
                      ("up2_deconv", "model.22"), ("output_conv", "model.26")):
        np.testing.assert_array_equal(model.get_layer(ours).bias.numpy(), state[f"{key}.bias"].numpy())
    actual, expected = _outputs(net, model, 64, seed)
    assert_parity(actual, expected, what=f"{name} ({variant})")


def test_resnet6_counts_blocks_and_strays_still_fail(tmp_path):
    """The layout follows the block count; the preset's drop_keys are needed and hide nothing else."""
    preset = dataclasses.replace(presets.get_preset("cyclegan_generator.horse2zebra"),
                                 options={"architecture": "resnet_6blocks", "filters": 16})
    net = _reference(blocks=6, ngf=16, seed=6, size=32)
    model = kerasnets.build(preset.model, input_shape=(32, 32, 3), **preset.options)
    state = _save(net, tmp_path / "g.pth", "legacy+in-stats")
    report = presets.convert_source_into(model, preset, str(tmp_path / "g.pth"))
    assert report.ok and np.array_equal(model.get_layer("output_conv").bias.numpy(), state["model.23.bias"].numpy())
    actual, expected = _outputs(net, model, 32, seed=2)
    assert_parity(actual, expected, what="resnet_6blocks")
    with pytest.raises(WeightMismatchError, match="running_mean"):  # what junyanz's loader deletes
        presets.convert_source_into(model, dataclasses.replace(preset, drop_keys=()), str(tmp_path / "g.pth"))

    state["model.1.weight_orig"] = state["model.1.weight"].clone()
    torch.save(state, tmp_path / "stray.pth")
    with pytest.raises(WeightMismatchError, match="model.1.weight_orig"):
        presets.convert_source_into(model, preset, str(tmp_path / "stray.pth"))
