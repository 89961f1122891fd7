"""References that can tell: healthy random weights for the networks parity tests compare against.

With default initialisation a deep net's logits hardly depend on its input
(MobileNetV3's input-dependent part is ~1e-7 of max |logit|): a parity test
on them compares biases and passes with a wrong feature extractor. These
helpers give a reference (Keras 3, tf_keras or torch) weights that keep the
signal alive, and `assert_parity` refuses a reference whose logits do not
visibly depend on the input before it compares.

    heal_keras(reference, batch)           # or heal_torch(torch_module, nchw_batch)
    ... copy the reference's weights into ours ...
    assert_parity(ours(x), reference(x))

Healthy means: kernels of He variance (2 / fan-in, drawn uniform), small biases, BatchNorm statistics
set from `batch` itself (Keras: each BN measures what reaches it at
inference, in one pass; torch: one training-mode pass), then perturbed (mean +
N(0, 0.1 std), var x U(0.5, 1.5)) so inference is not batch normalisation,
and in about one channel of 16 var x 1e-4 with gamma x 1e-2, where a wrong
epsilon shows (layers with a gamma only: without one the x100 would compound
layer by layer). Deep nets at random weights are chaotic in float32 unless
tamed: BN betas around +1, residual branches damped, gentle SE gates (see
the constants below); the reference must not amplify rounding past the 1e-4
it is compared at.
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-4
MIN_INPUT_DEPENDENCE = 2e-3
TINY_VARIANCE_EVERY = 16  # about one channel in this many gets var x 1e-4, gamma x 1e-2
# Deep BN-ReLU stacks at random weights are chaotic: each BN removes the input-independent part of its
# input, so a perturbation grows about 1.2x per layer relative to the signal (ResNet-152's logits moved
# 2.5% for a 1e-6 input change, and TensorFlow, JAX and torch disagreed by 1e-3). Residual branches whose
# last BN has gamma and beta x 0.1 leave the identity path in charge (as zero-init residuals do): 1e-5.
RESIDUAL_GAIN = 0.1
# Deep plain BN-ReLU stacks (Inception v4) stay chaotic even so: with beta ~ 0 ReLU keeps half of each
# channel and its positive mean, which the next BN removes, so a perturbation gains ~1.2x per layer
# (Inception v4's logits moved 4% for a 1e-6 input change; TensorFlow and torch differed by 1e-2).
# Betas around +1.5 put most units in ReLU's linear part (7% cut): 2e-5 for that change, backends
# within 4e-5, the input dependence still 0.2-0.4.
BETA_MEAN = 1.5
# SE gates of He variance multiply a gain of about 2 per block (x * sigmoid(W2 relu(W1 mean x))):
# gentler excitation kernels keep the gates input-dependent and the net stable.
SE_GATE_GAIN = 0.25
# A channel nearly constant over the calibration batch would be divided by ~sqrt(eps): floor its variance.
VARIANCE_FLOOR = 0.1


def input_dependence(logits):
    """max |logits - batch mean| / max |logits|: the share of the output that the input decides."""
    logits = np.asarray(logits, np.float64)
    scale = max(np.abs(logits).max(), 1e-30)
    return float(np.abs(logits - logits.mean(axis=0, keepdims=True)).max() / scale)


def relative_error(ours, reference):
    """max |ours - reference| / max |reference|: the project's parity measure."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, f"shape {ours.shape} != reference {reference.shape}"
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-12))


def infer(model, x):
    """`model(x, training=False)` as numpy arrays: what `predict` gives for a batch, without the graph `predict`
    traces for a model it has not run before (1.4 of the 1.8 s InceptionResNetV2's predict took at 75x75 px)."""
    outputs = model(x, training=False)
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return np.asarray(outputs)


def assert_parity(ours, reference, *, rtol=RTOL, min_dependence=MIN_INPUT_DEPENDENCE, what="logits"):
    """The reference can tell (its outputs depend on the input), then ours matches it within `rtol`.

    `reference` must be a batch of at least two different inputs' outputs.
    Returns (relative error, input dependence) for reports.
    """
    reference = np.asarray(reference)
    assert reference.shape[0] >= 2, f"{what}: a batch of >= 2 inputs is needed to see input dependence"
    dependence = input_dependence(reference)
    assert dependence >= min_dependence, (
        f"{what}: the reference hardly depends on its input ({dependence:.2e} < {min_dependence:g}); "
        "heal its weights (tests.references.heal_keras / heal_torch) before comparing")
    error = relative_error(ours, reference)
    print(f"parity {what}: error {error:.2e}, dependence {dependence:.2e}")  # shown by pytest -s
    assert error <= rtol, f"{what}: max |ours - reference| / max |reference| = {error:.3g} > {rtol:g}"
    return error, dependence


