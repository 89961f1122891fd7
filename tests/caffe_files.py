"""Caffe nets written by the tests, independently of weights_io: a `.prototxt` (protobuf text format) and a
`.caffemodel` (binary NetParameter) from one list of layers, in the V1 or the V2 encoding.

Field numbers and V1 enum values are BVLC/caffe's `src/caffe/proto/caffe.proto` (facts): NetParameter
name 1, layers 2, input 3, input_dim 4, layer 100; LayerParameter name 1, type 2, bottom 3, top 4, blobs 7;
V1LayerParameter bottom 2, top 3, name 4, type 5, blobs 6; BlobProto data 5, shape 7 (BlobShape dim 1).

A layer is a dict: `name`, `type` (the V2 string), `bottoms`, `tops`, `params` (e.g. `{"convolution_param":
{"num_output": 8, "kernel_size": 3}}`; an enum value as `Bare("MAX")`) and `blobs` (numpy arrays in Caffe's
axes and order).
"""

from __future__ import annotations

import pathlib

import numpy as np

from tests.fuzz.corpus import pb_field, pb_varint

# V2 type string -> (V1 enum name, V1 enum number), for the types that V1 has
V1_ENUMS = {
    "Concat": ("CONCAT", 3), "Convolution": ("CONVOLUTION", 4), "Deconvolution": ("DECONVOLUTION", 39),
    "Dropout": ("DROPOUT", 6), "Eltwise": ("ELTWISE", 25), "Flatten": ("FLATTEN", 8),
    "InnerProduct": ("INNER_PRODUCT", 14), "LRN": ("LRN", 15), "Pooling": ("POOLING", 17), "ReLU": ("RELU", 18),
    "Sigmoid": ("SIGMOID", 19), "Softmax": ("SOFTMAX", 20), "Split": ("SPLIT", 22), "TanH": ("TANH", 23),
}


class Bare(str):
    """A text-format value written without quotes: an enum (`pool: MAX`) or a V1 layer type."""


def layer(name, kind, bottoms, tops=None, blobs=(), **params):
    """One layer dict; `tops` defaults to the layer's name."""
    bottoms = [bottoms] if isinstance(bottoms, str) else list(bottoms)
    tops = [name] if tops is None else ([tops] if isinstance(tops, str) else list(tops))
    return {"name": name, "type": kind, "bottoms": bottoms, "tops": tops, "params": params, "blobs": list(blobs)}


# ---------------------------------------------------------------------------------------------------------
# text

def _value(value):
    if isinstance(value, Bare):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def _fields_text(params, indent):
    pad = "  " * indent
    lines = []
    for key, value in params.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, dict):
                lines.append(f"{pad}{key} {{")
                lines.extend(_fields_text(item, indent + 1))
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{key}: {_value(item)}")
    return lines


def prototxt_text(layers, inputs, version="V2", name="net"):
    """The deploy prototxt: `inputs` is {name: (N, C, H, W)}, declared as `input` + `input_dim`."""
    lines = [f'name: "{name}"']
    for input_name, shape in inputs.items():
        lines.append(f'input: "{input_name}"')
        lines.extend(f"input_dim: {int(d)}" for d in shape)
    for spec in layers:
        kind = Bare(V1_ENUMS[spec["type"]][0]) if version == "V1" else spec["type"]
        body = {"name": spec["name"], "type": kind, "bottom": spec["bottoms"], "top": spec["tops"], **spec["params"]}
        lines.append("layers {" if version == "V1" else "layer {")
        lines.extend(_fields_text(body, 1))
        lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# binary

def _blob(array):
    array = np.asarray(array)
    shape = pb_field(7, pb_field(1, b"".join(pb_varint(int(d)) for d in array.shape)))
    if array.dtype == np.float64:
        return shape + pb_field(8, array.astype("<f8").tobytes())
    return shape + pb_field(5, array.astype("<f4").tobytes())


def caffemodel_bytes(layers, version="V2", name="net"):
    """A trained-net NetParameter: every layer with its name, type, bottoms, tops and blobs (no params: Caffe's
    own files carry them, but readers take the structure from the prototxt)."""
    v1 = version == "V1"
    name_f, type_f, bottom_f, top_f, blobs_f, layer_f = (4, 5, 2, 3, 6, 2) if v1 else (1, 2, 3, 4, 7, 100)
    out = [pb_field(1, name.encode())]
    for spec in layers:
        body = pb_field(name_f, spec["name"].encode())
        body += pb_field(type_f, V1_ENUMS[spec["type"]][1] if v1 else spec["type"].encode())
        body += b"".join(pb_field(bottom_f, b.encode()) for b in spec["bottoms"])
        body += b"".join(pb_field(top_f, t.encode()) for t in spec["tops"])
        body += b"".join(pb_field(blobs_f, _blob(a)) for a in spec["blobs"])
        out.append(pb_field(layer_f, body))
    return b"".join(out)


def write_net(directory, layers, inputs, version="V2", name="net"):
    """Writes `<name>.prototxt` and `<name>.caffemodel` into `directory`; returns both paths."""
    directory = pathlib.Path(directory)
    prototxt, model = directory / f"{name}.prototxt", directory / f"{name}.caffemodel"
    prototxt.write_text(prototxt_text(layers, inputs, version, name))
    model.write_bytes(caffemodel_bytes(layers, version, name))
    return prototxt, model
