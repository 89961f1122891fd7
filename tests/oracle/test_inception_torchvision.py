"""Oracle: torchvision googlenet and inception_v3 give our logits, aux heads included.

Healthy random torch weights (`tests.references.heal_torch`: He-scaled, BN
statistics calibrated on a batch then perturbed) -> state dict as numpy ->
`WeightFile(convention="torch")` -> `assign_weights(strict=True)` with the
registered layout (every key used, every weight set) -> same main logits in
eval mode, on two inputs, against a reference whose logits visibly depend on
the input (`assert_parity`). torchvision only runs its aux heads in training
mode, so their reference outputs are taken by calling `aux1`/`aux2`/`AuxLogits`
(eval mode) on the hooked 4a/4d/Mixed_6e maps. `transform_input=True` on both
sides checks that option too.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import keras  # noqa: E402

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, heal_torch, input_dependence  # noqa: E402
from weights_io.core import WeightFile, group_flat  # noqa: E402


def _calibration(size, n=4, seed=1):
    """A NCHW batch for `heal_torch`, other than the compared one."""
    return np.random.default_rng(seed).normal(size=(n, 3, size, size)).astype("float32")


def _load(reference, ours, layout):
    flat = {k: v.detach().cpu().numpy() for k, v in reference.state_dict().items()}
    wf = WeightFile(tensors=group_flat(flat), convention="torch", format="torch-state-dict")
    report = weights_io.assign_weights(ours, wf, weights_io.get_layout(layout), strict=True)
    assert report.ok and report.applied and not report.unexpected


def _run_with_aux(reference, x, taps):
    """Main logits, and each aux head applied to the map its tap module produced."""
    maps = {}
    hooks = [getattr(reference, tap).register_forward_hook(lambda _m, _i, out, tap=tap: maps.__setitem__(tap, out))
             for tap in taps]
    with torch.no_grad():
        main = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)))
        aux = [getattr(reference, head)(maps[tap]).numpy() for tap, head in taps.items()]
    for hook in hooks:
        hook.remove()
    return [main.numpy()] + aux


@pytest.mark.parametrize("size, aux, transform", [(100, True, True), (64, False, False)])
def test_googlenet_logits(size, aux, transform):
    torch.manual_seed(0)
    reference = heal_torch(torchvision.models.googlenet(weights=None, num_classes=10, aux_logits=aux,
                                                        transform_input=transform, init_weights=True),
                           _calibration(size))
    ours = kerasnets.build_googlenet(input_shape=(size, size, 3), classes=10, classifier_activation=None,
                                     aux_logits=aux, transform_input=transform)
    _load(reference, ours, "torchvision-googlenet")
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    expected = _run_with_aux(reference, x, {"inception4a": "aux1", "inception4d": "aux2"} if aux else {})
    got = ours(x, training=False)
    got = [keras.ops.convert_to_numpy(g) for g in (got if aux else [got])]
    assert len(got) == len(expected)
    for name, a, e in zip(("main", "aux1", "aux2"), got, expected):
        assert_parity(a, e, what=f"googlenet {size} {name}")


@pytest.mark.parametrize("size, aux, transform", [(75, False, True), (299, True, False)])
def test_inception_v3_logits(size, aux, transform):
    torch.manual_seed(0)
    reference = heal_torch(torchvision.models.inception_v3(weights=None, num_classes=10, aux_logits=aux,
                                                           transform_input=transform, init_weights=True),
                           _calibration(size))
    ours = kerasnets.build_inception_v3(input_shape=(size, size, 3), classes=10, classifier_activation=None,
                                        variant="torchvision", aux_logits=aux, transform_input=transform)
    _load(reference, ours, "torchvision-inception-v3")
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    expected = _run_with_aux(reference, x, {"Mixed_6e": "AuxLogits"} if aux else {})
    got = ours(x, training=False)
    got = [keras.ops.convert_to_numpy(g) for g in (got if aux else [got])]
    assert len(got) == len(expected)
    for name, a, e in zip(("main", "aux"), got, expected):
        assert_parity(a, e, what=f"inception_v3 {size} {name}")


def test_keras_variant_differs_from_torchvision():
    """The torch padding option is not a no-op: keras-style v3 with torchvision's weights drifts."""
    torch.manual_seed(0)
    reference = heal_torch(torchvision.models.inception_v3(weights=None, num_classes=10, aux_logits=False,
                                                           init_weights=True), _calibration(75))
    ours = kerasnets.build_inception_v3(input_shape=(75, 75, 3), classes=10, classifier_activation=None,
                                        variant="keras", bn_epsilon=1e-3)
    # keras' BN has no gamma; fold torchvision's into the variance (gamma / sqrt(v + eps) = 1 / sqrt(v' + eps))
    # and set it to 1, so torchvision computes the same and only the pooling differs.
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.copy_((m.running_var + m.eps) / m.weight**2 - m.eps)
                m.weight.fill_(1.0)
    flat = {k: v.numpy() for k, v in reference.state_dict().items() if not k.endswith("bn.weight")}
    wf = WeightFile(tensors=group_flat(flat), convention="torch", format="torch-state-dict")
    layout = weights_io.get_layout("torchvision-inception-v3")
    with pytest.raises(weights_io.WeightMismatchError, match="variant: model 'keras', publisher 'torchvision'"):
        weights_io.assign_weights(ours, wf, layout, strict=True)
    with pytest.warns(weights_io.WeightOptionsWarning, match="variant"):
        report = weights_io.assign_weights(ours, wf, layout, strict=False)
    assert report.ok and report.option_mismatches
    x = np.random.default_rng(0).normal(size=(2, 75, 75, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = keras.ops.convert_to_numpy(ours(x, training=False))
    difference, dependence = np.abs(got - expected).max() / np.abs(expected).max(), input_dependence(expected)
    print(f"keras variant vs torchvision: difference {difference:.2e}, dependence {dependence:.2e}")
    assert dependence >= 2e-3, f"the reference hardly depends on its input ({dependence:.2e})"
    assert difference > 1e-3
