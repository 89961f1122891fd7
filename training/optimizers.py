"""Keras' Adam on TensorFlow's fused Adam kernel: the same update, one op per variable.

Keras 3 writes Adam's update of each variable as some twenty small ops (the step's
powers and casts, then the two moments and the variable, each a separate pass over
the tensor). TensorFlow holds the same update as one kernel, `ResourceApplyAdam`,
the one tf.keras 2's Adam ran. On the TensorFlow backend `fuse_adam` makes a Keras
`Adam` or `AdamW` update through it; `training.fit.build_optimizer` calls it, so
`fit`, `train_on_folder`, the GAN trainers and the digits job use it: ResNet-18
trains 1.25x as fast at 32x32, batch 8, on a 2-core CPU; ResNet-50 at 224x224 gains
nothing measurable (`benchmarks/speed_switches.py --adam`).

Rounding is where the two differ: the kernel takes 1 - beta in float32 from the
float32 beta, Keras in float64 from the Python float, so the moments decay at
rates that differ in their eighth digit and one update differs by about one unit
in the last place (tests/test_optimizers.py compares both with a float64 Adam).
Other backends, AMSGrad, sparse gradients and dtypes the kernel lacks keep Keras'
own update.
"""

from __future__ import annotations

import functools

import keras

FUSED_DTYPES = ("float16", "float32", "float64")


def adam_update(optimizer, gradient, variable, learning_rate):
    """`optimizer`'s Adam update of `variable`: TensorFlow's fused kernel where it applies, else Keras' own.

    The `update_step` of a Keras Adam, as a function: an Adam subclass that only
    scales the learning rate (`training.superres.ScaledLRAdam`) calls it too.
    """
    if keras.backend.backend() == "tensorflow" and not optimizer.amsgrad:
        import tensorflow as tf

        if (not isinstance(gradient, tf.IndexedSlices)
                and keras.backend.standardize_dtype(variable.dtype) in FUSED_DTYPES):
            return _fused_adam_update(tf, optimizer, gradient, variable, learning_rate)
    return keras.optimizers.Adam.update_step(optimizer, gradient, variable, learning_rate)


def _fused_adam_update(tf, optimizer, gradient, variable, learning_rate):
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


def fuse_adam(optimizer):
    """Makes a Keras `Adam` (or `AdamW`, or one inside a `LossScaleOptimizer`) update through `adam_update`.

    Only an optimizer whose update step is Adam's own is changed, on the
    TensorFlow backend; its class, config and saved form stay Keras' Adam.

    Returns:
        True when `optimizer` now updates through the fused kernel.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if (keras.backend.backend() != "tensorflow" or not isinstance(inner, keras.optimizers.Adam)
            or type(inner).update_step is not keras.optimizers.Adam.update_step or inner.amsgrad):
        return False
    inner.update_step = functools.partial(adam_update, inner)
    return True
