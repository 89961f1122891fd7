"""Convert source arrays to a model's variables, check everything, then apply.

The one assign step every loader goes through. It

1. asks the layout for `{our layer name: source layer key}`;
2. for each weighted layer, picks the source array of each variable by the
   source's parameter names (`CONVENTIONS`) and converts its axes to Keras';
3. records loaded / missing / unexpected / mis-shaped weights in a `Report`;
4. writes nothing unless every check passed (or `strict=False`, which loads
   what fits and leaves the rest), so a failed load leaves the model untouched.
"""

from __future__ import annotations

import re
import warnings

import keras
import numpy as np
from keras.src.backend.common.stateless_scope import in_stateless_scope

from weights_io.core import Report, WeightFile, build_record
from weights_io.errors import WeightMismatchError, WeightOptionsWarning
from weights_io.transfer import copy_into, destination, initialise_unset, reshape_view, set_value

# Our variable name -> the source's parameter name, per convention.
PARAM_NAMES = {
    "torch": {
        "kernel": "weight", "depthwise_kernel": "weight", "bias": "bias",
        "gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var",
        "alpha": "weight",
        "squeeze_kernel": "fc1.weight", "squeeze_bias": "fc1.bias",
        "excite_kernel": "fc2.weight", "excite_bias": "fc2.bias",
    },
    "tf": {
        "kernel": "weights", "depthwise_kernel": "weights", "bias": "biases",
        "gamma": "scale", "beta": "offset", "moving_mean": "mean", "moving_variance": "variance",
        "alpha": "alpha",
    },
    "matconvnet": {
        "kernel": "weights", "depthwise_kernel": "weights", "bias": "biases",
        "gamma": "mult", "beta": "bias", "moving_mean": "moments", "moving_variance": "moments",
        "alpha": "weights",
    },
}

# Keras 3 variable names that Keras 2 files spell otherwise: DepthwiseConv2D's "kernel"
# was "depthwise_kernel" (tf.keras MobileNetV3's hosted .h5 files).
_KERAS2_NAMES = {"kernel": (keras.layers.DepthwiseConv2D, "depthwise_kernel")}

# Source parameters that carry no weight (bookkeeping): consumed silently.
IGNORED_PARAMS = ("num_batches_tracked",)


