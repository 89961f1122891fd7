"""The neutral types between readers, layouts and the assign step.

* A reader turns a file into a `WeightFile`: ``tensors[layer][param] -> ndarray``
  plus the `convention` its arrays follow (axis order and parameter names).
* A `Layout` maps our layer names to the source's layer keys. It knows names,
  never builder code and never files.
* `assign.assign_weights` converts, checks and applies, and returns a `Report`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

# How a source stores arrays. Each convention names its parameters and axis order:
#   keras       kernel/bias/gamma/beta/moving_mean/moving_variance..., HWIO, (in, out), HWC flatten
#   tf          weights/biases/scale/offset/mean/variance/alpha, HWIO, (in, out), HWC flatten
#               (tensorflow-vgg, caffe-tensorflow, Frossard .npz)
#   matconvnet  weights/biases, bnorm mult/bias/moments; HWIO with trailing singleton dims dropped
#   torch       weight/bias/running_mean/running_var, OIHW, (out, in), CHW flatten
CONVENTIONS = ("keras", "tf", "matconvnet", "torch")


@dataclasses.dataclass
class WeightFile:
    """What a reader returns: arrays grouped by source layer, and how to read them."""

    tensors: dict[str, dict[str, np.ndarray]]
    convention: str
    format: str
    path: str | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"Unknown convention {self.convention!r}; expected one of {CONVENTIONS}")

    def flat(self):
        """`{"layer.param": array}`, the view layouts and converters use."""
        return {f"{layer}.{param}": array for layer, params in self.tensors.items() for param, array in params.items()}

    def layer_names(self):
        return list(self.tensors)

    def __repr__(self):
        count = sum(len(p) for p in self.tensors.values())
        return f"WeightFile(format={self.format!r}, convention={self.convention!r}, layers={len(self.tensors)}, arrays={count}, path={self.path!r})"


def split_key(key):
    """Splits "features.0.weight" into ("features.0", "weight")."""
    layer, _, param = key.rpartition(".")
    return (layer, param) if layer else (key, "")


def group_flat(flat):
    """Groups a flat `{"a.b.param": array}` dict into `{"a.b": {"param": array}}`."""
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        layer, param = split_key(key)
        grouped.setdefault(layer, {})[param] = value
    return grouped


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """How a model was built: registry name, family and every builder option.

    kerasnets' builders stamp each model with one (`stamp_build`); the
    assign step compares its options with those a layout's publisher
    implies, so a file never loads silently into a differently built network.
    """

    model: str
    family: str
    options: dict
    given: tuple = ()  # the options the caller passed (the rest are the builder's defaults)

    def differences(self, options, ignore=()):
        """The option names, outside `ignore`, whose value here is not the one `options` gives (or either lacks)."""
        keys = (set(self.options) | set(options)) - set(ignore)
        return sorted(key for key in keys if key not in self.options or key not in options
                      or not _same_value(self.options[key], options[key]))

    def call(self, **changes):
        """The Python call that builds this model with `changes` applied, as text."""
        kwargs = {**{k: self.options[k] for k in self.given if k in self.options}, **changes}
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return f"kerasnets.build({self.model!r}{', ' + args if args else ''})"


_BUILD_ATTRIBUTE = "_kerasnets_build"


def stamp_build(model, record):
    """Records `record` on `model` (plain attribute: lost on save/load, where no check is made)."""
    object.__setattr__(model, _BUILD_ATTRIBUTE, record)


def build_record(model):
    """The `BuildRecord` a kerasnets builder stamped on `model`, or None."""
    return getattr(model, _BUILD_ATTRIBUTE, None)


def _same_value(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(abs(float(a)), abs(float(b)), 1.0)
        except (TypeError, ValueError):
            return False
    return a == b


@dataclasses.dataclass(frozen=True)
class Layout:
    """A source naming scheme: our layer names -> the source's layer keys.

    Args:
        name: registry key, e.g. "tensorflow-vgg" or "torchvision-resnet".
        map_names: function taking the list of our weighted layer names (in
            model order) and returning `{our_name: source_key}`; names it leaves
            out are absent from the source.
        description: one line for the docs and error messages.
        first_conv: our name of the layer that sees the image, for the
            optional BGR <-> RGB flip.
        pair_in_order: instead of `map_names`, a function `(our names, the
            file's layer keys)` -> mapping, for files whose names carry no
            meaning but whose order does (Keras 2 auto-named layers). Such a
            layout is never auto-detected from names.
        options: builder options the publisher's network implies (BN
            epsilon, stride placement, padding style, ...): weights of the
            right shapes compute something else in a network built otherwise.
            Only the options a model's builder takes are compared.
        scoped_options: options for one kerasnets family (`"resnet"`) or
            registry name (`"se_resnext50_32x4d"`; wins over its family), for
            a layout several networks share with different settings.
        source_shape: for export, a function `(source key, exported array)`
            -> the shape the publisher stores that array in, or None to keep
            it (timm's VGG keeps fc6 as a 7x7 conv, MobileNetV3's classifier
            as a Linear where ours is a 1x1 conv). Loading needs no such hint.
        background_classes: a source classifier with this many outputs puts
            a background class first (TF-slim's 1001 ImageNet classes); the
            assign step drops it unless told to keep it (`keep_background`).
        optional_sources: a regex; source keys it fully matches may stay
            unused without failing a strict load (training-only heads: TF-slim's
            ``AuxLogits`` where the model has none). The report lists them as
            skipped.
        merge_sources: for a caffemodel, a function of a BatchNorm layer's
            name giving the Scale layer that holds its gamma and beta (Caffe
            splits what Keras' BatchNormalization holds in two layers); see
            `weights_io.caffe_blobs`.
        fits: None, or a predicate on the file: where it is False the layout
            places nothing (nets whose names and shapes agree but whose
            structure differs, told apart by a caffemodel's layer order).
        source_names: None, or a function of a source key (``"f1."``: a
            name without a scope has the parameter "") giving the
            ``"layer.param"`` key it stands for, or None to keep it; for
            publishers who name each array alone (FSRCNN_Tensorflow's ``f1``,
            ``b1``, ``alpha1`` are one layer's kernel, bias and slope).
        file_options: None, or a function of the file as this layout reads it
            (`view`) giving the builder options its array shapes fix, for
            publishers who released several sizes of one network under the same
            names (FSRCNN_Tensorflow's widths, depth and scale); {} where the
            file does not tell.
    """

    name: str
    map_names: Callable[[list[str]], dict[str, str]]
    description: str = ""
    first_conv: str | None = None
    pair_in_order: Callable[[list[str], list[str]], dict[str, str]] | None = None
    options: dict = dataclasses.field(default_factory=dict)
    scoped_options: dict = dataclasses.field(default_factory=dict)
    source_shape: Callable[[str, np.ndarray], tuple | None] | None = None
    background_classes: int | None = None
    optional_sources: str | None = None
    merge_sources: Callable[[str], str | None] | None = None
    fits: Callable[[WeightFile], bool] | None = None
    source_names: Callable[[str], str | None] | None = None
    file_options: Callable[[WeightFile], dict] | None = None

    def view(self, weight_file):
        """`weight_file` as this layout reads it: a caffemodel's numbered blobs named (`caffe_blobs`), arrays
        named alone regrouped (`source_names`)."""
        if self.source_names is not None:
            flat = {self.source_names(key) or key: array for key, array in weight_file.flat().items()}
            weight_file = dataclasses.replace(weight_file, tensors=group_flat(flat))
        if weight_file.format != "caffemodel":
            return weight_file
        from weights_io.caffe_blobs import named_blobs

        return named_blobs(weight_file, self.merge_sources)

    def mapping(self, names, weight_file):
        """`{our_name: source_key}` for `names` (in model order) and this file."""
        if self.fits is not None and not self.fits(weight_file):
            return {}
        if self.pair_in_order is not None:
            return self.pair_in_order(list(names), weight_file.layer_names())
        return self.map_names(names)

    def implied_options(self, family=None, model=None, weight_file=None):
        """The builder options this layout's publisher implies for network `model` of `family`, and with
        `weight_file` (as a reader returned it) those its array shapes fix (`file_options`)."""
        implied = {**self.options, **self.scoped_options.get(family, {}), **self.scoped_options.get(model, {})}
        if self.file_options is not None and weight_file is not None:
            implied.update(self.file_options(self.view(weight_file)))
        return implied

    def option_differences(self, record, weight_file=None):
        """`[(option, model's value, publisher's value)]` where the model `record` was built otherwise."""
        if record is None:
            return []
        implied = self.implied_options(record.family, record.model, weight_file)
        return [(key, record.options[key], value) for key, value in implied.items()
                if key in record.options and not _same_value(record.options[key], value)]


@dataclasses.dataclass
class Report:
    """What a load did, or would have done: printed as a table.

    Rows are `(target, source, note)` strings; `mismatched` rows are
    `(target, expected_shape, source, source_shape)`.
    """

    path: str | None = None
    format: str = ""
    layout: str = ""
    loaded: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    unexpected: list = dataclasses.field(default_factory=list)
    mismatched: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    applied: bool = False
    # (option, model's value, publisher's value) where the model was built otherwise than the file's publisher
    option_mismatches: list = dataclasses.field(default_factory=list)
    # the call that builds the network the file fits, when a kerasnets builder made the model
    suggested_call: str | None = None
    # True when every missing, unexpected or mis-shaped weight belongs to the classifier
    head_only: bool = False
    # first-conv input channels adapted (source channels, model channels), or None
    adapted_channels: tuple | None = None

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def options_message(self):
        """What differs between the model's build and the file's publisher, and the call that fits."""
        lines = [
            f"The publisher of {self.path or 'these weights'} (layout {self.layout!r}) builds the network with "
            "options this model was not built with, so it would compute something else:"
        ]
        lines += [f"  {key}: model {ours!r}, publisher {theirs!r}" for key, ours, theirs in self.option_mismatches]
        if self.suggested_call:
            lines.append(f"Build the model that fits the file: {self.suggested_call} "
                         "(kerasnets.build_for_weights(name, path) builds it and loads the file in one call).")
        return "\n".join(lines)

    def mismatch_message(self):
        if self.ok and self.option_mismatches:
            return self.options_message() + "\nNothing was loaded, the model is unchanged."
        lines = [
            f"Weights from {self.path or 'the source'} ({self.format}, layout {self.layout!r}) do not fit "
            "the model; nothing was loaded, the model is unchanged."
        ]
        if self.option_mismatches:
            lines.append(self.options_message())
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} mis-shaped:")
            lines += [f"  {t}: model expects {e}, source {s} has {g}" for t, e, s, g in self.mismatched]
        if self.missing:
            lines.append(f"{len(self.missing)} missing from the source (model weights with no value):")
            lines += [f"  {t}  (looked for {s})" for t, s, _ in self.missing]
        if self.unexpected:
            lines.append(f"{len(self.unexpected)} unexpected (source arrays no model weight uses):")
            lines += [f"  {s}" for s in self.unexpected]
        if self.option_mismatches:
            pass  # the fitting build is named above; loading part of the file would not fix it
        elif self.head_only:
            lines.append("Only the classifier differs: for a new head, pass strict=False to load the rest "
                         "and keep the classifier as built.")
        else:
            lines.append(f"The layout {self.layout!r} does not describe this network: check the model and its "
                         f"options (classes=, include_top=, ...) against the file, or pass source=<layout>.")
        return "\n".join(lines)

    def __str__(self):
        head = f"Weights report: {self.path or ''} [{self.format}, layout {self.layout}]"
        status = "applied" if self.applied else "NOT applied"
        lines = [
            head,
            f"  {len(self.loaded)} loaded, {len(self.skipped)} skipped, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} mis-shaped; {status}",
        ]
        if self.loaded:
            width = max(len(t) for t, _, _ in self.loaded)
            lines.append(f"  {'model weight'.ljust(width)}  <- source  (transform)")
            lines += [f"  {t.ljust(width)}  <- {s}  ({n})" if n else f"  {t.ljust(width)}  <- {s}" for t, s, n in self.loaded]
        for label, rows in (("skipped", self.skipped), ("missing", self.missing)):
            lines += [f"  {label}: {t} ({n or s})" for t, s, n in rows]
        lines += [f"  unexpected: {s}" for s in self.unexpected]
        lines += [f"  mis-shaped: {t} expects {e}, {s} has {g}" for t, e, s, g in self.mismatched]
        lines += [f"  built otherwise: {k} model {a!r}, publisher {b!r}" for k, a, b in self.option_mismatches]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython / Jupyter show the table
        printer.text(str(self))
