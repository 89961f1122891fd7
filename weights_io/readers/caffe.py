"""Caffe: the binary `.caffemodel` (a `NetParameter`) and the text `.prototxt`, without Caffe or `protobuf`.

The schema is BVLC's `src/caffe/proto/caffe.proto`; the fields read here:

* NetParameter: name 1, layers 2 (V1LayerParameter), input 3, input_dim 4, input_shape 8 (BlobShape),
  layer 100 (LayerParameter).
* LayerParameter (V2): name 1, type 2 (a string, "Convolution"), bottom 3, top 4, blobs 7.
* V1LayerParameter: layer 1 (a V0LayerParameter: refused), bottom 2, top 3, name 4, type 5 (an enum,
  `V1_TYPES`), blobs 6.
* BlobProto: num 1, channels 2, height 3, width 4 (the legacy 4-D shape), data 5 (packed float),
  shape 7 (BlobShape: dim 1, packed int64), double_data 8 (packed double). `diff` (6, 9) is skipped.

A `WeightFile` holds `{layer name: {"0": blob 0, "1": blob 1, ...}}` in Caffe's own order (weights then
bias; BatchNorm's mean, variance, scale factor) and axes (convolution (out, in/group, kh, kw),
InnerProduct (out, in) over the CHW flattening): convention "torch". `metadata["layer_types"]` gives
every layer's type as a V2 string (V1 enums upgraded as Caffe's `UpgradeV1LayerType` does),
`metadata["version"]` "V1" or "V2", `metadata["inputs"]` the net's declared inputs, `metadata["duplicates"]`
the names of later weighted layers that repeat an earlier name (the first keeps the name). A legacy
num/channels/height/width blob loses the leading ones the layer's own blob does not have: an
InnerProduct weight (1, 1, out, in) becomes (out, in), every bias (1, 1, 1, n) becomes (n,). Packed
float32 data are read-only views of the file with `mmap=True`, unaligned where protobuf put them
(it does not align); unpacked values are decoded. `double_data` stays float64.
"""

from __future__ import annotations

import os

import numpy as np

from weights_io.core import WeightFile
from weights_io.errors import WeightFileError
from weights_io.readers import map_file, opens_as, register_reader
from weights_io.readers.protowire import (
    Malformed as _Malformed, fields as _fields, need as _need, packed_varints as _packed_varints, signed as _signed,
    text as _text)

# (V1LayerParameter.LayerType number, its enum name, the V2 type string Caffe's upgrade gives it)
_V1 = (
    (35, "ABSVAL", "AbsVal"), (1, "ACCURACY", "Accuracy"), (30, "ARGMAX", "ArgMax"), (2, "BNLL", "BNLL"),
    (3, "CONCAT", "Concat"), (37, "CONTRASTIVE_LOSS", "ContrastiveLoss"), (4, "CONVOLUTION", "Convolution"),
    (39, "DECONVOLUTION", "Deconvolution"), (5, "DATA", "Data"), (6, "DROPOUT", "Dropout"),
    (32, "DUMMY_DATA", "DummyData"), (7, "EUCLIDEAN_LOSS", "EuclideanLoss"), (25, "ELTWISE", "Eltwise"),
    (38, "EXP", "Exp"), (8, "FLATTEN", "Flatten"), (9, "HDF5_DATA", "HDF5Data"),
    (10, "HDF5_OUTPUT", "HDF5Output"), (28, "HINGE_LOSS", "HingeLoss"), (11, "IM2COL", "Im2col"),
    (12, "IMAGE_DATA", "ImageData"), (13, "INFOGAIN_LOSS", "InfogainLoss"), (14, "INNER_PRODUCT", "InnerProduct"),
    (15, "LRN", "LRN"), (29, "MEMORY_DATA", "MemoryData"),
    (16, "MULTINOMIAL_LOGISTIC_LOSS", "MultinomialLogisticLoss"), (34, "MVN", "MVN"), (17, "POOLING", "Pooling"),
    (26, "POWER", "Power"), (18, "RELU", "ReLU"), (19, "SIGMOID", "Sigmoid"),
    (27, "SIGMOID_CROSS_ENTROPY_LOSS", "SigmoidCrossEntropyLoss"), (36, "SILENCE", "Silence"),
    (20, "SOFTMAX", "Softmax"), (21, "SOFTMAX_LOSS", "SoftmaxWithLoss"), (22, "SPLIT", "Split"),
    (33, "SLICE", "Slice"), (23, "TANH", "TanH"), (24, "WINDOW_DATA", "WindowData"), (31, "THRESHOLD", "Threshold"),
)
V1_TYPES = {number: v2 for number, _, v2 in _V1}
V1_NAMES = {name: v2 for _, name, v2 in _V1}

