"""FSRCNN-pytorch (yjn870/FSRCNN-pytorch) names onto kerasnets.fsrcnn's.

The repository's model is three `nn.Sequential`s: ``first_part`` = [conv5x5,
PReLU], ``mid_part`` = [conv1x1, PReLU, m x (conv3x3, PReLU), conv1x1, PReLU]
and ``last_part`` = the ConvTranspose2d. Its indices depend on m, so the
layout counts our ``map{i}`` layers.
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout

_MAP = re.compile(r"map(\d+)_(conv|prelu)")
_KIND = {"conv": 0, "prelu": 1}


def _fsrcnn_pytorch(names):
    m = sum(1 for n in names if _MAP.fullmatch(n) and n.endswith("_conv"))
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


register_layout(
    Layout(
        name="fsrcnn-pytorch",
        map_names=_fsrcnn_pytorch,
        description="FSRCNN-pytorch: first_part.{0,1}, mid_part.<i>, last_part.",
        first_conv="extract_conv",
    )
)