def weighted_layers(model):
    """Layers that own variables, in model order, descending into nested models."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += weighted_layers(layer)
        elif layer.weights:
            out.append(layer)
    return out


def _flatten_source_shape(layer):
    """(H, W, C) when a Dense layer reads a flattened spatial map, else None.

    Torch flattens CHW and Keras HWC, so the first Linear after a feature map
    needs its input axis permuted; walks back through shape-preserving layers.
    """
    try:
        tensor = layer._inbound_nodes[0].input_tensors[0]
    except (IndexError, AttributeError):
        return None
    for _ in range(8):
        producer = tensor._keras_history.operation
        if isinstance(producer, keras.layers.Flatten):
            shape = tuple(producer._inbound_nodes[0].input_tensors[0].shape[1:])
            return shape if len(shape) == 3 and shape[0] * shape[1] > 1 else None
        if isinstance(producer, (keras.layers.Dropout, keras.layers.Activation, keras.layers.ReLU)):
            tensor = producer._inbound_nodes[0].input_tensors[0]
            continue
        return None
    return None


def _restore_singletons(array, shape):
    """Re-adds the trailing singleton axes MATLAB drops ((3,3,64,1) saved as (3,3,64))."""
    if array.shape != tuple(shape) and array.size == int(np.prod(shape)) and array.ndim < len(shape):
        if tuple(shape[: array.ndim]) == array.shape and all(d == 1 for d in shape[array.ndim:]):
            return reshape_view(array, shape)
    return array


def _convert_kernel(array, variable, layer, convention):
    """Source kernel -> Keras layout; returns (array, note)."""
    target = tuple(variable.shape)
    if convention == "matconvnet":
        array = _restore_singletons(array, target)
    if convention == "torch":
        if isinstance(layer, keras.layers.DepthwiseConv2D) and array.ndim == 4:
            kh, kw, channels, multiplier = target
            return array.reshape(channels, multiplier, kh, kw).transpose(2, 3, 0, 1), "depthwise (C,M,kh,kw)->(kh,kw,C,M)"
        if len(target) == 4 and array.ndim == 4:
            note = "ConvTranspose (in,out,kh,kw)->(kh,kw,out,in)" if isinstance(layer, keras.layers.Conv2DTranspose) else "OIHW->HWIO"
            return array.transpose(2, 3, 1, 0), note
        if len(target) == 4 and array.ndim == 2:
            kh, kw, cin, cout = target
            if array.shape != (cout, kh * kw * cin):
                return array, "Linear->conv"
            return array.reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0), "Linear (out, C*H*W)->conv HWIO"
        if len(target) == 2 and array.ndim in (2, 4):
            matrix = array.reshape(array.shape[0], -1)
            spatial = _flatten_source_shape(layer) if isinstance(layer, keras.layers.Dense) else None
            if spatial is not None and matrix.shape == (target[1], target[0]):
                h, w, c = spatial
                return (
                    reshape_view(matrix.reshape(-1, c, h, w).transpose(2, 3, 1, 0), target),
                    "Linear CHW-flatten->HWC-flatten, transposed",
                )
            return matrix.T, "Linear (out,in)->(in,out)"
        return array, ""
    # tf, matconvnet, keras: HWIO and (in, out) already; only FC <-> conv reshapes.
    # MatConvNet FC layers are convs whose support is the whole input; their
    # (H, W, C, out) kernel, maybe missing a trailing 1, flattens in C order
    # exactly as Flatten does NHWC.
    fc_ranks = (3, 4) if convention == "matconvnet" else (4,)
    if array.shape != target and array.size == int(np.prod(target)) and (
        (len(target) == 4 and array.ndim == 2) or (len(target) == 2 and array.ndim in fc_ranks)
    ):
        return reshape_view(array, target), f"reshape {array.shape}->{target}"
    return array, ""


def _saving_order(layer):
    """The order Keras 3 saves a layer's variables in: own trainable, then non-trainable."""
    own = getattr(layer, "_trainable_variables", None)
    if own is None:
        return list(layer.weights)
    ordered = list(own) + list(layer._non_trainable_variables)
    return ordered + [v for v in layer.weights if not any(v is o for o in ordered)]


def _source_array(variable, layer, src, flat, convention):
    """Finds and converts the source value of one variable: (array, key, note) or (None, key, '')."""
    var_name = variable.name.split("/")[-1].split(":")[0]
    if convention == "keras":
        key = f"{src}.{var_name}"
        if key not in flat and var_name in _KERAS2_NAMES and isinstance(layer, _KERAS2_NAMES[var_name][0]):
            key = f"{src}.{_KERAS2_NAMES[var_name][1]}"
        if key not in flat and f"{src}.0" in flat:  # Keras 3 .weights.h5 names variables by position
            key = f"{src}.{next(i for i, v in enumerate(_saving_order(layer)) if v is variable)}"
        array = flat.get(key)
        if array is not None and var_name == "kernel":
            array, note = _convert_kernel(np.asarray(array), variable, layer, convention)
            return array, key, note
        return array, key, ""
    param = PARAM_NAMES[convention].get(var_name, var_name)
    if convention == "matconvnet" and isinstance(layer, keras.layers.BatchNormalization) and var_name == "beta":
        param = "bias"
    key = f"{src}.{param}"
    if key not in flat and f"{src}.{var_name}" in flat:  # spelt as Keras does (TF-slim's BatchNorm/gamma)
        key = f"{src}.{var_name}"
    array = flat.get(key)
    if array is None:
        return None, key, ""
    array = np.asarray(array)
    if var_name in ("kernel", "depthwise_kernel"):
        array, note = _convert_kernel(array, variable, layer, convention)
        return array, key, note
    if var_name in ("squeeze_kernel", "excite_kernel") and convention == "torch":
        return array.reshape(array.shape[0], -1).T, key, "Linear/1x1 conv (out,in)->(in,out)"
    if convention == "matconvnet" and param == "moments":
        moments = array.reshape(-1, 2)
        if var_name == "moving_mean":
            return moments[:, 0].copy(), key, "moments[:, 0]"
        return moments[:, 1] ** 2 - layer.epsilon, key, "moments[:, 1]**2 - eps"
    target = tuple(variable.shape)
    if array.shape != target and array.size == int(np.prod(target)):
        return reshape_view(array, target), key, f"reshape {array.shape}->{target}" if array.ndim > 1 else ""
    if var_name == "alpha" and array.size == 1 and int(np.prod(target)) > 1:
        return np.full(target, array.reshape(()), dtype=array.dtype), key, "shared PReLU slope broadcast"
    return array, key, ""


