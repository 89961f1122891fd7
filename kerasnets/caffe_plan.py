"""Planning a Caffe net for `kerasnets.from_caffe`: plain Python over shapes, no layer built.

`plan(net)` takes `read_prototxt`'s net, keeps the TEST-phase layers, resolves every bottom to
an earlier top (in-place layers make a new version of their top), refuses unsupported types and
parameters, and infers each layer's Caffe (NCHW) output shapes and its blob shapes, so that a
bad prototxt or caffemodel fails before any layer exists.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

_MAX_DIM = 1 << 20  # one axis of a blob or a geometry parameter; past this a prototxt is forged
_MAX_COUNT = 1 << 31  # values in one blob, batch excluded
_PARAMS = {"Convolution": "convolution_param", "Deconvolution": "convolution_param", "Pooling": "pooling_param",
           "InnerProduct": "inner_product_param", "LRN": "lrn_param", "ReLU": "relu_param", "PReLU": "prelu_param",
           "BatchNorm": "batch_norm_param", "Scale": "scale_param", "Eltwise": "eltwise_param",
           "Concat": "concat_param", "Flatten": "flatten_param", "Reshape": "reshape_param",
           "Softmax": "softmax_param", "Dropout": "dropout_param"}


@dataclasses.dataclass
class _Step:
    layer: dict  # the prototxt's layer (read_prototxt)
    name: str  # the Keras layer name
    params: dict  # the type's own parameter message (convolution_param, ...)
    bottoms: list  # blob keys, "top#version"
    tops: list
    in_shapes: list  # Caffe (NCHW) shapes
    out_shapes: list = dataclasses.field(default_factory=list)
    blobs: list = dataclasses.field(default_factory=list)  # expected Caffe blob shapes
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def kind(self):
        return self.layer["type"]

    def fail(self, message):
        raise ValueError(f"Caffe layer {self.layer['name']!r} ({self.kind}): {message}")


# ---------------------------------------------------------------------------------------------------------
# parameter values

def _int(step, value, what, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        step.fail(f"`{what}` must be an integer. Received: {what}={value!r}")
    if not minimum <= value <= _MAX_DIM:
        step.fail(f"`{what}` must be in [{minimum}, {_MAX_DIM}]. Received: {what}={value!r}")
    return int(value)


def _float(step, value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        step.fail(f"`{what}` must be a finite number. Received: {what}={value!r}")
    return float(value)


def _flag(step, value, what):
    if not isinstance(value, bool):
        step.fail(f"`{what}` must be true or false. Received: {what}={value!r}")
    return value


def _enum(step, value, names, what):
    """An enum given by name (`MAX`) or number (0)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if value not in names:
        step.fail(f"`{what}` must be one of {list(names)}. Received: {what}={value!r}")
    return value


def _pair(step, field, short, default, minimum):
    """(h, w) from `field` (one value or two) or `short_h` / `short_w`, as Caffe's 2-D geometry."""
    p = step.params
    if f"{short}_h" in p or f"{short}_w" in p:
        if field in p:
            step.fail(f"give either `{field}` or `{short}_h`/`{short}_w`, not both")
        return tuple(_int(step, p.get(f"{short}_{a}", default), f"{short}_{a}", minimum) for a in "hw")
    values = p.get(field, [])
    values = values if isinstance(values, list) else [values]
    if not values:
        if default is None:
            step.fail(f"`{field}` is required")
        values = [default]
    if len(values) > 2:
        step.fail(f"only 2-D geometry is supported. Received: {field}={values!r}")
    values = [_int(step, v, field, minimum) for v in values]
    return tuple(values * 2 if len(values) == 1 else values)


def _spatial(step, index=0):
    shape = step.in_shapes[index]
    if len(shape) != 4:
        step.fail(f"needs a 4-D (N, C, H, W) input. Received: shape {list(shape)}")
    return shape


