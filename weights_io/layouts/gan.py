"""junyanz/pytorch-CycleGAN-and-pix2pix names onto kerasnets.gan's CycleGAN and pix2pix generators.

junyanz's ResnetGenerator is one `nn.Sequential` called ``model``: reflection
pad, conv7x7, norm, ReLU (indices 0-3), two (conv3x3/2, norm, ReLU) downs
(4-9), the residual blocks (10, 11, ...), each an `nn.Sequential`
``conv_block`` = [pad, conv, norm, ReLU, pad, conv, norm] without dropout
(`--no_dropout`, as its CycleGAN files were trained), then two (transposed
conv, norm, ReLU) ups, reflection pad, conv7x7 and tanh. Everything after
the blocks moves with their number, so the layout counts our ``block{i}``.

Its UnetGenerator nests one `UnetSkipConnectionBlock` per down, each with an
`nn.Sequential` ``model``: the outermost is [conv, child, ReLU, transposed
conv, tanh], a middle one [LeakyReLU, conv, norm, child, ReLU, transposed
conv, norm(, dropout)], the innermost [LeakyReLU, conv, ReLU, transposed
conv, norm]. So the block at depth d >= 1 is ``model.model.1`` followed by
``.model.3`` d - 1 times, and our down{d+1} and the up that mirrors it (up i
counts from the innermost) live there.
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


_UNET_DOWN = re.compile(r"down(\d+)_(conv|norm)")
_UNET_UP = re.compile(r"up(\d+)_(deconv|norm)")
# index in the block's `model`: middle blocks, and the innermost one (no child, no down norm)
_MIDDLE = {"conv": 1, "norm": 2, "deconv": 5, "up_norm": 6}
_INNERMOST = {"conv": 1, "deconv": 3, "up_norm": 4}


def _unet_block(depth):
    return "model.model.1" + ".model.3" * (depth - 1)


def _junyanz_unet(names):
    num_downs = sum(1 for n in names if _UNET_DOWN.fullmatch(n) and n.endswith("_conv"))
    mapping = {"down1_conv": "model.model.0", "output": "model.model.3"}
    for name in names:
        down, up = _UNET_DOWN.fullmatch(name), _UNET_UP.fullmatch(name)
        if down and down.group(1) != "1":
            depth, part = int(down.group(1)) - 1, down.group(2)
        elif up:
            depth, part = num_downs - int(up.group(1)), "deconv" if up.group(2) == "deconv" else "up_norm"
        else:
            continue
        slots = _INNERMOST if depth == num_downs - 1 else _MIDDLE
        if part in slots:
            mapping[name] = f"{_unet_block(depth)}.model.{slots[part]}"
    return {name: key for name, key in mapping.items() if name in names}


register_layout(
    Layout(
        name="junyanz-unet-generator",
        map_names=_junyanz_unet,
        description="junyanz/pytorch-CycleGAN-and-pix2pix UnetGenerator (pix2pix_generator variant='torch'): "
        "model.model.{0,3}, model.model.1(.model.3)*.model.<i>.",
        first_conv="down1_conv",
        options={"variant": "torch"},
    )
)
