"""FSRCNN publishers' names onto kerasnets.fsrcnn's.

``fsrcnn-pytorch`` (yjn870/FSRCNN-pytorch): three `nn.Sequential`s,
``first_part`` = [conv5x5, PReLU], ``mid_part`` = [conv1x1, PReLU, m x
(conv3x3, PReLU), conv1x1, PReLU] and ``last_part`` = the ConvTranspose2d. Its
indices depend on m, so the layout counts our ``map{i}`` layers.

``fsrcnn-tensorflow`` (Saafke/FSRCNN_Tensorflow, the FSRCNN models OpenCV's
dnn_superres documents): arrays named alone, ``f{i}``/``b{i}``/``alpha{i}``
for layer i = 1 .. m + 4 in network order, and a sub-pixel output: ``f{m+4}``
is a 1x1 convolution to scale**2 channels, `depth_to_space`, then ``b{m+4}``.
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout

_MAP = re.compile(r"map(\d+)_(conv|prelu)")
_ALONE = re.compile(r"(f|b|alpha)(\d+)\.")
_ALONE_AS = {"f": "conv{}.weights", "b": "conv{}.biases", "alpha": "prelu{}.alpha"}
_KIND = {"conv": 0, "prelu": 1}


def _fsrcnn_pytorch(names):
    m = _mapping_layers(names)
    fixed = {
        "extract_conv": "first_part.0", "extract_prelu": "first_part.1",
        "shrink_conv": "mid_part.0", "shrink_prelu": "mid_part.1",
        "expand_conv": f"mid_part.{2 * m + 2}", "expand_prelu": f"mid_part.{2 * m + 3}",
        "deconv": "last_part",
    }
    mapping = {}
    for name in names:
        match = _MAP.fullmatch(name)
        if match:
            mapping[name] = f"mid_part.{2 * int(match.group(1)) + _KIND[match.group(2)]}"
        elif name in fixed:
            mapping[name] = fixed[name]
    return mapping


def _mapping_layers(names):
    return sum(1 for n in names if _MAP.fullmatch(n) and n.endswith("_conv"))


def _fsrcnn_tensorflow(names):
    m = _mapping_layers(names)
    index = {"extract": 1, "shrink": 2, "expand": m + 3, **{f"map{i}": 2 + i for i in range(1, m + 1)}}
    mapping = {}
    for name in names:
        stage, _, kind = name.rpartition("_")
        if stage in index and kind in ("conv", "prelu"):
            mapping[name] = f"{kind}{index[stage]}"
    for name in ("subpixel_conv", "subpixel_shuffle"):  # the kernel, then the bias added after the shuffle
        if name in names:
            mapping[name] = f"conv{m + 4}"
    return mapping


def _tensorflow_source_name(key):
    match = _ALONE.fullmatch(key)
    return _ALONE_AS[match.group(1)].format(match.group(2)) if match else None


register_layout(
    Layout(
        name="fsrcnn-pytorch",
        map_names=_fsrcnn_pytorch,
        description="FSRCNN-pytorch: first_part.{0,1}, mid_part.<i>, last_part.",
        first_conv="extract_conv",
        options={"upsampler": "deconv"},
    )
)


def _tensorflow_file_options(view):
    """d, s, m and scale of an FSRCNN_Tensorflow file: conv1 outputs d maps, conv2 shrinks to s, the m mapping
    convolutions follow, and the last (conv m+4) gives the sub-pixel shuffle scale**2 channels."""
    convs = sorted(int(key[4:]) for key in view.tensors if re.fullmatch(r"conv\d+", key))
    try:
        d, s = (int(view.tensors[f"conv{i}"]["weights"].shape[-1]) for i in (1, 2))
        last = int(view.tensors[f"conv{convs[-1]}"]["weights"].shape[-1])
    except (KeyError, IndexError):
        return {}
    scale = round(last ** 0.5)
    prelus = all(f"prelu{i}" in view.tensors for i in convs[:-1])  # a slope after every conv but the last
    if convs != list(range(1, len(convs) + 1)) or len(convs) < 4 or not prelus or scale * scale != last:
        return {}
    return {"d": d, "s": s, "m": len(convs) - 4, "scale": scale}


register_layout(
    Layout(
        name="fsrcnn-tensorflow",
        map_names=_fsrcnn_tensorflow,
        description="FSRCNN_Tensorflow (OpenCV dnn_superres models): f<i>, b<i>, alpha<i>; sub-pixel output.",
        first_conv="extract_conv",
        options={"upsampler": "subpixel"},
        source_names=_tensorflow_source_name,
        file_options=_tensorflow_file_options,
    )
)
