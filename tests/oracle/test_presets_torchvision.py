"""Every torchvision preset: its builder options and layout take torchvision's exact state-dict keys and shapes.

The state dict's names and shapes come from torchvision itself (models built on
the meta device, no memory); values are random, except the classifier's, which
are zero-strided views: the models are built without their head, so the loader
must drop exactly those arrays. DenseNet keys are spelled the pre-0.4 way
(``norm.1``), as in the published files.
"""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import kerasnets  # noqa: E402
from kerasnets import presets  # noqa: E402
from weights_io import WeightFile, get_layout  # noqa: E402
from weights_io.core import group_flat  # noqa: E402
from tests.references import build_uninitialised, infer  # noqa: E402

TORCHVISION = [p.name for p in presets.list_presets() if p.publisher.startswith("torchvision")]


def _state_dict_shapes(model_name):
    with torch.device("meta"):
        net = torchvision.models.get_model(model_name, weights=None)
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_preset_loads(name):
    preset = presets.get_preset(name)
    size = 75 if preset.model == "inception_v3" else 64  # Inception v3's smallest input
    ours = build_uninitialised(kerasnets.build, preset.model, include_top=False, input_shape=(size, size, 3),
                               **preset.options)  # the file gives every value
    presets.check_architecture(ours, preset)
    rng = np.random.default_rng(0)
    head_sources = set(get_layout(preset.layout).map_names(list(preset.head)).values())
    flat = {}
    for key, (shape, dtype) in _state_dict_shapes(preset.model).items():
        layer = key.rpartition(".")[0]
        if "int" in dtype:
            flat[key] = np.zeros(shape, "int64")
        elif layer in head_sources:
            flat[key] = np.broadcast_to(np.float32(0), shape)
        else:
            flat[key] = rng.random(shape, dtype=np.float32) + np.float32(0.5)  # U(0.5, 1.5)
    if preset.key_renames:  # the published DenseNet files: 'denselayer1.norm.1.weight'
        flat = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in flat.items()}
        assert any(".norm.1." in k for k in flat)
    first = next(k for k in flat if k.endswith("weight") and len(flat[k].shape) == 4)
    expected = np.asarray(flat[first]).transpose(2, 3, 1, 0).copy()
    report = presets.convert_weight_file_into(ours, preset, WeightFile(tensors=group_flat(flat), convention="torch",
                                                                       format="torch-zip"))
    assert report.ok and report.applied
    first_conv = next(l for l in ours.layers if l.weights and len(l.weights[0].shape) == 4)
    np.testing.assert_array_equal(first_conv.weights[0].numpy(), expected)


@pytest.mark.parametrize("name, size", [("googlenet.torchvision_v1", 224), ("inception_v3.torchvision_v1", 299)])
def test_inception_presets_give_torchvision_logits(name, size):
    """The full published layout (aux heads included) into the inference build: torchvision's eval logits.

    torchvision loads these files with aux_logits=True and transform_input=True and
    then drops the aux heads; the preset's options and head list must do the same.
    """
    from tests.references import assert_parity, heal_torch

    preset = presets.get_preset(name)
    torch.manual_seed(0)
    net = torchvision.models.get_model(preset.model, weights=None, aux_logits=True, transform_input=True,
                                       init_weights=True)
    heal_torch(net, np.random.default_rng(1).normal(size=(4, 3, size, size)).astype("float32"))
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    assert any(k.startswith(("aux1.", "AuxLogits.")) for k in state)
    ours = build_uninitialised(kerasnets.build, preset.model, input_shape=(size, size, 3), classifier_activation=None,
                               **preset.options)
    report = presets.convert_weight_file_into(ours, preset, WeightFile(tensors=group_flat(state), convention="torch",
                                                                       format="torch-zip"))
    assert report.ok and report.applied
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")  # torch-normalised images
    with torch.no_grad():
        expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert_parity(infer(ours, x), expected, what=name)
