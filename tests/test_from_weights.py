"""`kerasnets.from_weights`: a file in, the publisher's network out, computing what the file's model computed.

Each file is written from a healed model built as its publisher builds it
(the layout's options), in the publisher's names (weights_io's writers);
`from_weights` must find the network, its options and its class count from
the file alone and give that model's outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets.identify import UnrecognisedWeightsError, identify, weighted_layer_table
from tests.conftest import ROOT
from tests.references import assert_parity, build_uninitialised, heal_keras, infer
from weights_io.core import build_record
from weights_io.layouts import get_layout

FIXTURES = ROOT / "tests" / "data" / "fixtures"


def _publisher_model(name, layout, **options):
    """Model `name` built with the options `layout`'s publisher implies, healed."""
    probe = kerasnets.registry.build_for_shapes(name, **options)  # for its build record only
    record = build_record(probe)
    implied = get_layout(layout).implied_options(record.family, record.model)
    model = build_uninitialised(kerasnets.build, name,
                                **{**{k: v for k, v in implied.items() if k in record.options}, **options})
    size = model.input_shape[1] or 64
    batch = np.random.default_rng(0).uniform(-1, 1, (6, size, size, 3)).astype("float32")
    heal_keras(model, batch)
    return model, batch


CASES = [  # (registry name, layout, writer, builder options of the file's model)
    ("resnet18", "torchvision-resnet", "pth", {"classes": 10, "input_shape": (64, 64, 3)}),
    ("resnext50_32x4d", "torchvision-resnet", "pth", {"input_shape": (64, 64, 3)}),  # resnet50's names
    ("densenet121", "torchvision-densenet", "pth", {"classes": 7, "input_shape": (64, 64, 3)}),
    ("mobilenet_v3_small", "torchvision-mobilenet-v3", "pth", {"input_shape": (64, 64, 3)}),
    ("vgg11", "tensorflow-vgg", "npy", {"include_top": False, "pooling": "avg", "input_shape": (32, 32, 3)}),
]


@pytest.mark.parametrize("name,layout,writer,options", CASES, ids=[c[0] for c in CASES])
def test_from_weights_rebuilds_the_publishers_network(tmp_path, name, layout, writer, options):
    source, batch = _publisher_model(name, layout, **options)
    path = tmp_path / f"{name}.{writer}"
    if writer == "pth":
        weights_io.save_torch_state_dict(source, path, layout=layout)
    else:
        weights_io.save_npy_weights(source, path, layout=layout)
    # a file cannot tell the input size of a pooled net, nor the pooling of a headless one
    given = {k: v for k, v in options.items() if k in ("input_shape", "pooling")}
    model = kerasnets.from_weights(path, **given)
    record = build_record(model)
    assert record.model == name
    assert model.output_shape == source.output_shape
    assert model.weights_report.ok
    assert_parity(infer(model, batch), infer(source, batch), what=f"from_weights {name}")


def test_a_headless_file_gives_a_headless_model(tmp_path):
    source, batch = _publisher_model("resnet18", "torchvision-resnet", include_top=False, pooling="avg",
                                     input_shape=(64, 64, 3))
    path = tmp_path / "resnet18_features.pth"
    weights_io.save_torch_state_dict(source, path, layout="torchvision-resnet")
    model = kerasnets.from_weights(path, pooling="avg", input_shape=(64, 64, 3))
    assert build_record(model).model == "resnet18" and not build_record(model).options["include_top"]
    assert_parity(infer(model, batch), infer(source, batch), what="headless resnet18")


def test_a_keras_weights_file_in_our_names(tmp_path):
    source, batch = _publisher_model("densenet121", "keras", classes=3, input_shape=(64, 64, 3))
    path = tmp_path / "densenet121.weights.h5"
    source.save_weights(path)
    model = kerasnets.from_weights(path, input_shape=(64, 64, 3))
    assert build_record(model).model == "densenet121"
    assert_parity(infer(model, batch), infer(source, batch), what="keras densenet121")


def test_a_wrong_model_hint_names_the_network_the_file_holds(tmp_path):
    source, _ = _publisher_model("resnet18", "torchvision-resnet", input_shape=(64, 64, 3))
    path = tmp_path / "resnet18.pth"
    weights_io.save_torch_state_dict(source, path, layout="torchvision-resnet")
    with pytest.raises(UnrecognisedWeightsError, match="looks like 'resnet18'"):
        kerasnets.from_weights(path, model="resnet34")


@pytest.mark.parametrize("fixture", ["pth/dncnn_25.pth", "npy/det1.npy"])
def test_a_file_of_no_registered_network_gets_the_closest_matches(fixture):
    """Real files of networks kerasnets does not build (DnCNN, MTCNN): one error, the closest pairs named."""
    with pytest.raises(UnrecognisedWeightsError, match="Cannot place") as caught:
        identify(FIXTURES / fixture)
    assert "placed" in str(caught.value) or "no layout places" in str(caught.value)


def test_the_table_lists_every_registered_model():
    table = weighted_layer_table()
    assert sorted(table) == kerasnets.available_models(), (
        "kerasnets/data/weighted_layers.json.gz is stale: python -m kerasnets.identify --refresh")


def test_cli_converts_and_summarises_a_file_it_recognises(tmp_path, capsys):
    from training import cli
    from training.deploy import load_saved_model

    source, batch = _publisher_model("resnet18", "torchvision-resnet", classes=4, input_shape=(64, 64, 3))
    path = tmp_path / "resnet18.pth"
    weights_io.save_torch_state_dict(source, path, layout="torchvision-resnet")
    assert cli.main(["summary", "--weights", str(path)]) == 0
    summary = capsys.readouterr().out
    assert "Format: torch-zip" in summary and "Network: resnet18 (torchvision-resnet layout)" in summary
    out = tmp_path / "resnet18.keras"
    assert cli.main(["convert", str(path), "--out", str(out), "--option", "input_shape=(64,64,3)"]) == 0
    assert "recognised resnet18" in capsys.readouterr().out
    loaded = load_saved_model(out)
    assert_parity(infer(loaded, batch), infer(source, batch), what="cli convert resnet18")


def test_a_tf_slim_checkpoint_with_a_background_class(tmp_path):
    """TF-slim's resnet_v1_50 layout, 1001 classes, a V2 checkpoint TensorFlow writes: a 1000-class model
    built with kerasnets.resnet.TF_SLIM comes out, computing the file's logits without the background's."""
    import tensorflow as tf

    from kerasnets.resnet import TF_SLIM
    from weights_io.assign import export_weights

    source, batch = _publisher_model("resnet50", "tf-slim-resnet-v1", classes=1001, input_shape=(64, 64, 3),
                                     classifier_activation=None, **TF_SLIM)
    flat = export_weights(source, get_layout("tf-slim-resnet-v1"), "tf").flat()
    names = sorted(flat)
    prefix = str(tmp_path / "resnet_v1_50" / "model.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[n.replace(".", "/") for n in names],
                      shape_and_slices=[""] * len(names), tensors=[tf.constant(flat[n]) for n in names])
    model = kerasnets.from_weights(prefix, input_shape=(64, 64, 3), classifier_activation=None)
    record = build_record(model)
    assert record.model == "resnet50" and record.options["classes"] == 1000
    assert all(record.options[k] == v for k, v in TF_SLIM.items())
    assert_parity(infer(model, batch), infer(source, batch)[:, 1:],
                  what="from_weights slim resnet_v1_50")