def _statistics_of(rng, x, axes, gamma):
    """Perturbed (mean, var, gamma) for a BN whose input at inference is `x` (float64), channels off `axes`.

    A channel nearly constant over the batch gets its variance floored (VARIANCE_FLOOR x the median).
    """
    var = x.var(axis=axes)
    var = np.maximum(var, VARIANCE_FLOOR * np.median(var))
    return _perturbed_statistics(rng, x.mean(axis=axes), var, gamma)


def _perturbed_statistics(rng, mean, var, gamma):
    """Calibrated (mean, var, gamma) -> perturbed, with a few tiny-variance channels."""
    c = mean.shape
    std = np.sqrt(np.maximum(var, 0.0))
    mean = mean + 0.1 * std * rng.normal(size=c)
    var = var * rng.uniform(0.5, 1.5, c)
    if gamma is None:  # BN(scale=False) cannot take the x100 back: a tiny variance would blow the signal up
        return mean, var, gamma
    tiny = rng.random(c) < 1.0 / TINY_VARIANCE_EVERY
    return mean, np.where(tiny, var * 1e-4, var), np.where(tiny, gamma * 1e-2, gamma)


def uniform_draws(rng, shape, std, out=None):
    """float32 draws of `shape`, mean 0 and standard deviation `std`, uniform on +-sqrt(3) std; written
    into `out` (a float32 array of that shape) if given.

    The variance is what the reference needs, not the distribution: uniform draws cost 2.5 ns a value
    on the build VM against 10 ns for float32 normal ones (and 35 in float64), and the suite draws
    about a billion (the registry's weights alone, for tests/backends).
    """
    if out is not None and tuple(out.shape) != tuple(np.atleast_1d(shape)):
        raise ValueError(f"out has shape {out.shape}, not {shape}")
    value = rng.random(shape, dtype=np.float32) if out is None else rng.random(dtype=np.float32, out=out)
    value -= np.float32(0.5)
    value *= np.float32(std * np.sqrt(12.0))
    return value


# ------------------------------------------------------------------------------------------- Keras


