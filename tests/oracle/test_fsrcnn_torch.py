"""Oracle: the notes' FSRCNN-pytorch model (written out here in torch) gives our outputs.

Healthy random torch weights (`tests.references.heal_torch`: He-scaled
kernels, non-zero biases; plus random PReLU slopes) -> state dict ->
`WeightFile(convention="torch")` -> `assign_weights` with the
``fsrcnn-pytorch`` layout (strict: every key used, every weight set) -> the
same super-resolved images of two inputs (`assert_parity`: the reference's
output visibly depends on its input), for several scales, sizes and widths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, heal_torch, infer  # noqa: E402
from weights_io.core import WeightFile, group_flat  # noqa: E402


class FSRCNN(nn.Module):
    """models.FSRCNN of yjn870/FSRCNN-pytorch, as quoted in the users' notes."""

    def __init__(self, scale_factor, num_channels=1, d=56, s=12, m=4):
        super().__init__()
        self.first_part = nn.Sequential(nn.Conv2d(num_channels, d, kernel_size=5, padding=5 // 2), nn.PReLU(d))
        mid = [nn.Conv2d(d, s, kernel_size=1), nn.PReLU(s)]
        for _ in range(m):
            mid.extend([nn.Conv2d(s, s, kernel_size=3, padding=3 // 2), nn.PReLU(s)])
        mid.extend([nn.Conv2d(s, d, kernel_size=1), nn.PReLU(d)])
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(d, num_channels, kernel_size=9, stride=scale_factor, padding=9 // 2,
                                            output_padding=scale_factor - 1)
        for module in list(self.first_part) + list(self.mid_part):
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight.data, 0.0, math.sqrt(2 / (module.out_channels * module.weight.data[0][0].numel())))
                nn.init.zeros_(module.bias.data)
        nn.init.normal_(self.last_part.weight.data, mean=0.0, std=0.001)
        nn.init.zeros_(self.last_part.bias.data)

    def forward(self, x):
        return self.last_part(self.mid_part(self.first_part(x)))


def _heal(module, calibration, seed):
    """Healthy kernels and non-zero biases, and non-default PReLU slopes, so every weight shows in the output."""
    heal_torch(module, calibration, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5)
    return module.eval()


@pytest.mark.parametrize(
    "scale, size, channels, dsm",
    [(2, (17, 12), 1, (56, 12, 4)), (3, (10, 10), 1, (56, 12, 4)), (4, (9, 13), 3, (32, 5, 1)),
     (1, (8, 8), 1, (56, 12, 4)), (6, (5, 7), 1, (16, 4, 2))],
)
def test_fsrcnn_matches_fsrcnn_pytorch(scale, size, channels, dsm):
    d, s, m = dsm
    torch.manual_seed(scale)
    calibration = np.random.default_rng(100 + scale).uniform(0, 1, (4, channels, *size)).astype("float32")
    reference = _heal(FSRCNN(scale, channels, d, s, m), calibration, seed=scale)
    model = kerasnets.build_fsrcnn(scale, channels, d, s, m)
    assert kerasnets.parameter_count(model) == sum(p.numel() for p in reference.parameters())
    flat = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    wf = WeightFile(tensors=group_flat(flat), convention="torch", format="torch-state-dict")
    report = weights_io.assign_weights(model, wf, weights_io.get_layout("fsrcnn-pytorch"))
    assert report.ok and report.applied and not report.unexpected
    x = np.random.default_rng(scale).uniform(0, 1, (2, *size, channels)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert expected.shape == (2, size[0] * scale, size[1] * scale, channels)
    assert_parity(infer(model, x), expected, what=f"fsrcnn x{scale}")


def test_torch_initialisation_statistics_match():
    """Our initialisers draw from the repository's distributions (std per layer)."""
    model = kerasnets.build_fsrcnn(3)
    reference = FSRCNN(3)
    ours = {layer.name: layer for layer in model.layers}
    pairs = [("extract_conv", reference.first_part[0]), ("shrink_conv", reference.mid_part[0]),
             ("map2_conv", reference.mid_part[4]), ("expand_conv", reference.mid_part[10])]
    for name, module in pairs:
        expected_std = math.sqrt(2 / (module.out_channels * module.weight[0][0].numel()))
        kernel = np.asarray(ours[name].kernel)
        assert abs(kernel.std() / expected_std - 1) < 0.25, name
        assert not np.asarray(ours[name].bias).any()
    assert abs(np.asarray(ours["deconv"].kernel).std() / 1e-3 - 1) < 0.15
    np.testing.assert_array_equal(np.asarray(ours["extract_prelu"].alpha).ravel(), reference.first_part[1].weight.detach().numpy())
