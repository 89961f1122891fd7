"""The model registry: every public builder registers itself here.

`kerasnets.build("vgg16")`, `kerasnets.available_models()` and the CLI's
`list` all read this table, so a family module only has to decorate its
public `build_<name>` functions with `@register_model(...)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import functools
import inspect
from typing import Callable

from weights_io.core import BuildRecord
from weights_io.transfer import initialise_unset

_REGISTRY: dict[str, "ModelSpec"] = {}
# The build in progress (innermost first), so `finish_model` can stamp the model with the
# options it was built with before it loads any weights.
_CURRENT_BUILD: contextvars.ContextVar[BuildRecord | None] = contextvars.ContextVar("kerasnets_build", default=None)
# Arguments that say where weights or inputs come from, not how the network computes.
_NOT_OPTIONS = ("weights", "input_tensor", "name")


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

    @property
    def input_text(self):
        """The default input as people write it: "224x224x3", "anyxanyx1" for a fully-convolutional net."""
        return "x".join(str(d) if d else "any" for d in self.input_shape)


def register_model(name, *, family, input_shape, task="classification", reference="", option_defaults=None):
    """Decorator registering `fn` as the builder of model `name`.

    The registered builder records the options each model was built with
    (`current_build`), so a weight loader can tell a file whose publisher
    built the network differently.

    Args:
        name: registry key, lower case (`"vgg16"`, `"resnet50"`).
        family: family shown by `kerasnets list` (`"vgg"`, `"resnet"`).
        input_shape: default input shape, channels last.
        task: `"classification"`, `"image-to-image"`, `"generative"`, ...
        reference: the implementation the builder reproduces.
        option_defaults: defaults of options `fn` takes through `**options`
            (its signature cannot show them).
    """

    def decorate(fn):
        if name in _REGISTRY:
            raise ValueError(f"Model {name!r} is registered twice.")
        signature = inspect.signature(fn)
        defaults = {
            key: p.default for key, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty and key not in _NOT_OPTIONS
        }
        defaults.update(option_defaults or {})

        @functools.wraps(fn)
        def builder(*args, **kwargs):
            bound = signature.bind_partial(*args, **kwargs).arguments
            given = dict(bound.pop(next((k for k, p in signature.parameters.items()
                                         if p.kind is inspect.Parameter.VAR_KEYWORD), "**"), {}))
            given.update(bound)
            weights = given.get("weights")
            given = {k: v for k, v in given.items() if k not in _NOT_OPTIONS}
            record = BuildRecord(model=name, family=family, options={**defaults, **given}, given=tuple(given))
            token = _CURRENT_BUILD.set(record)
            try:
                if weights is None or not _may_defer_initialisers():
                    return fn(*args, **kwargs)
                with initialisers_skipped():  # the weights give every value: no random draws first
                    model = fn(*args, **kwargs)
                initialise_unset(model.variables)  # what no file holds: the load ran inside the scope
                return model
            finally:
                _CURRENT_BUILD.reset(token)

        builder.option_defaults = dict(defaults)  # what a model built without options records
        _REGISTRY[name] = ModelSpec(
            name=name,
            family=family,
            builder=builder,
            input_shape=tuple(input_shape),
            task=task,
            reference=reference,
        )
        return builder

    return decorate


def current_build():
    """The `BuildRecord` of the registered build in progress, or None outside one."""
    return _CURRENT_BUILD.get()


def available_models(family=None, task=None):
    """Sorted names of every registered model, optionally filtered."""
    return sorted(
        name
        for name, spec in _REGISTRY.items()
        if (family is None or spec.family == family) and (task is None or spec.task == task)
    )


def _squeeze(name):
    return "".join(c for c in name.lower() if c.isalnum())


def suggest_models(name, n=3):
    """Registered names close to `name`: the same letters and digits first ("vgg_16", "ResNet-50"), then by
    spelling ("resnet5O")."""
    squeezed = {_squeeze(known): known for known in _REGISTRY}
    if _squeeze(name) in squeezed:
        return [squeezed[_squeeze(name)]]
    close = difflib.get_close_matches(_squeeze(name), list(squeezed), n=n, cutoff=0.75)
    return [squeezed[c] for c in close]


def model_spec(name):
    """The `ModelSpec` registered under `name` (case-insensitive)."""
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        close = suggest_models(name)
        hint = f" Did you mean {close[0]!r}?" if len(close) == 1 else (f" Did you mean one of {close}?" if close else "")
        raise ValueError(
            f"Unknown model {name!r}.{hint} See kerasnets.available_models() "
            f"for the {len(_REGISTRY)} registered names."
        )
    return _REGISTRY[key]


def build(name, **kwargs):
    """Builds the registered model `name` with the builder's keyword options."""
    return model_spec(name).build(**kwargs)


