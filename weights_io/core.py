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
    """

    name: str
    map_names: Callable[[list[str]], dict[str, str]]
    description: str = ""
    first_conv: str | None = None
    pair_in_order: Callable[[list[str], list[str]], dict[str, str]] | None = None

    def mapping(self, names, weight_file):
        """`{our_name: source_key}` for `names` (in model order) and this file."""
        if self.pair_in_order is not None:
            return self.pair_in_order(list(names), weight_file.layer_names())
        return self.map_names(names)


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

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def mismatch_message(self):
        lines = [
            f"Weights from {self.path or 'the source'} ({self.format}, layout {self.layout!r}) do not fit "
            "the model; nothing was loaded, the model is unchanged."
        ]
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} mis-shaped:")
            lines += [f"  {t}: model expects {e}, source {s} has {g}" for t, e, s, g in self.mismatched]
        if self.missing:
            lines.append(f"{len(self.missing)} missing from the source (model weights with no value):")
            lines += [f"  {t}  (looked for {s})" for t, s, _ in self.missing]
        if self.unexpected:
            lines.append(f"{len(self.unexpected)} unexpected (source arrays no model weight uses):")
            lines += [f"  {s}" for s in self.unexpected]
        lines.append("Pass strict=False to load what fits and keep the rest (e.g. a new classifier head).")
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
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython / Jupyter show the table
        printer.text(str(self))
