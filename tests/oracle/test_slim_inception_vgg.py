"""Oracle: TF-slim's inception_v1, inception_v3, inception_v4, inception_resnet_v2 and vgg_16 give our logits.

Each slim net is built in graph mode (`tf.compat.v1`, is_training=False)
with healthy random weights (`tests.references.heal_keras` on a donor build
of ours, copied into slim's variables by name: see `_healthy_slim_values`); its
variables, under their TF names, go through weights_io's assign step into
our builder with the options the layout declares, and the logits must match
(`assert_parity`). tf_slim 1.1.0 ships inception_v1/v3 and vgg; v4 and
Inception-ResNet v2 live in tensorflow/models' research/slim, transcribed
below with tf_slim's layers (variable names are what those files create).

The variables are handed over as an in-memory `WeightFile` ({layer: {param:
array}}, the layer part of a TF name everything before its last ``/``, as
weights_io's TF checkpoint reader gives them) and go through the same assign
step; `test_checkpoint_file` writes a real checkpoint with `Saver` and loads
it with `weights_io.load_weights` (format and layout detected). Parameter
counts: our build equals slim's variables (trainable + BN moving
statistics), AuxLogits excepted where ours has no aux head.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf_keras")
pytest.importorskip("tf_slim")
from tests.oracle.slim import import_tf_slim, plain_session, tf1_equality, weight_file  # noqa: E402

slim = import_tf_slim()

import keras  # noqa: E402

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, build_uninitialised, heal_keras, load_tf_variables  # noqa: E402
from weights_io.assign import weighted_layers  # noqa: E402

from tf_slim.nets import inception_v1, inception_v3, vgg  # noqa: E402

v1 = tf.compat.v1


# ----------------------------------------------------------------------------------------------------------
# tensorflow/models research/slim/nets/inception_v4.py and inception_resnet_v2.py, with tf_slim's layers
# ----------------------------------------------------------------------------------------------------------


def _slim_inception_arg_scope():
    """research/slim inception_utils.inception_arg_scope: BN (no gamma, eps 1e-3) + ReLU after every conv."""
    return slim.arg_scope([slim.conv2d], activation_fn=tf.nn.relu, normalizer_fn=slim.batch_norm,
                          normalizer_params={"decay": 0.9997, "epsilon": 0.001})


def _branches(net, *branches):
    """Each branch a list of (kind, depth or None, kernel, stride, padding, scope) steps, concatenated."""
    outputs = []
    for b, steps in enumerate(branches):
        with v1.variable_scope(f"Branch_{b}"):
            y = net
            for kind, depth, kernel, stride, padding, scope in steps:
                if kind == "conv":
                    y = slim.conv2d(y, depth, kernel, stride=stride, padding=padding, scope=scope)
                elif kind == "split":  # parallel convs, concatenated (depth: a list of (depth, kernel, scope))
                    y = tf.concat([slim.conv2d(y, d, k, scope=s) for d, k, s in depth], 3)
                else:
                    pool = slim.max_pool2d if kind == "max" else slim.avg_pool2d
                    y = pool(y, kernel, stride=stride, padding=padding, scope=scope)
            outputs.append(y)
    return tf.concat(outputs, 3)


def C(depth, kernel, scope, stride=1, padding="SAME"):
    return ("conv", depth, kernel, stride, padding, scope)


def P(kind, scope, stride=1, padding="SAME"):
    return (kind, None, [3, 3], stride, padding, scope)


def _v4_block_a(net):
    return _branches(net, [C(96, [1, 1], "Conv2d_0a_1x1")],
                     [C(64, [1, 1], "Conv2d_0a_1x1"), C(96, [3, 3], "Conv2d_0b_3x3")],
                     [C(64, [1, 1], "Conv2d_0a_1x1"), C(96, [3, 3], "Conv2d_0b_3x3"), C(96, [3, 3], "Conv2d_0c_3x3")],
                     [P("avg", "AvgPool_0a_3x3"), C(96, [1, 1], "Conv2d_0b_1x1")])


def _v4_block_b(net):
    return _branches(net, [C(384, [1, 1], "Conv2d_0a_1x1")],
                     [C(192, [1, 1], "Conv2d_0a_1x1"), C(224, [1, 7], "Conv2d_0b_1x7"), C(256, [7, 1], "Conv2d_0c_7x1")],
                     [C(192, [1, 1], "Conv2d_0a_1x1"), C(192, [7, 1], "Conv2d_0b_7x1"), C(224, [1, 7], "Conv2d_0c_1x7"),
                      C(224, [7, 1], "Conv2d_0d_7x1"), C(256, [1, 7], "Conv2d_0e_1x7")],
                     [P("avg", "AvgPool_0a_3x3"), C(128, [1, 1], "Conv2d_0b_1x1")])


def _v4_block_c(net):
    return _branches(net, [C(256, [1, 1], "Conv2d_0a_1x1")],
                     [C(384, [1, 1], "Conv2d_0a_1x1"),
                      ("split", [(256, [1, 3], "Conv2d_0b_1x3"), (256, [3, 1], "Conv2d_0c_3x1")], None, 1, "SAME", None)],
                     [C(384, [1, 1], "Conv2d_0a_1x1"), C(448, [3, 1], "Conv2d_0b_3x1"), C(512, [1, 3], "Conv2d_0c_1x3"),
                      ("split", [(256, [1, 3], "Conv2d_0d_1x3"), (256, [3, 1], "Conv2d_0e_3x1")], None, 1, "SAME", None)],
                     [P("avg", "AvgPool_0a_3x3"), C(256, [1, 1], "Conv2d_0b_1x1")])


def _aux_logits(net, num_classes, pool_scope, conv_scope):
    """v4 / Inception-ResNet v2 AuxLogits: avgpool 5/3, 1x1 128, conv over the whole map 768, flatten, FC."""
    with v1.variable_scope("AuxLogits"):
        aux = slim.avg_pool2d(net, [5, 5], stride=3, padding="VALID", scope=pool_scope)
        aux = slim.conv2d(aux, 128, [1, 1], scope="Conv2d_1b_1x1")
        aux = slim.conv2d(aux, 768, aux.get_shape()[1:3], padding="VALID", scope=conv_scope)
        return slim.fully_connected(slim.flatten(aux), num_classes, activation_fn=None,
                                    scope="Aux_logits" if conv_scope == "Conv2d_2a" else "Logits")


def _logits(net, num_classes):
    with v1.variable_scope("Logits"):
        net = slim.avg_pool2d(net, net.get_shape()[1:3], padding="VALID", scope="AvgPool_1a")
        return slim.fully_connected(slim.flatten(net), num_classes, activation_fn=None, scope="Logits")


def slim_inception_v4(inputs, num_classes=1001):
    with v1.variable_scope("InceptionV4"), _slim_inception_arg_scope(), \
            slim.arg_scope([slim.batch_norm], is_training=False), \
            slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
        net = slim.conv2d(inputs, 32, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3")
        net = slim.conv2d(net, 32, [3, 3], padding="VALID", scope="Conv2d_2a_3x3")
        net = slim.conv2d(net, 64, [3, 3], scope="Conv2d_2b_3x3")
        with v1.variable_scope("Mixed_3a"):
            net = _branches(net, [P("max", "MaxPool_0a_3x3", 2, "VALID")], [C(96, [3, 3], "Conv2d_0a_3x3", 2, "VALID")])
        with v1.variable_scope("Mixed_4a"):
            net = _branches(net, [C(64, [1, 1], "Conv2d_0a_1x1"), C(96, [3, 3], "Conv2d_1a_3x3", 1, "VALID")],
                            [C(64, [1, 1], "Conv2d_0a_1x1"), C(64, [1, 7], "Conv2d_0b_1x7"),
                             C(64, [7, 1], "Conv2d_0c_7x1"), C(96, [3, 3], "Conv2d_1a_3x3", 1, "VALID")])
        with v1.variable_scope("Mixed_5a"):
            net = _branches(net, [C(192, [3, 3], "Conv2d_1a_3x3", 2, "VALID")], [P("max", "MaxPool_1a_3x3", 2, "VALID")])
        for idx in "bcde":
            with v1.variable_scope(f"Mixed_5{idx}"):
                net = _v4_block_a(net)
        with v1.variable_scope("Mixed_6a"):
            net = _branches(net, [C(384, [3, 3], "Conv2d_1a_3x3", 2, "VALID")],
                            [C(192, [1, 1], "Conv2d_0a_1x1"), C(224, [3, 3], "Conv2d_0b_3x3"),
                             C(256, [3, 3], "Conv2d_1a_3x3", 2, "VALID")],
                            [P("max", "MaxPool_1a_3x3", 2, "VALID")])
        for idx in "bcdefgh":
            with v1.variable_scope(f"Mixed_6{idx}"):
                net = _v4_block_b(net)
        aux_input = net
        with v1.variable_scope("Mixed_7a"):
            net = _branches(net, [C(192, [1, 1], "Conv2d_0a_1x1"), C(192, [3, 3], "Conv2d_1a_3x3", 2, "VALID")],
                            [C(256, [1, 1], "Conv2d_0a_1x1"), C(256, [1, 7], "Conv2d_0b_1x7"),
                             C(320, [7, 1], "Conv2d_0c_7x1"), C(320, [3, 3], "Conv2d_1a_3x3", 2, "VALID")],
                            [P("max", "MaxPool_1a_3x3", 2, "VALID")])
        for idx in "bcd":
            with v1.variable_scope(f"Mixed_7{idx}"):
                net = _v4_block_c(net)
        _aux_logits(aux_input, num_classes, "AvgPool_1a_5x5", "Conv2d_2a")
        return [_logits(net, num_classes)]


def _residual(net, scale, activation, mixed):
    up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None, scope="Conv2d_1x1")
    net = net + scale * up
    return activation(net) if activation else net


def block35(net, scale=1.0, activation_fn=tf.nn.relu, scope=None):
    with v1.variable_scope(scope, "Block35"):
        mixed = _branches(net, [C(32, 1, "Conv2d_1x1")], [C(32, 1, "Conv2d_0a_1x1"), C(32, 3, "Conv2d_0b_3x3")],
                          [C(32, 1, "Conv2d_0a_1x1"), C(48, 3, "Conv2d_0b_3x3"), C(64, 3, "Conv2d_0c_3x3")])
        return _residual(net, scale, activation_fn, mixed)


def block17(net, scale=1.0, activation_fn=tf.nn.relu, scope=None):
    with v1.variable_scope(scope, "Block17"):
        mixed = _branches(net, [C(192, 1, "Conv2d_1x1")], [C(128, 1, "Conv2d_0a_1x1"), C(160, [1, 7], "Conv2d_0b_1x7"),
                                                           C(192, [7, 1], "Conv2d_0c_7x1")])
        return _residual(net, scale, activation_fn, mixed)


def block8(net, scale=1.0, activation_fn=tf.nn.relu, scope=None):
    with v1.variable_scope(scope, "Block8"):
        mixed = _branches(net, [C(192, 1, "Conv2d_1x1")], [C(192, 1, "Conv2d_0a_1x1"), C(224, [1, 3], "Conv2d_0b_1x3"),
                                                           C(256, [3, 1], "Conv2d_0c_3x1")])
        return _residual(net, scale, activation_fn, mixed)


def slim_inception_resnet_v2(inputs, num_classes=1001):
    with v1.variable_scope("InceptionResnetV2"), _slim_inception_arg_scope(), \
            slim.arg_scope([slim.batch_norm], is_training=False), \
            slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
        net = slim.conv2d(inputs, 32, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
        net = slim.conv2d(net, 32, 3, padding="VALID", scope="Conv2d_2a_3x3")
        net = slim.conv2d(net, 64, 3, scope="Conv2d_2b_3x3")
        net = slim.max_pool2d(net, 3, stride=2, padding="VALID", scope="MaxPool_3a_3x3")
        net = slim.conv2d(net, 80, 1, padding="VALID", scope="Conv2d_3b_1x1")
        net = slim.conv2d(net, 192, 3, padding="VALID", scope="Conv2d_4a_3x3")
        net = slim.max_pool2d(net, 3, stride=2, padding="VALID", scope="MaxPool_5a_3x3")
        with v1.variable_scope("Mixed_5b"):
            net = _branches(net, [C(96, 1, "Conv2d_1x1")], [C(48, 1, "Conv2d_0a_1x1"), C(64, 5, "Conv2d_0b_5x5")],
                            [C(64, 1, "Conv2d_0a_1x1"), C(96, 3, "Conv2d_0b_3x3"), C(96, 3, "Conv2d_0c_3x3")],
                            [P("avg", "AvgPool_0a_3x3"), C(64, 1, "Conv2d_0b_1x1")])
        net = slim.repeat(net, 10, block35, scale=0.17)
        with v1.variable_scope("Mixed_6a"):
            net = _branches(net, [C(384, 3, "Conv2d_1a_3x3", 2, "VALID")],
                            [C(256, 1, "Conv2d_0a_1x1"), C(256, 3, "Conv2d_0b_3x3"), C(384, 3, "Conv2d_1a_3x3", 2, "VALID")],
                            [P("max", "MaxPool_1a_3x3", 2, "VALID")])
        net = slim.repeat(net, 20, block17, scale=0.10)
        aux_input = net
        with v1.variable_scope("Mixed_7a"):
            net = _branches(net, [C(256, 1, "Conv2d_0a_1x1"), C(384, 3, "Conv2d_1a_3x3", 2, "VALID")],
                            [C(256, 1, "Conv2d_0a_1x1"), C(288, 3, "Conv2d_1a_3x3", 2, "VALID")],
                            [C(256, 1, "Conv2d_0a_1x1"), C(288, 3, "Conv2d_0b_3x3"), C(320, 3, "Conv2d_1a_3x3", 2, "VALID")],
                            [P("max", "MaxPool_1a_3x3", 2, "VALID")])
        net = slim.repeat(net, 9, block8, scale=0.20)
        net = block8(net, activation_fn=None)
        net = slim.conv2d(net, 1536, 1, scope="Conv2d_7b_1x1")
        _aux_logits(aux_input, num_classes, "Conv2d_1a_3x3", "Conv2d_2a_5x5")
        return [_logits(net, num_classes)]


# ----------------------------------------------------------------------------------------------------------
# The comparison
# ----------------------------------------------------------------------------------------------------------


def _slim_inception_v1(x, num_classes):
    with slim.arg_scope(inception_v1.inception_v1_arg_scope()):
        return [inception_v1.inception_v1(x, num_classes=num_classes, is_training=False)[0]]


def _slim_inception_v3(x, num_classes):
    with slim.arg_scope(inception_v3.inception_v3_arg_scope()):
        logits, points = inception_v3.inception_v3(x, num_classes=num_classes, is_training=False)
    return [logits, points["AuxLogits"]]


def _slim_vgg16(x, num_classes):
    with slim.arg_scope(vgg.vgg_arg_scope()):
        return [vgg.vgg_16(x, num_classes=num_classes, is_training=False)[0]]


_SLIM_PARAMS = {"kernel": "weights", "bias": "biases"}  # BatchNorm's variables are named as Keras names them


def _healthy_slim_values(case, shapes, calibration):
    """Healthy random values for slim's variables: `heal_keras` on a donor build of ours, under slim's names.

    heal_keras calibrates every BN on what reaches it at inference in one
    pass (heal_tf_graph's run per BN layer takes minutes on these graphs).
    The donor's weights reach slim's variables by the layout's names, so a
    wrong name puts them where slim computes something else: the logits
    comparison still tells. Variables no donor weight names (AuxLogits where
    ours has no aux head) keep slim's initialisation.
    """
    _, size, layout, builder, options = CASES[case]
    donor = build_uninitialised(builder, input_shape=(size, size, 3), classes=CLASSES[case], classifier_activation=None,
                                **options)  # heal_keras gives the values
    heal_keras(donor, calibration)
    mapping = weights_io.get_layout(layout).map_names([layer.name for layer in weighted_layers(donor)])
    values = {}
    for layer in weighted_layers(donor):
        for variable in layer.weights:
            param = variable.name.split("/")[-1].split(":")[0]
            name = f"{mapping[layer.name]}/{_SLIM_PARAMS.get(param, param)}"
            values[name] = np.reshape(keras.ops.convert_to_numpy(variable), shapes[name])
    return values


@functools.lru_cache(maxsize=1)  # the inception_v4 run serves two tests in a row
def _run_slim(case, seed=0):
    """Two inputs, slim's outputs on them with healthy random weights, and its variables {TF name: array}."""
    net, size = CASES[case][:2]
    inputs = np.random.default_rng(seed).normal(size=(2, size, size, 3)).astype("float32")
    calibration = np.random.default_rng(seed + 1).normal(size=(4, size, size, 3)).astype("float32")
    graph = tf.Graph()
    with graph.as_default(), tf1_equality():
        v1.set_random_seed(seed)
        x = v1.placeholder(tf.float32, (None, size, size, 3))
        outputs = net(x, CLASSES[case])
        variables = {v.op.name: v for v in v1.global_variables()}
    # outside the graph: Keras builds the donor eagerly
    healthy = _healthy_slim_values(case, {k: v.shape.as_list() for k, v in variables.items()}, calibration)
    assert set(healthy) <= set(variables)
    assert all("AuxLogits" in name for name in set(variables) - set(healthy))
    with graph.as_default():
        with plain_session(graph) as session:
            session.run(v1.global_variables_initializer())
            load_tf_variables(session, variables, healthy)
            values = session.run(variables)
            expected = [np.reshape(o, (len(inputs), -1)) for o in session.run(outputs, {x: inputs})]
    return inputs, expected, values


def _count(values, exclude=None):
    return sum(int(np.prod(v.shape)) for k, v in values.items() if exclude is None or exclude not in k)


CASES = {
    # case: (slim net, input side, layout, our builder, the options the layout implies)
    "inception_v4": (slim_inception_v4, 107, "tf-slim-inception-v4", kerasnets.build_inception_v4,
                     dict(bn_scale=False)),
    "inception_v1": (_slim_inception_v1, 200, "tf-slim-inception-v1", kerasnets.build_googlenet,
                     dict(variant="slim")),
    "inception_v3": (_slim_inception_v3, 299, "tf-slim-inception-v3", kerasnets.build_inception_v3,
                     dict(aux_logits=True)),
    "inception_v3_no_aux": (_slim_inception_v3, 139, "tf-slim-inception-v3", kerasnets.build_inception_v3, {}),
    "inception_resnet_v2": (slim_inception_resnet_v2, 107, "tf-slim-inception-resnet-v2",
                            kerasnets.build_inception_resnet_v2, {}),
    "vgg_16": (_slim_vgg16, 224, "tf-slim-vgg", kerasnets.build_vgg16, {}),
}
CLASSES = {case: 1000 if case == "vgg_16" else 1001 for case in CASES}


def test_background_class_dropped_and_loud_options():
    """A 1000-class build drops slim's background row; a model built otherwise is refused."""
    size = CASES["inception_v4"][1]
    inputs, expected, values = _run_slim("inception_v4")  # cached for test_slim_logits[inception_v4]
    ours = build_uninitialised(kerasnets.build_inception_v4, input_shape=(size, size, 3), classifier_activation=None,
                               bn_scale=False)  # the checkpoint gives every value
    weights_io.assign_weights(ours, weight_file(values), weights_io.get_layout("tf-slim-inception-v4"))
    assert_parity(keras.ops.convert_to_numpy(ours(inputs, training=False)), expected[0][:, 1:],
                  what="inception_v4 1000 classes")
    # BN with gamma: refused before any value is read, so built for shapes
    timm_like = kerasnets.registry.build_for_shapes("inception_v4", input_shape=(size, size, 3))
    with pytest.raises(weights_io.WeightMismatchError, match="bn_scale"):
        weights_io.assign_weights(timm_like, weight_file(values), weights_io.get_layout("tf-slim-inception-v4"))


@pytest.mark.parametrize("case", list(CASES))
def test_slim_logits(case):
    net, size, layout, builder, options = CASES[case]
    classes = CLASSES[case]
    inputs, expected, values = _run_slim(case)
    # Our build keeps all 1001 classes (keep_background=True) ...
    ours = build_uninitialised(builder, input_shape=(size, size, 3), classes=classes, classifier_activation=None,
                               **options)  # the checkpoint gives every value
    aux = "AuxLogits" if not options.get("aux_logits") else None
    assert ours.count_params() == _count(values, exclude=aux), "parameter count differs from slim's variables"
    report = weights_io.assign_weights(ours, weight_file(values), weights_io.get_layout(layout),
                                       keep_background=True)
    assert report.ok and report.applied and not report.unexpected and not report.option_mismatches
    assert all("AuxLogits" in key for _, key, _ in report.skipped)
    got = ours(inputs, training=False)
    got = [keras.ops.convert_to_numpy(g) for g in (got if isinstance(got, (list, tuple)) else [got])]
    for what, g, e in zip(("logits", "aux logits"), got, expected):
        assert_parity(g, e, what=f"{case} {what}")


def test_checkpoint_file(tmp_path):
    """The same through a real TF checkpoint: `Saver` writes it, weights_io reads it and finds the layout."""
    inputs, expected, values = _run_slim("inception_v1")
    graph = tf.Graph()
    with graph.as_default():
        variables = [v1.Variable(value, name=name) for name, value in values.items()]
        with plain_session(graph) as session:
            session.run(v1.variables_initializer(variables))
            prefix = v1.train.Saver(variables).save(session, str(tmp_path / "inception_v1.ckpt"))
    ours = kerasnets.build_googlenet(variant="slim", input_shape=(200, 200, 3), classes=1001,
                                     classifier_activation=None)
    report = weights_io.load_weights(ours, prefix, keep_background=True)
    assert report.layout == "tf-slim-inception-v1" and report.format == "tf-checkpoint" and report.ok
    assert_parity(keras.ops.convert_to_numpy(ours(inputs, training=False)), expected[0], what="inception_v1 ckpt")