# the rank of each blob of a layer type, for squeezing legacy 4-D blobs; other types keep all four axes
_RANKS = {"InnerProduct": (2, 1), "Convolution": (4, 1), "Deconvolution": (4, 1), "BatchNorm": (1, 1, 1),
          "Scale": (1, 1), "Bias": (1,), "PReLU": (1,), "Embed": (2, 1)}
# NetParameter fields and their wire types: what detection accepts before the first layer
_NET_FIELDS = {1: 2, 2: 2, 3: 2, 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 100: 2}
_SNIFF_FIELDS = 1000  # fields detection looks at, of the net and of its first layer
_MAX_RANK = 32  # no Caffe blob has more axes; beyond this a file is forged


class _Unsupported(Exception):
    """A well-formed file of a kind this reader does not read (V0)."""


# ---------------------------------------------------------------------------------------------------------
# the binary NetParameter

def _blob_shape(buf, start, end):
    dims = []
    for number, wire, value in _fields(buf, start, end):
        if number != 1:
            continue
        if wire == 2:  # packed (the schema's own form)
            begin, stop = value
            count = int(np.count_nonzero(np.frombuffer(buf, np.uint8, stop - begin, begin) < 0x80))
            dims.extend(int(_signed(int(d))) for d in _packed_varints(buf, begin, stop, count))
        else:
            _need(wire, 0, "BlobShape.dim")
            dims.append(_signed(value))
        if len(dims) > _MAX_RANK:
            raise _Malformed(f"a blob shape of more than {_MAX_RANK} axes")
    if any(d < 0 for d in dims):
        raise _Malformed(f"a negative dimension in the blob shape {dims}")
    return dims


