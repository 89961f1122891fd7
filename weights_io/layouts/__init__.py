"""Layouts: how other projects name the layers of the networks we build.

A layout is a function of our layer names (see `weights_io.core.Layout`);
`rule_layout` writes one from regex rules with format templates, so a layout
is a few lines of data rather than a hand-typed list. `detect_layout` picks
the layout under which most of a file's layers find a home in the model.
"""

from __future__ import annotations

import importlib
import re

from weights_io.core import Layout

LAYOUTS: dict[str, Layout] = {}


def register_layout(layout):
    if layout.name in LAYOUTS:
        raise ValueError(f"Layout {layout.name!r} registered twice")
    LAYOUTS[layout.name] = layout
    return layout


def get_layout(name):
    if isinstance(name, Layout):
        return name
    if name not in LAYOUTS:
        raise ValueError(f"Unknown layout {name!r}. Known layouts: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def rule_layout(name, rules, *, description="", first_conv=None, keep_unmatched=False, options=None,
                scoped_options=None, **fields):
    """A layout from `(regex, template)` rules applied to each of our layer names.

    The first rule whose regex fully matches a name gives the source key, as
    `template.format(*groups)`; a template may also be a function of the match.
    Names no rule matches are absent from the source, or kept as they are with
    `keep_unmatched=True`. `options` / `scoped_options` and `fields` (`merge_sources`,
    `optional_sources`, ...): see `Layout`.
    """
    compiled = [(re.compile(pattern), template) for pattern, template in rules]

    def map_names(names):
        mapping = {}
        for our in names:
            for regex, template in compiled:
                match = regex.fullmatch(our)
                if match:
                    mapping[our] = template(match) if callable(template) else template.format(*match.groups())
                    break
            else:
                if keep_unmatched:
                    mapping[our] = our
        return mapping

    return Layout(name=name, map_names=map_names, description=description, first_conv=first_conv,
                  options=dict(options or {}), scoped_options=dict(scoped_options or {}), **fields)


IDENTITY = register_layout(
    Layout(
        name="keras",
        map_names=lambda names: {n: n for n in names},
        description="The source uses our layer names (Keras weight files, keras.applications, our own exports).",
    )
)


def _pair_in_order(names, source_layers):
    if len(names) != len(source_layers):
        raise ValueError(
            f"The 'keras-order' layout pairs weighted layers by position, as Keras does for a Keras 1/2 "
            f"weight file, so both must have as many: the model has {len(names)}, the file {len(source_layers)} "
            f"(with or without the classifier? include_top must match the file)."
        )
    return dict(zip(names, source_layers))


BY_ORDER = register_layout(
    Layout(
        name="keras-order",
        map_names=lambda names: {},
        pair_in_order=_pair_in_order,
        description="Keras 1/2 weight files whose layer names are session counters (conv2d_17, "
        "keras.applications InceptionV3 / InceptionResNetV2): the n-th weighted layer of the file "
        "goes to the n-th weighted layer of the model, as keras' own load_weights does.",
        scoped_options={"inception_v3": {"variant": "keras"}},
    )
)

# keras.applications' own settings for the networks whose Keras 2 files use our names.
KERAS_APPLICATIONS_OPTIONS = {
    "resnet": {"stride_placement": "v1", "conv_bias": True, "bn_epsilon": 1.001e-5, "padding": "keras",
               "stem_pool": "padded"},
    "densenet": {"bn_epsilon": 1.001e-5, "conv_bias": False},
    "mobilenet_v3": {"padding": "keras"},
}
# ResNetV2 (pre-activation) is family "resnet" with its own settings (kerasnets.resnet.KERAS_APPLICATIONS_V2).
KERAS_APPLICATIONS_OPTIONS.update({
    f"resnet{depth}_v2": {"stride_placement": "v1.5", "stride_block": "last", "conv_bias": False,
                          "bn_epsilon": 1.001e-5, "padding": "torch", "stem_pool": "padded"}
    for depth in (50, 101, 152)
})

