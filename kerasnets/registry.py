"""The model registry: every public builder registers itself here.

`kerasnets.build("vgg16")`, `kerasnets.available_models()` and the CLI's
`list` all read this table, so a family module only has to decorate its
public `build_<name>` functions with `@register_model(...)`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

_REGISTRY: dict[str, "ModelSpec"] = {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of one model without building it."""

    name: str
    family: str
    builder: Callable
    input_shape: tuple[int, ...]
    task: str = "classification"
    reference: str = ""

    def build(self, **kwargs):
        return self.builder(**kwargs)


def register_model(name, *, family, input_shape, task="classification", reference=""):
    """Decorator registering `fn` as the builder of model `name`.

    Args:
        name: registry key, lower case (`"vgg16"`, `"resnet50"`).
        family: family shown by `kerasnets list` (`"vgg"`, `"resnet"`).
        input_shape: default input shape, channels last.
        task: `"classification"`, `"image-to-image"`, `"generative"`, ...
        reference: the implementation the builder reproduces.
    """

    def decorate(fn):
        if name in _REGISTRY:
            raise ValueError(f"Model {name!r} is registered twice.")
        _REGISTRY[name] = ModelSpec(
            name=name,
            family=family,
            builder=fn,
            input_shape=tuple(input_shape),
            task=task,
            reference=reference,
        )
        return fn

    return decorate


def available_models(family=None, task=None):
    """Sorted names of every registered model, optionally filtered."""
    return sorted(
        name
        for name, spec in _REGISTRY.items()
        if (family is None or spec.family == family) and (task is None or spec.task == task)
    )


def model_spec(name):
    """The `ModelSpec` registered under `name` (case-insensitive)."""
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        close = [n for n in _REGISTRY if key[:4] in n][:5]
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} See kerasnets.available_models() "
            f"for the {len(_REGISTRY)} registered names."
        )
    return _REGISTRY[key]


def build(name, **kwargs):
    """Builds the registered model `name` with the builder's keyword options."""
    return model_spec(name).build(**kwargs)
