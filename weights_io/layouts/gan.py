"""junyanz/pytorch-CycleGAN-and-pix2pix names onto kerasnets.gan's CycleGAN generator.

junyanz's ResnetGenerator is one `nn.Sequential` called ``model``: reflection
pad, conv7x7, norm, ReLU (indices 0-3), two (conv3x3/2, norm, ReLU) downs
(4-9), the residual blocks (10, 11, ...), each an `nn.Sequential`
``conv_block`` = [pad, conv, norm, ReLU, pad, conv, norm] without dropout
(`--no_dropout`, as its CycleGAN files were trained), then two (transposed
conv, norm, ReLU) ups, reflection pad, conv7x7 and tanh. Everything after
the blocks moves with their number, so the layout counts our ``block{i}``.
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout

_BLOCK_CONV = re.compile(r"block(\d+)_conv([12])")
_FIRST_BLOCK = 10  # stem (pad, conv, norm, relu) + 2 downs (conv, norm, relu) come first
# our conv -> index in `model`: fixed ones, and those counted from the end of the blocks
_BEFORE_BLOCKS = {"stem_conv": 1, "down1_conv": 4, "down2_conv": 7}
_AFTER_BLOCKS = {"up1_deconv": 0, "up2_deconv": 3, "output_conv": 7}  # up1: deconv, norm, relu; up2; pad; conv
_IN_BLOCK = {"1": 1, "2": 5}  # conv_block: pad, conv, norm, relu, pad, conv, norm


def _junyanz_resnet(names):
    after = _FIRST_BLOCK + sum(1 for n in names if _BLOCK_CONV.fullmatch(n) and n.endswith("_conv1"))
    mapping = {}
    for name in names:
        match = _BLOCK_CONV.fullmatch(name)
        if match:
            block, conv = match.groups()
            mapping[name] = f"model.{_FIRST_BLOCK + int(block) - 1}.conv_block.{_IN_BLOCK[conv]}"
        elif name in _BEFORE_BLOCKS:
            mapping[name] = f"model.{_BEFORE_BLOCKS[name]}"
        elif name in _AFTER_BLOCKS:
            mapping[name] = f"model.{after + _AFTER_BLOCKS[name]}"
    return mapping


register_layout(
    Layout(
        name="junyanz-resnet-generator",
        map_names=_junyanz_resnet,
        description="junyanz/pytorch-CycleGAN-and-pix2pix ResnetGenerator (no dropout): model.<i>, "
        "model.<i>.conv_block.{1,5}.",
        first_conv="stem_conv",
    )
)
