"""TF-slim Inception and VGG layouts: ``nets.inception_v1/v3/v4``, ``inception_resnet_v2``, ``vgg_16/19`` names.

A TF checkpoint's key is the variable name; its layer part is everything
before the last ``/``. A conv unit of ours (``{u}_conv`` + ``{u}_bn``) is
slim's ``{scope}`` (``weights``) and ``{scope}/BatchNorm`` (``beta``,
``moving_mean``, ``moving_variance``: slim's Inception BN has no gamma);
Kernels are HWIO already, and a 1x1-conv classifier (``(1, 1, C, classes)``)
or VGG's fc6 (``(7, 7, 512, 4096)``, HWC order) reshapes into our Dense.

Scopes (``Branch_{b}`` / unit names vary from block to block, and slim has a
few quirks the checkpoints keep: v1's ``Mixed_5b`` 3x3 is ``Conv2d_0a_3x3``,
v3's ``Mixed_5c`` ``Conv2d_0b_1x1`` / ``Conv_1_0c_5x5`` and ``Mixed_6a``
3x3 ``Conv2d_1a_1x1``, so each block kind is a table below):

* ``InceptionV1``: ``Conv2d_1a_7x7``, ``Conv2d_2b_1x1``, ``Conv2d_2c_3x3``,
  ``Mixed_3b`` .. ``Mixed_5c`` (our ``inception3a`` .. ``inception5b``),
  ``Logits/Conv2d_0c_1x1``. Build ``build_googlenet(variant="slim")``.
* ``InceptionV3``: ``Conv2d_1a_3x3`` .. ``Conv2d_4a_3x3``, ``Mixed_5b`` ..
  ``Mixed_7c`` (our ``mixed0`` .. ``mixed10``), ``AuxLogits/Conv2d_1b_1x1``,
  ``Conv2d_2a_5x5``, ``Conv2d_2b_1x1``, ``Logits/Conv2d_1c_1x1``. Build
  ``build_inception_v3()`` (keras' variant is slim's), with
  ``aux_logits=True`` to load the aux head.
* ``InceptionV4``: ``Conv2d_1a_3x3`` .. ``Conv2d_2b_3x3``, ``Mixed_3a`` ..
  ``Mixed_5a``, ``Mixed_5b``-``5e`` (``inception_a1-4``), ``Mixed_6a``
  (``reduction_a``), ``Mixed_6b``-``6h``, ``Mixed_7a``, ``Mixed_7b``-``7d``,
  ``Logits/Logits``. Build ``build_inception_v4(bn_scale=False)``.
* ``InceptionResnetV2``: stem as v3's, ``Mixed_5b``, ``Repeat/block35_{i}``,
  ``Mixed_6a``, ``Repeat_1/block17_{i}``, ``Mixed_7a``,
  ``Repeat_2/block8_{i}`` (i <= 9), ``Block8`` (the last, linear one; each
  block's projection ``Conv2d_1x1`` has biases and no BN),
  ``Conv2d_7b_1x1``, ``Logits/Logits``. Build ``build_inception_resnet_v2()``.
* ``vgg_16`` / ``vgg_19`` (the depth read off our block3): ``conv{b}/conv{b}_{c}``,
  ``fc6`` (7x7 VALID conv), ``fc7``, ``fc8``. Build ``build_vgg16()`` (or
  ``fully_convolutional=True``); 1000 classes, RGB minus the ImageNet mean.

v3, v4 and Inception-ResNet v2 checkpoints also hold ``AuxLogits``: it loads
into v3's aux head where the model has one, and is skipped (listed as
skipped) otherwise: our v4 and Inception-ResNet v2 build none. Their 1001
classes put a background class first, which the assign step drops unless
``keep_background=True`` (`Layout.background_classes`).
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout

# Unit tables: per branch, slim's unit scope for each step of ours (None: a pool, which has no weights).
_V1_UNITS = {"1x1": "Branch_0/Conv2d_0a_1x1", "3x3_reduce": "Branch_1/Conv2d_0a_1x1",
             "3x3": "Branch_1/Conv2d_0b_3x3", "5x5_reduce": "Branch_2/Conv2d_0a_1x1",
             "5x5": "Branch_2/Conv2d_0b_3x3", "pool_proj": "Branch_3/Conv2d_0b_1x1"}
_V1_MODULES = dict(zip(("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"),
                       ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")))


def _inception_v1(names):
    mapping = {"conv1_7x7_s2": "Conv2d_1a_7x7", "conv2_3x3_reduce": "Conv2d_2b_1x1", "conv2_3x3": "Conv2d_2c_3x3"}
    for ours, slim in _V1_MODULES.items():
        for unit, scope in _V1_UNITS.items():
            if ours == "5a" and unit == "5x5":
                scope = "Branch_2/Conv2d_0a_3x3"  # slim's typo, kept by its checkpoints
            mapping[f"inception{ours}_{unit}"] = f"Mixed_{slim}/{scope}"
    return _units(names, "InceptionV1", mapping, {"predictions": "Logits/Conv2d_0c_1x1"})


_V3_STEM = {"conv1a": "Conv2d_1a_3x3", "conv2a": "Conv2d_2a_3x3", "conv2b": "Conv2d_2b_3x3",
            "conv3b": "Conv2d_3b_1x1", "conv4a": "Conv2d_4a_3x3"}
_V3_A = {"branch1x1": "Branch_0/Conv2d_0a_1x1", "branch5x5_1": "Branch_1/Conv2d_0a_1x1",
         "branch5x5_2": "Branch_1/Conv2d_0b_5x5", "branch3x3dbl_1": "Branch_2/Conv2d_0a_1x1",
         "branch3x3dbl_2": "Branch_2/Conv2d_0b_3x3", "branch3x3dbl_3": "Branch_2/Conv2d_0c_3x3",
         "branch_pool": "Branch_3/Conv2d_0b_1x1"}
_V3_B = {"branch3x3": "Branch_0/Conv2d_1a_1x1", "branch3x3dbl_1": "Branch_1/Conv2d_0a_1x1",
         "branch3x3dbl_2": "Branch_1/Conv2d_0b_3x3", "branch3x3dbl_3": "Branch_1/Conv2d_1a_1x1"}
_V3_C = {"branch1x1": "Branch_0/Conv2d_0a_1x1", "branch7x7_1": "Branch_1/Conv2d_0a_1x1",
         "branch7x7_2": "Branch_1/Conv2d_0b_1x7", "branch7x7_3": "Branch_1/Conv2d_0c_7x1",
         **{f"branch7x7dbl_{i}": f"Branch_2/Conv2d_0{c}" for i, c in
            enumerate(("a_1x1", "b_7x1", "c_1x7", "d_7x1", "e_1x7"), start=1)},
         "branch_pool": "Branch_3/Conv2d_0b_1x1"}
_V3_D = {"branch3x3_1": "Branch_0/Conv2d_0a_1x1", "branch3x3_2": "Branch_0/Conv2d_1a_3x3",
         **{f"branch7x7x3_{i}": f"Branch_1/Conv2d_{c}" for i, c in
            enumerate(("0a_1x1", "0b_1x7", "0c_7x1", "1a_3x3"), start=1)}}
_V3_E = {"branch1x1": "Branch_0/Conv2d_0a_1x1", "branch3x3_1": "Branch_1/Conv2d_0a_1x1",
         "branch3x3_2a": "Branch_1/Conv2d_0b_1x3", "branch3x3_2b": "Branch_1/Conv2d_0c_3x1",
         "branch3x3dbl_1": "Branch_2/Conv2d_0a_1x1", "branch3x3dbl_2": "Branch_2/Conv2d_0b_3x3",
         "branch3x3dbl_3a": "Branch_2/Conv2d_0c_1x3", "branch3x3dbl_3b": "Branch_2/Conv2d_0d_3x1",
         "branch_pool": "Branch_3/Conv2d_0b_1x1"}
# ours mixed{i} -> (slim block, unit table); slim's quirks per block.
_V3_BLOCKS = (
    ("Mixed_5b", _V3_A),
    ("Mixed_5c", {**_V3_A, "branch5x5_1": "Branch_1/Conv2d_0b_1x1", "branch5x5_2": "Branch_1/Conv_1_0c_5x5"}),
    ("Mixed_5d", _V3_A),
    ("Mixed_6a", _V3_B),
    ("Mixed_6b", _V3_C), ("Mixed_6c", _V3_C), ("Mixed_6d", _V3_C), ("Mixed_6e", _V3_C),
    ("Mixed_7a", _V3_D),
    ("Mixed_7b", {**_V3_E, "branch3x3_2b": "Branch_1/Conv2d_0b_3x1"}),
    ("Mixed_7c", _V3_E),
)


def _inception_v3(names):
    mapping = dict(_V3_STEM)
    for i, (block, table) in enumerate(_V3_BLOCKS):
        mapping.update({f"mixed{i}_{unit}": f"{block}/{scope}" for unit, scope in table.items()})
    mapping.update({"aux_conv0": "AuxLogits/Conv2d_1b_1x1", "aux_conv1": "AuxLogits/Conv2d_2a_5x5"})
    return _units(names, "InceptionV3", mapping,
                  {"aux_predictions": "AuxLogits/Conv2d_2b_1x1", "predictions": "Logits/Conv2d_1c_1x1"})


def _branches(*branches):
    """`{"branch{b}_{j}": "Branch_{b}/<unit>"}` from per-branch tuples of slim units (None: a pool step)."""
    return {f"branch{b}_{j}": f"Branch_{b}/{unit}" for b, units in enumerate(branches)
            for j, unit in enumerate(units) if unit}


_V4_A = _branches(("Conv2d_0a_1x1",), ("Conv2d_0a_1x1", "Conv2d_0b_3x3"),
                  ("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_0c_3x3"), (None, "Conv2d_0b_1x1"))
_V4_B = _branches(("Conv2d_0a_1x1",), ("Conv2d_0a_1x1", "Conv2d_0b_1x7", "Conv2d_0c_7x1"),
                  ("Conv2d_0a_1x1", "Conv2d_0b_7x1", "Conv2d_0c_1x7", "Conv2d_0d_7x1", "Conv2d_0e_1x7"),
                  (None, "Conv2d_0b_1x1"))
_V4_C = {**_branches(("Conv2d_0a_1x1",), ("Conv2d_0a_1x1",), ("Conv2d_0a_1x1", "Conv2d_0b_3x1", "Conv2d_0c_1x3"),
                     (None, "Conv2d_0b_1x1")),
         "branch1_1a": "Branch_1/Conv2d_0b_1x3", "branch1_1b": "Branch_1/Conv2d_0c_3x1",
         "branch2_3a": "Branch_2/Conv2d_0d_1x3", "branch2_3b": "Branch_2/Conv2d_0e_3x1"}
_V4_BLOCKS = {
    "mixed3a": ("Mixed_3a", _branches((None,), ("Conv2d_0a_3x3",))),
    "mixed4a": ("Mixed_4a", _branches(("Conv2d_0a_1x1", "Conv2d_1a_3x3"),
                                      ("Conv2d_0a_1x1", "Conv2d_0b_1x7", "Conv2d_0c_7x1", "Conv2d_1a_3x3"))),
    "mixed5a": ("Mixed_5a", _branches(("Conv2d_1a_3x3",), (None,))),
    **{f"inception_a{i}": (f"Mixed_5{'bcde'[i - 1]}", _V4_A) for i in range(1, 5)},
    "reduction_a": ("Mixed_6a", _branches(("Conv2d_1a_3x3",), ("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3"))),
    **{f"inception_b{i}": (f"Mixed_6{'bcdefgh'[i - 1]}", _V4_B) for i in range(1, 8)},
    "reduction_b": ("Mixed_7a", _branches(("Conv2d_0a_1x1", "Conv2d_1a_3x3"),
                                          ("Conv2d_0a_1x1", "Conv2d_0b_1x7", "Conv2d_0c_7x1", "Conv2d_1a_3x3"))),
    **{f"inception_c{i}": (f"Mixed_7{'bcd'[i - 1]}", _V4_C) for i in range(1, 4)},
}


def _inception_v4(names):
    mapping = {ours: _V3_STEM[ours] for ours in ("conv1a", "conv2a", "conv2b")}
    for ours, (block, table) in _V4_BLOCKS.items():
        mapping.update({f"{ours}_{unit}": f"{block}/{scope}" for unit, scope in table.items()})
    return _units(names, "InceptionV4", mapping, {"predictions": "Logits/Logits"})


_IRV2_TABLES = {
    "mixed_5b": _branches(("Conv2d_1x1",), ("Conv2d_0a_1x1", "Conv2d_0b_5x5"),
                          ("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_0c_3x3"), (None, "Conv2d_0b_1x1")),
    "mixed_6a": _branches(("Conv2d_1a_3x3",), ("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3")),
    "mixed_7a": _branches(("Conv2d_0a_1x1", "Conv2d_1a_3x3"), ("Conv2d_0a_1x1", "Conv2d_1a_3x3"),
                          ("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3")),
    "block35": _branches(("Conv2d_1x1",), ("Conv2d_0a_1x1", "Conv2d_0b_3x3"),
                         ("Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_0c_3x3")),
    "block17": _branches(("Conv2d_1x1",), ("Conv2d_0a_1x1", "Conv2d_0b_1x7", "Conv2d_0c_7x1")),
    "block8": _branches(("Conv2d_1x1",), ("Conv2d_0a_1x1", "Conv2d_0b_1x3", "Conv2d_0c_3x1")),
}
_IRV2_REPEATS = {"block35": "Repeat", "block17": "Repeat_1", "block8": "Repeat_2"}
_IRV2_BLOCK = re.compile(r"(block35|block17|block8)_(\d+)")


def _inception_resnet_v2(names):
    last_block8 = max((int(m.group(2)) for m in map(_IRV2_BLOCK.match, names) if m and m.group(1) == "block8"),
                      default=0)
    mapping = {**_V3_STEM, "conv_7b": "Conv2d_7b_1x1"}
    for block in ("mixed_5b", "mixed_6a", "mixed_7a"):
        mapping.update({f"{block}_{unit}": f"{block.capitalize()}/{path}" for unit, path in _IRV2_TABLES[block].items()})
    heads = {"predictions": "Logits/Logits"}
    for name in names:
        match = _IRV2_BLOCK.match(name)
        if match and name.startswith(match.group(0) + "_"):
            kind, i = match.group(1), int(match.group(2))
            scope = "Block8" if kind == "block8" and i == last_block8 else f"{_IRV2_REPEATS[kind]}/{kind}_{i}"
            mapping.update({f"{kind}_{i}_mixed_{unit}": f"{scope}/{path}" for unit, path in _IRV2_TABLES[kind].items()})
            heads[f"{kind}_{i}_conv"] = f"{scope}/Conv2d_1x1"  # the projection: biases, no BN
    return _units(names, "InceptionResnetV2", mapping, heads)


def _units(names, root, units, plain):
    """Our ``{unit}_conv`` / ``{unit}_bn`` (``conv_7b`` / ``conv_7b_bn``) and the `plain` layers under `root`."""
    full = {ours: f"{root}/{slim}" for ours, slim in plain.items()}
    for ours, slim in units.items():
        conv = ours if ours == "conv_7b" else f"{ours}_conv"
        full[conv] = f"{root}/{slim}"
        full[f"{ours}_bn"] = f"{root}/{slim}/BatchNorm"
    return {name: full[name] for name in names if name in full}


_VGG_LAYER = re.compile(r"block(\d)_conv(\d)")


def _vgg(names):
    depth = 19 if "block3_conv4" in names else 16
    mapping = {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}
    for name in names:
        match = _VGG_LAYER.fullmatch(name)
        if match:
            mapping[name] = "conv{0}/conv{0}_{1}".format(*match.groups())
    return {name: f"vgg_{depth}/{mapping[name]}" for name in names if name in mapping}


# Builder options each publisher implies (weights_io never imports kerasnets; the values are
# kerasnets' option names). Scoped by registry name: one layout per network.
_SLIM_AUX = r".*/AuxLogits/.*"

for _name, _map, _model, _options, _description in (
    ("tf-slim-inception-v1", _inception_v1, "googlenet", {"variant": "slim"},
     "TF-slim inception_v1: InceptionV1/Conv2d_1a_7x7 .. Mixed_5c, Logits/Conv2d_0c_1x1; "
     "build_googlenet(variant='slim')"),
    ("tf-slim-inception-v3", _inception_v3, "inception_v3", {"variant": "keras", "bn_epsilon": 1e-3},
     "TF-slim inception_v3: InceptionV3/Conv2d_1a_3x3 .. Mixed_7c, AuxLogits, Logits/Conv2d_1c_1x1; "
     "build_inception_v3() (aux_logits=True loads AuxLogits)"),
    ("tf-slim-inception-v4", _inception_v4, "inception_v4", {"bn_scale": False, "bn_epsilon": 1e-3},
     "TF-slim inception_v4: InceptionV4/Conv2d_1a_3x3 .. Mixed_7d, Logits/Logits (AuxLogits skipped); "
     "build_inception_v4(bn_scale=False)"),
    ("tf-slim-inception-resnet-v2", _inception_resnet_v2, "inception_resnet_v2", {"bn_scale": False, "bn_epsilon": 1e-3},
     "TF-slim inception_resnet_v2: InceptionResnetV2/Conv2d_1a_3x3 .. Repeat_2/block8_9, Block8, Conv2d_7b_1x1, "
     "Logits/Logits (AuxLogits skipped); build_inception_resnet_v2()"),
):
    register_layout(Layout(
        name=_name, map_names=_map, description=_description + "; 1001 classes lose background class 0 "
        "unless keep_background=True.", first_conv="conv1_7x7_s2_conv" if _model == "googlenet" else "conv1a_conv",
        scoped_options={_model: _options}, background_classes=1001, optional_sources=_SLIM_AUX))

register_layout(Layout(
    name="tf-slim-vgg",
    map_names=_vgg,
    description="TF-slim vgg_16 / vgg_19: vgg_N/conv{b}/conv{b}_{c}, fc6 (7x7 conv), fc7, fc8 (1x1 convs), "
    "1000 classes; build_vgg16/19() (Dense head: fc6 reshapes in HWC order) or fully_convolutional=True.",
    first_conv="block1_conv1",
    scoped_options={"vgg16": {"batch_norm": False}, "vgg19": {"batch_norm": False}},
))
