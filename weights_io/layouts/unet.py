"""milesial/Pytorch-UNet names onto kerasnets.unet's (``batch_norm=True``, ``padding="same"``).

milesial's UNet is ``inc`` (a DoubleConv), ``down1``..``down4`` (each
``maxpool_conv`` = [MaxPool2d, DoubleConv]), ``up1``..``up4`` (``up``, a
ConvTranspose2d when bilinear=False, and ``conv``, a DoubleConv) and
``outc.conv``. A DoubleConv is ``double_conv`` = [conv, BN, ReLU, conv, BN,
ReLU], so our conv1/conv2 and their BNs are indices 0/1 and 3/4. ``up1`` is
the deepest up-step, so the layout counts our levels to number them.
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout

_CONV = re.compile(r"(enc|dec)(\d+)_conv([12])(_bn)?")
_UPCONV = re.compile(r"dec(\d+)_upconv")
_INDEX = {("1", False): 0, ("1", True): 1, ("2", False): 3, ("2", True): 4}


def _milesial_unet(names):
    depth = sum(1 for n in names if re.fullmatch(r"enc\d+_conv1", n))
    mapping = {"predictions": "outc.conv"} if "predictions" in names else {}
    for name in names:
        conv, upconv = _CONV.fullmatch(name), _UPCONV.fullmatch(name)
        if conv:
            side, level, j, bn = conv.groups()
            level = int(level)
            if side == "dec":
                block = f"up{depth - level}.conv"
            else:
                block = "inc" if level == 1 else f"down{level - 1}.maxpool_conv.1"
            mapping[name] = f"{block}.double_conv.{_INDEX[j, bn is not None]}"
        elif upconv:
            mapping[name] = f"up{depth - int(upconv.group(1))}.up"
    return mapping


register_layout(
    Layout(
        name="milesial-unet",
        map_names=_milesial_unet,
        description="milesial/Pytorch-UNet (bilinear=False): inc, down<i>.maxpool_conv.1, up<i>.conv "
        "(each .double_conv.{0,1,3,4}), up<i>.up, outc.conv.",
        first_conv="enc1_conv1",
        options={"padding": "same", "batch_norm": True, "bn_epsilon": 1e-5},
    )
)