def _axis(step, axis, rank):
    """A Caffe axis of an input of `rank`, as the Keras axis of the channels-last tensor."""
    axis = _int(step, axis + rank if isinstance(axis, int) and axis < 0 else axis, "axis")
    if not 1 <= axis < rank:
        step.fail(f"`axis` must name a non-batch axis of the {rank}-D input. Received: axis={axis}")
    return (3, 1, 2)[axis - 1] if rank == 4 else axis


# ---------------------------------------------------------------------------------------------------------
# planning: Caffe shapes and blob shapes per layer type

def _plan_conv(step, deconv=False):
    n, c, h, w = _spatial(step)
    p = step.params
    out = _int(step, p.get("num_output"), "num_output", 1)
    group = _int(step, p.get("group", 1), "group", 1)
    if c % group or out % group:
        step.fail(f"`group` must divide the input channels and num_output. Received: group={group}, "
                  f"channels={c}, num_output={out}")
    kernel = _pair(step, "kernel_size", "kernel", None, 1)
    stride = _pair(step, "stride", "stride", 1, 1)
    pad = _pair(step, "pad", "pad", 0, 0)
    dilation = _pair(step, "dilation", "dilation", 1, 1)
    extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    if deconv:
        size = [s * (i - 1) + e - 2 * q for s, i, e, q in zip(stride, (h, w), extent, pad)]
    else:
        size = [(i + 2 * q - e) // s + 1 for i, q, e, s in zip((h, w), pad, extent, stride)]
    if min(size) < 1:
        step.fail(f"the output would be empty ({size}) for an input of {h}x{w}")
    bias = _flag(step, p.get("bias_term", True), "bias_term")
    weight = (c, out // group, *kernel) if deconv else (out, c // group, *kernel)
    step.blobs = [weight] + ([(out,)] if bias else [])
    step.out_shapes = [(n, out, *size)]
    step.info = {"kernel": kernel, "stride": stride, "pad": pad, "dilation": dilation, "group": group, "bias": bias}


def _plan_inner_product(step):
    shape, p = step.in_shapes[0], step.params
    axis = p.get("axis", 1)
    if axis not in (1, 1 - len(shape)):
        step.fail(f"only axis 1 (all but the batch axis) is supported. Received: axis={axis!r}")
    out = _int(step, p.get("num_output"), "num_output", 1)
    size = int(np.prod(shape[1:]))
    transpose = _flag(step, p.get("transpose", False), "transpose")
    bias = _flag(step, p.get("bias_term", True), "bias_term")
    step.blobs = [(size, out) if transpose else (out, size)] + ([(out,)] if bias else [])
    step.out_shapes = [(shape[0], out)]
    step.info = {"bias": bias, "transpose": transpose}


def _plan_pooling(step):
    from kerasnets.layers.caffe import pooled_size

    n, c, h, w = _spatial(step)
    p = step.params
    mode = _enum(step, p.get("pool", "MAX"), ("MAX", "AVE", "STOCHASTIC"), "pool")
    if mode == "STOCHASTIC":
        step.fail("STOCHASTIC pooling is not supported (it is random at training and a weighted average at test)")
    ceil = _enum(step, p.get("round_mode", "CEIL"), ("CEIL", "FLOOR"), "round_mode") == "CEIL"
    if _flag(step, p.get("global_pooling", False), "global_pooling"):
        step.info = {"mode": mode, "global": True}
        step.out_shapes = [(n, c, 1, 1)]
        return
    kernel = _pair(step, "kernel_size", "kernel", None, 1)
    stride = _pair(step, "stride", "stride", 1, 1)
    pad = _pair(step, "pad", "pad", 0, 0)
    if any(q >= k for q, k in zip(pad, kernel)) or any(k > i + 2 * q for k, i, q in zip(kernel, (h, w), pad)):
        step.fail(f"Caffe needs pad < kernel <= input + 2 * pad. Received: pad={pad}, kernel={kernel}, input={h}x{w}")
    size = [pooled_size(i, k, s, q, ceil) for i, k, s, q in zip((h, w), kernel, stride, pad)]
    stock = pad == (0, 0) and all(o == (i - k) // s + 1 for o, i, k, s in zip(size, (h, w), kernel, stride))
    step.info = {"mode": mode, "global": False, "kernel": kernel, "stride": stride, "pad": pad, "ceil": ceil,
                 "stock": stock}
    step.out_shapes = [(n, c, *size)]


def _plan_lrn(step):
    _spatial(step)
    p = step.params
    size = _int(step, p.get("local_size", 5), "local_size", 1)
    if size % 2 == 0:
        step.fail(f"Caffe's LRN needs an odd local_size. Received: local_size={size}")
    region = _enum(step, p.get("norm_region", "ACROSS_CHANNELS"), ("ACROSS_CHANNELS", "WITHIN_CHANNEL"),
                   "norm_region")
    step.info = {"size": size, "region": region, "alpha": _float(step, p.get("alpha", 1.0), "alpha"),
                 "beta": _float(step, p.get("beta", 0.75), "beta"), "k": _float(step, p.get("k", 1.0), "k")}
    step.out_shapes = list(step.in_shapes)


def _channels(step):
    """The channel count of a per-channel layer's input (4-D, or 2-D (N, C))."""
    shape = step.in_shapes[0]
    if len(shape) not in (2, 4):
        step.fail(f"per-channel layers need a 2-D or 4-D input. Received: shape {list(shape)}")
    step.out_shapes = [shape]
    return shape[1]


def _plan_prelu(step):
    shared = _flag(step, step.params.get("channel_shared", False), "channel_shared")
    channels = _channels(step)
    step.blobs = [(1,) if shared else (channels,)]
    step.info = {"shared": shared}


def _plan_batch_norm(step):
    channels = _channels(step)
    if not _flag(step, step.params.get("use_global_stats", True), "use_global_stats"):
        step.fail("use_global_stats: false normalises with each batch's own statistics; a converted model "
                  "uses the stored ones: remove the setting for inference")
    step.info = {"eps": _float(step, step.params.get("eps", 1e-5), "eps")}
    step.blobs = [(channels,), (channels,), (1,)]


def _plan_scale(step):
    if len(step.bottoms) != 1:
        step.fail("only the one-bottom form (learned factors) is supported")
    p = step.params
    if p.get("axis", 1) != 1 or p.get("num_axes", 1) != 1:
        step.fail(f"only axis 1 with num_axes 1 (one factor per channel) is supported. Received: "
                  f"axis={p.get('axis', 1)!r}, num_axes={p.get('num_axes', 1)!r}")
    channels = _channels(step)
    bias = _flag(step, p.get("bias_term", False), "bias_term")
    step.blobs = [(channels,)] + ([(channels,)] if bias else [])
    step.info = {"bias": bias}


def _plan_eltwise(step):
    if len(step.bottoms) < 2:
        step.fail(f"needs at least two bottoms. Received: {step.layer['bottoms']}")
    if len(set(step.in_shapes)) != 1:
        step.fail(f"all bottoms must have one shape. Received: {[list(s) for s in step.in_shapes]}")
    p = step.params
    operation = _enum(step, p.get("operation", "SUM"), ("PROD", "SUM", "MAX"), "operation")
    coefficients = [_float(step, c, "coeff") for c in p.get("coeff", [])]
    if coefficients and (operation != "SUM" or len(coefficients) != len(step.bottoms)):
        step.fail(f"`coeff` takes one value per bottom, with operation SUM. Received: coeff={coefficients}")
    step.info = {"operation": operation, "coefficients": coefficients}
    step.out_shapes = [step.in_shapes[0]]


def _plan_concat(step):
    p = step.params
    rank = len(step.in_shapes[0])
    caffe_axis = p.get("axis", p.get("concat_dim", 1))
    axis = _axis(step, caffe_axis, rank)
    caffe_axis = caffe_axis + rank if caffe_axis < 0 else caffe_axis
    others = {tuple(d for i, d in enumerate(s) if i != caffe_axis) for s in step.in_shapes}
    if len(others) != 1 or any(len(s) != rank for s in step.in_shapes):
        step.fail(f"bottoms must agree on every axis but {caffe_axis}. Received: {[list(s) for s in step.in_shapes]}")
    shape = list(step.in_shapes[0])
    shape[caffe_axis] = sum(s[caffe_axis] for s in step.in_shapes)
    step.info = {"axis": axis}
    step.out_shapes = [tuple(shape)]


def _plan_flatten(step):
    p = step.params
    if p.get("axis", 1) != 1 or p.get("end_axis", -1) != -1:
        step.fail("only axis 1 to end_axis -1 (all but the batch axis) is supported")
    shape = step.in_shapes[0]
    step.out_shapes = [(shape[0], int(np.prod(shape[1:])))]


def _plan_reshape(step):
    p = step.params
    if p.get("axis", 0) != 0 or p.get("num_axes", -1) != -1:
        step.fail("only the whole-shape form (axis 0, num_axes -1) is supported")
    shape = step.in_shapes[0]
    dims = (p.get("shape") or [{}])[-1].get("dim", []) if isinstance(p.get("shape"), list) else []
    target = []
    for i, d in enumerate(dims):
        if d == 0 and i < len(shape):
            target.append(shape[i])
        elif d == -1 and -1 not in target:
            target.append(-1)
        else:
            target.append(_int(step, d, "dim", 1))
    total, known = int(np.prod(shape)), int(np.prod([d for d in target if d != -1]))
    if -1 in target and known and total % known == 0:
        target[target.index(-1)] = total // known
    if not target or -1 in target or int(np.prod(target)) != total or target[0] != shape[0]:
        step.fail(f"cannot reshape {list(shape)} to dims {dims} keeping the batch axis")
    step.out_shapes = [tuple(target)]


def _plan_softmax(step):
    rank = len(step.in_shapes[0])
    step.info = {"axis": _axis(step, step.params.get("axis", 1), rank)}
    step.out_shapes = [step.in_shapes[0]]


def _plan_same(step):
    step.out_shapes = [step.in_shapes[0]]


def _plan_split(step):
    step.out_shapes = [step.in_shapes[0]] * max(1, len(step.layer["tops"]))


def _plan_relu(step):
    step.info = {"slope": _float(step, step.params.get("negative_slope", 0.0), "negative_slope")}
    step.out_shapes = [step.in_shapes[0]]


def _plan_dropout(step):
    p = step.params
    keep = 1.0
    if not _flag(step, p.get("scale_train", True), "scale_train"):
        keep = 1.0 - _float(step, p.get("dropout_ratio", 0.5), "dropout_ratio")  # Caffe scales at test instead
    step.info = {"scale": keep}
    step.out_shapes = [step.in_shapes[0]]


_PLANS = {"Convolution": _plan_conv, "Deconvolution": lambda s: _plan_conv(s, deconv=True),
          "InnerProduct": _plan_inner_product, "Pooling": _plan_pooling, "LRN": _plan_lrn, "ReLU": _plan_relu,
          "PReLU": _plan_prelu, "Sigmoid": _plan_same, "TanH": _plan_same, "BatchNorm": _plan_batch_norm,
          "Scale": _plan_scale, "Eltwise": _plan_eltwise, "Concat": _plan_concat, "Flatten": _plan_flatten,
          "Reshape": _plan_reshape, "Dropout": _plan_dropout, "Softmax": _plan_softmax, "Split": _plan_split}
SUPPORTED = tuple(sorted(_PLANS)) + ("Input",)


class Names:
    """Keras layer names from Caffe's: characters Keras refuses become `_`, repeats get a suffix."""

    def __init__(self):
        self.used = set()

    def __call__(self, name):
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name)) or "layer"
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name


def _check_shape(where, shape):
    if any(not isinstance(d, int) or d < 1 or d > _MAX_DIM for d in shape) or np.prod(shape[1:]) > _MAX_COUNT:
        raise ValueError(f"{where}: every dimension must be in [1, {_MAX_DIM}] and a blob hold at most "
                         f"{_MAX_COUNT} values. Received: shape {list(shape)}")


def plan(net, phase="TEST", input_shape=None):
    """(inputs [(Keras name, key, Caffe shape)], steps, output keys, names) of a `read_prototxt` net; raises
    ValueError on anything `from_caffe` cannot build exactly, before anything is built."""
    from weights_io.readers.caffe import layers_in_phase

    layers = layers_in_phase(net, phase)
    for layer in layers:
        if layer["type"] not in SUPPORTED:
            hint = " (a data layer: convert the deploy prototxt)" if str(layer["type"]).endswith("Data") else ""
            raise ValueError(f"Caffe layer {layer['name']!r} has the unsupported type {layer['type']!r}{hint}. "
                             f"Supported: {', '.join(SUPPORTED)}")
    if not net["inputs"]:
        raise ValueError("the prototxt declares no input (`input` + `input_dim`/`input_shape`, or an Input layer)")
    if input_shape is not None:
        if len(net["inputs"]) != 1 or len(input_shape) != 3:
            raise ValueError(f"input_shape=(H, W, C) needs a one-input net. Received: input_shape={input_shape!r}, "
                             f"inputs {[i['name'] for i in net['inputs']]}")
        net = {**net, "inputs": [{"name": net["inputs"][0]["name"], "shape": [1, input_shape[2], *input_shape[:2]]}]}
    current, shapes, inputs = {}, {}, []
    for spec in net["inputs"]:
        shape = tuple(spec["shape"] or ())
        if len(shape) not in (2, 4):
            raise ValueError(f"input {spec['name']!r} needs a 2-D or 4-D shape (N, C, H, W); pass input_shape=. "
                             f"Received: {spec['shape']}")
        _check_shape(f"input {spec['name']!r}", shape)
        key = f"{spec['name']}#0"
        current[spec["name"]], shapes[key] = key, shape
        inputs.append((spec["name"], key, shape))
    steps, consumed, produced = [], set(), [key for _, key, _ in inputs]
    for layer in layers:
        if layer["type"] == "Input":
            continue
        if not layer["bottoms"]:
            raise ValueError(f"Caffe layer {layer['name']!r} ({layer['type']}) has no bottom")
        missing = [b for b in layer["bottoms"] if b not in current]
        if missing:
            raise ValueError(f"Caffe layer {layer['name']!r}: bottom {missing[0]!r} names no "
                             f"earlier top (tops so far: {sorted(current)})")
        bottoms = [current[b] for b in layer["bottoms"]]
        params = layer["params"].get(_PARAMS.get(layer["type"], ""), {})
        step = _Step(layer, "", params, bottoms, [], [shapes[b] for b in bottoms])
        if not isinstance(params, dict):
            step.fail(f"`{_PARAMS[layer['type']]}` must be one message. Received: {params!r}")
        _PLANS[layer["type"]](step)
        tops = layer["tops"] or [layer["name"]]
        if len(tops) != len(step.out_shapes):
            step.fail(f"needs {len(step.out_shapes)} top(s). Received: {tops}")
        for top, shape in zip(tops, step.out_shapes):
            if top in current and top not in layer["bottoms"]:
                step.fail(f"top {top!r} is already produced by an earlier layer (only in-place reuse is allowed)")
            _check_shape(f"Caffe layer {layer['name']!r}, top {top!r}", shape)
            version = int(current[top].rsplit("#", 1)[1]) + 1 if top in current else 0
            current[top] = f"{top}#{version}"
            shapes[current[top]] = shape
            step.tops.append(current[top])
        for blob in step.blobs:
            _check_shape(f"Caffe layer {layer['name']!r}, a blob", (1,) + tuple(blob))
        consumed.update(bottoms)
        produced.extend(step.tops)
        steps.append(step)
    outputs = [key for key in produced if key not in consumed and key not in {k for _, k, _ in inputs}]
    if not outputs:
        raise ValueError("the prototxt's TEST-phase net computes nothing")
    names = Names()
    inputs = [(names(name), key, shape) for name, key, shape in inputs]
    for step in steps:
        step.name = names(step.layer["name"])
        last = step.info.get("axis") == (3 if len(step.in_shapes[0]) == 4 else len(step.in_shapes[0]) - 1)
        step.info["classifier"] = step.kind == "Softmax" and last and step.tops[0] in outputs
    return inputs, steps, outputs, names
