"""Argument checking, inputs and heads shared by every classification builder.

Each builder follows the keras.applications signature::

    build_x(include_top=True, weights=None, input_shape=None, input_tensor=None,
            pooling=None, classes=1000, classifier_activation="softmax",
            name=None, **options)

and calls these helpers so that bad arguments fail the same way everywhere:
with a `ValueError` that says what was expected and what was received,
before any layer is built.
"""

from __future__ import annotations

import difflib
import os
import sys

import keras

from kerasnets import presets
from weights_io.core import stamp_build

POOLINGS = (None, "avg", "max")
_WEIGHT_SUFFIXES = ("h5", "keras", "npy", "npz", "mat", "pth", "pt", "th", "bin")


def check_common_args(*, include_top, weights, pooling, classes, classifier_activation):
    """Validates the arguments every classification builder shares."""
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}")
    if include_top and (not isinstance(classes, int) or isinstance(classes, bool) or classes < 1):
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None (random initialization), 'imagenet', a preset name or the path of a "
            f"weight file. Received: weights={weights!r}"
        )
    if presets.is_preset(weights):
        # keras.applications' rule: a pretrained classifier has the preset's classes.
        count = 1000 if weights == "imagenet" else presets.get_preset(weights).num_classes
        if include_top and count is not None and classes != count:
            raise ValueError(
                f"With `weights={weights!r}` and include_top=True, `classes` must be {count} (the preset's "
                f"classes); use include_top=False for a new head. Received: classes={classes!r}"
            )
        from kerasnets.registry import current_build

        record = current_build()
        if record is not None:  # a registered builder: its registry name picks "imagenet"'s preset
            presets.check_reachable(presets.resolve(weights, record.model))
    elif weights is not None and not os.path.exists(weights):
        if isinstance(weights, str) and "." in weights and not os.path.splitext(weights)[1][1:] in _WEIGHT_SUFFIXES:
            presets.get_preset(weights)  # looks like a preset name: say which exist
        raise ValueError(f"`weights` file does not exist. Received: weights={os.fspath(weights)!r}")
    if classifier_activation is not None:
        try:
            keras.activations.get(classifier_activation)
        except ValueError as err:
            raise ValueError(
                "`classifier_activation` must be None or a Keras activation. "
                f"Received: classifier_activation={classifier_activation!r}"
            ) from err


def resolve_input_shape(
    input_shape,
    *,
    default_shape,
    min_size,
    fixed_size=False,
    channels=None,
    model_name="model",
):
    """Returns the checked input shape (H, W, C), channels last.

    Args:
        input_shape: what the user passed, or None for `default_shape`.
        default_shape: the network's usual input, e.g. (224, 224, 3).
        min_size: smallest spatial size the network can process.
        fixed_size: True when a flattening classifier pins H and W to
            `default_shape` (VGG, AlexNet and LeNet with `include_top=True`).
        channels: required channel count, or None for any.
        model_name: used in error messages.
    """
    if input_shape is None:
        return tuple(default_shape)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
        raise ValueError(
            f"`input_shape` for {model_name} must be a tuple (height, width, channels) of positive "
            f"integers (None allowed for height/width). Received: input_shape={input_shape!r}"
        )
    height, width, chans = shape
    if height in (1, 3) and chans is not None and chans > 4 and (channels is None or chans != channels):
        raise ValueError(
            f"`input_shape` looks channels-first: kerasnets models are channels-last (height, width, channels), "
            f"so pass {(width, chans, height)}. Received: input_shape={shape}"
        )
    if chans is None:
        raise ValueError(f"The channel count of `input_shape` must be known. Received: input_shape={input_shape!r}")
    if channels is not None and chans != channels:
        raise ValueError(
            f"{model_name} expects {channels} input channels (channels last). Received: input_shape={shape}"
        )
    if fixed_size and (height, width) != tuple(default_shape[:2]):
        raise ValueError(
            f"With include_top=True, {model_name}'s flattening classifier needs input_shape "
            f"{tuple(default_shape[:2]) + (chans,)}; use include_top=False (or the fully-convolutional "
            f"option where the model has one) for other sizes. Received: input_shape={shape}"
        )
    for dim in (height, width):
        if dim is not None and dim < min_size:
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size} for {model_name}. "
                f"Received: input_shape={shape}"
            )
    return shape


def make_inputs(shape, input_tensor=None, name="input"):
    """An `Input` of `shape`, or `input_tensor` checked against it."""
    if input_tensor is None:
        return keras.Input(shape=shape, name=name)
    if not keras.backend.is_keras_tensor(input_tensor):
        raise ValueError(
            "`input_tensor` must be a Keras tensor (from keras.Input or a layer). "
            f"Received: input_tensor={input_tensor!r}"
        )
    got = tuple(input_tensor.shape[1:])
    if len(got) != 3 or got[-1] != shape[-1]:
        raise ValueError(f"`input_tensor` shape must be (batch,) + {shape}. Received: {tuple(input_tensor.shape)}")
    return input_tensor