def _keras_leaves(model):
    """Every layer that is not a model, nested models and composite layers included (Keras 3 and tf_keras)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not hasattr(layer, "layers"):
            yield layer


def _is_batch_norm(layer):
    return type(layer).__name__ in ("BatchNormalization", "SyncBatchNormalization") or (
        hasattr(layer, "moving_mean") and hasattr(layer, "moving_variance"))


def _residual_branch_ends(model):
    """BatchNorm layers that end a residual branch: a summand of an Add (maybe through a squeeze-excitation),
    projection shortcuts (keras' ``_0_bn``) excepted."""
    ends = set()
    for layer in _keras_leaves(model):
        if type(layer).__name__ != "Add":
            continue
        for tensor in layer.input:
            source = tensor._keras_history[0]
            while type(source).__name__ == "SqueezeExcitation":
                source = source.input._keras_history[0]
            if _is_batch_norm(source) and not source.name.endswith("_0_bn"):
                ends.add(id(source))
    return ends


def heal_keras(model, batch, seed=0):
    """Healthy random weights for a Keras 3 or tf_keras model; `batch` (NHWC) calibrates BatchNorm.

    Kernels of He variance over their fan-in (a depthwise kernel's fan-in is its window), biases of std
    0.05 (both `uniform_draws`), BN gamma U(0.8, 1.2) and beta N(1.5, 0.1) (x RESIDUAL_GAIN where the BN
    ends a residual branch). A Keras 3 model built by `build_uninitialised` gets its drawn values as first
    values, and its initialisers run only for what is not drawn here. Returns `model`.
    """
    from weights_io.transfer import destination, set_value  # a first value where build_uninitialised left none

    rng = np.random.default_rng(seed)
    norms = []
    branch_ends = _residual_branch_ends(model)
    for layer in _keras_leaves(model):
        if _is_batch_norm(layer):
            norms.append(layer)
            c = tuple(layer.moving_mean.shape)
            gain = RESIDUAL_GAIN if id(layer) in branch_ends else 1.0
            if getattr(layer, "gamma", None) is not None:
                set_value(layer.gamma, (gain * rng.uniform(0.8, 1.2, c)).astype("float32"))
            if getattr(layer, "beta", None) is not None:
                set_value(layer.beta, (gain * rng.normal(BETA_MEAN, 0.1, c)).astype("float32"))
            continue
        for variable in layer.trainable_weights:
            std = _keras_weight_std(variable.name.rpartition("/")[2].split(":")[0], tuple(variable.shape))
            if std is None:  # PReLU slopes, SE scales, ...: keep the layer's own initialisation
                continue
            value, hand_over = destination(variable, np.dtype("float32"))  # drawn in place, not copied
            uniform_draws(rng, value.shape, std, out=value)
            hand_over()
    _initialise_the_rest(model)
    classifier = _softmax_classifier(model)
    logits = _calibrate_in_order(model, norms, batch, rng, classifier)
    if classifier is not None:
        _temper(classifier, logits)
    return model


def _keras_weight_std(param, shape):
    """The standard deviation heal_keras draws a Keras weight with, or None to keep the layer's own."""
    if param == "excite_kernel":  # a gentle gate: see SE_GATE_GAIN
        return np.sqrt(2.0 / shape[0]) * SE_GATE_GAIN
    if param == "depthwise_kernel":
        return np.sqrt(2.0 / np.prod(shape[:2]))
    if param.endswith("kernel") and len(shape) >= 2:
        return np.sqrt(2.0 / np.prod(shape[:-1]))
    if param == "excite_bias":  # gates spread over about (0.1, 0.9) from channel to channel
        return 1.0
    if param == "bias":
        return 0.05
    return None


def build_uninitialised(build, *args, **kwargs):
    """`build(*args, **kwargs)` with its Keras 3 variables left without values, for `heal_keras`, a weight
    file (`weights_io.assign_weights` then initialises what the file does not set) or tests/backends/worker.py
    to fill.

    The initialisers' draws would be overwritten anyway, and they cost 3-4x the rest of the build
    (ResNet-152 at 32x32: 1.2-2.4 s against 0.3). The variables are created in a StatelessScope that
    does not initialise them on exit (`kerasnets.registry.initialisers_skipped`); the model must get
    its values before any use.
    """
    from kerasnets.registry import initialisers_skipped

    with initialisers_skipped():
        return build(*args, **kwargs)


def _initialise_the_rest(model):
    """Runs the initialisers of what heal_keras does not draw (BN statistics before calibration, PReLU
    slopes, seed generators) where `build_uninitialised` left them without values."""
    from weights_io.transfer import initialise_unset

    initialise_unset(getattr(model, "variables", []))  # tf_keras variables always have values


def _calibrate_in_order(model, norms, batch, rng, classifier=None):
    """Sets each BN's statistics from what reaches it at inference, upstream perturbations included;
    returns the pre-softmax output of `classifier` (a layer, or None) in that pass.

    One inference pass in which every BN layer, on its turn, measures its
    input's batch statistics, stores their perturbed version and normalises
    with it: downstream layers calibrate on the signal inference will give
    them, and the classifier's output is what inference will give (so the
    softmax tempering needs no second pass). (Calibrating all layers at once in
    training mode and perturbing afterwards lets the perturbations compound:
    SE-ResNet-152's activations grew 1500x through its 36 conv4 blocks and its
    logits became chaotic.)
    """
    def calibrating_call(layer, own_call):
        def call(inputs, *args, **kwargs):
            x = np.asarray(inputs, np.float64)
            axis = layer.axis if isinstance(layer.axis, int) else list(layer.axis)[-1]  # tf_keras: [3]
            axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
            gamma = getattr(layer, "gamma", None)
            mean, var, new_gamma = _statistics_of(rng, x, axes, None if gamma is None else np.asarray(gamma, np.float64))
            layer.moving_mean.assign(mean.astype("float32"))
            layer.moving_variance.assign(var.astype("float32"))
            if gamma is not None:
                gamma.assign(new_gamma.astype("float32"))
            kwargs["training"] = False
            return own_call(inputs, *args, **kwargs)

        return call

    captured = []

    def capturing_call(own_call):
        def call(*args, **kwargs):
            outputs = own_call(*args, **kwargs)
            captured.append(np.asarray(outputs))
            return outputs

        return call

    for layer in norms:
        layer.call = calibrating_call(layer, layer.call)
    own_activation = getattr(classifier, "activation", None)
    if classifier is not None:
        classifier.call = capturing_call(classifier.call)
        if _activation_name(classifier) == "softmax":
            classifier.activation = _identity  # the pre-softmax output, for the tempering
    try:
        model(_as_inputs(batch), training=False)
    finally:
        for layer in norms + ([classifier] if classifier is not None else []):
            del layer.call  # back to the class's method
        if own_activation is not None:
            classifier.activation = own_activation
    return captured[-1] if captured else None


SOFTMAX_LOGIT_SCALE = 4.0  # max |logit| before a softmax: its probabilities stay far from one-hot


def _identity(x):
    return x


def _softmax_classifier(model):
    """The weighted layer whose output the model's (first) output passes through a softmax, or None.

    Heads of He variance give logits in the hundreds: the softmax saturates to the same one-hot vector
    for every input and the probabilities cannot tell; `_temper` scales that layer.
    """
    layer, softmax = model.outputs[0]._keras_history[0], False
    while not hasattr(layer, "kernel"):
        if _activation_name(layer) == "softmax" or type(layer).__name__ == "Softmax":
            softmax = True
        elif type(layer).__name__ not in ("Activation", "Flatten", "Reshape", "Dropout"):
            return None
        layer = layer.input._keras_history[0]
    return layer if softmax or _activation_name(layer) == "softmax" else None


def _temper(classifier, logits):
    """Scales `classifier` so that its `logits` (measured on the calibration batch) reach about +-4."""
    scale = SOFTMAX_LOGIT_SCALE / max(np.abs(logits).max(), 1e-12)
    for variable in (classifier.kernel, getattr(classifier, "bias", None)):
        if variable is not None:
            variable.assign((np.asarray(variable) * scale).astype("float32"))


def _as_inputs(batch):
    """float32 arrays: one, or a list for a model of several inputs."""
    if isinstance(batch, (list, tuple)):
        return [np.asarray(b, "float32") for b in batch]
    return np.asarray(batch, "float32")


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None)


