"""Oracle: Cadene's pretrainedmodels inceptionv4 and bninception give our logits, loaded from .pth files.

Cadene's models with healthy random weights (`tests.references.heal_torch`:
He-scaled, BN statistics calibrated on a batch then perturbed) are saved in
the legacy (pre-zip) torch format, as Cadene's real files are, and loaded by
`weights_io.load_weights` into our builders with the options that reproduce
them: by layout name, and by auto-detection; the logits must match on two
inputs, against a reference whose logits visibly depend on them.
Both models only run where their final fixed-size average pool sees the
whole map (8x8 for v4, 7x7 for BN-Inception), so inputs stay near 299/224;
226 still reaches a 7x7 map but makes the ceil-mode pool1 (113 -> 56) differ
from a 'same' one (113 -> 57).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pretrainedmodels = pytest.importorskip("pretrainedmodels")  # imports torchvision: before keras

import keras  # noqa: E402

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, heal_torch, input_dependence  # noqa: E402


def _saved_reference(factory, size, tmp_path):
    """Cadene's model with healthy random weights, and its state dict saved as Cadene's files are."""
    torch.manual_seed(0)
    calibration = np.random.default_rng(1).normal(size=(4, 3, size, size)).astype("float32")
    reference = heal_torch(getattr(pretrainedmodels, factory)(num_classes=1000, pretrained=None), calibration)
    path = tmp_path / f"{factory}.pth"
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=False)
    return reference, path


def _logits(reference, ours, size):
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    return keras.ops.convert_to_numpy(ours(x, training=False)), expected


def _load_both_ways(ours, path, layout):
    report = weights_io.load_weights(ours, path, source=layout)
    assert report.ok and report.applied and not report.unexpected
    assert report.format == "torch-legacy"
    assert weights_io.load_weights(ours, path).layout == layout  # auto-detected


def test_inceptionv4_logits(tmp_path):
    reference, path = _saved_reference("inceptionv4", 299, tmp_path)
    ours = kerasnets.build_inception_v4(classifier_activation=None)
    _load_both_ways(ours, path, "cadene-inception-v4")
    assert_parity(*_logits(reference, ours, 299), what="inceptionv4")


@pytest.mark.parametrize("size", [224, 226])
def test_bninception_logits(size, tmp_path):
    reference, path = _saved_reference("bninception", size, tmp_path)
    ours = kerasnets.build_inception_v2(input_shape=(size, size, 3), classifier_activation=None, variant="cadene")
    _load_both_ways(ours, path, "cadene-bninception")
    assert_parity(*_logits(reference, ours, size), what=f"bninception {size}")


def test_bninception_needs_the_cadene_variant(tmp_path):
    """The paper's net has no conv biases, so the file does not fit; without them it computes something else."""
    reference, path = _saved_reference("bninception", 224, tmp_path)
    paper = kerasnets.build_inception_v2(classifier_activation=None)
    with pytest.raises(weights_io.WeightMismatchError) as error:
        weights_io.load_weights(paper, path, source="cadene-bninception")
    assert len(error.value.report.unexpected) == 69  # one bias per conv
    weights_io.load_weights(paper, path, source="cadene-bninception", strict=False)
    got, expected = _logits(reference, paper, 224)
    difference, dependence = np.abs(got - expected).max() / np.abs(expected).max(), input_dependence(expected)
    print(f"bninception paper variant vs Cadene: difference {difference:.2e}, dependence {dependence:.2e}")
    assert dependence >= 2e-3, f"the reference hardly depends on its input ({dependence:.2e})"
    assert difference > 1e-2
