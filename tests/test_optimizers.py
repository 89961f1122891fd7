"""training.optimizers: Keras' Adam and SGD on TensorFlow's fused kernels compute what Keras' do, and only
optimizers whose update step is Keras' own are fused.

SGD's kernel evaluates Keras' own expression: the weights must agree to the bit.

The bar for an update is a float64 Adam written here from the paper's formulas (Kingma & Ba 2015,
Algorithm 1 with the bias correction folded into the step size, as both implementations do):
after five steps with gradients spread over six orders of magnitude, Keras' own Adam is within
1.4e-5 to 2.2e-5 of the largest distance the variable moved, the fused one within 1.2e-5 to
2.1e-5 (measured, three settings below); an epsilon or a bias correction off by one step misses
the bar by orders of magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("the fused kernel is TensorFlow's; other backends keep Keras' Adam", allow_module_level=True)
import tensorflow as tf  # noqa: E402

from training.optimizers import fuse_optimizer  # noqa: E402

STEPS, SIZE = 5, 50_000
BAR = 5e-5  # largest |error| against the float64 Adam, as a fraction of the largest |displacement|


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    start = rng.normal(0, 0.1, SIZE).astype("float32")
    grads = [(rng.normal(0, 1, SIZE) * rng.lognormal(0, 2, SIZE) * 1e-2).astype("float32") for _ in range(STEPS)]
    return start, grads


def float64_adam(start, grads, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
    w, m, v = start.astype(np.float64), np.zeros(start.shape), np.zeros(start.shape)
    for t, g in enumerate(grads, 1):
        g = g.astype(np.float64)
        w = w - weight_decay * lr * w  # AdamW: decoupled, before the step
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        w = w - lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (np.sqrt(v) + epsilon)
    return w


def run(optimizer, start, grads, fused):
    variable = keras.Variable(start.copy())
    if fused:
        assert fuse_optimizer(optimizer)
    for g in grads:
        optimizer.apply([tf.constant(g)], [variable])
    return keras.ops.convert_to_numpy(variable).astype(np.float64)


def relative_error(got, want, start):
    return float(np.abs(got - want).max() / np.abs(want - start).max())


@pytest.mark.parametrize("make, options", [
    (keras.optimizers.Adam, {}),
    (keras.optimizers.Adam, {"beta_1": 0.5, "epsilon": 1e-3}),  # the GAN trainers' beta_1; an epsilon that counts
    (keras.optimizers.AdamW, {"weight_decay": 0.004}),
], ids=["adam", "beta1-0.5-eps1e-3", "adamw"])
def test_fused_update_is_adam_to_float32_rounding(problem, make, options):
    start, grads = problem
    want = float64_adam(start, grads, 1e-3, **options)
    keras_error = relative_error(run(make(1e-3, **options), start, grads, fused=False), want, start)
    fused_error = relative_error(run(make(1e-3, **options), start, grads, fused=True), want, start)
    print(f"{make.__name__} {options}: error / displacement, keras {keras_error:.2e}, fused {fused_error:.2e}")
    assert keras_error <= BAR and fused_error <= BAR, (keras_error, fused_error)


def traced_op_types(optimizer, variables, gradient):
    """The op types of `optimizer.apply` traced for `variables`, gradients cut from `gradient`."""
    grads = [tf.constant(gradient[:int(np.prod(v.shape))].reshape(v.shape)) for v in variables]

    @tf.autograph.experimental.do_not_convert
    def step(*grads):
        optimizer.apply(list(grads), variables)

    return [op.type for op in tf.function(step).get_concrete_function(*grads).graph.get_operations()]


def test_the_fused_kernel_is_what_runs(problem, monkeypatch):
    """A fused Adam's traced step holds one ResourceApplyAdam per variable and none of Keras' moment ops."""
    start, grads = problem
    calls = []
    original = tf.raw_ops.ResourceApplyAdam
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", lambda **kw: calls.append(kw["var"]) or original(**kw))
    variables = [keras.Variable(start[:10].copy()), keras.Variable(start[:6].reshape(2, 3).copy())]
    optimizer = keras.optimizers.Adam(1e-3)
    assert fuse_optimizer(optimizer)
    optimizer.build(variables)
    kinds = traced_op_types(optimizer, variables, grads[0])
    assert kinds.count("ResourceApplyAdam") == 2 and len(calls) == 2
    assert not {"AssignAddVariableOp", "AssignSubVariableOp", "Sqrt"} & set(kinds)  # Keras' moment updates
    unfused = keras.optimizers.Adam(1e-3)
    unfused.build(variables)
    kinds = traced_op_types(unfused, variables, grads[0])
    assert "ResourceApplyAdam" not in kinds and {"AssignAddVariableOp", "AssignSubVariableOp"} <= set(kinds)


@pytest.mark.parametrize("options", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}],
                         ids=["plain", "momentum", "nesterov"])
def test_fused_sgd_is_keras_sgd_to_the_bit(problem, options):
    start, grads = problem
    ours = run(keras.optimizers.SGD(0.05, **options), start, grads, fused=True)
    theirs = run(keras.optimizers.SGD(0.05, **options), start, grads, fused=False)
    np.testing.assert_array_equal(ours, theirs)
    assert np.abs(ours - start).max() > 1e-3  # it moved
    optimizer = keras.optimizers.SGD(0.05, **options)
    variables = [keras.Variable(start[:10].copy())]
    assert fuse_optimizer(optimizer)
    optimizer.build(variables)
    kernel = "ResourceApplyKerasMomentum" if options else "ResourceApplyGradientDescent"
    assert traced_op_types(optimizer, variables, grads[0]).count(kernel) == 1


def test_only_keras_own_update_steps_are_fused():
    class Custom(keras.optimizers.Adam):
        def update_step(self, gradient, variable, learning_rate):
            super().update_step(gradient, variable, 2 * learning_rate)

    assert not fuse_optimizer(keras.optimizers.RMSprop(0.1))
    assert not fuse_optimizer(keras.optimizers.Adam(amsgrad=True))  # the kernel has no AMSGrad
    assert not fuse_optimizer(Custom())
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3))
    assert fuse_optimizer(scaled) and "update_step" in vars(scaled.inner_optimizer)
    adam = keras.optimizers.Adam(1e-3)
    config = adam.get_config()
    assert fuse_optimizer(adam)
    assert keras.optimizers.serialize(adam)["class_name"] == "Adam" and adam.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(adam))
    assert type(restored) is keras.optimizers.Adam and "update_step" not in vars(restored)


def test_fit_trains_through_the_fused_kernel_as_keras_adam_does(monkeypatch):
    """`training.fit` on a small CNN: the fused kernel runs, and three epochs' losses are Keras' own Adam's."""
    from training.fit import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 12, 3)).astype("float32")
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype("int32")

    def build():
        keras.utils.set_random_seed(3)
        return keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                                 keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(2, activation="softmax", name="predictions")])

    fused_calls = []
    original = tf.raw_ops.ResourceApplyAdam
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", lambda **kw: fused_calls.append(1) or original(**kw))
    ours = fit(build, x, y=y, epochs=3, batch_size=16, shuffle=False, verbose=0, tensorboard=False,
               precision="float32", learning_rate=1e-2)["history"]["loss"]
    assert len(fused_calls) == 6  # one trace: the conv's kernel and bias, BN's gamma and beta, the Dense pair

    model = build()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    theirs = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]
    assert len(fused_calls) == 6  # Keras' own fit and Adam: not fused
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert ours[-1] < ours[0]


def test_make_optimizer_takes_names_configs_and_instances():
    from training.optimizers import make_optimizer

    adam = make_optimizer("adam", 0.05)
    assert type(adam) is keras.optimizers.Adam and np.isclose(float(adam.learning_rate), 0.05)
    sgd = make_optimizer({"class_name": "SGD", "config": {"momentum": 0.8, "learning_rate": 0.3}}, 0.05)
    assert type(sgd) is keras.optimizers.SGD and sgd.momentum == 0.8
    assert np.isclose(float(sgd.learning_rate), 0.3)  # the config's own rate wins
    mine = keras.optimizers.RMSprop(0.1)
    assert make_optimizer(mine, 0.05) is mine
    with pytest.raises(ValueError, match="Received: optimizer=3"):
        make_optimizer(3, 0.05)
