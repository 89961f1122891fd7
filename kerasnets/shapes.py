"""Output-size and receptive-field arithmetic, the notes' formulas as code.

* Output size of a convolution or pooling: ``N = floor((W - F + 2P) / S) + 1``.
* Receptive field, read backwards from a unit: ``F(i) = (F(i+1) - 1) * S(i) + K(i)``.
  Going forwards this is ``rf_out = rf_in + (K - 1) * jump_in`` with
  ``jump_out = jump_in * S``, which is what `receptive_fields` walks over a
  built model (taking the largest field where branches merge).
"""

from __future__ import annotations

import dataclasses
import math

import keras


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Spatial size after a convolution or pooling window.

    Args:
        size: input width (or height) W.
        kernel: window F.
        stride: step S.
        padding: zeros added on each side P, or `"same"` / `"valid"` as Keras
            pads (`"same"` gives ceil(W / S)).
        dilation: spacing of the kernel taps.

    Returns:
        floor((W - F_eff + 2P) / S) + 1, with F_eff = dilation * (F - 1) + 1.
    """
    for label, value in (("size", size), ("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{label}` must be a positive integer. Received: {label}={value!r}")
    if padding == "same":
        return math.ceil(size / stride)
    if padding == "valid":
        padding = 0
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"`padding` must be a non-negative integer, 'same' or 'valid'. Received: {padding!r}")
    effective = dilation * (kernel - 1) + 1
    if size + 2 * padding < effective:
        raise ValueError(
            f"A {effective}-wide window does not fit an input of {size} with padding {padding}."
        )
    return (size - effective + 2 * padding) // stride + 1


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """One row of `receptive_fields`: a layer and what one output unit sees."""

    layer: str
    kind: str
    kernel: int
    stride: int
    output_shape: tuple
    receptive_field: int | None  # None once a layer sees the whole input
    jump: int


def _window(layer):
    """(kernel, stride) of a spatial layer along the first spatial axis, or None."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        return None
    kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    if kernel is None:
        return None
    strides = getattr(layer, "strides", None) or kernel
    dilation = getattr(layer, "dilation_rate", (1,))
    effective = dilation[0] * (kernel[0] - 1) + 1
    return effective, strides[0]


_GLOBAL = (
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
)


def receptive_fields(model):
    """Receptive field of every layer of a functional model, in graph order.

    Layers without a spatial window (activations, BN, padding, concatenation)
    keep their input's field; global pooling and Flatten see the whole input
    (`receptive_field=None`). Transposed convolutions are not modelled and
    also end the walk with None.

    Returns:
        A list of `ReceptiveField` rows.
    """
    state = {}  # id(KerasTensor) -> (rf, jump); rf None = whole input
    for tensor in model.inputs:
        state[id(tensor)] = (1, 1)
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for node in layer._inbound_nodes:
            inputs = [state.get(id(t), (1, 1)) for t in keras.tree.flatten(node.input_tensors)]
            if any(rf is None for rf, _ in inputs):
                rf, jump = None, max(j for _, j in inputs)
            else:
                rf, jump = max(inputs)
            window = _window(layer)
            kernel, stride = window if window else (1, 1)
            if isinstance(layer, _GLOBAL) or isinstance(layer, keras.layers.Conv2DTranspose):
                rf = None
            elif rf is not None:
                rf = rf + (kernel - 1) * jump
            jump = jump * stride
            for out in keras.tree.flatten(node.output_tensors):
                state[id(out)] = (rf, jump)
            rows.append(
                ReceptiveField(
                    layer=layer.name,
                    kind=type(layer).__name__,
                    kernel=kernel,
                    stride=stride,
                    output_shape=tuple(keras.tree.flatten(node.output_tensors)[0].shape),
                    receptive_field=rf,
                    jump=jump,
                )
            )
    return rows
