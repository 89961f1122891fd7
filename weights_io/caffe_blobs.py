"""Caffe's numbered blobs as named parameters, the view every layout reads a caffemodel through.

`readers/caffe.py` keeps each layer's blobs as Caffe stores them, ``{"0": ..., "1": ...}``, since
their meaning depends on the layer type. `named_blobs` names them in the "torch" convention the
assign step already converts (OIHW kernels, (out, in) InnerProduct over the CHW flattening):

* Convolution, Deconvolution, InnerProduct, PReLU: "0" weight, "1" bias;
* BatchNorm: "0" mean and "1" variance, both divided by the scale factor "2" (Caffe's moving-average
  normaliser; a factor of 0 gives 0, as Caffe computes), as running_mean / running_var;
* Scale: "0" weight (gamma), "1" bias (beta);
* BN (caffe-segnet's own layer, inference form): "0" scale and "1" shift as weight and bias, with
  mean 0 and variance 1 - `SEGNET_BN_EPSILON`, so a BatchNormalization of that epsilon computes them.

Caffe splits a batch norm into a BatchNorm layer (statistics) and a Scale layer (affine) where Keras
has one BatchNormalization; a layout's `merge_sources` rule names the Scale of each BatchNorm
(He's ResNets: ``bn2a_branch1`` -> ``scale2a_branch1``), and its arrays join the BatchNorm's entry.
A rule that names a layer the file lacks leaves the BatchNorm without gamma/beta, so the load fails
naming them; a merged Scale is no longer a layer of its own.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# blob index -> parameter name, per layer type
BLOB_NAMES = {
    "Convolution": ("weight", "bias"),
    "Deconvolution": ("weight", "bias"),
    "InnerProduct": ("weight", "bias"),
    "PReLU": ("weight",),
    "Scale": ("weight", "bias"),
    "Bias": ("bias",),
}


def _batch_norm(blobs):
    """running_mean / running_var from Caffe's sums and their normaliser (blob 2)."""
    factor = float(np.asarray(blobs["2"]).reshape(-1)[0]) if "2" in blobs else 1.0
    scale = 0.0 if factor == 0 else 1.0 / factor
    named = {"running_mean": np.asarray(blobs["0"]) * np.float32(scale),
             "running_var": np.asarray(blobs["1"]) * np.float32(scale)}
    named.update({k: v for k, v in blobs.items() if k not in ("0", "1", "2")})  # left for the report
    return named


# caffe-segnet's "BN" layer in inference form holds only a per-channel scale and shift (1, C, 1, 1), the
# statistics already folded in (its compute_bn_statistics.py): as a BatchNormalization with this epsilon,
# mean 0 and variance 1 - epsilon, which then computes scale * x + shift.
SEGNET_BN_EPSILON = 1e-5


def _segnet_bn(blobs):
    scale, shift = (np.asarray(blobs[k]).reshape(-1) for k in ("0", "1"))
    return {"weight": scale, "bias": shift, "running_mean": np.zeros_like(scale),
            "running_var": np.full_like(scale, 1 - SEGNET_BN_EPSILON)}


def _named(kind, blobs):
    if kind == "BatchNorm" and "0" in blobs and "1" in blobs:
        return _batch_norm(blobs)
    if kind == "BN" and set(blobs) == {"0", "1"}:
        return _segnet_bn(blobs)
    names = BLOB_NAMES.get(kind, ())
    return {names[int(k)] if k.isdigit() and int(k) < len(names) else k: v for k, v in blobs.items()}


def named_blobs(weight_file, merge_sources=None):
    """The caffemodel `weight_file` with named parameters and each Scale merged into its BatchNorm.

    Args:
        weight_file: a `WeightFile` of format "caffemodel" (others are returned as they are).
        merge_sources: None, or a function of a source layer name returning the name of the
            layer whose parameters complete it (or None).

    Returns:
        A new `WeightFile` sharing the reader's arrays (only BatchNorm statistics are new).
    """
    if weight_file.format != "caffemodel":
        return weight_file
    types = weight_file.metadata.get("layer_types", {})
    tensors = {name: _named(types.get(name), blobs) for name, blobs in weight_file.tensors.items()}
    if merge_sources is not None:
        for name in list(tensors):
            if types.get(name) != "BatchNorm":
                continue
            partner = merge_sources(name)
            if partner and partner in tensors and types.get(partner) == "Scale":
                tensors[name] = {**tensors.pop(partner), **tensors[name]}
    return dataclasses.replace(weight_file, tensors=tensors)


# Caffe's LRN as kerasnets' LocalResponseNormalization options: a = alpha / local_size and k = 1
# (lrn_param's defaults; the BVLC prototxts set local_size 5, alpha 1e-4, beta 0.75)
CAFFE_LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0, "convention": "caffe"}


def layer_before(weight_file, first, second):
    """True/False when the caffemodel lists layer `first` before/after `second`; None when it cannot tell."""
    types = weight_file.metadata.get("layer_types") if weight_file.format == "caffemodel" else None
    if not types or first not in types or second not in types:
        return None
    names = list(types)
    return names.index(first) < names.index(second)
