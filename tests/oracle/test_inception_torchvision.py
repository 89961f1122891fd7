"""Oracle: torchvision googlenet and inception_v3 give our logits, aux heads included.

Random torch weights (He-scaled, so activations stay O(1)), randomised BN
statistics -> state dict as numpy -> `WeightFile(convention="torch")` ->
`assign_weights(strict=True)` with the registered layout (every key used,
every weight set) -> same main logits in eval mode. torchvision only runs
its aux heads in training mode, so their reference outputs are taken by
calling `aux1`/`aux2`/`AuxLogits` (eval mode) on the hooked 4a/4d/Mixed_6e
maps. `transform_input=True` on both sides checks that option too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import keras  # noqa: E402

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.conftest import assert_close  # noqa: E402
from weights_io.core import WeightFile, group_flat  # noqa: E402

torch.set_num_threads(2)


def _randomize(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return module.eval()


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
    reference = _randomize(torchvision.models.googlenet(weights=None, num_classes=10, aux_logits=aux,
                                                        transform_input=transform, init_weights=True))
    ours = kerasnets.build_googlenet(input_shape=(size, size, 3), classes=10, classifier_activation=None,
                                     aux_logits=aux, transform_input=transform)
    _load(reference, ours, "torchvision-googlenet")
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    expected = _run_with_aux(reference, x, {"inception4a": "aux1", "inception4d": "aux2"} if aux else {})
    got = ours(x, training=False)
    got = [keras.ops.convert_to_numpy(g) for g in (got if aux else [got])]
    assert len(got) == len(expected)
    for name, a, e in zip(("main", "aux1", "aux2"), got, expected):
        assert_close(a, e, what=f"googlenet {name}")


@pytest.mark.parametrize("size, aux, transform", [(75, False, True), (299, True, False)])
def test_inception_v3_logits(size, aux, transform):
    torch.manual_seed(0)
    reference = _randomize(torchvision.models.inception_v3(weights=None, num_classes=10, aux_logits=aux,
                                                           transform_input=transform, init_weights=True))
    ours = kerasnets.build_inception_v3(input_shape=(size, size, 3), classes=10, classifier_activation=None,
                                        variant="torchvision", aux_logits=aux, transform_input=transform)
    _load(reference, ours, "torchvision-inception-v3")
    x = np.random.default_rng(0).normal(size=(1 if aux else 2, size, size, 3)).astype("float32")
    expected = _run_with_aux(reference, x, {"Mixed_6e": "AuxLogits"} if aux else {})
    got = ours(x, training=False)
    got = [keras.ops.convert_to_numpy(g) for g in (got if aux else [got])]
    assert len(got) == len(expected)
    for name, a, e in zip(("main", "aux"), got, expected):
        assert_close(a, e, what=f"inception_v3 {name}")


def test_keras_variant_differs_from_torchvision():
    """The torch padding option is not a no-op: keras-style v3 with torchvision's weights drifts."""
    torch.manual_seed(0)
    reference = _randomize(torchvision.models.inception_v3(weights=None, num_classes=10, aux_logits=False,
                                                           init_weights=True))
    ours = kerasnets.build_inception_v3(input_shape=(75, 75, 3), classes=10, classifier_activation=None,
                                        variant="keras", bn_epsilon=1e-3)
    # keras' BN has no gamma; set torchvision's to 1 so only the pooling differs.
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
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
    assert np.abs(got - expected).max() > 1e-3 * np.abs(expected).max()