def _apply(variable, array):
    """Copies one source array into `variable` (one pass, then handed over); False if it holds NaN/Inf."""
    try:
        dtype = np.dtype(variable.dtype)
    except TypeError:  # a dtype numpy does not name (bfloat16 without ml_dtypes): the plain way
        value = np.asarray(array)
        set_value(variable, value)
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    target, hand_over = destination(variable, dtype)
    finite = copy_into(target, array)
    del target  # on TensorFlow a raw alias of the new tensor: gone before the variable owns that memory
    hand_over()
    return finite


def _first_conv_name(layers):
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name
    return None


def adapt_input_channels(kernel, channels):
    """A first-conv HWIO `kernel` for `channels` input channels from one trained on 3 (RGB).

    As timm's `adapt_input_conv`: one channel gets the sum over R, G, B (a grey
    image then gives what the RGB net gave for that grey); more channels repeat
    R, G, B cyclically, scaled by 3 / channels so the response stays the same.
    """
    kernel = np.asarray(kernel)
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True), "summed RGB -> 1 input channel"
    repeats = -(-channels // 3)
    tiled = np.concatenate([kernel] * repeats, axis=2)[:, :, :channels, :]
    return tiled * (3.0 / channels), f"RGB repeated -> {channels} input channels, x 3/{channels}"


def _adaptable(array, variable, layer, first_conv):
    """True when only the first conv's input-channel count differs from a 3-channel source kernel."""
    shape, target = tuple(array.shape), tuple(variable.shape)
    return (layer.name == first_conv and variable.name == "kernel" and len(shape) == 4 and len(target) == 4
            and shape[2] == 3 and target[2] != 3 and shape[:2] + shape[3:] == target[:2] + target[3:])


def _head_only(report, head, head_source):
    """True when every problem row belongs to the classifier (`head` ours, `head_source` theirs)."""
    ours = [t for t, _, _ in report.missing] + [t for t, _, _, _ in report.mismatched]
    return (bool(ours or report.unexpected)
            and all(t.split("/")[0] == head for t in ours)
            and all(head_source is not None and k.rpartition(".")[0] == head_source for k in report.unexpected))


def _drop_background(flat, head_source, count, convention):
    """Drops class 0 from the source classifier `head_source` where it has `count` outputs; the keys changed."""
    axis = 0 if convention == "torch" else -1  # the output axis
    dropped = set()
    for key in [k for k in flat if k.rpartition(".")[0] == head_source]:
        array = np.asarray(flat[key])
        if array.ndim and array.shape[axis] == count:
            flat[key] = array[1:] if axis == 0 else array[..., 1:]
            dropped.add(key)
    return dropped


def _with_note(note, extra):
    return f"{note}; {extra}" if note else extra


def assign_weights(model, weight_file: WeightFile, layout, *, strict=True, flip_first_conv_channels=False,
                   release=False, progress=None, keep_background=False):
    """Loads `weight_file` into `model` through `layout`; returns a `Report`.

    Args:
        model: a built Keras model.
        weight_file: what a reader returned.
        layout: a `Layout` (names only).
        strict: raise `WeightMismatchError` (model untouched) on any missing,
            unexpected or mis-shaped weight, or when a kerasnets model was built
            with other options than the layout's publisher implies. With False,
            load every weight that fits, report the rest and warn of differing
            options (`WeightOptionsWarning`).
        flip_first_conv_channels: reverse the input-channel axis of the first
            convolution (BGR-trained weights used on RGB input, and back).
        release: empty `weight_file` while assigning, so each source array is
            freed once copied (the loaders pass True: peak memory stays near
            the file size instead of twice it).
        progress: None, or a callable `(bytes_done, bytes_total)` called after
            each assigned array (for a progress line on large files).
        keep_background: keep the background class 0 of a classifier whose
            layout declares one (`Layout.background_classes`: TF-slim's 1001
            classes); by default it is dropped, leaving the 1000 ImageNet classes.
    """
    layers = weighted_layers(model)
    names = [layer.name for layer in layers]
    read, weight_file = weight_file, layout.view(weight_file)
    mapping = layout.mapping(names, weight_file)
    flat = weight_file.flat()
    dropped = set()
    if layout.background_classes and not keep_background and names and mapping.get(names[-1]):
        dropped = _drop_background(flat, mapping[names[-1]], layout.background_classes, weight_file.convention)
    consumed = {key for key in flat if key.rpartition(".")[2] in IGNORED_PARAMS}
    report = Report(path=weight_file.path, format=weight_file.format, layout=layout.name)
    first_conv = layout.first_conv or _first_conv_name(layers)
    plan = []
    for layer in layers:
        src = mapping.get(layer.name)
        if src is None:
            report.missing += [(v.path, "(no source layer)", "") for v in layer.weights]
            continue
        layer_plan, layer_ok = [], True
        for variable in layer.weights:
            array, key, note = _source_array(variable, layer, src, flat, weight_file.convention)
            if array is None:
                report.missing.append((variable.path, key, ""))
                layer_ok = False
                continue
            consumed.add(key)
            if key in dropped:
                note = _with_note(note, "background class 0 dropped")
            if flip_first_conv_channels and layer.name == first_conv and variable.name == "kernel":
                array = np.asarray(array)[:, :, ::-1, :]
                note = (note + "; " if note else "") + "BGR<->RGB flip"
            if _adaptable(array, variable, layer, first_conv):
                array, adapted = adapt_input_channels(array, variable.shape[2])
                note = (note + "; " if note else "") + adapted
                report.adapted_channels = (3, int(variable.shape[2]))
            if tuple(array.shape) != tuple(variable.shape):
                shown = f"{key} (background class 0 dropped; keep_background=True keeps it)" if key in dropped else key
                report.mismatched.append((variable.path, tuple(variable.shape), shown, tuple(array.shape)))
                layer_ok = False
                continue
            layer_plan.append((variable, array, key, note))
        if layer_ok:
            plan += layer_plan
        else:
            report.skipped += [(v.path, k, "layer not loaded: see missing / mis-shaped") for v, _, k, _ in layer_plan]
    report.unexpected = sorted(set(flat) - consumed)
    if layout.optional_sources:  # e.g. aux heads the model was built without
        optional = [key for key in report.unexpected if re.fullmatch(layout.optional_sources, key)]
        report.skipped += [("(not in the model)", key, "optional source, unused") for key in optional]
        report.unexpected = [key for key in report.unexpected if key not in optional]
    record = build_record(model)
    report.option_mismatches = layout.option_differences(record, read)
    if record is not None:
        report.suggested_call = record.call(**{k: theirs for k, _, theirs in report.option_mismatches})
    report.head_only = _head_only(report, names[-1] if names else None, mapping.get(names[-1]) if names else None)
    if strict and not (report.ok and not report.option_mismatches):
        raise WeightMismatchError(report)
    if report.option_mismatches:
        warnings.warn(report.options_message(), WeightOptionsWarning, stacklevel=2)
    if release:
        flat.clear()
        weight_file.tensors.clear()
        read.tensors.clear()
    # Smallest first, each source dropped once copied: when the largest array goes (VGG's
    # fc6, 78% of the file) every other copy is done and its file pages released.
    pending = sorted(enumerate(plan), key=lambda item: item[1][1].nbytes, reverse=True)
    del plan
    total, done = sum(item[1][1].nbytes for item in pending), 0
    loaded, not_finite = [], []
    while pending:
        position, (variable, array, key, note) = pending.pop()
        nbytes = array.nbytes
        if not _apply(variable, array):
            not_finite.append((position, key))
        del array
        done += nbytes
        loaded.append((position, (variable.path, key, note)))
        if progress is not None:
            progress(done, total)
    not_finite = [key for _, key in sorted(not_finite)]  # named in model order
    if not_finite:
        warnings.warn(
            f"{len(not_finite)} source array(s) hold NaN or Inf and were loaded as they are: {not_finite[:10]}"
            f" [file: {weight_file.path}]",
            RuntimeWarning,
            stacklevel=2,
        )
    report.loaded += [row for _, row in sorted(loaded)]  # reported in model order
    report.applied = True
    if not in_stateless_scope():  # a model built without initialiser draws comes out whole
        initialise_unset(model.variables)
    return report


# ------------------------------------------------------------------ export
def _export_kernel(array, layer, convention):
    """Keras kernel -> the source convention's layout: the inverse of `_convert_kernel`."""
    if convention != "torch":
        return array, ""
    if isinstance(layer, keras.layers.DepthwiseConv2D) and array.ndim == 4:
        kh, kw, channels, multiplier = array.shape
        return array.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw), "depthwise (kh,kw,C,M)->(C*M,1,kh,kw)"
    if array.ndim == 4:
        note = "ConvTranspose (kh,kw,out,in)->(in,out,kh,kw)" if isinstance(layer, keras.layers.Conv2DTranspose) else "HWIO->OIHW"
        return array.transpose(3, 2, 0, 1), note
    if array.ndim == 2:
        spatial = _flatten_source_shape(layer) if isinstance(layer, keras.layers.Dense) else None
        if spatial is not None:
            h, w, c = spatial
            return (array.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(array.shape[1], -1),
                    "HWC-flatten->CHW-flatten, transposed")
        return array.T, "(in,out)->Linear (out,in)"
    return array, ""