def pooled_head(x, *, include_top, pooling, classes, classifier_activation, dropout=0.0, head_name="predictions"):
    """Global-pooling head: `include_top` -> GAP (+dropout) + Dense; else optional pooling."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        return keras.layers.Dense(classes, activation=classifier_activation, name=head_name)(x)
    return global_pool(x, pooling)


def global_pool(x, pooling):
    """`pooling` ('avg', 'max' or None) applied to a feature map."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def finish_model(inputs, outputs, *, input_tensor=None, name, weights=None):
    """Wraps the graph in a `keras.Model` and loads `weights` if given.

    `weights` is a file path (read through weights_io), a preset name, or
    "imagenet" (the preset `kerasnets.presets.default_preset(name)`; `name`
    is then the registry name).
    """
    from kerasnets.registry import current_build

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, outputs, name=name)
    record = current_build()
    if record is not None:
        # weights_io compares these with the options a weight file's publisher implies
        stamp_build(model, record)
    if presets.is_preset(weights):
        presets.load_preset(model, presets.resolve(weights, name))
    elif weights is not None:
        from weights_io import load_weights  # kerasnets may call weights_io, never the reverse

        load_weights(model, weights)
    return model


STANDARD_ARGUMENTS = ("include_top", "weights", "input_shape", "input_tensor", "pooling", "classes",
                      "classifier_activation", "name")


def check_options(options, allowed, model_name, arguments=None):
    """Rejects keyword options a builder does not know, with the closest known name and every accepted one.

    The accepted names are `arguments` (by default the calling builder's own
    parameters: `classes`, `input_shape`, `pooling`, ...) plus the family
    options in `allowed`.
    """
    unknown = sorted(set(options) - set(allowed))
    if not unknown:
        return
    if arguments is None:
        code = sys._getframe(1).f_code  # the builder that received **options
        arguments = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    known = sorted(set(arguments) | set(allowed))
    hints = [f"{name!r} -> did you mean {close[0]!r}?"
             for name in unknown for close in [difflib.get_close_matches(name, known, n=1, cutoff=0.6)] if close]
    hint = (" " + " ".join(hints)) if hints else ""
    raise ValueError(
        f"Unknown option(s) {unknown} for {model_name}.{hint} Accepted: {', '.join(known)}"
    )


def check_choice(value, choices, arg_name):
    """`value` if it is one of `choices`, else a ValueError naming them."""
    if value not in choices:
        raise ValueError(f"`{arg_name}` must be one of {tuple(choices)}. Received: {arg_name}={value!r}")
    return value


def check_features(features, include_top, pooling):
    """`features=True` (the stage outputs C1..C5 for a decoder) excludes a head or pooling."""
    if not isinstance(features, bool):
        raise ValueError(f"`features` must be True or False. Received: features={features!r}")
    if features and (include_top or pooling is not None):
        raise ValueError(
            "`features=True` returns the stage outputs [C1..C5] and needs include_top=False and pooling=None. "
            f"Received: include_top={include_top}, pooling={pooling!r}"
        )


def features_or_head(x, taps, *, features, include_top, pooling, classes, classifier_activation):
    """The stage outputs `taps` when `features`, else `pooled_head(x)`: the end of a backbone builder."""
    if features:
        return taps
    return pooled_head(x, include_top=include_top, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation)


def register_variant(key, general, *, family, reference, allowed, summary, default_shape, **fixed):
    """Registers and returns `build_<key>`: the keras.applications signature over `general(**fixed)`.

    One table row of a family (`fixed`: depth, block counts, ...) becomes a
    named builder; options the caller passes are checked against `allowed`
    and override `fixed` where both name one (VGG's `batch_norm`).
    """
    import inspect

    from kerasnets.registry import register_model

    general_defaults = {
        name: p.default for name, p in inspect.signature(general).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name in allowed
    }

    @register_model(key, family=family, input_shape=default_shape, reference=reference,
                    option_defaults={**general_defaults, **fixed})
    def builder(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **options):
        check_options(options, allowed, key)
        return general(include_top=include_top, weights=weights, input_shape=input_shape, input_tensor=input_tensor,
                       pooling=pooling, classes=classes, classifier_activation=classifier_activation,
                       name=name or key, **{**fixed, **options})

    builder.__name__ = builder.__qualname__ = f"build_{key}"
    builder.__doc__ = (
        f"{summary}; reproduces {reference}.\n\n"
        f"Takes the keras.applications arguments and the options of `{general.__name__}` "
        f"({', '.join(allowed)}).\n\nReturns:\n    A `keras.Model`."
    )
    return builder


def ceil_mode_padding(size, pool_size, stride):
    """Extra bottom/right rows torch's ceil_mode adds: out = ceil((size - k) / s) + 1."""
    out = -(-(size - pool_size) // stride) + 1
    if (out - 1) * stride >= size:  # torch drops a window that would start in the padding
        out -= 1
    return max((out - 1) * stride + pool_size - size, 0)
