"""LeNet-5 (LeCun et al. 1998) in its common modern form.

conv 6@5x5 -> pool 2 -> conv 16@5x5 -> pool 2 -> fc 120 -> fc 84 -> fc classes,
on 32x32x1 input: 61,706 parameters. Layer names: ``conv1``, ``pool1``,
``conv2``, ``pool2``, ``flatten``, ``fc1``, ``fc2``, ``predictions``.
"""

from __future__ import annotations

import keras

from kerasnets.builder_utils import (
    check_choice,
    check_common_args,
    check_options,
    finish_model,
    global_pool,
    make_inputs,
    resolve_input_shape,
)
from kerasnets.registry import register_model

DEFAULT_SHAPE = (32, 32, 1)
SUBSAMPLING = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}


@register_model("lenet5", family="lenet", input_shape=DEFAULT_SHAPE, reference="LeCun 1998, modern form (computed)")
def build_lenet5(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                 classes=10, classifier_activation="softmax", name=None, **options):
    """LeNet-5.

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications
            (`classes` defaults to 10 digits).
        activation: hidden activation, `"relu"` (default) or the paper's `"tanh"`.
        subsampling: `"max"` (default) or the paper's `"avg"` pooling.
    """
    check_options(options, ("activation", "subsampling"), "lenet5")
    activation = check_choice(options.get("activation", "relu"), ("relu", "tanh", "sigmoid"), "activation")
    pool = SUBSAMPLING[check_choice(options.get("subsampling", "max"), tuple(SUBSAMPLING), "subsampling")]
    check_common_args(include_top=include_top, weights=weights, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation)
    shape = resolve_input_shape(input_shape, default_shape=DEFAULT_SHAPE, min_size=32 if include_top else 16,
                                fixed_size=include_top, model_name="lenet5")
    inputs = make_inputs(shape, input_tensor)
    x = keras.layers.Conv2D(6, 5, activation=activation, name="conv1")(inputs)
    x = pool(2, name="pool1")(x)
    x = keras.layers.Conv2D(16, 5, activation=activation, name="conv2")(x)
    x = pool(2, name="pool2")(x)
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(120, activation=activation, name="fc1")(x)
        x = keras.layers.Dense(84, activation=activation, name="fc2")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, input_tensor=input_tensor, name=name or "lenet5", weights=weights)