def _export_param(variable, layer, convention):
    """(source parameter name, array, note) for one variable."""
    var_name = variable.name.split("/")[-1].split(":")[0]
    array = np.asarray(keras.ops.convert_to_numpy(variable))
    if convention == "keras":
        return var_name, array, ""
    param = PARAM_NAMES[convention].get(var_name, var_name)
    if var_name in ("kernel", "depthwise_kernel"):
        array, note = _export_kernel(array, layer, convention)
        return param, array, note
    if convention == "torch" and var_name in ("squeeze_kernel", "excite_kernel"):
        return param, array.T.reshape(array.shape[1], array.shape[0], 1, 1), "(in,out)->1x1 conv (out,in,1,1)"
    if convention == "torch" and var_name == "alpha":
        return param, array.reshape(-1) if array.size == array.shape[-1] else array, ""
    return param, array, ""


def export_weights(model, layout, convention):
    """The model's weights as a `WeightFile` in `layout`'s names and `convention`'s axes.

    The inverse of `assign_weights`: `assign_weights(model, export_weights(model,
    layout, c), layout)` restores every weight exactly.

    Args:
        model: a built Keras model.
        layout: a `Layout`; every weighted layer must have a source key.
        convention: "torch", "tf" or "keras" ("matconvnet" is read-only).

    Returns:
        A `WeightFile` with `convention`.
    """
    if convention not in ("torch", "tf", "keras"):
        raise ValueError(f"Cannot export to convention {convention!r}; expected 'torch', 'tf' or 'keras'.")
    layers = weighted_layers(model)
    mapping = layout.map_names([layer.name for layer in layers])
    unmapped = [layer.name for layer in layers if layer.name not in mapping]
    if unmapped:
        raise ValueError(f"Layout {layout.name!r} has no source name for the layers {unmapped}; "
                         "pick a layout written for this architecture.")
    tensors, notes = {}, []
    for layer in layers:
        params = tensors.setdefault(mapping[layer.name], {})
        for variable in layer.weights:
            param, array, note = _export_param(variable, layer, convention)
            if param in params:
                raise ValueError(f"Two weights of layer {layer.name!r} export to {param!r}")
            params[param] = np.array(array, order="C")  # keeps 0-d arrays 0-d
            notes.append((variable.path, f"{mapping[layer.name]}.{param}", note))
        if convention == "torch" and isinstance(layer, keras.layers.BatchNormalization):
            params["num_batches_tracked"] = np.zeros((), np.int64)
    return WeightFile(tensors=tensors, convention=convention, format="export", metadata={"notes": notes})
