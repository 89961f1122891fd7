"""`from_caffe`: a Keras functional model from a Caffe `.prototxt` and its `.caffemodel`, without Caffe.

    model = kerasnets.from_caffe("deploy.prototxt", "net.caffemodel")

Three stages, so that a bad file fails before anything is built: plan (the TEST-phase layers,
each bottom resolved to an earlier top, every type supported, every parameter and shape
checked, Caffe's NCHW shapes and each layer's blob shapes inferred, in plain Python), check
(the caffemodel's blobs against those shapes, all at once), build and assign.

Tensors are channels-last: a Caffe blob (N, C, H, W) is a Keras tensor (N, H, W, C); blobs of
another rank keep Caffe's axis order. Where Caffe reads memory in CHW order (Flatten, Reshape,
an InnerProduct over a 4-D blob) the model permutes, or the InnerProduct's weight rows are
reordered, so that every layer computes Caffe's numbers. Keras layer names are Caffe's, with
characters Keras refuses (`/`) replaced by `_`; helper layers add a suffix (`conv1_pad`).
"""

from __future__ import annotations

import os

import keras
import numpy as np

from kerasnets.caffe_plan import SUPPORTED, Names, plan
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.layers.caffe import CaffePooling2D, ChannelScale, WeightedSum, WithinChannelLRN
from kerasnets.layers.normalization import LocalResponseNormalization
from weights_io.errors import WeightMismatchError

__all__ = ["SUPPORTED", "CaffeWeightMismatchError", "from_caffe", "plan"]


class CaffeWeightMismatchError(WeightMismatchError):
    """The caffemodel's blobs do not fit the prototxt; nothing was built. `.report` lists every blob."""

    def __init__(self, report, message):
        ValueError.__init__(self, message)
        self.report = report


# ---------------------------------------------------------------------------------------------------------
# building: one function per type, (step, input tensors, names, classifier_activation) -> output tensors

def _conv(step, xs, names, _):
    i, x = step.info, xs[0]
    if any(i["pad"]):
        x = keras.layers.ZeroPadding2D(i["pad"], name=names(f"{step.name}_pad"))(x)
    # Keras refuses stride with dilation: convolve densely, then keep every stride-th output
    stride = i["stride"] if max(i["dilation"]) == 1 else (1, 1)
    x = keras.layers.Conv2D(step.out_shapes[0][1], i["kernel"], strides=stride, dilation_rate=i["dilation"],
                            groups=i["group"], use_bias=i["bias"], name=step.name)(x)
    if stride != i["stride"]:
        x = keras.layers.MaxPooling2D(1, strides=i["stride"], name=names(f"{step.name}_stride"))(x)
    return [x]


def _deconv_extent(info):
    return tuple(d * (k - 1) + 1 for d, k in zip(info["dilation"], info["kernel"]))


def _deconv(step, xs, names, _):
    i = step.info
    extent = _deconv_extent(i)  # dilation is written into the kernel (TensorFlow's CPU lacks dilated transposes)
    x = keras.layers.Conv2DTranspose(step.out_shapes[0][1], extent, strides=i["stride"], padding="valid",
                                     use_bias=i["bias"], name=step.name)(xs[0])
    # Keras makes max(extent, stride) per input step; Caffe's (i-1)*s + extent, less its padding
    crop = tuple((p, p + max(e, s) - e) for p, e, s in zip(i["pad"], extent, i["stride"]))
    if any(sum(c) for c in crop):
        x = keras.layers.Cropping2D(crop, name=names(f"{step.name}_crop"))(x)
    return [x]


def _inner_product(step, xs, names, _):
    x = xs[0]
    if len(step.in_shapes[0]) > 2:
        x = keras.layers.Flatten(name=names(f"{step.name}_flatten"))(x)
    return [keras.layers.Dense(step.out_shapes[0][1], use_bias=step.info["bias"], name=step.name)(x)]


def _pooling(step, xs, names, _):
    i = step.info
    layers = keras.layers
    if i["global"]:
        kind = layers.GlobalMaxPooling2D if i["mode"] == "MAX" else layers.GlobalAveragePooling2D
        return [kind(keepdims=True, name=step.name)(xs[0])]
    if i["stock"]:
        kind = layers.MaxPooling2D if i["mode"] == "MAX" else layers.AveragePooling2D
        return [kind(i["kernel"], strides=i["stride"], padding="valid", name=step.name)(xs[0])]
    return [CaffePooling2D(i["mode"].lower(), i["kernel"], i["stride"], i["pad"], ceil=i["ceil"],
                           name=step.name)(xs[0])]


def _lrn(step, xs, names, _):
    i = step.info
    if i["region"] == "WITHIN_CHANNEL":
        return [WithinChannelLRN(i["size"], i["alpha"], i["beta"], name=step.name)(xs[0])]
    return [LocalResponseNormalization(i["size"], i["alpha"], i["beta"], bias=i["k"], convention="caffe",
                                       name=step.name)(xs[0])]


def _relu(step, xs, names, _):
    slope = step.info["slope"]
    layer = keras.layers.LeakyReLU(slope, name=step.name) if slope else keras.layers.ReLU(name=step.name)
    return [layer(xs[0])]


