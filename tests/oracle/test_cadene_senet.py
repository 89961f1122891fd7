"""Oracle: Cadene's pretrainedmodels SE-ResNet / SE-ResNeXt give our logits from their .pth files.

Cadene's SENet differs from timm's seresnet (our defaults) in the stem
max-pool (``ceil_mode=True``, no padding: ``stem_pool="ceil"``), in where
SE-ResNet strides (the first 1x1: ``stride_placement="v1"``) and in its key
names (layout "cadene-senet"). Healthy random weights
(`tests.references.heal_torch`: He-scaled, BN statistics calibrated on a
batch then perturbed) are saved as Cadene's files are (legacy, non-zip torch
format) and loaded through the reader, the layout and the assign step, all
or nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pretrainedmodels")
from pretrainedmodels.models import senet  # noqa: E402

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from kerasnets.resnet import CADENE_SENET  # noqa: E402
from tests.references import assert_parity, build_uninitialised, heal_torch, infer, input_dependence  # noqa: E402

# Cadene's head is AvgPool2d(7), so the last map must be 7x7: 224. Its stem output (112) is even,
# so ceil mode reads one more row and column than the padded pool: the option is exercised.
SIZE = 224
TOLERANCE = 1e-4  # max |ours - theirs| / max |theirs|


def _cadene_file(name, path):
    torch.manual_seed(0)
    calibration = np.random.default_rng(1).normal(size=(4, 3, SIZE, SIZE)).astype("float32")
    # He-scaled SE convs too: the gates are spread, not all ~0.5
    reference = heal_torch(getattr(senet, name)(num_classes=1000, pretrained=None), calibration)
    # Residual branches at half the stream's scale (bn3 gamma and beta x 0.5), as trained nets' last BN keeps
    # them: at full scale the perturbed eval-mode statistics compound ~1.3x per block over SE-ResNet-101/152's
    # 23/36-block stage 3, and torch's own float32 logits end 41% (101) off its float64 ones: a chaotic
    # reference no float32 implementation can match. At x0.5 float32 vs float64 is ~1e-6 for 152 layers.
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, senet.Bottleneck):
                module.bn3.weight.mul_(0.5)
                module.bn3.bias.mul_(0.5)
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=False)
    return reference


@pytest.mark.parametrize("name", [
    "se_resnet50",
    "se_resnext50_32x4d",
    pytest.param("se_resnet101", marks=pytest.mark.slow),
    pytest.param("se_resnet152", marks=pytest.mark.slow),
])
def test_cadene_senet_logits(name, tmp_path):
    path = tmp_path / f"{name}.pth"
    reference = _cadene_file(name, path)
    ours = build_uninitialised(kerasnets.build, name, input_shape=(SIZE, SIZE, 3), classifier_activation=None,
                               **CADENE_SENET[name])  # the file gives every value
    assert kerasnets.parameter_count(ours) == sum(p.numel() for p in reference.parameters())
    report = weights_io.load_weights(ours, path, source="cadene-senet")
    assert report.ok and report.applied and not report.unexpected and report.format == "torch-legacy"

    x = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    assert_parity(infer(ours, x), expected, rtol=TOLERANCE, what=name)

    # The same options but the padded stem pool: the layout is detected and a strict load refuses, naming
    # the option; forced in, the logits are not Cadene's (so the option is not a no-op).
    options = {k: v for k, v in CADENE_SENET[name].items() if k != "stem_pool"}
    padded = build_uninitialised(kerasnets.build, name, input_shape=(SIZE, SIZE, 3), classifier_activation=None,
                                 **options)
    with pytest.raises(weights_io.WeightMismatchError, match="stem_pool: model 'padded', publisher 'ceil'"):
        weights_io.load_weights(padded, path)
    with pytest.warns(weights_io.WeightOptionsWarning, match="stem_pool"):
        detected = weights_io.load_weights(padded, path, strict=False)
    assert detected.layout == "cadene-senet" and detected.ok
    difference = np.abs(infer(padded, x) - expected).max() / np.abs(expected).max()
    print(f"{name} padded stem pool vs Cadene: difference {difference:.2e}, "
          f"dependence {input_dependence(expected):.2e}")
    assert difference > 10 * TOLERANCE, f"the padded stem pool misses the parity bar by too little ({difference:.3g})"
