"""Keras' Adam and SGD on TensorFlow's fused kernels: the same updates, one op per variable.

Keras 3 writes an optimizer's update of each variable as a chain of small ops, each a
pass over the tensor (Adam: some twenty, the step's powers and casts included; SGD with
momentum: five). TensorFlow holds the same updates as single kernels,
`ResourceApplyAdam` and `ResourceApplyKerasMomentum` (the ones tf.keras 2 ran). On
the TensorFlow backend `fuse_optimizer` makes a Keras `Adam`, `AdamW` or `SGD` update
through them; `training.fit.build_optimizer` calls it, so `fit`, `train_on_folder`,
the GAN trainers and the digits job use it. ResNet-18 at 32x32, batch 8, on a 2-core
CPU trains 1.25-1.30x as fast with Adam and 1.11x with SGD; ResNet-50 at 224x224 gains
nothing measurable (`benchmarks/speed_switches.py --fused`).

SGD's kernel computes Keras' expression itself, so its weights are Keras' to the bit.
Adam's rounds differently: the kernel takes 1 - beta in float32 from the float32 beta,
Keras in float64 from the Python float, so the moments decay at rates that differ in
their eighth digit and one update differs by about one unit in the last place
(tests/test_optimizers.py holds both to a float64 Adam). Other backends, AMSGrad,
sparse gradients and dtypes the kernels lack keep Keras' own update.
"""

from __future__ import annotations

import functools

import keras

FUSED_DTYPES = ("float16", "float32", "float64")


def _fusable(gradient, variable):
    """The TensorFlow module when the fused kernel can update `variable` with `gradient`, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices) or keras.backend.standardize_dtype(variable.dtype) not in FUSED_DTYPES:
        return None
    return tf


def adam_update(optimizer, gradient, variable, learning_rate):
    """`optimizer`'s Adam update of `variable`: TensorFlow's fused kernel where it applies, else Keras' own.

    The `update_step` of a Keras Adam, as a function: an Adam subclass that only
    scales the learning rate (`training.superres.ScaledLRAdam`) calls it too.
    """
    tf = None if optimizer.amsgrad else _fusable(gradient, variable)
    if tf is None:
        return keras.optimizers.Adam.update_step(optimizer, gradient, variable, learning_rate)
    # `variable` is the tf.Variable (a replica's own inside a strategy's update); so is each moment's
    # `handle` there
    index = optimizer._get_variable_index(variable)
    dtype = variable.dtype
    step = tf.cast(optimizer.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=optimizer._momentums[index].handle, v=optimizer._velocities[index].handle,
        beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
        beta1=beta_1, beta2=beta_2, epsilon=tf.cast(optimizer.epsilon, dtype), grad=tf.cast(gradient, dtype),
        use_locking=False)


def sgd_update(optimizer, gradient, variable, learning_rate):
    """`optimizer`'s SGD update of `variable` (momentum and Nesterov as Keras computes them), fused where it applies."""
    tf = _fusable(gradient, variable)
    if tf is None:
        return keras.optimizers.SGD.update_step(optimizer, gradient, variable, learning_rate)
    dtype = variable.dtype
    lr, grad = tf.cast(learning_rate, dtype), tf.cast(gradient, dtype)
    if optimizer.momentum == 0:
        tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=lr, delta=grad, use_locking=False)
        return
    velocity = optimizer.momentums[optimizer._get_variable_index(variable)]
    tf.raw_ops.ResourceApplyKerasMomentum(var=variable.handle, accum=velocity.handle, lr=lr, grad=grad,
                                          momentum=tf.cast(optimizer.momentum, dtype), use_locking=False,
                                          use_nesterov=optimizer.nesterov)


# Keras class -> (its update step, ours); a subclass that overrides the update step keeps its own.
_FUSED_UPDATES = (
    (keras.optimizers.Adam, keras.optimizers.Adam.update_step, adam_update),
    (keras.optimizers.SGD, keras.optimizers.SGD.update_step, sgd_update),
)


def make_optimizer(optimizer, learning_rate):
    """A Keras optimizer from `optimizer`: an instance (returned as is), a name ("adam", "sgd", "adamw", ...)
    or a `keras.optimizers.get` config dict (`{"class_name": "SGD", "config": {"momentum": 0.9}}`), at
    `learning_rate` unless the config sets its own. Call it where the optimizer's variables belong (inside
    a strategy's scope)."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        optimizer = {"class_name": optimizer, "config": {}}
    if not isinstance(optimizer, dict) or "class_name" not in optimizer:
        raise ValueError("`optimizer` must be a Keras optimizer, a name such as 'adam' or 'sgd', or a config dict "
                         f"with 'class_name'. Received: optimizer={optimizer!r}")
    config = {"learning_rate": learning_rate, **optimizer.get("config", {})}
    return keras.optimizers.get({"class_name": optimizer["class_name"], "config": config})


def prepare_optimizer(optimizer, variables):
    """Readies `optimizer` to train `variables`: its own variables created now (unless built), then the fused
    kernels (`fuse_optimizer`). What `training.fit.build_optimizer` and the GAN trainers' `compile()` do."""
    if not optimizer.built:
        optimizer.build(variables)
    fuse_optimizer(optimizer)


def fuse_optimizer(optimizer):
    """Makes a Keras `Adam`, `AdamW` or `SGD` (or one inside a `LossScaleOptimizer`) update through the fused kernels.

    Only an optimizer whose update step is Keras' own is changed, on the
    TensorFlow backend; its class, config and saved form stay Keras'.

    Returns:
        True when `optimizer` now updates through a fused kernel.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if keras.backend.backend() != "tensorflow" or getattr(inner, "amsgrad", False):
        return False
    for cls, keras_step, fused_step in _FUSED_UPDATES:
        if isinstance(inner, cls) and type(inner).update_step is keras_step:
            inner.update_step = functools.partial(fused_step, inner)
            return True
    return False