def _prelu(step, xs, names, _):
    spatial = len(step.in_shapes[0]) == 4
    shared = ([1, 2, 3] if spatial else [1]) if step.info["shared"] else ([1, 2] if spatial else None)
    return [keras.layers.PReLU(shared_axes=shared, name=step.name)(xs[0])]


def _eltwise(step, xs, names, _):
    operation, coefficients = step.info["operation"], step.info["coefficients"]
    if operation == "SUM" and any(c != 1.0 for c in coefficients):
        return [WeightedSum(coefficients, name=step.name)(xs)]
    kind = {"SUM": keras.layers.Add, "PROD": keras.layers.Multiply, "MAX": keras.layers.Maximum}[operation]
    return [kind(name=step.name)(xs)]


def _flatten(step, xs, names, _):
    x, rank = xs[0], len(step.in_shapes[0])
    if rank == 2:
        return [x]
    if rank == 4:  # Caffe flattens C, H, W
        x = keras.layers.Permute((3, 1, 2), name=names(f"{step.name}_chw"))(x)
    return [keras.layers.Flatten(name=step.name)(x)]


def _reshape(step, xs, names, _):
    x, target = xs[0], step.out_shapes[0]
    if len(step.in_shapes[0]) == 4:
        x = keras.layers.Permute((3, 1, 2), name=names(f"{step.name}_chw"))(x)
    if len(target) != 4:
        return [keras.layers.Reshape(target[1:], name=step.name)(x)]
    x = keras.layers.Reshape(target[1:], name=names(f"{step.name}_nchw"))(x)
    return [keras.layers.Permute((2, 3, 1), name=step.name)(x)]


def _softmax(step, xs, names, classifier_activation):
    if not step.info["classifier"]:
        return [keras.layers.Softmax(axis=step.info["axis"], name=step.name)(xs[0])]
    if classifier_activation is None:
        return [xs[0]]
    return [keras.layers.Activation(classifier_activation, name=step.name)(xs[0])]


def _dropout(step, xs, names, _):
    if step.info["scale"] == 1.0:
        return [xs[0]]
    return [keras.layers.Rescaling(step.info["scale"], name=step.name)(xs[0])]


def _simple(make):
    return lambda step, xs, names, _: [make(step)(xs[0] if len(xs) == 1 else xs)]


_BUILDS = {
    "Convolution": _conv, "Deconvolution": _deconv, "InnerProduct": _inner_product, "Pooling": _pooling,
    "LRN": _lrn, "ReLU": _relu, "PReLU": _prelu, "Eltwise": _eltwise, "Flatten": _flatten, "Reshape": _reshape,
    "Softmax": _softmax, "Dropout": _dropout,
    "Sigmoid": _simple(lambda s: keras.layers.Activation("sigmoid", name=s.name)),
    "TanH": _simple(lambda s: keras.layers.Activation("tanh", name=s.name)),
    "BatchNorm": _simple(lambda s: BatchNormalization(center=False, scale=False, epsilon=s.info["eps"], name=s.name)),
    "Scale": _simple(lambda s: ChannelScale(s.info["bias"], name=s.name)),
    "Concat": _simple(lambda s: keras.layers.Concatenate(axis=s.info["axis"], name=s.name)),
    "Split": lambda step, xs, names, _: xs * len(step.tops),
}


# ---------------------------------------------------------------------------------------------------------
# weights: Caffe blobs (Caffe's axes) -> the Keras layer's weights

def _conv_weights(step, blobs):
    return [blobs[0].transpose(2, 3, 1, 0)] + blobs[1:]


def _deconv_weights(step, blobs):
    i, weight = step.info, blobs[0]
    channels, per_group = weight.shape[0] // i["group"], weight.shape[1]
    kernel = np.zeros(_deconv_extent(i) + (per_group * i["group"], weight.shape[0]), np.float32)
    for g in range(i["group"]):  # a grouped transpose as one dense kernel, zero between groups
        block = weight[g * channels:(g + 1) * channels].transpose(2, 3, 1, 0)
        kernel[::i["dilation"][0], ::i["dilation"][1], g * per_group:(g + 1) * per_group,
               g * channels:(g + 1) * channels] = block
    return [kernel] + blobs[1:]


def _dense_weights(step, blobs):
    weight = blobs[0].T if step.info["transpose"] else blobs[0]
    shape = step.in_shapes[0]
    if len(shape) == 4:  # rows over Caffe's C, H, W -> over the channels-last H, W, C
        weight = weight.reshape(weight.shape[0], *shape[1:]).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return [weight.T] + blobs[1:]


def _batch_norm_weights(step, blobs):
    factor = blobs[2].reshape(-1)[0]
    factor = 0.0 if factor == 0 else 1.0 / factor  # Caffe's rule for a zero scale factor
    return [blobs[0] * factor, blobs[1] * factor]


_WEIGHTS = {"Convolution": _conv_weights, "Deconvolution": _deconv_weights, "InnerProduct": _dense_weights,
            "BatchNorm": _batch_norm_weights, "Scale": lambda step, blobs: blobs,
            "PReLU": lambda step, blobs: blobs}