# ------------------------------------------------------------------------------------------- torch


def heal_torch(module, batch, seed=0):
    """Healthy random weights for a torch module; `batch` (NCHW numpy or tensor) calibrates BatchNorm.

    The torch twin of `heal_keras`: Conv*/Linear weights of He variance over their
    fan-in, biases of std 0.05, BatchNorm beta N(1.5, 0.1), calibrated by one
    training-mode pass with momentum 1, then perturbed. Returns `module` in eval mode.
    """
    import torch

    nn = torch.nn
    rng = np.random.default_rng(seed)

    def tensor(value, like):
        return torch.as_tensor(np.asarray(value), dtype=like.dtype)

    norms = []
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                norms.append(m)
                c = (m.num_features,)
                if m.weight is not None:
                    m.weight.copy_(tensor(rng.uniform(0.8, 1.2, c), m.weight))
                    m.bias.copy_(tensor(rng.normal(BETA_MEAN, 0.1, c), m.bias))
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose2d)):
                w = m.weight
                if isinstance(m, nn.ConvTranspose2d):  # each output pixel sums in/groups x (k / stride)^2 terms
                    fan_in = w.shape[0] // m.groups * int(np.prod([k // s or 1 for k, s in zip(m.kernel_size, m.stride)]))
                else:
                    fan_in = int(np.prod(w.shape[1:]))
                _draw_into(rng, w, np.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    _draw_into(rng, m.bias, 0.05)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = 1.0
        module.train()
        module(torch.as_tensor(np.asarray(batch, "float32")))
        module.eval()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            mean, var, gamma = _perturbed_statistics(
                rng, m.running_mean.double().numpy(), m.running_var.double().numpy(),
                None if m.weight is None else m.weight.double().numpy())
            m.running_mean.copy_(tensor(mean, m.running_mean))
            m.running_var.copy_(tensor(var, m.running_var))
            if m.weight is not None:
                m.weight.copy_(tensor(gamma, m.weight))
    return module


def _draw_into(rng, parameter, std):
    """`uniform_draws` straight into a float32 CPU torch parameter's storage, else through a copy."""
    import torch

    if parameter.dtype == torch.float32 and parameter.device.type == "cpu" and parameter.is_contiguous():
        uniform_draws(rng, tuple(parameter.shape), std, out=parameter.detach().numpy())
    else:
        parameter.copy_(torch.as_tensor(uniform_draws(rng, tuple(parameter.shape), std), dtype=parameter.dtype))


# ------------------------------------------------------------------------------------ TF graph (slim)


def heal_tf_graph(session, inputs, batch, scope="", seed=0):
    """Healthy random weights for a tf.compat.v1 graph (TF-slim nets) under variable `scope`.

    The graph-mode twin of `heal_keras`: variables ``*/weights`` of He variance over
    their fan-in, ``*/biases`` of std 0.05, BatchNorm gamma U(0.8, 1.2) and beta
    N(1.5, 0.1) (x RESIDUAL_GAIN where the BN ends a residual branch: its output
    feeds an addition, a ``shortcut`` excepted), then each BN in graph order
    calibrated on what reaches it at inference from `batch` (fed to the
    placeholder `inputs`), perturbed as `heal_keras` does. Returns the session.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    graph = session.graph
    variables = {v.op.name: v for v in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
                 if v.op.name.startswith(scope)}
    norms = [op for op in graph.get_operations() if op.type.startswith("FusedBatchNorm") and op.name.startswith(scope)]
    # The variables' scope, read off the moving mean the op reads (a re-entered variable_scope, as
    # slim's inception_v1 opens, names its ops "InceptionV1/InceptionV1/..." and its variables not).
    owners = {op: op.inputs[3].op.inputs[0].op.name.rpartition("/")[0] for op in norms}
    branch_ends = {owners[op] for op in norms if "shortcut" not in owners[op]
                   and any(c.type in ("Add", "AddV2") for c in op.outputs[0].consumers())}
    drawn = {}
    for name, variable in variables.items():
        owner, _, param = name.rpartition("/")
        shape = tuple(variable.shape.as_list())
        gain = RESIDUAL_GAIN if owner in branch_ends else 1.0
        if param == "weights":
            value = uniform_draws(rng, shape, np.sqrt(2.0 / np.prod(shape[:-1])))
        elif param == "biases":
            value = uniform_draws(rng, shape, 0.05)
        elif param == "gamma":
            value = gain * rng.uniform(0.8, 1.2, shape)
        elif param == "beta":
            value = gain * rng.normal(BETA_MEAN, 0.1, shape)
        else:  # moving statistics: calibrated below
            continue
        drawn[name] = value.astype("float32", copy=False)
    load_tf_variables(session, variables, drawn)
    # A session.run with another fetch or feed builds an executor (13 ms a variable load on ResNet-50),
    # so nothing is loaded between the calibration runs: each calibrated BN's statistics (and gamma)
    # are fed to the tensors its op reads them through, and loaded with the others at the end.
    feeds, calibrated = {inputs: np.asarray(batch, "float32")}, {}
    for op in norms:
        x = np.asarray(session.run(op.inputs[0], feeds), np.float64)
        gamma = drawn.get(f"{owners[op]}/gamma")
        mean, var, new_gamma = _statistics_of(rng, x, tuple(range(x.ndim - 1)),
                                              None if gamma is None else gamma.astype(np.float64))
        for index, param, value in ((3, "moving_mean", mean), (4, "moving_variance", var), (1, "gamma", new_gamma)):
            if value is not None:
                calibrated[f"{owners[op]}/{param}"] = feeds[op.inputs[index]] = value.astype("float32")
    load_tf_variables(session, variables, calibrated)
    return session


def load_tf_variables(session, variables, values):
    """Assigns {name: value} to the graph's `variables` ({name: variable}) in one session.run: a run per
    variable builds an executor each (13 ms a variable on slim's ResNet-50, minutes on its Inceptions)."""
    chosen = [variables[name] for name in values]
    session.run([v.initializer for v in chosen],
                {v.initializer.inputs[1]: values[name] for name, v in zip(values, chosen)})