def _values(buf, items, dtype, mmap):
    """A blob's values from its packed spans (tuples) and unpacked values (raw little-endian ints), in order."""
    dtype = np.dtype(dtype).newbyteorder("<")
    if len(items) == 1 and isinstance(items[0], tuple):
        begin, end = items[0]
        array = np.frombuffer(buf, dtype, (end - begin) // dtype.itemsize, begin)
        # protobuf does not align packed data: a view may be unaligned, which numpy reads. The loaders'
        # transposing copy from it took 4.4 ms against 3.8 ms aligned (512x512x3x3); copying it here
        # instead cost a copy, and in the reader process a write to shared memory too.
        return array if mmap else array.copy()
    parts, run = [], []
    for item in items + [None]:
        if isinstance(item, int):
            run.append(item)
            continue
        if run:
            parts.append(np.array(run, np.uint32 if dtype.itemsize == 4 else np.uint64).view(dtype))
            run = []
        if item is not None:
            parts.append(np.frombuffer(buf, dtype, (item[1] - item[0]) // dtype.itemsize, item[0]))
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _blob(buf, start, end, mmap):
    """(array, legacy?) of one BlobProto."""
    shape, legacy = None, [0, 0, 0, 0]
    floats, doubles = [], []  # packed spans (tuples) and single values (ints), in file order
    for number, wire, value in _fields(buf, start, end):
        if number in (1, 2, 3, 4):
            _need(wire, 0, "a legacy blob dimension")
            legacy[number - 1] = _signed(value)
        elif number == 7:
            _need(wire, 2, "BlobProto.shape")
            shape = _blob_shape(buf, *value)
        elif number in (5, 8):
            target = floats if number == 5 else doubles
            if wire != 2:
                _need(wire, 5 if number == 5 else 1, "an unpacked blob value")
            target.append(value)
    if floats and doubles:
        raise _Malformed("a blob with both data and double_data")
    if shape is None:
        if any(d < 0 or d >= 1 << 31 for d in legacy):
            raise _Malformed(f"a negative or too large legacy blob dimension {legacy}")
        shape = legacy
    count = 1
    for d in shape:
        count *= d
    items = doubles or floats
    dtype = np.float64 if doubles else np.float32
    spans = [item for item in items if isinstance(item, tuple)]
    given = sum((e - b) // np.dtype(dtype).itemsize for b, e in spans) + sum(not isinstance(i, tuple) for i in items)
    if given != count:
        raise _Malformed(f"a blob of shape {list(shape)} ({count} values) holds {given} values")
    if any((e - b) % np.dtype(dtype).itemsize for b, e in spans):
        raise _Malformed(f"packed data that is not a whole number of {np.dtype(dtype).name} values")
    values = _values(buf, items, dtype, mmap)
    return values.reshape(shape), shape is legacy


def _squeeze(array, kind, index):
    ranks = _RANKS.get(kind)
    if ranks is None or index >= len(ranks):
        return array
    shape = list(array.shape)
    while len(shape) > ranks[index] and shape[0] == 1:
        shape.pop(0)
    return array.reshape(shape)


def _layer(buf, start, end, v1, mmap):
    """(name, type, [blob arrays]) of a LayerParameter (V2) or V1LayerParameter."""
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, kind, spans = None, None, []
    for number, wire, value in _fields(buf, start, end):
        if v1 and number == 1:
            raise _Unsupported("V0 Caffe files are not supported (a layer holds an old-style `layer` "
                                  "V0LayerParameter); upgrade it with Caffe's upgrade_net_proto_binary")
        if number == name_field:
            _need(wire, 2, "the layer name")
            name = _text(buf, value)
        elif number == type_field:
            if v1:
                _need(wire, 0, "the V1 layer type")
                kind = V1_TYPES.get(value, f"V1_TYPE_{value}")
            else:
                _need(wire, 2, "the layer type")
                kind = _text(buf, value)
        elif number == blobs_field:
            _need(wire, 2, "a blob")
            spans.append(value)
    blobs = []
    for index, span in enumerate(spans):
        try:
            array, legacy = _blob(buf, *span, mmap)
        except _Malformed as err:
            raise _Malformed(f"layer {name!r}, blob {index}: {err}") from None
        blobs.append(_squeeze(array, kind, index) if legacy else array)
    return name, kind, blobs


def _net(buf, mmap):
    """(net name, [(name, type, blobs)], version, inputs) of a NetParameter."""
    net_name, layers, versions = None, [], set()
    inputs, input_dims, input_shapes = [], [], []
    for number, wire, value in _fields(buf):
        if number in (2, 100):
            _need(wire, 2, "a layer")
            versions.add("V1" if number == 2 else "V2")
            layers.append(_layer(buf, *value, v1=number == 2, mmap=mmap))
        elif number == 1:
            _need(wire, 2, "the net name")
            net_name = _text(buf, value)
        elif number == 3:
            _need(wire, 2, "an input name")
            inputs.append(_text(buf, value))
        elif number == 4:
            if wire == 2:
                begin, stop = value
                count = int(np.count_nonzero(np.frombuffer(buf, np.uint8, stop - begin, begin) < 0x80))
                input_dims.extend(int(d) for d in _packed_varints(buf, begin, stop, count))
            else:
                _need(wire, 0, "an input_dim")
                input_dims.append(_signed(value))
        elif number == 8:
            _need(wire, 2, "an input_shape")
            input_shapes.append(_blob_shape(buf, *value))
    if len(versions) > 1:
        raise _Malformed("a net with both V1 `layers` and V2 `layer` entries")
    if not layers:  # protobuf has no end marker: a file cut after its name is a valid, empty message
        raise _Malformed("no layers (an empty net, or a file cut short)")
    return net_name, layers, (versions or {"V2"}).pop(), _inputs(inputs, input_dims, input_shapes)


def _inputs(names, dims, shapes):
    """[{"name", "shape"}] from NetParameter's input + input_shape, or input + input_dim (4 per input)."""
    if shapes:
        return [{"name": n, "shape": list(s)} for n, s in zip(names, shapes)]
    if dims and len(dims) == 4 * len(names):
        return [{"name": n, "shape": list(dims[4 * i:4 * i + 4])} for i, n in enumerate(names)]
    return [{"name": n, "shape": None} for n in names]


def sniff(buf):
    """True when `buf` opens as a NetParameter: known fields with their wire types up to a first layer whose
    own fields parse and that has a name or a type (or is V0)."""
    try:
        # bounded walks: detection runs in the caller's process, outside the sandbox's limits
        for _, (number, wire, value) in zip(range(_SNIFF_FIELDS), _fields(buf)):
            if _NET_FIELDS.get(number) != wire:
                return False
            if number in (2, 100):
                seen = set()
                for _, (inner, inner_wire, _) in zip(range(_SNIFF_FIELDS), _fields(buf, *value)):
                    if number == 2 and inner == 1:
                        return inner_wire == 2  # V0: named so, the reader refuses it by name
                    seen.add((inner, inner_wire))
                wanted = ((4, 2), (5, 0)) if number == 2 else ((1, 2), (2, 2))
                return any(pair in seen for pair in wanted)
    except _Malformed:
        return False
    return False


def is_caffemodel(path):
    """True when the file at `path` opens as a Caffe NetParameter (see `sniff`)."""
    return opens_as(path, sniff)


@register_reader("caffemodel")
def read_caffemodel(path, mmap=False):
    """Reads a Caffe `.caffemodel` (binary NetParameter, V1 or V2) into a `WeightFile`.

    Args:
        path: the file.
        mmap: return packed float32/float64 blobs as read-only views of the file (possibly unaligned).

    Returns:
        A `WeightFile` of format "caffemodel", convention "torch", `{layer: {"0": ..., "1": ...}}`.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        buf = map_file(f)
    if buf is None:
        raise WeightFileError("The caffemodel is empty", path=path)
    try:
        net_name, layers, version, inputs = _net(buf, mmap)
    except _Malformed as err:
        raise WeightFileError(f"Malformed caffemodel: {err}", path=path) from None
    except _Unsupported as err:
        raise WeightFileError(str(err), path=path) from None
    tensors, types, duplicates = {}, {}, []
    for index, (name, kind, blobs) in enumerate(layers):
        name = name if name is not None else f"layer_{index}"
        if name in types:
            if blobs:
                duplicates.append(name)
            continue
        types[name] = kind
        if blobs:
            tensors[name] = {str(k): array for k, array in enumerate(blobs)}
    metadata = {"name": net_name, "version": version, "layer_types": types, "inputs": inputs,
                "duplicates": duplicates}
    return WeightFile(tensors=tensors, convention="torch", format="caffemodel", path=path, metadata=metadata)


# ---------------------------------------------------------------------------------------------------------
# the text prototxt

# ConvolutionParameter's and others' repeated fields: always lists, even when written once
_REPEATED = frozenset({"kernel_size", "stride", "pad", "dilation", "dim", "shape", "coeff", "slice_point",
                       "bottom", "top", "blobs_lr", "weight_decay", "loss_weight", "param", "stage", "not_stage",
                       "propagate_down", "min_size", "max_size", "aspect_ratio", "variance", "mean_value"})
_OWN = ("name", "type", "bottom", "top", "include", "exclude", "blobs", "layer")


def _plain(message):
    """A parsed message with single values unwrapped, except the fields in `_REPEATED`."""
    out = {}
    for key, values in message.items():
        values = [_plain(v) if isinstance(v, dict) else (str(v) if isinstance(v, str) else v) for v in values]
        out[key] = values if key in _REPEATED or len(values) != 1 else values[0]
    return out


def _last(message, key, default=None):
    values = message.get(key)
    return values[-1] if values else default


def _prototxt_layer(message, v1):
    if v1 and "layer" in message:
        raise ValueError("V0 Caffe prototxt (a `layers` entry with a nested `layer`) is not supported")
    kind = _last(message, "type")
    if v1 and isinstance(kind, int) and not isinstance(kind, bool):  # `type: 4`, the enum by number
        kind = V1_TYPES.get(kind, str(kind))
    elif kind is not None:
        kind = V1_NAMES.get(str(kind), str(kind)) if v1 else str(kind)
    plain = _plain(message)
    return {"name": None if _last(message, "name") is None else str(_last(message, "name")), "type": kind,
            "bottoms": [str(b) for b in message.get("bottom", [])], "tops": [str(t) for t in message.get("top", [])],
            "include": [_plain(r) for r in message.get("include", []) if isinstance(r, dict)],
            "exclude": [_plain(r) for r in message.get("exclude", []) if isinstance(r, dict)],
            "params": {k: v for k, v in plain.items() if k not in _OWN}}


def net_from_text(message):
    """The net of a parsed prototxt (`prototxt.parse`): {"name", "version", "inputs", "layers"}."""
    v1 = "layers" in message
    if v1 and "layer" in message:
        raise ValueError("a prototxt with both V1 `layers` and V2 `layer` entries")
    layers = [_prototxt_layer(m, v1) for m in message.get("layers" if v1 else "layer", []) if isinstance(m, dict)]
    names = [str(n) for n in message.get("input", [])]
    shapes = [[int(d) for d in s.get("dim", [])] for s in message.get("input_shape", []) if isinstance(s, dict)]
    inputs = _inputs(names, [int(d) for d in message.get("input_dim", [])], shapes)
    for layer in layers:
        if layer["type"] == "Input":
            shapes = layer["params"].get("input_param", {}).get("shape", [])
            for k, top in enumerate(layer["tops"]):
                shape = shapes[k] if k < len(shapes) else (shapes[0] if len(shapes) == 1 else None)
                inputs.append({"name": top, "shape": None if shape is None else [int(d) for d in shape.get("dim", [])]})
    return {"name": None if _last(message, "name") is None else str(_last(message, "name")),
            "version": "V1" if v1 else "V2", "inputs": inputs, "layers": layers}


def _meets(rule, phase, level, stages):
    if "phase" in rule and str(rule["phase"]) != phase:
        return False
    if "min_level" in rule and level < rule["min_level"]:
        return False
    if "max_level" in rule and level > rule["max_level"]:
        return False
    return all(s in stages for s in rule.get("stage", [])) and not any(s in stages for s in rule.get("not_stage", []))


def layers_in_phase(net, phase="TEST", level=0, stages=()):
    """The layers of `net` (`read_prototxt`) that Caffe's `FilterNet` keeps in `phase` ("TRAIN"/"TEST"): any
    include rule met, or, without include rules, no exclude rule met."""
    kept = []
    for layer in net["layers"]:
        if layer["include"]:
            keep = any(_meets(r, phase, level, stages) for r in layer["include"])
        else:
            keep = not any(_meets(r, phase, level, stages) for r in layer["exclude"])
        if keep:
            kept.append(layer)
    return kept


def read_prototxt(path):
    """Reads a Caffe `.prototxt` net description (V1 `layers` or V2 `layer`).

    Returns:
        `{"name", "version": "V1"|"V2", "inputs": [{"name", "shape"}], "layers": [{"name", "type" (a V2
        string), "bottoms", "tops", "include", "exclude" (lists of NetStateRule dicts), "params" (every
        other field: `convolution_param` as a dict, ...)}]}`. Inputs come from `input` + `input_dim` /
        `input_shape` and from `Input` layers.

    Raises:
        WeightFileError: the file is not valid protobuf text format or not a Caffe net.
    """
    from weights_io.readers.prototxt import TextFormatError, parse

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as err:
        raise WeightFileError(f"Cannot read the prototxt ({err})", path=path) from err
    try:
        return net_from_text(parse(text))
    except TextFormatError as err:
        raise WeightFileError(f"Malformed prototxt: {err}", path=path) from None
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        raise WeightFileError(f"Not a Caffe net description: {err}", path=path) from None
