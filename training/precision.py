"""Training precision chosen from the hardware: float16 on GPUs with tensor cores, bfloat16 on CPUs that
compute it natively, float32 elsewhere.

Why a rule and not a constant: mixed bfloat16 is the largest single speed-up on a CPU with AVX512_BF16
or AMX (ResNet-50 training 1.32x keras' float32, measured on a 2-vCPU AMD EPYC with AVX512_BF16, issue
#19), while on a CPU without them TensorFlow emulates bfloat16 and the same training ran 3.6x *slower*
(docs/benchmarks.md, section 3). float16 on a CPU is always emulated. Whatever the compute dtype, the
classifier's logits and the loss stay float32 (`float32_head`), as Keras' mixed-precision guide asks.
"""

from __future__ import annotations

import warnings

import keras

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of native bfloat16 arithmetic
TENSOR_CORE_CAPABILITY = (7, 0)  # Volta: the first NVIDIA GPUs with float16 tensor cores


def cpu_bf16_flags(cpuinfo="/proc/cpuinfo"):
    """The native-bfloat16 flags this CPU reports (Linux; an empty tuple elsewhere or when unreadable)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in _BF16_FLAGS if flag in flags)
    except OSError:
        pass
    return ()


def gpu_capabilities():
    """The compute capabilities (major, minor) of the GPUs the active backend sees; [] without one."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            found = []
            for gpu in tf.config.list_physical_devices("GPU"):
                capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
                found.append(tuple(capability) if capability else (0, 0))
            return found
        if backend == "jax":
            import jax

            return [tuple(int(p) for p in str(getattr(d, "compute_capability", "0.0")).split(".")[:2])
                    for d in jax.devices() if d.platform == "gpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
    except (ImportError, RuntimeError, ValueError):
        pass
    return []


def choose_precision(precision="auto"):
    """Resolves `precision` to a Keras dtype policy name, with the reason.

    Args:
        precision: "auto", "float32", "mixed_float16" or "mixed_bfloat16".

    Returns:
        (policy name, reason): "auto" gives mixed_float16 on a GPU with tensor cores (compute capability
        >= 7.0), mixed_bfloat16 on a CPU-only machine whose CPU has AVX512_BF16 or AMX, else float32.
        An explicit mixed_float16 without a GPU falls back to float32 with a warning (emulated float16
        is slower and gains nothing); an explicit mixed_bfloat16 is kept, with a warning when the CPU
        would emulate it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}. Received: precision={precision!r}")
    gpus = gpu_capabilities()
    if precision == "auto":
        if gpus:
            if min(gpus) >= TENSOR_CORE_CAPABILITY:
                return "mixed_float16", f"GPU compute capability {min(gpus)} has float16 tensor cores"
            return "float32", f"GPU compute capability {min(gpus)} has no tensor cores"
        flags = cpu_bf16_flags()
        if flags:
            return "mixed_bfloat16", f"CPU computes bfloat16 natively ({', '.join(flags)})"
        return "float32", "no GPU, and the CPU has no native bfloat16 (AVX512_BF16 or AMX)"
    if precision == "mixed_float16" and not gpus:
        warnings.warn("precision='mixed_float16' ignored: no GPU, and float16 on CPU is emulated and slower "
                      "than float32 (mixed_precision is the same switch).", stacklevel=3)
        return "float32", "mixed_float16 asked for, but there is no GPU"
    if precision == "mixed_bfloat16" and not gpus and not cpu_bf16_flags():
        warnings.warn("precision='mixed_bfloat16' on a CPU without AVX512_BF16 or AMX: bfloat16 is emulated "
                      "(measured 3.6x slower than float32 on such a CPU).", stacklevel=3)
    return precision, "asked for"


def build_under(policy, build):
    """`build()` with Keras' global dtype policy set to `policy` (restored after), then `float32_head`.

    A mixed policy must be in force while the layers are created; what `build` returns is handed back
    with its classifier computing in float32.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build()
    finally:
        keras.config.set_dtype_policy(previous)
    if policy != "float32":
        float32_head(model)
    return model


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None


def float32_head(model):
    """Makes the layers that compute the outputs, from the last weighted layer on, compute in float32.

    A model built under a mixed policy would otherwise give bfloat16/float16 logits, and a softmax and a
    loss rounded to 8 or 11 bits. Walks back from each output through weightless layers (softmax,
    activation, reshape) to the classifier, into nested models. The variables are float32 already
    (mixed policies keep them so), so only the compute dtype changes; the saved config records it.

    Returns:
        The names of the layers changed.
    """
    changed = []

    def walk(layer):
        while layer is not None and layer.dtype_policy.name != "float32":
            if isinstance(layer, keras.Model):
                for output in layer.outputs:
                    walk(_producer(output))
                return
            layer.dtype_policy = "float32"
            changed.append(layer.name)
            if layer.weights:
                return
            nodes = getattr(layer, "_inbound_nodes", [])
            inputs = nodes[0].input_tensors if nodes else []
            if len(inputs) != 1:
                return
            layer = _producer(inputs[0])

    for output in model.outputs:
        walk(_producer(output))
    return changed
