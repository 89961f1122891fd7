"""Frozen TensorFlow graphs (`.pb` GraphDef): the weights are the graph's `Const` nodes.

TF1 models were often published frozen (`convert_variables_to_constants`): one
GraphDef file where every variable became a `Const` node of the same name
(OpenCV's dnn_superres FSRCNN models, TensorFlow's 2015 Inception v3
``classify_image_graph_def.pb``). The file is decoded by hand like a checkpoint
(`protowire`): nothing of the graph is imported or run.

Weights are the floating-point constants of rank >= 1; scalars (the 0.5 of a
hand-written PReLU, a batch-norm epsilon) and integer constants (shapes,
permutations) are graph arithmetic, listed in ``metadata["skipped"]``. Names
group like a checkpoint's: ``conv1/weights`` is layer ``conv1``, parameter
``weights``; a name without a scope (``f1``) is a layer with parameter "".
"""

from __future__ import annotations

import os
import re

import numpy as np

from weights_io.core import WeightFile
from weights_io.errors import WeightFileError
from weights_io.readers import map_file, opens_as, register_reader
from weights_io.readers.protowire import Malformed, fields, need, text
from weights_io.readers.tf_checkpoint import group_by_scope
from weights_io.readers.tf_tensors import DTYPES, not_weight, numpy_dtype, tensor_shape, tensor_values

_FLOATS = {1, 2, 14, 19}  # DT_FLOAT, DT_DOUBLE, DT_BFLOAT16, DT_HALF
_OP_NAME = re.compile(r"[A-Z][A-Za-z0-9_]{0,63}")
_SNIFF_NODES = 4


def _node(buf, start, end):
    """(name, op, (begin, end) of the `value` attribute's TensorProto or None) of one NodeDef."""
    name, op, tensor = None, None, None
    for number, wire, value in fields(buf, start, end):
        if number == 1:
            need(wire, 2, "a node name")
            name = text(buf, value)
        elif number == 2:
            need(wire, 2, "a node op")
            op = text(buf, value)
        elif number == 5:  # attr: map<string, AttrValue>, entries of (1: key, 2: value)
            need(wire, 2, "a node attribute")
            key, attr = None, None
            for n, w, v in fields(buf, *value):
                if n == 1 and w == 2:
                    key = text(buf, v)
                elif n == 2 and w == 2:
                    attr = v
            if key == "value" and attr is not None:
                for n, w, v in fields(buf, *attr):
                    if n == 8:  # AttrValue.tensor
                        need(w, 2, "a tensor attribute")
                        tensor = v
    return name, op, tensor


def _tensor(buf, start, end):
    """(dtype code, shape) of a TensorProto."""
    code, shape = 1, ()
    for number, wire, value in fields(buf, start, end):
        if number == 1:
            need(wire, 0, "a tensor dtype")
            code = value
        elif number == 2:
            need(wire, 2, "a tensor shape")
            shape = tensor_shape(buf, *value)
    return code, shape


def sniff(buf):
    """True when `buf` opens as a GraphDef: nodes (field 1) that each have a name and an op named like one."""
    try:
        seen = 0
        for number, wire, value in fields(buf):
            if number != 1 or wire != 2:
                return seen > 0 and number in (2, 3, 4) and wire in (0, 2)
            name, op, _ = _node(buf, *value)
            if not name or op is None or not _OP_NAME.fullmatch(op):
                return False
            seen += 1
            if seen == _SNIFF_NODES:
                return True
        return seen > 0
    except Malformed:
        return False


def is_graphdef(path):
    """True when the file at `path` opens as a TensorFlow GraphDef (see `sniff`)."""
    return opens_as(path, sniff)


def _constants(buf):
    flat, skipped, ops = {}, [], {}
    for number, wire, value in fields(buf):
        if number != 1:
            continue  # library (functions), versions
        need(wire, 2, "a node")
        name, op, span = _node(buf, *value)
        ops[op] = ops.get(op, 0) + 1
        if op != "Const" or span is None:
            continue
        code, shape = _tensor(buf, *span)
        if code not in _FLOATS or not shape:
            kind = not_weight(code) or (DTYPES.get(code) and numpy_dtype(code).name) or f"dtype {code}"
            skipped.append(f"{name} ({'scalar' if code in _FLOATS else kind})")
            continue
        if name in flat:
            raise Malformed(f"two constants named {name!r}")
        dtype = numpy_dtype(code)
        count = int(np.prod(shape, dtype=np.int64))
        flat[name] = tensor_values(buf, *span, dtype, count).reshape(shape)
    return flat, skipped, ops


@register_reader("tf-graphdef")
def read_tf_graphdef(path, mmap=False):
    """Reads the weights of a frozen TensorFlow graph (`.pb`); values are decoded, so `mmap` has no effect."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        buf = map_file(f)
    if buf is None:
        raise WeightFileError("The GraphDef file is empty", path=path)
    try:
        flat, skipped, ops = _constants(buf)
    except Malformed as err:
        raise WeightFileError(f"Malformed TensorFlow GraphDef: {err}", path=path) from None
    if not flat:
        hint = (" Its variables are not frozen (VariableV2 nodes): the weights are in a checkpoint."
                if ops.get("VariableV2") or ops.get("VarHandleOp") else "")
        raise WeightFileError(f"A TensorFlow GraphDef with no floating-point constants.{hint}", path=path)
    metadata = {"skipped": skipped, "ops": dict(sorted(ops.items()))}
    return WeightFile(tensors=group_by_scope(flat), convention="tf", format="tf-graphdef", path=path,
                      metadata=metadata)