# A full garbage collection walks every object the process holds (0.26 s with TensorFlow loaded, 0.44 s with
# torch beside it), so `ReleaseModels` runs one only after this many bytes of weights were let go.
_COLLECT_AFTER_BYTES = 2 * 2**30


class ReleaseModels:
    """Frees model after model in a job that builds many: keras' `clear_session` after each, and a full
    collection (a built model is a reference cycle) once `_COLLECT_AFTER_BYTES` of weights were let go.

        release = ReleaseModels()
        for ...:
            model = ...; params = model.count_params(); del model; release(params)
    """

    def __init__(self):
        self.pending = 0

    def __call__(self, params):
        import gc

        import keras

        keras.backend.clear_session(free_memory=False)
        self.pending += 4 * params
        if self.pending >= _COLLECT_AFTER_BYTES:
            gc.collect()
            self.pending = 0


@contextlib.contextmanager
def initialisers_skipped():
    """Variables created inside get shapes but no values: Keras' initialisers do not run.

    A `keras.StatelessScope` that does not initialise on exit. The variables are taken off Keras'
    list of pending initialisations when the block ends (however it ends), or the next scope that
    initialises (a JAX `fit`, say) would fill them with random values nobody reads.
    """
    import keras
    from keras.src.backend.common import global_state  # where Keras lists variables awaiting values

    pending = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)


def _may_defer_initialisers():
    """Outside any other stateless scope (a caller's own, or a build for shapes), and not under Flax NNX,
    whose variables Keras initialises on its own terms."""
    import keras
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    return not in_stateless_scope() and not keras.config.is_nnx_enabled()


def build_for_shapes(name, **options):
    """`build(name, **options)` whose weights have shapes but no values: for counting, tables and
    comparing layer configurations (`from_weights`, `presets.check_architecture`).

    Built with `initialisers_skipped`: the initialisers took 22 of the 32 s that building all 50
    registered models took. The model cannot run until its variables have values.
    """
    with initialisers_skipped():
        return build(name, **options)


def build_to_fill(name, **options):
    """`build(name, **options)` for a weight file to fill: built for shapes where Keras allows it (see
    `_may_defer_initialisers`), so that no initialiser draws what the file overwrites;
    `weights_io.assign_weights` gives the rest their initial values."""
    return build_for_shapes(name, **options) if _may_defer_initialisers() else build(name, **options)


def each_built_model(names=None):
    """Yields (name, model) for every registered model (or `names`) built with its defaults, freeing as it goes.

    For jobs that walk the whole registry (the README tables, `from_weights`' layer table). A built
    model is a reference cycle that only a full collection frees; collecting after each one (what
    `keras.backend.clear_session()` does) cost the README table 13 of its 63 s, so this collects once
    2 GB of weights have been let go: VGG-sized models still never pile up.

    The weights have shapes but no values (`build_for_shapes`).
    """
    import gc

    release = ReleaseModels()
    for name in names or available_models():
        model = build_for_shapes(name)
        yield name, model
        params = model.count_params()
        del model
        release(params)
    gc.collect()
