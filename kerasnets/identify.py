"""`from_weights`: a weight file in, the network its publisher built out.

Which registered network a file holds is decided without building every
network: `kerasnets/data/weighted_layers.json.gz` lists, for each registered
model built with its defaults, its weighted layers and how many numbers each
holds. Every (model, layout) pair is scored by how many of the file's layers
the layout places on the model, how many of the model's layers stay without
a source, and whether the placed layers hold as many numbers as the file's
(ResNet-50 and ResNeXt-50 share their names, not their sizes). The best
complete pair is then built with the options its layout implies
(`build_for_weights`) and loaded all or nothing.

`python -m kerasnets.identify --refresh` rewrites the table after a
builder or the registry changes; tests/test_from_weights.py fails while it
is stale.
"""

from __future__ import annotations

import dataclasses
import gzip
import inspect
import json
import math
import os
import re

import numpy as np

import weights_io
from kerasnets.convert import build_for_weights
from kerasnets.registry import build_for_shapes, each_built_model, model_spec
from weights_io.assign import weighted_layers
from weights_io.errors import WeightsIOError
from weights_io.layouts import LAYOUTS

class UnrecognisedWeightsError(WeightsIOError, ValueError):
    """No registered network takes the whole weight file, or not the one asked for."""


TABLE_PATH = os.path.join(os.path.dirname(__file__), "data", "weighted_layers.json.gz")


def model_table_entry(model):
    """`[[layer name, numbers it holds], ...]` of a built model's weighted layers, in model order."""
    return [[layer.name, int(sum(math.prod(w.shape) for w in layer.weights))] for layer in weighted_layers(model)]


def refresh_table(path=TABLE_PATH, names=None):
    """Builds every registered model (default options) and writes the table `from_weights` ranks with."""
    table = {name: model_table_entry(model) for name, model in each_built_model(names)}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(table, f, separators=(",", ":"), sort_keys=True)
    return table


_TABLE = None


def weighted_layer_table():
    global _TABLE
    if _TABLE is None:
        with gzip.open(TABLE_PATH, "rt", encoding="utf-8") as f:
            _TABLE = json.load(f)
    return _TABLE


@dataclasses.dataclass(frozen=True)
class Match:
    """How well registered model `name` under `layout` fits a file's layers."""

    name: str
    layout: str
    placed: int  # file layers the layout places on the model
    file_layers: int
    unmapped: int  # model layers the layout gives no source in the file
    size_mismatches: tuple  # placed layers (ours) whose number counts differ from the file's, head excluded

    headless: bool = False  # the layers without a source are the model's classifier (include_top=False files)

    @property
    def complete(self):
        return self.placed == self.file_layers and (self.unmapped == 0 or self.headless) and not self.size_mismatches

    def key(self):
        """Sort key: complete first, then most placed, fewest unmapped, fewest size mismatches."""
        return (not self.complete, -self.placed, 0 if self.headless else self.unmapped, len(self.size_mismatches))

    def describe(self):
        misses = self.file_layers - self.placed
        parts = [f"{self.placed}/{self.file_layers} of the file's layers placed"]
        if misses:
            parts.append(f"{misses} left over")
        if self.unmapped:
            parts.append(f"{self.unmapped} model layers without a source")
        if self.size_mismatches:
            parts.append(f"sizes differ at {', '.join(self.size_mismatches[:3])}"
                         + (" ..." if len(self.size_mismatches) > 3 else ""))
        return f"{self.name} as {self.layout}: " + ", ".join(parts)


def _numbers(params):
    """Numbers a source layer holds; scalars (torch's num_batches_tracked) are bookkeeping."""
    return sum(int(np.prod(np.shape(a))) for a in params.values() if np.ndim(a))


def _is_head(missing, ours):
    """The model's last layers, and no more than a classifier stack (VGG: fc1, fc2, predictions)."""
    return 0 < len(missing) <= 3 and missing == ours[len(ours) - len(missing):]


def _has_head_option(name):
    return "include_top" in inspect.signature(model_spec(name).builder).parameters


_PUBLISHED = {}


def _published_table(name, layout, weight_file):
    """`[[layer, numbers]]` of model `name` built with the options `layout` implies (for `weight_file`), or None
    where none apply."""
    spec = model_spec(name)
    options = layout.implied_options(spec.family, name, weight_file)
    defaults = spec.builder.option_defaults
    if all(key in defaults and defaults[key] == value for key, value in options.items()):
        return None  # built as the table has it
    key = (name, repr(sorted(options.items())))
    if key not in _PUBLISHED:
        try:
            _PUBLISHED[key] = model_table_entry(build_for_shapes(name, **options))
        except (TypeError, ValueError):  # options another builder of the family does not take
            _PUBLISHED[key] = None
    return _PUBLISHED[key]


def _match(name, layout, layers, view, head_option):
    """How `layers` (`[[our name, numbers]]`) of model `name` take the file `view` under `layout`, or None."""
    # sources a layout may leave unused (training-only aux heads) count neither way
    sources = {key for key, params in view.tensors.items()
               if not (layout.optional_sources and params
                       and all(re.fullmatch(layout.optional_sources, f"{key}.{p}") for p in params))}
    ours, counts = [layer for layer, _ in layers], dict(layers)
    placed = {our: src for our, src in layout.mapping(ours, view).items() if src in sources}
    if not placed:
        return None
    sharing = {}  # source -> our layers it feeds (FSRCNN_Tensorflow's last conv: our sub-pixel conv and shuffle)
    for our, src in placed.items():
        sharing.setdefault(src, []).append(our)
    mismatches = tuple(group[0] for src, group in sharing.items()
                       if ours[-1] not in group and _numbers(view.tensors[src]) != sum(counts[o] for o in group))
    missing = [our for our in ours if our not in placed]
    return Match(name=name, layout=layout.name, placed=len(set(placed.values())), file_layers=len(sources),
                 unmapped=len(missing), size_mismatches=mismatches,
                 headless=head_option and _is_head(missing, ours))