def _fitting_blobs(steps, caffemodel, prototxt, strict):
    """{Caffe layer name: [float32 blobs]} for the weighted steps, or CaffeWeightMismatchError naming every
    missing, unexpected and mis-shaped blob."""
    import weights_io
    from weights_io.core import Report

    weight_file = weights_io.read_weights(caffemodel, format="caffemodel")
    expected = {}
    for step in steps:
        if step.blobs:
            expected.setdefault(step.layer["name"], step.blobs)
    missing, mismatched, unexpected, found = [], [], [], {}
    for layer, shapes in expected.items():
        got = weight_file.tensors.get(layer, {})
        found[layer] = []
        for index, shape in enumerate(shapes):
            array = got.get(str(index))
            if array is None:
                missing.append((f"{layer} blob {index}", f"{layer}/{index}", shape))
            elif tuple(array.shape) != tuple(shape):
                mismatched.append((f"{layer} blob {index}", tuple(shape), f"{layer}/{index}", tuple(array.shape)))
            else:
                found[layer].append(np.asarray(array, np.float32))
        unexpected += [f"{layer}/{key} {tuple(a.shape)}" for key, a in got.items() if int(key) >= len(shapes)]
    if strict:
        unexpected += [f"{layer}/{key} {tuple(a.shape)}" for layer, blobs in weight_file.tensors.items()
                       if layer not in expected for key, a in blobs.items()]
    if missing or mismatched or unexpected:
        report = Report(path=os.fspath(caffemodel), format="caffemodel", layout="prototxt", missing=missing,
                        unexpected=unexpected, mismatched=mismatched)
        lines = [f"The blobs of {os.fspath(caffemodel)} do not fit {os.fspath(prototxt)}; nothing was built."]
        if mismatched:
            lines += [f"{len(mismatched)} mis-shaped:"] + [f"  {t}: the prototxt implies {e}, the file has {g}"
                                                         for t, e, _, g in mismatched]
        if missing:
            lines += [f"{len(missing)} missing:"] + [f"  {t} {s}" for t, _, s in missing]
        if unexpected:
            lines += [f"{len(unexpected)} unexpected (no TEST-phase layer takes them; strict=False ignores "
                      "whole layers the net does not use):"] + [f"  {u}" for u in unexpected]
        raise CaffeWeightMismatchError(report, "\n".join(lines))
    return found


def from_caffe(prototxt, caffemodel=None, classifier_activation="softmax", *, input_shape=None, phase="TEST",
               strict=True, name=None):
    """Builds the Keras functional model of a Caffe net and loads its trained blobs (all or nothing).

    Args:
        prototxt: the net description (`deploy.prototxt`; V1 `layers` or V2 `layer`).
        caffemodel: the trained `.caffemodel`, or None for freshly initialised weights.
        classifier_activation: replaces a final Softmax (one whose output the net returns), as in
            keras.applications; None returns its logits.
        input_shape: (H, W, C) instead of the prototxt's input shape (one-input nets).
        phase: the `include`/`exclude` phase whose layers are built.
        strict: refuse a caffemodel with weighted layers the net does not use (False: ignore them).
        name: the model's name (default: the net's).

    Returns:
        A `keras.Model` with channels-last inputs named as Caffe's, one output per blob no layer consumes.

    Raises:
        ValueError: a layer type or parameter that cannot be built exactly, a bottom naming no earlier
            top; raised before anything is built.
        CaffeWeightMismatchError: the caffemodel's blobs do not fit (each one named; nothing built).
        WeightFileError: an unreadable prototxt or caffemodel.
    """
    from weights_io.readers.caffe import read_prototxt

    if classifier_activation is not None:
        keras.activations.get(classifier_activation)  # an unknown name fails here, before the build
    net = read_prototxt(prototxt)
    inputs, steps, outputs, names = plan(net, phase, input_shape)
    blobs = _fitting_blobs(steps, caffemodel, prototxt, strict) if caffemodel is not None else None
    tensors, model_inputs = {}, []
    for kname, key, shape in inputs:
        tensors[key] = keras.Input(shape=(*shape[2:], shape[1]) if len(shape) == 4 else shape[1:], name=kname)
        model_inputs.append(tensors[key])
    for step in steps:
        tensors.update(zip(step.tops, _BUILDS[step.kind](step, [tensors[b] for b in step.bottoms], names,
                                                         classifier_activation)))
    model_outputs = [tensors[key] for key in outputs]
    model = keras.Model(model_inputs if len(model_inputs) > 1 else model_inputs[0],
                        model_outputs if len(model_outputs) > 1 else model_outputs[0],
                        name=name or Names()(net["name"] or "caffe_net"))
    if blobs is not None:
        values = []
        for step in steps:
            if step.blobs:
                layer = model.get_layer(step.name)
                arrays = _WEIGHTS[step.kind](step, blobs[step.layer["name"]])
                arrays = [np.asarray(a, np.float32).reshape(v.shape) for a, v in zip(arrays, layer.weights)]
                values.append((layer, arrays))
        for layer, arrays in values:
            layer.set_weights(arrays)
    return model