KERAS_APPLICATIONS = register_layout(
    Layout(
        name="keras-applications",
        map_names=lambda names: {n: n for n in names},
        description="keras.applications' Keras 1/2 .h5 files (ResNet, VGG): our layer names, "
        "keras' builder settings (ResNet: kerasnets.resnet.KERAS_APPLICATIONS). Chosen for a Keras 1/2 file "
        "whose names are ours (tf.keras' DenseNet and MobileNetV3 names are not: keras-legacy-densenet, "
        "keras-legacy-mobilenet-v3).",
        scoped_options=KERAS_APPLICATIONS_OPTIONS,
    )
)


def _from_keras2(weight_file):
    """True for a file Keras 1 or 2 wrote (only keras.applications and tf.keras users wrote our names in one)."""
    version = str(weight_file.metadata.get("keras_version", ""))
    return weight_file.format in ORDERED_FORMATS and version[:2] in ("1.", "2.")

# Readers whose layer order is the saving model's layer order (Keras 1/2 `layer_names`).
ORDERED_FORMATS = ("keras-h5", "keras-h5-model")


def _name_hits(layout, names, weight_file):
    return len(set(layout.mapping(names, weight_file).values()) & set(weight_file.tensors))


def choose_layout(names, weight_file):
    """`detect_layout`, falling back to pairing by order for a Keras 1/2 file that no name layout fits.

    A Keras 1/2 file that no name layout fits completely is loaded by order
    (layout "keras-order") when it has exactly as many weighted layers as the
    model, or when names place fewer than half of its layers (auto-named
    layers; the load then fails with the two counts). That is what
    `keras.Model.load_weights` does with such a file. Shapes and parameter
    names are still checked layer by layer, all or nothing. A Keras 1/2 file
    whose names are ours is keras.applications' ("keras-applications"), whose
    builder settings the model must share.
    """
    try:
        best = detect_layout(names, weight_file)
    except ValueError:
        best = None
    if best is IDENTITY and _from_keras2(weight_file):
        best = KERAS_APPLICATIONS
    if weight_file.format in ORDERED_FORMATS:
        layers = len(weight_file.tensors)
        hits = 0 if best is None else _name_hits(best, names, weight_file)
        complete = hits == layers and len(best.mapping(names, weight_file)) == len(names)
        if not complete and (layers == len(names) or hits < layers / 2):
            return BY_ORDER
    if best is None:
        detect_layout(names, weight_file)  # raises its explanation
    return best


def detect_layout(names, weight_file):
    """The registered layout that places the most source layers on the model.

    Ties go to the layout that leaves fewer model layers unmapped, then to
    registration order (identity first).
    """
    best, best_score = None, (0, 0)
    for layout in LAYOUTS.values():
        if layout.pair_in_order is not None or layout is KERAS_APPLICATIONS:
            continue
        viewed = layout.view(weight_file) if layout.source_names is not None else weight_file  # arrays regrouped
        mapped = layout.mapping(names, viewed)
        hits = len(set(viewed.tensors) & set(mapped.values()))
        score = (hits, -(len(names) - len(mapped)))
        if hits and score > best_score:
            best, best_score = layout, score
    if best is None:
        raise ValueError(
            "No known layout matches this file: none of its layer names "
            f"({sorted(weight_file.tensors)[:6]}...) correspond to the model's layers ({names[:6]}...). "
            f"Pass source=<layout> (one of {sorted(LAYOUTS)})."
        )
    return best


# Family modules register their layouts on import; add yours to this tuple.
_FAMILY_MODULES = ("vgg", "resnet", "densenet", "mobilenet_v3", "fsrcnn", "inception", "gan", "unet", "slim_resnet",
                   "slim_inception", "caffe")
for _module in _FAMILY_MODULES:
    importlib.import_module(f"weights_io.layouts.{_module}")