def rank_models(weight_file, names=None):
    """Every (registered model, layout) pair that places at least one layer, best first (`Match.key`).

    Models are compared as their defaults build them (the table); where a layout places all of a file's
    layers on a model but the defaults differ in names or sizes, the model is compared as the layout's
    publisher builds it (GoogLeNet's Caffe variant, He's conv1 bias).
    """
    table = weighted_layer_table()
    # each layout reads the file its own way (a caffemodel's Scale layers merged into their BatchNorms)
    views = {name: layout.view(weight_file) for name, layout in LAYOUTS.items() if layout.pair_in_order is None}
    matches = []
    for name in names or sorted(table):
        layers = table.get(name)
        if layers is None:  # registered after the table was written: build it to learn its names
            layers = model_table_entry(build_for_shapes(name))
        head_option = _has_head_option(name)
        for layout in LAYOUTS.values():
            if layout.pair_in_order is not None:
                continue
            match = _match(name, layout, layers, views[layout.name], head_option)
            # a layout whose file fixes options (sizes, upsampler) may name other layers than the defaults build
            if match is not None and not match.complete and (match.placed == match.file_layers
                                                              or layout.file_options is not None):
                published = _published_table(name, layout, weight_file)
                if published is not None:
                    match = _match(name, layout, published, views[layout.name], head_option) or match
            if match is not None:
                matches.append(match)
    return sorted(matches, key=Match.key)


def _no_match_message(path, matches, model):
    closest = "\n".join(f"  - {m.describe()}" for m in matches[:3]) or "  (no layout places any of its layers)"
    wanted = f" as {model!r}" if model else ""
    return (f"Cannot place the weight file {os.fspath(path)!r}{wanted}: no registered model and layout take all "
            f"of its layers. Closest:\n{closest}\nPass model=<registry name> and source=<layout> if you know "
            f"them (kerasnets.available_models(), weights_io.LAYOUTS).")


def identify(path, model=None, *, weight_file=None):
    """The `Match` for the file at `path`: which registered model and layout it holds.

    Raises:
        UnrecognisedWeightsError: no model takes the whole file, or `model` names
            another network than the one the file holds.
    """
    weight_file = weight_file or weights_io.read_weights(path, mmap=True)
    if model is not None:
        model = model_spec(model).name
        matches = rank_models(weight_file, [model])
        if matches and matches[0].complete:
            return matches[0]
        others = [m for m in rank_models(weight_file) if m.complete]
        if others:
            raise UnrecognisedWeightsError(
                f"The weight file {os.fspath(path)!r} does not fit {model!r}; it looks like {others[0].name!r} "
                f"({others[0].layout} layout). Use model={others[0].name!r}, or leave model= out.")
        raise UnrecognisedWeightsError(_no_match_message(path, matches, model))
    matches = rank_models(weight_file)
    if not matches or not matches[0].complete:
        raise UnrecognisedWeightsError(_no_match_message(path, matches, model))
    return matches[0]


def from_weights(path, model=None, *, source=None, strict=True, progress=None, keep_background=False, **options):
    """Builds the network a weight file holds, as its publisher built it, and loads the file (all or nothing).

        model = kerasnets.from_weights("resnet50-0676ba61.pth")          # torchvision's file
        model = kerasnets.from_weights("model.safetensors", classifier_activation=None)

    The publisher is recognised from the file's layer names and sizes
    (every layout `weights_io` knows: MatConvNet, numpy dicts, torchvision,
    timm, Cadene, Keras, TF-slim, ...); the builder gets the options that
    layout implies (BN epsilon, padding, stride placement, ...) and the
    file's class count.

    Args:
        path: any file `weights_io.read_weights` reads.
        model: registry name, where the file cannot tell (a Keras 1/2 file of
            counter-named layers) or to check it: a file that holds another
            network fails, naming it.
        source: the layout name; None to detect it.
        strict: see `weights_io.load_weights`.
        progress: None or a `(done, total)` bytes callback.
        keep_background: keep class 0 of a TF-slim 1001-class classifier
            (default: dropped, a 1000-class model).
        **options: builder arguments (`classifier_activation=None` for
            logits, `input_shape`, `include_top`, ...).

    Returns:
        The loaded `keras.Model`; its load report is `model.weights_report`.
    """
    weight_file = weights_io.read_weights(path, mmap=True)
    if source is not None and model is not None:
        name = model_spec(model).name
    else:
        match = identify(path, model, weight_file=weight_file)
        name = match.name
        if match.headless:
            options.setdefault("include_top", False)
    built, report = build_for_weights(name, path, source=source, strict=strict, progress=progress,
                                      weight_file=weight_file, keep_background=keep_background, **options)
    object.__setattr__(built, "weights_report", report)  # plain attribute, as weights_io's build record
    return built


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kerasnets.identify", description=__doc__.split("\n")[0])
    parser.add_argument("--refresh", action="store_true", help=f"rewrite {TABLE_PATH}")
    args = parser.parse_args(argv)
    if args.refresh:
        table = refresh_table()
        print(f"wrote {len(table)} models to {TABLE_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
