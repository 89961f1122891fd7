"""Small configurations of every registered model, shared by the parent test and the worker.

Derived from the registry where the builder follows the keras.applications
signature: `include_top=True, classes=10` at the smallest input size it
accepts, else `include_top=False` (flattening heads pinned to 224x224), the
size found by catching the builder's ValueError. `OVERRIDES` holds builders
with other signatures or inputs too costly to derive.

This module imports only kerasnets and keras, so the worker can use it under
any backend.
"""

from __future__ import annotations

import inspect

# Every 4 pixels: finds e.g. the unpadded U-Net's 188 (its maps must stay even);
# a rejected size costs only the builder's up-front ValueError.
CANDIDATE_SIZES = tuple(range(32, 257, 4))

# name -> builder kwargs, for builders the derivation below cannot handle.
OVERRIDES: dict[str, dict] = {}

# name -> width options added to the derived configuration: the same graph (layers, ops, paddings, groups) with
# fewer channels inside its blocks. Every model's weights are drawn, saved to .weights.h5 and loaded by both
# workers, and that traffic is proportional to the parameters: at full width these models held 834M of the
# registry's 1.19G parameters in their small configurations (ResNeXt-101 87M, SE-ResNet-152 65M, the ResNet-152s
# 58M each), 179M with these options (the registry: 538M). The width changes no operation a backend could
# compute differently.
_QUARTER_BOTTLENECK = {"width_per_group": 16}  # the 3x3 of each bottleneck at a quarter of its width
NARROWER: dict[str, dict] = {
    "ucolor": {"filters": 32},
    "pix2pix_generator": {"filters": 16},
    "unet": {"filters": 16},
    "cyclegan_generator": {"filters": 16},
    **{name: _QUARTER_BOTTLENECK for name in (
        "resnet50", "resnet101", "resnet152", "resnet50_v2", "resnet101_v2", "resnet152_v2",
        "se_resnet50", "se_resnet101", "se_resnet152")},
    # ResNeXt: 32 groups kept, two channels per group (a 1x1-per-group conv would be a depthwise one)
    **{name: {"width_per_group": 2} for name in ("resnext50_32x4d", "resnext101_32x8d", "se_resnext50_32x4d")},
    **{name: {"bn_size": 1} for name in ("densenet121", "densenet161", "densenet169", "densenet201")},
}


# backend -> {model: why it cannot run there}; the parent test skips with this reason.
UNSUPPORTED: dict[str, dict[str, str]] = {"jax": {}, "torch": {}}


def _channels(spec):
    return spec.input_shape[-1] if spec.input_shape else 3


def small_config(name):
    """(kwargs, model) of the smallest configuration `name` builds in.

    Tries, in order: the override; include_top=True with classes=10 at each
    candidate size below the registered one; include_top=False likewise;
    the defaults. `NARROWER`'s options go into every try.
    """
    from kerasnets import model_spec

    spec = model_spec(name)
    if name in OVERRIDES:
        kwargs = dict(OVERRIDES[name])
        return kwargs, spec.build(**kwargs)
    params = inspect.signature(spec.builder).parameters
    narrower = NARROWER.get(name, {})
    heads = []
    if "include_top" in params:
        heads = [{"include_top": True, "classes": 10}, {"include_top": False}]
    elif "classes" in params:
        heads = [{"classes": 10}]
    else:
        heads = [{}]
    if "input_shape" in params:
        channels = _channels(spec)
        default = spec.input_shape[0] if len(spec.input_shape) == 3 and spec.input_shape[0] else None
        # below the default size only: at it, flattening heads (VGG: 138M parameters) would pass
        sizes = [s for s in CANDIDATE_SIZES if default is None or s < default]
        for head in heads:
            for size in sizes:
                kwargs = dict(head, **narrower, input_shape=(size, size, channels))
                try:
                    return kwargs, spec.build(**kwargs)
                except ValueError:
                    continue
    kwargs = dict(narrower)
    return kwargs, spec.build(**kwargs)


def build_config(name, kwargs):
    """The model `name` built with `kwargs` (as recorded by the parent; lists back to tuples)."""
    from kerasnets import model_spec

    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return model_spec(name).build(**kwargs)


def input_shapes(model, default_spatial=64):
    """Batch-2 shapes of the model's inputs; unknown H/W take `default_spatial`."""
    return [(2,) + tuple(default_spatial if d is None else int(d) for d in t.shape[1:]) for t in model.inputs]

